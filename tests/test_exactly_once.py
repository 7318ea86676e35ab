"""Each action key runs once: a finished key is never run again; a claim left unfinished by a process that
died mid-effect is taken over, run again (effects converge) and recorded as recovered."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.service.actor import OWNER, ActionRuns, Actor
from core.domain import Proposal
from evals.runner import RecordingEffects

STOP = Proposal(action="stop_worker", args={"worker_id": "extract-local-1"}, rationale="leaks memory")


def test_a_finished_key_never_runs_again(tmp_path: Path) -> None:
    effects = RecordingEffects()
    actor = Actor(effects=effects, runs=ActionRuns(tmp_path / "state.db"))
    first = actor.execute(STOP, "apr-1")
    second = actor.execute(STOP, "apr-1")
    assert first.status == "done" and second.status == "skipped" and "already ran under apr-1" in second.detail
    assert effects.calls == ["stop_worker extract-local-1"]


def test_a_dead_owners_claim_is_taken_over_and_said_so(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    runs = ActionRuns(db)
    with sqlite3.connect(db) as conn:  # what a `kill -9` between claim and finish leaves behind
        conn.execute(
            "INSERT INTO action_runs(key, action, args, started_at, owner) VALUES (?, ?, ?, ?, ?)",
            ("t1:0", "stop_worker", '{"worker_id": "extract-local-1"}', 1.0, "pid 4242 on brain"),
        )
    effects = RecordingEffects()
    outcome = Actor(effects=effects, runs=runs).execute(STOP, "t1:0")
    assert outcome.status == "done" and outcome.detail.startswith("recovered: done (claimed by pid 4242 on brain")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT owner FROM action_runs WHERE key = 't1:0'").fetchone()[0] == OWNER
    assert Actor(effects=effects, runs=runs).execute(STOP, "t1:0").status == "skipped"
    assert effects.calls == ["stop_worker extract-local-1"]


def test_finishing_a_crashed_tick_records_what_the_effect_did(tmp_path: Path) -> None:
    """The crash came after the effect and before the record: the record says done, not skipped."""
    effects = RecordingEffects()
    actor = Actor(effects=effects, runs=ActionRuns(tmp_path / "state.db"))
    assert actor.execute(STOP, "t1:0").status == "done"
    again = actor.execute(STOP, "t1:0", recovering=True)
    assert again.status == "done" and again.detail.startswith("recovered: done before the crash")
    not_reached = actor.execute(STOP, "t1:1", recovering=True)
    assert not_reached.status == "skipped" and not_reached.detail.startswith("recovered: not done")
    assert effects.calls == ["stop_worker extract-local-1"]


def test_stopping_a_worker_again_after_a_crash_finds_it_stopped(tmp_path: Path, small_brain: str) -> None:
    """The retried effect checks the evidence (the registry row) instead of failing or stopping another."""
    from support.agent_rig import copy_brain, kill_workers, make_settings, write_policy

    from agent.service.agent import Agent
    from fleet.hosts import WorkerOptions

    settings = make_settings(tmp_path, copy_brain(small_brain, tmp_path), write_policy(tmp_path / "p.yaml"))
    fleet = Agent(settings).fleet
    try:
        fleet.dispatcher.set_desired("extract", "local", 2, WorkerOptions(batch_size=2, item_ms=50))
        started = fleet.reconcile().started
        assert len(started) == 2
        assert fleet.stop_worker(started[0]) == f"{started[0]} draining"
        assert fleet.stop_worker(started[0]) == f"{started[0]} already draining"
        assert [w.id for w in fleet.dispatcher.workers() if w.state != "draining"] == [started[1]]
    finally:
        kill_workers(settings.run_dir)
