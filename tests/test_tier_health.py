"""Tier health shared across processes (llm/health.py): one failure cools a tier down for every process, and
when the cooldown ends exactly one process probes it.

The contention tests run real OS processes (multiprocessing "spawn", so nothing is inherited but the db path)
that share one state DB. Each round, every worker reports ready, waits on one shared condition and, released
together, calls `claim` at the same `now`, so they race for the probe slot as hard as the machine allows.
Time is passed explicitly: nothing sleeps to make a test pass.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections.abc import Iterator
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

import pytest

from llm.health import TierHealth

TIER = "glm-cheap"
LEASE_S = 20.0
WORKERS = 8
ROUND_TIMEOUT_S = 60.0


def _worker(db: str, index: int, commands: Any, results: Any, go: Any, go_round: Any) -> None:
    """Runs in a spawned process: executes commands until told to stop, one reply per command."""
    health = TierHealth(db)
    results.put((index, "ready", None))
    while True:
        command, args = commands.get()
        if command == "stop":
            return
        if command == "claim":
            round_no, claim_args = args
            results.put((index, "armed", None))
            with go:  # every worker is released at once: they race for the probe together
                released = go.wait_for(lambda r=round_no: go_round.value >= r, timeout=ROUND_TIMEOUT_S)
            assert released, f"round {round_no} never started"
            results.put((index, "claim", health.claim(*claim_args)))
        elif command == "succeeded":
            health.succeeded(*args)
            results.put((index, "succeeded", None))
        elif command == "failed":
            results.put((index, "failed", health.failed(*args)))


class Fleet:
    """n spawned processes over one db; `claim_all` runs one contended round and returns each answer."""

    def __init__(self, db: Path, n: int) -> None:
        ctx = mp.get_context("spawn")
        self.go = ctx.Condition()
        self.go_round = ctx.Value("i", 0)
        self.results = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(n)]
        self.procs: list[SpawnProcess] = [
            ctx.Process(
                target=_worker,
                args=(str(db), i, self.commands[i], self.results, self.go, self.go_round),
                daemon=True,
            )
            for i in range(n)
        ]
        for proc in self.procs:
            proc.start()
        self.alive = set(range(n))
        self._collect(self.alive, "ready")

    def _collect(self, who: set[int], what: str) -> dict[int, Any]:
        got: dict[int, Any] = {}
        while len(got) < len(who):
            index, kind, value = self.results.get(timeout=ROUND_TIMEOUT_S)
            assert kind == what, (index, kind, value)
            got[index] = value
        assert set(got) == who
        return got

    def claim_all(self, now: float) -> dict[int, float | None]:
        round_no = self.go_round.value + 1
        for i in self.alive:
            self.commands[i].put(("claim", (round_no, (TIER, now, LEASE_S))))
        self._collect(self.alive, "armed")
        with self.go:
            self.go_round.value = round_no
            self.go.notify_all()
        return self._collect(self.alive, "claim")

    def tell(self, index: int, command: str, *args: Any) -> Any:
        self.commands[index].put((command, args))
        return self._collect({index}, command)[index]

    def kill(self, index: int) -> None:
        """SIGKILL one worker: a prober that crashed mid-call, before it could report anything."""
        proc = self.procs[index]
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=ROUND_TIMEOUT_S)
        assert proc.exitcode == -signal.SIGKILL
        self.alive.discard(index)

    def stop(self) -> None:
        for i in self.alive:
            self.commands[i].put(("stop", ()))
        for proc in self.procs:
            proc.join(timeout=ROUND_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def fleet(db: Path) -> Iterator[Fleet]:
    f = Fleet(db, WORKERS)
    try:
        yield f
    finally:
        f.stop()


def _winners(answers: dict[int, float | None]) -> list[int]:
    return sorted(i for i, until in answers.items() if until is None)


def test_one_probe_per_cooldown_across_processes_and_success_closes_for_all(db: Path, fleet: Fleet) -> None:
    health = TierHealth(db)
    assert _winners(fleet.claim_all(now=100.0)) == list(range(WORKERS)), "a tier never seen is healthy"

    assert health.failed(TIER, until=1000.0) == 1000.0
    assert fleet.claim_all(now=999.0) == dict.fromkeys(range(WORKERS), 1000.0), "cooling down: all skip"
    assert health.cooling_down(999.0) == {TIER: 1000.0}

    answers = fleet.claim_all(now=1000.0)
    winners = _winners(answers)
    assert len(winners) == 1, f"exactly one process probes when the cooldown ends: {answers}"
    assert all(until == 1000.0 + LEASE_S for i, until in answers.items() if i not in winners)
    assert health.cooling_down(1001.0) == {TIER: 1000.0 + LEASE_S}, "the probe in flight keeps others out"
    assert _winners(fleet.claim_all(now=1001.0)) == [], "even the prober's own process does not probe twice"

    fleet.tell(winners[0], "succeeded", TIER)
    assert _winners(fleet.claim_all(now=1002.0)) == list(range(WORKERS)), "success closes for every process"
    assert health.cooling_down(1002.0) == {}
    state = health.state(TIER)
    assert state is not None and state.closed and state.failures == 0


def test_failed_probe_reopens_and_every_cycle_has_exactly_one_prober(db: Path, fleet: Fleet) -> None:
    health = TierHealth(db)
    health.failed(TIER, until=50.0)
    now = 50.0
    for cycle in range(10):
        answers = fleet.claim_all(now=now)
        winners = _winners(answers)
        assert len(winners) == 1, f"cycle {cycle}: {answers}"
        reopened = now + 30.0
        assert fleet.tell(winners[0], "failed", TIER, reopened) == reopened
        assert fleet.claim_all(now=now + 1.0) == dict.fromkeys(fleet.alive, reopened), "a failed probe reopens"
        assert health.cooling_down(now + 1.0) == {TIER: reopened}
        now = reopened
    state = health.state(TIER)
    assert state is not None and state.failures == 11


def test_a_crashed_probers_lease_expires_and_another_process_probes(db: Path, fleet: Fleet) -> None:
    health = TierHealth(db)
    health.failed(TIER, until=10.0)
    winners = _winners(fleet.claim_all(now=10.0))
    assert len(winners) == 1
    fleet.kill(winners[0])

    assert fleet.claim_all(now=10.0 + LEASE_S - 0.001) == dict.fromkeys(fleet.alive, 10.0 + LEASE_S)
    answers = fleet.claim_all(now=10.0 + LEASE_S)
    assert len(_winners(answers)) == 1, f"after the lease expires one survivor probes: {answers}"
    assert winners[0] not in answers


def test_breaker_rules_in_one_process(db: Path) -> None:
    health = TierHealth(db)
    assert health.claim("mid", now=0.0, probe_lease_s=5.0) is None
    health.succeeded("mid")  # a success on a healthy tier is a no-op
    assert health.states() == {}

    health.failed("mid", until=100.0)
    assert health.failed("mid", until=40.0) == 100.0, "a shorter cooldown never cuts a longer one"
    assert health.claim("cheap", now=50.0, probe_lease_s=5.0) is None, "tiers are independent"
    assert health.cooling_down(50.0) == {"mid": 100.0}
    assert health.cooling_down(100.0) == {}, "half-open and unclaimed: not skipped, the next caller probes"

    assert health.claim("mid", now=100.0, probe_lease_s=5.0) is None
    assert health.claim("mid", now=101.0, probe_lease_s=5.0) == 105.0
    health.release_probe("mid")
    assert health.claim("mid", now=101.0, probe_lease_s=5.0) is None, "a released probe is free at once"
    health.failed("mid", until=200.0)
    assert health.claim("mid", now=150.0, probe_lease_s=5.0) == 200.0, "failure ends the probe and reopens"
    state = health.state("mid")
    assert state is not None and state.failures == 3 and state.probe_until == 0

    health.succeeded("mid")
    assert health.claim("mid", now=150.0, probe_lease_s=5.0) is None
    assert health.cooling_down(150.0) == {} and health.states() == {}


def test_bad_arguments_are_rejected(db: Path) -> None:
    health = TierHealth(db)
    with pytest.raises(ValueError, match="tier"):
        health.claim("", now=0.0, probe_lease_s=1.0)
    with pytest.raises(ValueError, match="probe_lease_s"):
        health.claim("mid", now=0.0, probe_lease_s=0.0)
    with pytest.raises(ValueError, match="file path"):
        TierHealth(":memory:")
