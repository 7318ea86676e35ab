"""The LLM call the fleet's workers make (wisdom, dedup adjudication): a purpose, a tier from the split, a cache.

Each call names its task (the cache key's namespace, e.g. "wisdom") and its purpose (`routine`, `analysis`,
`strategic`: which tiers may serve it, llm/routing.py). The split is the ledger's stored routing weights
(`set_model_routing`), else `[llm.routing]`, else the documented 60/35/5. The tier is the eligible one
furthest below its weight in the window's routed calls, counted in the shared ledger, so every process
steers one split together; the policy's `routing.max_share` caps each tier's share per call, checked in the
reservation's transaction. A cached answer is returned before the ledger is touched: no tokens, no request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from core.llm_types import Purpose
from llm.cache import ResponseCache, open_response_cache
from llm.router import LLMFailure, LLMReply, Message, TierRouter
from llm.routing import configured_split, pick_by_deficit, share_caps_by_tier

if TYPE_CHECKING:
    from core.settings import Settings
    from llm.ledger import TokenLedger

log = logging.getLogger(__name__)
CACHE_VERSION = "v1"


class RoutingSource(Protocol):
    def routing(self) -> dict[str, float]: ...
    def routed_calls(self, now: float | None = None) -> dict[str, int]: ...


def fleet_llm_from_settings(
    settings: Settings, ledger: TokenLedger, share_caps: Callable[[], Mapping[str, float]] | None = None
) -> FleetLLM:
    """The wiring workers use: router over settings.llm, the shared ledger, the configured cache.
    `share_caps`: the policy's routing.max_share as it is now (read on every call; by tier or by purpose)."""
    cache_dir = settings.llm.cache_dir or str(settings.home / "llm_cache")
    router = TierRouter.from_settings(settings, ledger)
    return FleetLLM(router, ledger, open_response_cache(cache_dir, settings.llm.redis_url), share_caps=share_caps)


@dataclass(frozen=True)
class FleetReply:
    text: str
    tier: str
    cached: bool
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    tried: tuple[str, ...] = ()  # a cascade's tiers, cheapest first, whose answers were asked for
    accepted: bool = True  # False: even the last tier's answer failed the caller's check


class FleetLLMUnavailable(RuntimeError):
    """Raised by `complete` when no tier could answer; `failure` says why (budget, provider, no model)."""

    def __init__(self, failure: LLMFailure) -> None:
        super().__init__(f"fleet LLM unavailable ({failure.kind}): {failure.detail}")
        self.failure = failure


def request_key(messages: Sequence[Message], task: str, max_tokens: int | None) -> str:
    blob = json.dumps(
        {"v": CACHE_VERSION, "purpose": task, "messages": list(messages), "max_tokens": max_tokens},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class FleetLLM:
    def __init__(
        self,
        router: TierRouter,
        ledger: RoutingSource,
        cache: ResponseCache | None = None,
        clock: Callable[[], float] = time.time,
        share_caps: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        self.router = router
        self.ledger = ledger
        self.cache = cache
        self.clock = clock
        self.share_caps = share_caps or dict
        self.configured_split = configured_split(router.config, router.tiers) if router.enabled else {}
        self._warned_stale = False

    def split(self) -> dict[str, float]:
        """The weights in force: the stored routing when it names configured tiers, else the configured split."""
        stored = self.ledger.routing()
        known = {tier: w for tier, w in stored.items() if tier in self.router.tier_names}
        if stored and not known and not self._warned_stale:
            self._warned_stale = True
            log.warning(
                "stored routing %s names no configured tier (%s); using the configured split %s",
                sorted(stored),
                list(self.router.tier_names),
                self.configured_split,
            )
        return known if sum(known.values()) > 0 else self.configured_split

    def pick(self, purpose: Purpose) -> str:
        eligible = self.router.tiers.eligible(purpose)
        picked = pick_by_deficit(eligible, self.split(), self.ledger.routed_calls(self.clock()))
        return picked or self.router.tier_for(purpose)

    def try_complete(
        self,
        messages: Sequence[Message],
        task: str,
        *,
        purpose: Purpose = "routine",
        max_tokens: int | None = None,
        use_cache: bool = True,
        accept: Callable[[str], bool] | None = None,
        tier: str | None = None,
    ) -> FleetReply | LLMFailure:
        """`accept`: a cascade. The cheapest eligible tier answers first; a pricier one is asked only when
        the answer fails the check (malformed, unsure, off-topic). Without it the split picks the tier.
        `tier`: the task's pinned tier (the ledger's task tier, set by the planner's routing action) instead of
        the split; a configured tier only, and no cascade."""
        if not task:
            raise ValueError("task must name what the call is for (e.g. 'wisdom', 'dedup_adjudicate')")
        key = request_key(messages, task, max_tokens)
        cached = self.cache.get(key) if (self.cache and use_cache) else None
        if cached is not None:
            return _from_cache(cached)
        if not self.router.enabled:
            return LLMFailure("no_model", "no LLM tiers configured")
        if tier is not None and tier not in self.router.tier_names:
            return LLMFailure(
                "no_model", f"pinned tier {tier!r} is not configured ({', '.join(self.router.tier_names)})"
            )
        if tier is not None or accept is None:
            result = self._ask(messages, purpose, tier or self.pick(purpose), max_tokens)
            reply = result if isinstance(result, LLMFailure) else _to_fleet_reply(result)
        else:
            reply = self._cascade(messages, purpose, max_tokens, accept)
        if isinstance(reply, FleetReply) and reply.accepted and self.cache and use_cache:
            self.cache.set(key, json.dumps({"text": reply.text, "tier": reply.tier}))
        return reply

    def _ask(
        self, messages: Sequence[Message], purpose: Purpose, tier: str, max_tokens: int | None
    ) -> LLMReply | LLMFailure:
        return self.router.complete(
            messages,
            purpose=purpose,
            tier=tier,
            max_tokens=max_tokens,
            routed=True,
            share_caps=share_caps_by_tier(self.share_caps(), self.router.tiers),
        )

    def _cascade(
        self, messages: Sequence[Message], purpose: Purpose, max_tokens: int | None, accept: Callable[[str], bool]
    ) -> FleetReply | LLMFailure:
        spent: list[LLMReply] = []
        failure: LLMFailure | None = None
        for tier in self.router.tiers.eligible(purpose):
            result = self._ask(messages, purpose, tier, max_tokens)
            if isinstance(result, LLMFailure):
                failure = result
                continue
            spent.append(result)
            if accept(result.text or ""):
                return _summed(spent, accepted=True)
        return _summed(spent, accepted=False) if spent else (failure or LLMFailure("no_model", "no eligible tier"))

    def complete(
        self,
        messages: Sequence[Message],
        task: str,
        *,
        purpose: Purpose = "routine",
        max_tokens: int | None = None,
        accept: Callable[[str], bool] | None = None,
    ) -> str:
        """The answer's text; raises FleetLLMUnavailable so a worker's batch fails visibly and retries."""
        result = self.try_complete(messages, task, purpose=purpose, max_tokens=max_tokens, accept=accept)
        if isinstance(result, LLMFailure):
            raise FleetLLMUnavailable(result)
        return result.text


def _to_fleet_reply(reply: LLMReply) -> FleetReply:
    return FleetReply(
        text=reply.text or "",
        tier=reply.tier,
        cached=False,
        tokens_in=reply.tokens_in,
        tokens_out=reply.tokens_out,
        cost=reply.cost,
    )


def _summed(replies: list[LLMReply], *, accepted: bool) -> FleetReply:
    last = replies[-1]
    return FleetReply(
        text=last.text or "",
        tier=last.tier,
        cached=False,
        tokens_in=sum(r.tokens_in for r in replies),
        tokens_out=sum(r.tokens_out for r in replies),
        cost=sum(r.cost for r in replies),
        tried=tuple(r.tier for r in replies),
        accepted=accepted,
    )


def _from_cache(raw: str) -> FleetReply:
    stored: dict[str, Any] = json.loads(raw)
    return FleetReply(text=str(stored["text"]), tier=str(stored["tier"]), cached=True)
