"""Response caches for the fleet's LLM calls: diskcache on one host, Redis shared by the whole fleet.

The Redis cache fails open (issue 16): a cache is an optimisation, so Redis being down, refusing, timing out
or answering with an error turns a `get` into a miss and a `set` into a no-op, never into an exception for
the worker. Each such call is counted (`errors` / `stats()` on the instance, and the prometheus counter
`CACHE_FAILURES`), one warning is logged when an outage starts and one info line when Redis answers again.
Sockets use short timeouts (0.5 s by default) and redis-py's own retries are turned off, so a dead or
black-holed Redis costs a worker at most one timeout per `retry_interval_s`: between attempts, calls skip
Redis entirely while it is known to be down.

`CACHE_FAILURES` belongs to no registry (llm may not import agent, where the agent's registry lives): a
process that serves metrics adds it with `registry.register(CACHE_FAILURES)`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from prometheus_client import Counter

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 30 * 86_400
DEFAULT_REDIS_TIMEOUT_S = 0.5
DEFAULT_RETRY_INTERVAL_S = 1.0

CACHE_FAILURES = Counter(
    "brainops_llm_cache_failures",
    "Response cache calls that failed open (get served as a miss, set skipped), by backend, operation and "
    "reason: error = the cache raised or timed out, down = skipped because the cache is known to be down.",
    ["backend", "op", "reason"],
    registry=None,
)

Op = Literal["get", "set"]


class ResponseCache(Protocol):
    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str) -> None: ...


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


@dataclass(frozen=True)
class CacheStats:
    """Counts since the cache was opened. `errors`: calls on which Redis failed; `bypassed`: calls that
    skipped Redis while it was known down; `down_since` (monotonic clock) is None while Redis is up."""

    hits: int
    misses: int
    sets: int
    errors: int
    bypassed: int
    outages: int
    down_since: float | None


class RedisResponseCache:
    """Shared by every host of the fleet; needs the optional `redis` package. Fails open, see the module doc."""

    def __init__(
        self,
        url: str,
        ttl_s: float = DEFAULT_TTL_S,
        prefix: str = "brainops:llm:",
        *,
        timeout_s: float = DEFAULT_REDIS_TIMEOUT_S,
        connect_timeout_s: float | None = None,
        retry_interval_s: float = DEFAULT_RETRY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise RuntimeError(
                "llm.redis_url is set but the redis package is missing: pip install 'brainops[redis]'"
            ) from exc
        if timeout_s <= 0 or (connect_timeout_s is not None and connect_timeout_s <= 0) or retry_interval_s < 0:
            raise ValueError("timeouts must be positive and retry_interval_s non-negative")
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.url = safe_url(url)
        self.retry_interval_s = retry_interval_s
        self._clock = clock
        # Every failure the cache swallows: redis-py's own errors and the socket's (ConnectionError and
        # TimeoutError are OSErrors).
        self._failures: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=connect_timeout_s or timeout_s,
            retry=Retry(NoBackoff(), 0),  # one attempt: a retry would multiply the stall
            retry_on_timeout=False,
        )
        self._lock = threading.Lock()
        self._hits = self._misses = self._sets = self._errors = self._bypassed = self._outages = 0
        self._down_since: float | None = None
        self._last_failure = 0.0

    @property
    def errors(self) -> int:
        return self._errors

    @property
    def available(self) -> bool:
        """False while Redis is known to be down (the last call to it failed)."""
        return self._down_since is None

    def get(self, key: str) -> str | None:
        """The cached answer, or None on a miss, and also when Redis is down or fails."""
        if self._skip("get"):
            return None
        try:
            value = self._client.get(self.prefix + key)
        except self._failures as exc:
            self._failed("get", exc)
            return None
        hit = isinstance(value, bytes)
        self._succeeded(hits=int(hit), misses=int(not hit))
        return value.decode() if isinstance(value, bytes) else None

    def set(self, key: str, value: str) -> None:
        """Store an answer for ttl_s; silently skipped (counted, logged once per outage) when Redis fails."""
        if self._skip("set"):
            return
        try:
            self._client.set(self.prefix + key, value, ex=max(1, int(self.ttl_s)))
        except self._failures as exc:
            self._failed("set", exc)
            return
        self._succeeded(sets=1)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                sets=self._sets,
                errors=self._errors,
                bypassed=self._bypassed,
                outages=self._outages,
                down_since=self._down_since,
            )

    def close(self) -> None:
        with contextlib.suppress(*self._failures):  # closing a connection to a dead server: nothing to release
            self._client.close()

    def _skip(self, op: Op) -> bool:
        with self._lock:
            if self._down_since is None or self._clock() - self._last_failure >= self.retry_interval_s:
                return False
            self._bypassed += 1
        CACHE_FAILURES.labels("redis", op, "down").inc()
        return True

    def _failed(self, op: Op, exc: BaseException) -> None:
        now = self._clock()
        with self._lock:
            self._errors += 1
            self._last_failure = now
            starts_outage = self._down_since is None
            if starts_outage:
                self._down_since = now
                self._outages += 1
        CACHE_FAILURES.labels("redis", op, "error").inc()
        if starts_outage:
            log.warning(
                "redis response cache at %s failed on %s (%s: %s); serving without the cache until it answers "
                "again (next attempt in %.1fs)",
                self.url,
                op,
                type(exc).__name__,
                exc,
                self.retry_interval_s,
            )
        else:
            log.debug("redis response cache at %s still failing on %s: %s", self.url, op, exc)

    def _succeeded(self, *, hits: int = 0, misses: int = 0, sets: int = 0) -> None:
        with self._lock:
            self._hits += hits
            self._misses += misses
            self._sets += sets
            down_since, self._down_since = self._down_since, None
            failed_calls = self._errors + self._bypassed
        if down_since is not None:
            log.info(
                "redis response cache at %s answers again after %.1fs down (%d calls failed or skipped so far)",
                self.url,
                self._clock() - down_since,
                failed_calls,
            )


def safe_url(url: str) -> str:
    """The URL without its password, for logs: redis://:secret@host:6379/0 -> redis://***@host:6379/0."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def open_response_cache(cache_dir: str | Path, redis_url: str | None = None, **redis_options: Any) -> ResponseCache:
    """Redis when a URL is configured (fleet-wide cache), else diskcache under `cache_dir`.

    `redis_options` go to RedisResponseCache (timeout_s, connect_timeout_s, retry_interval_s, ttl_s, prefix).
    """
    if redis_url:
        return RedisResponseCache(redis_url, **redis_options)
    return DiskResponseCache(cache_dir)
