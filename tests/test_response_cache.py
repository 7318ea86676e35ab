"""The response caches (llm/cache.py) against a real redis-server on loopback: round trips, and failing open.

A Redis outage must never fail a fleet call (issue 16: `redis.ConnectionError` made the wisdom worker exit 1).
Here the server is SIGKILLed mid-use, restarted on the same port, absent from the start, and replaced by a
port that accepts connections and never answers. Each time get is a miss, set is skipped, one warning is
logged per outage, and the failures are counted on the instance and in the prometheus counter.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry
from support.redis_server import RedisServer, free_port, redis_unavailable_reason

from llm.cache import (
    CACHE_FAILURES,
    DiskResponseCache,
    RedisResponseCache,
    open_response_cache,
    safe_url,
)

LOGGER = "llm.cache"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    reason = redis_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    reg = CollectorRegistry()
    reg.register(CACHE_FAILURES)
    yield reg
    reg.unregister(CACHE_FAILURES)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failures(registry: CollectorRegistry, op: str, reason: str) -> float:
    labels = {"backend": "redis", "op": op, "reason": reason}
    return registry.get_sample_value("brainops_llm_cache_failures_total", labels) or 0.0


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def test_round_trip_with_ttl(redis_server: RedisServer) -> None:
    cache = RedisResponseCache(redis_server.url, ttl_s=120, prefix="t:")
    assert cache.get("k") is None
    cache.set("k", '{"text": "ünïcode answer"}')
    assert cache.get("k") == '{"text": "ünïcode answer"}'
    assert 0 < redis.Redis.from_url(redis_server.url).ttl("t:k") <= 120
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.sets, stats.errors, stats.outages) == (1, 1, 1, 0, 0)
    assert cache.available
    cache.close()


def test_killed_server_fails_open_with_one_warning_and_recovers_on_restart(
    redis_server: RedisServer, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    cache = RedisResponseCache(redis_server.url, retry_interval_s=0.0)  # every call tries Redis
    cache.set("k", "v")
    assert cache.get("k") == "v"
    get_errors, set_errors = failures(registry, "get", "error"), failures(registry, "set", "error")

    redis_server.kill()  # SIGKILL mid-use: the client's pooled connection is now dead
    for _ in range(5):
        assert cache.get("k") is None
        cache.set("k2", "v2")  # does not raise
    assert not cache.available
    assert cache.errors == 10 and cache.stats().outages == 1
    assert failures(registry, "get", "error") == get_errors + 5
    assert failures(registry, "set", "error") == set_errors + 5
    assert len(warnings_of(caplog)) == 1, "one warning per outage, not one per call"
    assert str(redis_server.port) in warnings_of(caplog)[0]

    redis_server.start()  # same port, a fresh empty server
    assert cache.get("k") is None, "the restarted server is empty: a real miss"
    assert cache.available
    cache.set("k", "again")
    assert cache.get("k") == "again"
    assert any("answers again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    assert cache.errors == 10 and len(warnings_of(caplog)) == 1

    redis_server.kill()  # a second outage: a second warning
    assert cache.get("k") is None
    assert cache.stats().outages == 2 and len(warnings_of(caplog)) == 2


def test_while_down_calls_skip_redis_until_the_retry_interval(
    redis_server: RedisServer, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    cache = RedisResponseCache(redis_server.url, retry_interval_s=5.0, clock=clock)
    cache.set("k", "v")
    port = redis_server.port
    redis_server.kill()
    bypassed = failures(registry, "get", "down")

    assert cache.get("k") is None
    assert cache.errors == 1
    for _ in range(3):
        assert cache.get("k") is None
        cache.set("k", "x")
    stats = cache.stats()
    assert (stats.errors, stats.bypassed) == (1, 6), "known down: no socket touched until the interval passes"
    assert failures(registry, "get", "down") == bypassed + 3

    redis_server.start()
    assert redis_server.port == port
    assert cache.get("k") is None and cache.stats().bypassed == 7, "still inside the retry interval"
    clock.now += 5.0
    cache.set("k", "back")
    assert cache.get("k") == "back" and cache.available
    assert len(warnings_of(caplog)) == 1


def test_closed_port_from_the_start(registry: CollectorRegistry, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens here
    cache = RedisResponseCache(f"redis://:s3cret@127.0.0.1:{port}/0", retry_interval_s=0.0)
    errors_before = failures(registry, "get", "error")
    assert cache.get("k") is None
    cache.set("k", "v")
    assert cache.get("k") is None
    assert cache.errors == 3 and not cache.available
    assert failures(registry, "get", "error") == errors_before + 2
    (warning,) = warnings_of(caplog)
    assert "s3cret" not in warning and f"127.0.0.1:{port}" in warning


def test_a_server_that_never_answers_costs_one_short_timeout() -> None:
    """A black-holed Redis (TCP accepted, no reply): the call gives up after timeout_s, not redis-py's 5 s."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshake; nobody ever reads or writes
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        cache = RedisResponseCache(url, timeout_s=0.2, retry_interval_s=0.0)
        started = time.monotonic()
        assert cache.get("k") is None
        cache.set("k", "v")
        elapsed = time.monotonic() - started
    assert cache.errors == 2
    assert elapsed < 2.0, f"two calls to a silent server took {elapsed:.2f}s (timeout 0.2 s each, no retries)"


def test_open_response_cache_picks_the_backend(tmp_path: Path) -> None:
    disk = open_response_cache(tmp_path / "disk")
    assert isinstance(disk, DiskResponseCache)
    disk.set("k", "v")
    assert disk.get("k") == "v" and disk.get("missing") is None
    disk.close()
    shared = open_response_cache(tmp_path / "unused", f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.1)
    assert isinstance(shared, RedisResponseCache)


def test_safe_url_hides_the_password() -> None:
    assert safe_url("redis://:pw@cache.lan:6380/1") == "redis://***@cache.lan:6380/1"
    assert safe_url("redis://user:pw@cache.lan/0") == "redis://***@cache.lan/0"
    assert safe_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    with pytest.raises(ValueError, match="timeouts"):
        RedisResponseCache("redis://127.0.0.1:1/0", timeout_s=0)
