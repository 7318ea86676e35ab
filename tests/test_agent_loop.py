"""Whole ticks against a real small brain, real worker processes, real SQLite and the real graphs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest
from support import wait_for
from support.agent_rig import NO_CPU_CEILING, cli, copy_brain, kill_workers, make_settings, write_policy, write_toml

from agent.service.agent import Agent


@pytest.fixture
def rig(tmp_path: Path, small_brain: str):
    brain = copy_brain(small_brain, tmp_path)
    made: list[Agent] = []

    def build(clock=None, **policy_changes):
        policy = write_policy(tmp_path / "policy.yaml", **{**NO_CPU_CEILING, **policy_changes})
        settings = make_settings(tmp_path, brain, policy)
        agent = Agent(settings, clock=clock) if clock else Agent(settings)
        made.append(agent)
        return agent

    yield build
    for agent in made:
        kill_workers(agent.settings.run_dir)


def _decisions(agent: Agent, action: str) -> list:
    return [r for r in agent.decisions.all() if r.action == action]


@pytest.mark.slow
def test_backlog_scales_extract_workers_up_within_bounds(rig) -> None:
    agent = rig()
    report = agent.tick()
    scale = [p for p in report.proposals if p.action == "scale_workers" and p.args["kind"] == "extract"]
    assert scale, f"no extract scale-up proposed: {report.proposals}"
    count = scale[0].args["count"]
    limits = agent.policy.worker_limits("extract")
    assert 1 <= count <= limits.max
    backlog = agent.observe().brain.pending["extract"]
    assert count <= max(1, -(-backlog // limits.target_backlog_per_worker))  # never above the HPA ceiling
    outcome = report.outcomes[report.proposals.index(scale[0])]
    assert outcome.status == "done", outcome
    running = wait_for(
        lambda: (
            agent.fleet.dispatcher.workers(refresh=True)
            if len(
                [
                    w
                    for w in agent.fleet.dispatcher.workers(refresh=True)
                    if w.kind == "extract" and w.state == "running"
                ]
            )
            == count
            else None
        ),
        f"{count} running extract workers",
    )
    assert all(w.pid for w in running if w.kind == "extract")
    record = _decisions(agent, "scale_workers")[0]
    assert record.verdict == "allow" and record.outcome.status == "done"
    # The real workers drain the real backlog.
    wait_for(lambda: agent.observe().brain.pending["extract"] < backlog, "the extract backlog to shrink", timeout_s=60)


def test_policy_denial_is_recorded_with_rule_id(rig) -> None:
    agent = rig(read_only=True)
    report = agent.tick()
    mutating = [i for i, p in enumerate(report.proposals) if p.action != "noop"]
    assert mutating, "the seeded backlog should make the planner propose something"
    for i in mutating:
        assert report.outcomes[i].status == "denied"
    records = [r for r in agent.decisions.all() if r.action != "noop"]
    assert records and all("mode.read_only" in r.rule_ids for r in records)
    assert all(r.outcome.status == "denied" for r in records)
    assert agent.fleet.dispatcher.workers() == []  # nothing started


def _risky_dedup_policy() -> dict:
    return {
        "approvers": ["alice"],
        "actions": {"run_dedup": {"approval_when": [{"id": "any_merge", "when": {"expected_merges": {"gt": 0}}}]}},
    }


@pytest.mark.slow
def test_risky_dedup_waits_survives_restart_and_runs_once(rig, tmp_path: Path) -> None:
    agent = rig(**_risky_dedup_policy())
    config = write_toml(agent.settings, tmp_path / "brainops.toml")
    first = cli(config, "tick", "--json")  # process 1 proposes and opens the approval
    assert first.returncode == 0, first.stderr
    dedup = [d for d in json.loads(first.stdout)["decisions"] if d["proposal"]["action"] == "run_dedup"]
    assert dedup and dedup[0]["outcome"]["status"] == "pending"
    approval_id = dedup[0]["outcome"]["data"]["approval_id"]
    assert [a.id for a in agent.approvals.pending()] == [approval_id]
    assert not [w for w in agent.fleet.dispatcher.workers(ended=10) if w.kind == "dedup"]

    refused = cli(config, "approve", approval_id, "--by", "mallory")  # not a listed approver
    assert refused.returncode != 0 and "mallory" in (refused.stdout + refused.stderr)
    approved = cli(config, "approve", approval_id, "--by", "alice")  # process 2 resumes the graph
    assert approved.returncode == 0, approved.stdout + approved.stderr
    again = cli(config, "approve", approval_id, "--by", "alice")
    assert again.returncode != 0  # already decided: refused, nothing runs twice

    jobs = [w for w in agent.fleet.dispatcher.workers(ended=10) if w.kind == "dedup"]
    assert len(jobs) == 1, jobs
    answered = [r for r in _decisions(agent, "run_dedup") if r.approver]
    assert len(answered) == 1 and answered[0].approver == "alice" and answered[0].outcome.status == "done"
    # A third process resuming the same thread re-runs no side effect.
    Agent(agent.settings).resume_answered(agent.approvals.get(approval_id))
    assert len([w for w in agent.fleet.dispatcher.workers(ended=10) if w.kind == "dedup"]) == 1


def test_unanswered_approval_expires_as_denial(rig) -> None:
    now = [1_000_000.0]
    agent = rig(clock=lambda: now[0], approval_ttl_s=60, **_risky_dedup_policy())
    report = agent.tick()
    pending = [o for o in report.outcomes if o.status == "pending"]
    assert pending
    approval_id = pending[0].data["approval_id"]
    now[0] += 61
    expired = agent.expire_due()
    assert [a.id for a in expired] == [approval_id]
    record = [r for r in _decisions(agent, "run_dedup") if r.outcome.status == "expired"]
    assert len(record) == 1
    late = agent.answer(approval_id, True, "alice")
    assert not late.ok
    assert not [w for w in agent.fleet.dispatcher.workers(ended=10) if w.kind == "dedup"]


@pytest.mark.slow
def test_crashed_worker_is_restarted_by_the_next_tick(rig) -> None:
    now = [2_000_000.0]
    agent = rig(clock=lambda: now[0])
    agent.request("scale_workers", {"kind": "extract", "host": "local", "count": 1}, requester="test")
    worker = wait_for(
        lambda: next((w for w in agent.fleet.dispatcher.workers(refresh=True) if w.kind == "extract" and w.pid), None),
        "an extract worker with a pid",
    )
    os.killpg(worker.pid, signal.SIGKILL)
    wait_for(lambda: agent.fleet.reconcile(now[0]).crashed or None, "reconcile to report the killed worker crashed")
    now[0] += 120  # past the back-off
    agent.tick()
    restarted = wait_for(
        lambda: next((w for w in agent.fleet.dispatcher.workers(refresh=True) if w.id == worker.id and w.pid), None),
        f"{worker.id} restarted with a pid",
    )
    assert restarted.pid != worker.pid and restarted.restarts >= 1


@pytest.mark.slow
def test_decision_log_verifies_and_detects_tampering(rig) -> None:
    agent = rig()
    agent.tick(dry_run=True)
    agent.tick(dry_run=True)
    config = write_toml(agent.settings, agent.settings.home.parent / "brainops.toml")
    ok = cli(config, "decisions", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with sqlite3.connect(agent.settings.state_db) as db:
        triggers = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
        for name in triggers:
            db.execute(f"DROP TRIGGER {name}")
        db.execute("UPDATE decisions SET rationale = 'edited' WHERE seq = 1")
    bad = cli(config, "decisions", "verify")
    assert bad.returncode != 0
    assert not agent.decisions.verify().ok


@pytest.mark.slow
def test_run_seeds_a_demo_brain_and_ticks(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy.yaml", **NO_CPU_CEILING)
    config = tmp_path / "brainops.toml"
    # with a config file the demo brain is opt-in (no config file at all is the other case that seeds it)
    config.write_text(f'home = "{tmp_path / "home"}"\npolicy_file = "{policy}"\ndemo_seed = true\n')
    try:
        result = cli(config, "run", "--ticks", "2", "--interval", "1", timeout=300)
    finally:
        kill_workers(tmp_path / "home" / "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "seeding a small demo brain" in result.stdout
    assert result.stdout.count("tick t") == 2
    assert "scale_workers" in result.stdout or "start_embedding" in result.stdout


def test_answer_stored_but_never_resumed_is_acted_on_by_the_next_tick(rig) -> None:
    now = [3_000_000.0]
    agent = rig(clock=lambda: now[0], **_risky_dedup_policy())
    report = agent.tick()
    approval_id = next(o.data["approval_id"] for o in report.outcomes if o.status == "pending")
    # The answering process dies right after storing the answer: the graph was never resumed.
    assert agent.approvals.answer(approval_id, True, "alice", ("alice",), "", now[0]).ok
    assert not [w for w in agent.fleet.dispatcher.workers(ended=10) if w.kind == "dedup"]
    now[0] += 30
    agent.tick()
    answered = [r for r in _decisions(agent, "run_dedup") if r.approver == "alice"]
    assert len(answered) == 1 and answered[0].outcome.status == "done"
    agent.tick()  # settled once: nothing runs twice
    assert len([w for w in agent.fleet.dispatcher.workers(ended=10) if w.kind == "dedup"]) == 1


def test_answer_after_the_ttl_is_recorded_as_expired(rig) -> None:
    now = [4_000_000.0]
    agent = rig(clock=lambda: now[0], approval_ttl_s=60, **_risky_dedup_policy())
    report = agent.tick()
    approval_id = next(o.data["approval_id"] for o in report.outcomes if o.status == "pending")
    now[0] += 120
    late = agent.answer(approval_id, True, "alice")
    assert not late.ok and late.status == "expired"
    records = [r for r in _decisions(agent, "run_dedup") if r.outcome.status == "expired"]
    assert len(records) == 1
    assert not [w for w in agent.fleet.dispatcher.workers(ended=10) if w.kind == "dedup"]


def test_approval_whose_thread_never_started_still_runs_once(rig) -> None:
    agent = rig(**_risky_dedup_policy())
    args = {"dry_run": True, "expected_merges": 3}
    agent.approvals.create("apr-orphan", "t-dead", "run_dedup", args, "tick died", "high", ("risk.x",), "rules", 900)
    assert agent.answer("apr-orphan", True, "alice").ok
    records = [r for r in _decisions(agent, "run_dedup") if r.approver == "alice"]
    assert len(records) == 1 and records[0].outcome.status == "done"
    assert len([w for w in agent.fleet.dispatcher.workers(ended=10) if w.kind == "dedup"]) == 1


def test_a_denied_action_is_not_asked_again_every_tick(rig) -> None:
    now = [5_000_000.0]
    agent = rig(clock=lambda: now[0], **_risky_dedup_policy())
    first = agent.tick()
    approval_id = next(o.data["approval_id"] for o in first.outcomes if o.status == "pending")
    assert agent.answer(approval_id, False, "alice", "not today").ok
    for _ in range(3):
        now[0] += 120
        report = agent.tick()
        assert "run_dedup" not in [p.action for p in report.proposals]
    assert len(agent.approvals.recent(50)) == 1
