"""Model tiers over litellm: one deployment per tier, fallbacks, cooldowns, and a token ledger around every call.

Why not litellm.Router: every attempt must reserve tokens in our ledger for the tier it actually hits (and
settle or release them), tiers must be skipped by budget state, and litellm's Router does not cool down a
model group that has a single deployment. So the fallback loop is ours; litellm does the provider call, the
error mapping, the tool-call parsing and the prices.

Exactly one HTTP attempt per tier and call, whatever the provider (`_no_sdk_retries`): the fallback across
tiers plus the cooldown is the retry policy. A hanging tier costs at most its `timeout_s`, or what is left
until the caller's `deadline` (time.monotonic()), whichever is less; past the deadline no tier is tried.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from core.domain import BudgetState
from core.llm_types import Attempt, LLMFailure, LLMReply, LLMResult, Message, RawToolCall, Role
from core.llm_types import FailureKind as FailureKind  # re-exported with the other call types
from core.settings import LLMConfig, Settings, TierConfig
from llm.ledger import BudgetExhausted

log = logging.getLogger(__name__)


class Ledger(Protocol):
    """What the router needs from agent.ledger.TokenLedger."""

    def reserve(self, tier: str, tokens: int, now: float) -> Any: ...
    def settle(self, res: Any, tokens_in: int, tokens_out: int, cost: float, now: float) -> Any: ...
    def release(self, res: Any) -> Any: ...
    def state(self, now: float) -> BudgetState: ...


def is_budget_exhausted(reservation: object) -> bool:
    return isinstance(reservation, BudgetExhausted)


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


@dataclass
class _Cooldowns:
    until: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def active(self, tier: str, now: float) -> float | None:
        with self.lock:
            until = self.until.get(tier)
        return until if until is not None and until > now else None

    def start(self, tier: str, until: float) -> None:
        with self.lock:
            self.until[tier] = max(until, self.until.get(tier, 0.0))


class TierRouter:
    """`complete(messages, role=..., tools=...)` -> LLMReply | LLMFailure; never raises for provider trouble."""

    def __init__(
        self,
        config: LLMConfig,
        ledger: Ledger,
        *,
        degrade_at: float = 0.8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.degrade_at = degrade_at
        self.clock = clock
        self._tiers = {t.name: t for t in config.tiers}
        self._order = [t.name for t in config.tiers]  # cheapest first, as configured
        self._cooldowns = _Cooldowns()
        self._validate()

    @classmethod
    def from_settings(cls, settings: Settings, ledger: Ledger) -> TierRouter:
        return cls(settings.llm, ledger, degrade_at=settings.budget.degrade_at)

    def _validate(self) -> None:
        if len(self._tiers) != len(self._order):
            raise ValueError(f"llm.tiers: tier names must be unique, got {self._order}")
        for role in ("routine", "escalation", "strategic"):
            name = getattr(self.config, f"{role}_tier")
            if name is not None and name not in self._tiers:
                raise ValueError(f"llm.{role}_tier = {name!r} is not one of llm.tiers {self._order}")
        if not 0.0 < self.degrade_at <= 1.0:
            raise ValueError(f"budget.degrade_at must be in (0, 1], got {self.degrade_at}")

    # ------------------------------------------------------------- tiers

    @property
    def enabled(self) -> bool:
        return bool(self._order)

    @property
    def tier_names(self) -> tuple[str, ...]:
        return tuple(self._order)

    def tier(self, name: str) -> TierConfig:
        return self._tiers[name]

    def tier_for(self, role: Role) -> str:
        """Configured tier for a role; defaults: routine = cheapest, escalation = next, strategic = last."""
        if not self._order:
            raise ValueError("no LLM tiers configured")
        configured = getattr(self.config, f"{role}_tier")
        if configured:
            return str(configured)
        defaults = {"routine": 0, "escalation": min(1, len(self._order) - 1), "strategic": -1}
        return self._order[defaults[role]]

    def cooling_down(self) -> dict[str, float]:
        now = self.clock()
        return {t: until for t in self._order if (until := self._cooldowns.active(t, now)) is not None}

    def budget_share(self, now: float) -> float:
        state = self.ledger.state(now)
        if state.window_tokens <= 0:
            return 1.0
        return (state.used_tokens + state.reserved_tokens) / state.window_tokens

    def chain(self, tier: str, degraded: bool = False) -> list[str]:
        """Tiers to try, in order: the tier, then pricier ones, then cheaper ones (cheapest first if degraded)."""
        if tier not in self._tiers:
            raise ValueError(f"unknown tier {tier!r}; configured: {self._order}")
        index = self._order.index(tier)
        if degraded:
            return self._order[: index + 1]
        return self._order[index:] + self._order[:index][::-1]

    # ------------------------------------------------------------- calls

    def complete(
        self,
        messages: Sequence[Message],
        *,
        role: Role = "routine",
        tier: str | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        deadline: float | None = None,
    ) -> LLMResult:
        """`deadline` (a time.monotonic() value): each tier's request timeout is cut to the time left, and
        once it has passed the remaining tiers are skipped (no request, no cooldown)."""
        if not self.enabled:
            return LLMFailure("no_model", "no LLM tiers configured")
        now = self.clock()
        degraded = self.budget_share(now) >= self.degrade_at
        wanted = tier or self.tier_for(role)
        attempts: list[Attempt] = []
        saw_budget_limit = False
        for name in self.chain(wanted, degraded):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                attempts.append(Attempt(name, "deadline passed", skipped=True))
                continue
            outcome = self._attempt(self._tiers[name], list(messages), tools, max_tokens, degraded, left)
            if isinstance(outcome, LLMReply):
                return _with_attempts(outcome, [*attempts, Attempt(name)])
            attempts.append(outcome)
            saw_budget_limit = saw_budget_limit or outcome.error == "budget exhausted"
        if saw_budget_limit and all(a.skipped for a in attempts):
            return LLMFailure("budget_exhausted", "token budget exhausted: no call made", tuple(attempts))
        summary = "; ".join(f"{a.tier}: {a.error}" for a in attempts)
        return LLMFailure("provider_failed", f"every tier failed ({summary})", tuple(attempts))

    def _attempt(
        self,
        tier: TierConfig,
        messages: list[Message],
        tools: Sequence[dict[str, Any]] | None,
        max_tokens: int | None,
        degraded: bool,
        time_left: float | None = None,
    ) -> LLMReply | Attempt:
        now = self.clock()
        until = self._cooldowns.active(tier.name, now)
        if until is not None:
            return Attempt(tier.name, f"cooling down for {until - now:.0f}s", skipped=True)
        api_key = _api_key(tier)
        if isinstance(api_key, Attempt):
            return api_key
        limit = max_tokens or tier.max_tokens
        reservation = self.ledger.reserve(tier.name, _estimate_prompt(tier, messages, tools) + limit, now)
        if is_budget_exhausted(reservation):
            return Attempt(tier.name, "budget exhausted", skipped=True)
        cut = time_left is not None and time_left < tier.timeout_s
        timeout = time_left if cut and time_left is not None else tier.timeout_s
        try:
            response = self._call(tier, messages, tools, limit, api_key, timeout)
        except Exception as exc:
            self.ledger.release(reservation)
            if not _is_provider_error(exc):
                raise
            if cut and _is_timeout(exc):  # stopped by the caller's deadline, not the tier's own timeout: no cooldown
                return Attempt(tier.name, f"{type(exc).__name__} at the deadline ({timeout:.1f}s)")
            return self._failed(tier, exc)
        reply = _parse(response, tier, degraded)
        self.ledger.settle(reservation, reply.tokens_in, reply.tokens_out, reply.cost, self.clock())
        return reply

    def _call(
        self,
        tier: TierConfig,
        messages: list[Message],
        tools: Sequence[dict[str, Any]] | None,
        max_tokens: int,
        api_key: str | None,
        timeout: float | None = None,
    ) -> Any:
        litellm = _litellm()
        kwargs: dict[str, Any] = {
            "model": tier.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "timeout": tier.timeout_s if timeout is None else timeout,
            "num_retries": 0,  # fallback across tiers plus cooldown is the retry policy
            "max_retries": 0,
            **_no_sdk_retries(tier.model, tier.api_base),
        }
        if tools:
            kwargs["tools"] = list(tools)
        if tier.api_base:
            kwargs["api_base"] = tier.api_base
        if api_key is not None:
            kwargs["api_key"] = api_key
        return litellm.completion(**kwargs)

    def _failed(self, tier: TierConfig, exc: Exception) -> Attempt:
        status = getattr(exc, "status_code", None)
        kind = type(exc).__name__
        if _is_bad_request(exc):  # the request's fault (e.g. context too long), not the tier's: no cooldown
            return Attempt(tier.name, f"{kind} ({status})")
        pause = max(self.config.cooldown_s, _retry_after(exc) or 0.0)
        self._cooldowns.start(tier.name, self.clock() + pause)
        log.warning("llm tier %s failed with %s (%s); cooling down %.0fs", tier.name, kind, status, pause)
        return Attempt(tier.name, f"{kind} ({status}); cooldown {pause:.0f}s")


@lru_cache(maxsize=64)
def _no_sdk_retries(model: str, api_base: str | None) -> dict[str, Any]:
    """What makes the provider's SDK try exactly once. litellm hands `max_retries` to the OpenAI SDK only for
    providers that list it among their supported params; an OpenAI-compatible provider that does not (zai,
    groq, xai, fireworks_ai, ...) gets the SDK's default of 2 retries, so one call made 3 HTTP requests and a
    hanging provider cost 3 timeouts. `allowed_openai_params` passes it through for those. Providers with their
    own HTTP handler (anthropic) make one attempt already and must not get it: it would land in the request body.
    """
    litellm = _litellm()
    try:
        provider = litellm.get_llm_provider(model=model, api_base=api_base)[1]
        supported = litellm.get_supported_openai_params(model=model, custom_llm_provider=provider) or []
    except Exception:  # an unknown provider fails in the call itself, with litellm's own error
        return {}
    if provider in litellm.openai_compatible_providers and "max_retries" not in supported:
        return {"allowed_openai_params": ["max_retries"]}
    return {}


def _with_attempts(reply: LLMReply, attempts: list[Attempt]) -> LLMReply:
    from dataclasses import replace

    return replace(reply, attempts=tuple(attempts))


def _api_key(tier: TierConfig) -> str | Attempt | None:
    if tier.api_key_env is None:
        return None  # litellm reads the provider's own env var (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...)
    value = os.environ.get(tier.api_key_env)
    if not value:
        return Attempt(tier.name, f"env var {tier.api_key_env} is not set", skipped=True)
    return value


def _estimate_prompt(tier: TierConfig, messages: list[Message], tools: Sequence[dict[str, Any]] | None) -> int:
    try:
        return int(_litellm().token_counter(model=tier.model, messages=messages, tools=list(tools or [])))
    except Exception:  # unknown tokenizer: a deliberately generous estimate
        return math.ceil(len(json.dumps(messages)) / 3 + len(json.dumps(list(tools or []))) / 3)


def _is_provider_error(exc: Exception) -> bool:
    import openai  # litellm's exceptions subclass the openai SDK's, whatever the provider

    return isinstance(exc, openai.APIError)


def _is_timeout(exc: Exception) -> bool:
    import openai

    return isinstance(exc, openai.APITimeoutError)


def _is_bad_request(exc: Exception) -> bool:
    import openai

    return isinstance(exc, openai.BadRequestError)


def _retry_after(exc: Exception) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None)
    response = getattr(exc, "response", None)
    if headers is None and response is not None:
        headers = getattr(response, "headers", None)
    raw = headers.get("retry-after") if headers is not None else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _parse(response: Any, tier: TierConfig, degraded: bool) -> LLMReply:
    message = response.choices[0].message
    calls = tuple(
        RawToolCall(str(c.id), str(c.function.name), str(c.function.arguments or ""))
        for c in (getattr(message, "tool_calls", None) or ())
    )
    usage = getattr(response, "usage", None)
    tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
    tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
    return LLMReply(
        text=message.content,
        tool_calls=calls,
        tier=tier.name,
        model=tier.model,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost=_cost(response, tier, tokens_in, tokens_out),
        degraded=degraded,
    )


def _cost(response: Any, tier: TierConfig, tokens_in: int, tokens_out: int) -> float:
    if tier.input_cost_per_mtok is not None or tier.output_cost_per_mtok is not None:
        return (tokens_in * (tier.input_cost_per_mtok or 0.0) + tokens_out * (tier.output_cost_per_mtok or 0.0)) / 1e6
    try:
        return float(_litellm().completion_cost(completion_response=response))
    except Exception:  # model not in litellm's price map and no configured price
        return 0.0


if TYPE_CHECKING:
    from core.ports import ChatRouter

    def _is_a_chat_router(router: TierRouter) -> ChatRouter:
        return router  # mypy checks that TierRouter structurally satisfies core.ports.ChatRouter
