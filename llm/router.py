"""Model tiers over litellm: the purpose's chain of tiers, each tier's deployments, shared tier health, and a
token-and-dollar reservation in the ledger around every attempt.

Why not litellm.Router: every attempt must reserve tokens and dollars in our ledger for the deployment it
actually hits (and settle or release them), tiers must be skipped by budget state and share caps, and
litellm's Router does not cool down a model group that has a single deployment. So the fallback loop is
ours; litellm does the provider call, the error mapping, the tool-call parsing and the price map.

A call's chain (llm/routing.py): the wanted tier, then cheaper tiers, then pricier ones only while the
call's estimated cost there stays under `llm.fallback_cost_ceiling` (none without one, none once the budget
is degraded); the strategic-only tier for strategic calls alone. Within a tier, its deployments in order.
A hanging deployment costs at most its `timeout_s`, or what is left until the caller's `deadline`
(time.monotonic()), whichever is less; past the deadline nothing more is tried.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from core import telemetry
from core.domain import BudgetState
from core.llm_types import Attempt, BudgetLimit, LLMFailure, LLMReply, LLMResult, Message, Purpose
from core.llm_types import FailureKind as FailureKind  # re-exported with the other call types
from core.settings import DeploymentConfig, LLMConfig, Settings, TierConfig
from llm import provider
from llm.health import TierHealth
from llm.ledger import BudgetExhausted
from llm.pricing import Price, deployment_price, prompt_tokens_ceiling
from llm.routing import TierMap

log = logging.getLogger(__name__)
PROBE_GRACE_S = 5.0  # a half-open probe's lease outlives its timeout by this much


class Ledger(Protocol):
    """What the router needs from llm.ledger.TokenLedger."""

    path: Path  # the state db: tier health lives beside the ledger
    daily_cost_cap: float | None

    def reserve(
        self,
        tier: str,
        tokens: int,
        now: float | None = None,
        *,
        cost: float = 0.0,
        purpose: str | None = None,
        share_cap: float | None = None,
    ) -> Any: ...
    def settle(self, res: Any, tokens_in: int, tokens_out: int, cost: float, now: float | None = None) -> Any: ...
    def release(self, res: Any) -> Any: ...
    def state(self, now: float | None = None) -> BudgetState: ...


class Health(Protocol):
    """Tier health (llm/health.py): one circuit breaker per deployment, shared by every process."""

    def claim(self, tier: str, now: float, probe_lease_s: float) -> float | None: ...
    def failed(self, tier: str, until: float, now: float | None = None) -> float: ...
    def succeeded(self, tier: str, now: float | None = None) -> None: ...
    def release_probe(self, tier: str) -> None: ...
    def cooling_down(self, now: float) -> dict[str, float]: ...


@dataclass(frozen=True)
class CallSpec:
    """One call's request, as every attempt of it sends it."""

    messages: list[Message]
    tools: Sequence[dict[str, Any]] | None
    max_tokens: int | None
    temperature: float | None
    tool_choice: str | None
    purpose: Purpose
    routed: bool  # a fleet call picked by the split: counted in the ledger's routed calls, share caps apply
    share_caps: Mapping[str, float]


@dataclass(frozen=True)
class _Sending:
    """What one attempt holds once it may go out: the deployment, its key, its reservation, its price."""

    deployment: DeploymentConfig
    api_key: str | None
    reservation: Any
    price: Price | None
    max_tokens: int


class TierRouter:
    """`complete(messages, purpose=..., tools=...)` -> LLMReply | LLMFailure; never raises for provider trouble."""

    def __init__(
        self,
        config: LLMConfig,
        ledger: Ledger,
        *,
        degrade_at: float = 0.8,
        clock: Callable[[], float] = time.time,
        health: Health | None = None,
    ) -> None:
        if not 0.0 < degrade_at <= 1.0:
            raise ValueError(f"budget.degrade_at must be in (0, 1], got {degrade_at}")
        self.config = config
        self.ledger = ledger
        self.degrade_at = degrade_at
        self.clock = clock
        self.tiers = TierMap.from_config(config)
        self._tiers = {t.name: t for t in config.tiers}
        self._health: Health = health if health is not None else TierHealth(ledger.path)

    @classmethod
    def from_settings(cls, settings: Settings, ledger: Ledger) -> TierRouter:
        return cls(settings.llm, ledger, degrade_at=settings.budget.degrade_at)

    # ------------------------------------------------------------- tiers

    @property
    def enabled(self) -> bool:
        return bool(self.tiers.order)

    @property
    def tier_names(self) -> tuple[str, ...]:
        return self.tiers.order

    def tier(self, name: str) -> TierConfig:
        return self._tiers[name]

    def tier_for(self, purpose: Purpose) -> str:
        """The configured tier of a purpose; defaults in llm/routing.py (TierMap)."""
        if not self.enabled:
            raise ValueError("no LLM tiers configured")
        return self.tiers.purpose_tier[purpose]

    def cooling_down(self) -> dict[str, float]:
        """Tiers every deployment of which is cooling down, with the soonest time one comes back."""
        now = self.clock()
        cooling = self._health.cooling_down(now)
        out = {}
        for name, tier in self._tiers.items():
            keys = [_health_key(name, i) for i in range(len(tier.deployments()))]
            if all(k in cooling for k in keys):
                out[name] = min(cooling[k] for k in keys)
        return out

    def budget_share(self, now: float) -> float:
        state = self.ledger.state(now)
        if state.window_tokens <= 0:
            return 1.0
        return (state.used_tokens + state.reserved_tokens) / state.window_tokens

    def chain(self, tier: str, purpose: Purpose = "routine", degraded: bool = False) -> tuple[list[str], list[str]]:
        """The tier and the tiers a call may fall back to, then those it may climb to under the ceiling."""
        if tier not in self._tiers:
            raise ValueError(f"unknown tier {tier!r}; configured: {list(self.tiers.order)}")
        cheaper, pricier = self.tiers.fallbacks(tier, purpose)
        if degraded:  # past degrade_at the call starts at the cheapest tier and never climbs
            return [*reversed(cheaper), tier], []
        return [tier, *cheaper], [] if self.config.fallback_cost_ceiling is None else list(pricier)

    # ------------------------------------------------------------- calls

    def complete(
        self,
        messages: Sequence[Message],
        *,
        purpose: Purpose = "routine",
        tier: str | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        deadline: float | None = None,
        temperature: float | None = None,
        tool_choice: str | None = None,
        routed: bool = False,
        share_caps: Mapping[str, float] | None = None,
    ) -> LLMResult:
        """`tier`: start there instead of the purpose's tier. `deadline` (a time.monotonic() value): each
        request's timeout is cut to the time left, and once it has passed the remaining tiers are skipped."""
        if not self.enabled:
            return LLMFailure("no_model", "no LLM tiers configured")
        spec = CallSpec(
            list(messages), tools, max_tokens, temperature, tool_choice, purpose, routed, dict(share_caps or {})
        )
        degraded = self.budget_share(self.clock()) >= self.degrade_at
        fallbacks, climb = self.chain(tier or self.tier_for(purpose), purpose, degraded)
        attempts: list[Attempt] = []
        for name in [*fallbacks, *climb]:
            ceiling = self.config.fallback_cost_ceiling if name in climb else None
            reply = self._try_tier(self._tiers[name], spec, degraded, deadline, ceiling, attempts)
            if reply is not None:
                return replace(reply, attempts=tuple(attempts))
        return _failure(attempts)

    def _try_tier(
        self,
        tier: TierConfig,
        spec: CallSpec,
        degraded: bool,
        deadline: float | None,
        ceiling: float | None,
        attempts: list[Attempt],
    ) -> LLMReply | None:
        for index, deployment in enumerate(tier.deployments()):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                attempts.append(Attempt(tier.name, "deadline passed", skipped=True))
                return None
            outcome = self._attempt(tier, index, deployment, spec, degraded, left, ceiling)
            label = deployment.model if tier.backups else None
            if isinstance(outcome, LLMReply):
                attempts.append(Attempt(tier.name, deployment=label))
                return outcome
            attempts.append(replace(outcome, deployment=label))
        return None

    def _attempt(
        self,
        tier: TierConfig,
        index: int,
        deployment: DeploymentConfig,
        spec: CallSpec,
        degraded: bool,
        time_left: float | None,
        ceiling: float | None,
    ) -> LLMReply | Attempt:
        now = self.clock()
        key = _health_key(tier.name, index)
        api_key = _api_key(tier.name, deployment)
        if isinstance(api_key, Attempt):
            return api_key
        price = deployment_price(deployment)
        if price is None and self.ledger.daily_cost_cap is not None:
            reason = f"model {deployment.model} has no price, so its spend could pass the daily cost cap unseen"
            return Attempt(tier.name, reason, skipped=True)
        limit = spec.max_tokens or tier.max_tokens
        prompt = prompt_tokens_ceiling(deployment.model, spec.messages, spec.tools)
        cost = price.cost(prompt, limit) if price is not None else 0.0
        if ceiling is not None and cost > ceiling:
            return Attempt(
                tier.name, f"estimated ${cost:.4f} is over the fallback ceiling ${ceiling:.4f}", skipped=True
            )
        until = self._health.claim(key, now, deployment.timeout_s + PROBE_GRACE_S)
        if until is not None:
            return Attempt(tier.name, f"cooling down for {until - now:.0f}s", skipped=True)
        reservation = self.ledger.reserve(
            tier.name,
            prompt + limit,
            now,
            cost=cost,
            purpose=spec.purpose if spec.routed else None,
            share_cap=spec.share_caps.get(tier.name) if spec.routed else None,
        )
        if isinstance(reservation, BudgetExhausted):
            self._health.release_probe(key)  # no request went out: a claimed probe is handed back unspent
            return Attempt(tier.name, f"budget exhausted: {reservation.message}", True, reservation.reason)
        return self._send(
            tier, key, _Sending(deployment, api_key, reservation, price, limit), spec, degraded, time_left
        )

    def _send(
        self, tier: TierConfig, key: str, sending: _Sending, spec: CallSpec, degraded: bool, time_left: float | None
    ) -> LLMReply | Attempt:
        deployment = sending.deployment
        attributes = provider.span_attributes(deployment, sending.max_tokens, spec.temperature, tier.name)
        name = f"chat {attributes.get(telemetry.REQUEST_MODEL, deployment.model)}"
        with telemetry.span(name, attributes, kind="client") as span:
            if telemetry.capture_content():
                span.set({"gen_ai.input.messages": telemetry.content_json(spec.messages)})
            started = time.monotonic()
            result = self._request(tier, key, sending, spec, degraded, time_left)
            elapsed = time.monotonic() - started
            if isinstance(result, LLMReply):
                span.set({telemetry.INPUT_TOKENS: result.tokens_in, telemetry.OUTPUT_TOKENS: result.tokens_out})
                if telemetry.capture_content():
                    span.set({"gen_ai.output.messages": telemetry.content_json([result.assistant_message()])})
                telemetry.record_chat(attributes, result.tokens_in, result.tokens_out, elapsed, None)
            else:
                error = (result.error or "failed").split(" ", 1)[0]  # the exception's class name
                span.fail(error)
                telemetry.record_chat(attributes, 0, 0, elapsed, error)
        return result

    def _request(
        self, tier: TierConfig, key: str, sending: _Sending, spec: CallSpec, degraded: bool, time_left: float | None
    ) -> LLMReply | Attempt:
        deployment, reservation = sending.deployment, sending.reservation
        cut = time_left is not None and time_left < deployment.timeout_s
        timeout = time_left if cut and time_left is not None else deployment.timeout_s
        try:
            response = provider.call(
                deployment,
                spec.messages,
                tools=spec.tools,
                max_tokens=sending.max_tokens,
                api_key=sending.api_key,
                timeout=timeout,
                temperature=spec.temperature,
                tool_choice=spec.tool_choice,
            )
        except Exception as exc:
            self.ledger.release(reservation)
            if not provider.is_provider_error(exc):
                raise
            if cut and provider.is_timeout(exc):  # stopped by the caller's deadline, not its own timeout: no cooldown
                return Attempt(tier.name, f"{type(exc).__name__} at the deadline ({timeout:.1f}s)")
            return self._failed(tier.name, key, exc)
        self._health.succeeded(key)
        reply = provider.parse(response, tier.name, deployment, sending.price, degraded)
        self.ledger.settle(reservation, reply.tokens_in, reply.tokens_out, reply.cost, self.clock())
        return reply

    def _failed(self, tier: str, key: str, exc: Exception) -> Attempt:
        status = getattr(exc, "status_code", None)
        kind = type(exc).__name__
        if provider.is_bad_request(exc):  # the request's fault (e.g. context too long), not the tier's
            self._health.succeeded(key)
            return Attempt(tier, f"{kind} ({status})")
        pause = max(self.config.cooldown_s, provider.retry_after(exc) or 0.0)
        self._health.failed(key, self.clock() + pause)
        log.warning("llm tier %s failed with %s (%s); cooling down %.0fs", key, kind, status, pause)
        return Attempt(tier, f"{kind} ({status}); cooldown {pause:.0f}s")


def _health_key(tier: str, index: int) -> str:
    return tier if index == 0 else f"{tier}#{index}"


def _api_key(tier: str, deployment: DeploymentConfig) -> str | Attempt | None:
    if deployment.api_key_env is None:
        return None  # litellm reads the provider's own env var (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...)
    value = os.environ.get(deployment.api_key_env)
    if not value:
        return Attempt(tier, f"env var {deployment.api_key_env} is not set", skipped=True)
    return value


def _failure(attempts: list[Attempt]) -> LLMFailure:
    limits: tuple[BudgetLimit, ...] = tuple(dict.fromkeys(a.budget_limit for a in attempts if a.budget_limit))
    summary = "; ".join(f"{a.tier}: {a.error}" for a in attempts)
    if limits and all(a.skipped for a in attempts):
        return LLMFailure("budget_exhausted", f"no call made ({summary})", tuple(attempts), limits)
    return LLMFailure("provider_failed", f"every tier failed ({summary})", tuple(attempts), limits)


if TYPE_CHECKING:
    from core.ports import ChatRouter

    def _is_a_chat_router(router: TierRouter) -> ChatRouter:
        return router  # mypy checks that TierRouter structurally satisfies core.ports.ChatRouter
