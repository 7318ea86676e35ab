"""The LLM call the fleet's workers make (extract, wisdom): tier by routing weight, answers cached.

The tier is drawn from the ledger's routing weights with a hash of the request as the "random" number,
so the same request always lands on the same tier (reproducible runs, stable cache behaviour) while the
fleet as a whole follows the weights. A cached answer is returned before the ledger is touched: it costs
no tokens and makes no provider call.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llm.router import LLMFailure, LLMReply, Message, TierRouter

if TYPE_CHECKING:
    from core.settings import Settings
    from llm.ledger import TokenLedger

CACHE_VERSION = "v1"
DEFAULT_TTL_S = 30 * 86_400


class ResponseCache(Protocol):
    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str) -> None: ...


class RoutingSource(Protocol):
    def routing(self) -> dict[str, float]: ...


class DiskResponseCache:
    """diskcache on a local directory: safe across threads and worker processes on one host."""

    def __init__(self, directory: str | Path, ttl_s: float = DEFAULT_TTL_S) -> None:
        import diskcache

        self.ttl_s = ttl_s
        self._cache = diskcache.Cache(str(directory))

    def get(self, key: str) -> str | None:
        value = self._cache.get(key)
        return value if isinstance(value, str) else None

    def set(self, key: str, value: str) -> None:
        self._cache.set(key, value, expire=self.ttl_s)

    def close(self) -> None:
        self._cache.close()


class RedisResponseCache:
    """Shared by every host of the fleet; needs the optional `redis` extra."""

    def __init__(self, url: str, ttl_s: float = DEFAULT_TTL_S, prefix: str = "brainops:llm:") -> None:
        try:
            import redis
        except ImportError as exc:
            raise RuntimeError(
                "llm.redis_url is set but the redis package is missing: pip install 'brainops[redis]'"
            ) from exc
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._client = redis.Redis.from_url(url)

    def get(self, key: str) -> str | None:
        value = self._client.get(self.prefix + key)
        return value.decode() if isinstance(value, bytes) else None

    def set(self, key: str, value: str) -> None:
        self._client.set(self.prefix + key, value, ex=int(self.ttl_s))


def fleet_llm_from_settings(settings: Settings, ledger: TokenLedger) -> FleetLLM:
    """The wiring workers use: router over settings.llm, the shared ledger, the configured cache."""
    cache_dir = settings.llm.cache_dir or str(settings.home / "llm_cache")
    router = TierRouter.from_settings(settings, ledger)
    return FleetLLM(router, ledger, open_response_cache(cache_dir, settings.llm.redis_url))


def open_response_cache(cache_dir: str | Path, redis_url: str | None = None) -> ResponseCache:
    """Redis when a URL is configured (fleet-wide cache), else diskcache under `cache_dir`."""
    if redis_url:
        return RedisResponseCache(redis_url)
    return DiskResponseCache(cache_dir)


@dataclass(frozen=True)
class FleetReply:
    text: str
    tier: str
    cached: bool
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0


class FleetLLMUnavailable(RuntimeError):
    """Raised by `complete` when no tier could answer; `failure` says why (budget, provider, no model)."""

    def __init__(self, failure: LLMFailure) -> None:
        super().__init__(f"fleet LLM unavailable ({failure.kind}): {failure.detail}")
        self.failure = failure


def request_key(messages: Sequence[Message], purpose: str, max_tokens: int | None) -> str:
    blob = json.dumps(
        {"v": CACHE_VERSION, "purpose": purpose, "messages": list(messages), "max_tokens": max_tokens},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def pick_tier(weights: dict[str, float], key: str, known: Sequence[str], default: str) -> str:
    """Weighted choice among known tiers, driven by the request key (same key -> same tier)."""
    usable = sorted((tier, w) for tier, w in weights.items() if tier in known and w > 0)
    total = sum(w for _, w in usable)
    if total <= 0:
        return default
    point = int(key[:12], 16) / float(16**12) * total
    for tier, weight in usable:
        point -= weight
        if point < 0:
            return tier
    return usable[-1][0]


class FleetLLM:
    def __init__(
        self,
        router: TierRouter,
        ledger: RoutingSource,
        cache: ResponseCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.router = router
        self.ledger = ledger
        self.cache = cache
        self.clock = clock

    def try_complete(
        self, messages: Sequence[Message], purpose: str, *, max_tokens: int | None = None, use_cache: bool = True
    ) -> FleetReply | LLMFailure:
        if not purpose:
            raise ValueError("purpose must name what the call is for (e.g. 'extract', 'wisdom')")
        key = request_key(messages, purpose, max_tokens)
        cached = self.cache.get(key) if (self.cache and use_cache) else None
        if cached is not None:
            return _from_cache(cached)
        if not self.router.enabled:
            return LLMFailure("no_model", "no LLM tiers configured")
        tier = pick_tier(self.ledger.routing(), key, self.router.tier_names, self.router.tier_for("routine"))
        result = self.router.complete(messages, tier=tier, max_tokens=max_tokens)
        if isinstance(result, LLMFailure):
            return result
        reply = _to_fleet_reply(result)
        if self.cache and use_cache:
            self.cache.set(key, json.dumps({"text": reply.text, "tier": reply.tier}))
        return reply

    def complete(self, messages: Sequence[Message], purpose: str, *, max_tokens: int | None = None) -> str:
        """The answer's text; raises FleetLLMUnavailable so a worker's batch fails visibly and retries."""
        result = self.try_complete(messages, purpose, max_tokens=max_tokens)
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


def _from_cache(raw: str) -> FleetReply:
    stored: dict[str, Any] = json.loads(raw)
    return FleetReply(text=str(stored["text"]), tier=str(stored["tier"]), cached=True)
