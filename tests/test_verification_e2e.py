"""Actions checked against what they expected, with every part real: a small LanceDB brain, real extract worker
processes, the real tick graph, SQLite decision log and `brainops decisions --action` as a subprocess.

The agent's clock runs ahead of the wall clock where a test needs an action's horizon to pass (the brain and the
workers keep real time, so what the verifier sees is what the workers really did)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support import wait_for
from support.agent_rig import NO_CPU_CEILING, cli, copy_brain, kill_workers, make_settings, write_policy, write_toml

from agent.service.agent import Agent
from agent.state.decision_links import linked
from agent.state.decisions import DecisionRecord

POLICY: dict[str, Any] = {
    **NO_CPU_CEILING,
    "workers": {"extract": {"max": 4, "target_backlog_per_worker": 50}, "embed": {"max": 0}, "wisdom": {"max": 0}},
    "scaling": {"cooldown_s": 0.0},
    "actions": {name: {"enabled": False} for name in ("start_embedding", "run_dedup", "run_recluster")},
}


class Clock:
    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


@pytest.fixture
def rig(tmp_path: Path, small_brain: str):
    brain = copy_brain(small_brain, tmp_path)
    made: list[Agent] = []

    def build(item_ms: int = 2, **policy: Any) -> tuple[Agent, Clock]:
        path = write_policy(tmp_path / "policy.yaml", **{**POLICY, **policy})
        settings = make_settings(
            tmp_path, brain, path, worker_defaults={"extract": {"item_ms": item_ms, "batch_size": 50}}
        )
        clock = Clock()
        made.append(Agent(settings, clock=clock))
        return made[-1], clock

    yield build
    for agent in made:
        kill_workers(agent.settings.run_dir)


def _extract_workers(agent: Agent) -> int:
    workers = agent.fleet.dispatcher.workers(refresh=True)
    return sum(1 for w in workers if w.kind == "extract" and w.state in ("starting", "running", "draining"))


def _mark_all_extracted(brain: str) -> None:
    import pyarrow as pa

    from brain.store import BrainStore

    store = BrainStore(brain)
    ids = store.fresh("records").search().select(["id"]).limit(None).to_arrow().column("id")
    store.update_columns("records", pa.table({"id": ids, "extracted": pa.array([True] * len(ids))}))


def _only(agent: Agent, action: str) -> DecisionRecord:
    records = [r for r in agent.decisions.all() if r.action == action and r.outcome.status == "done"]
    assert len(records) == 1, records
    return records[0]


def _verdict(agent: Agent, action_id: str) -> DecisionRecord:
    found = [r for r in linked(agent.decisions, action_id) if r.action == "verify"]
    assert len(found) == 1, f"expected one verdict on {action_id}, got {found}"
    return found[0]


@pytest.mark.slow  # waits for real workers to drain a tenth of the backlog (~20 s on a loaded 2-core machine)
def test_scale_up_is_verified_once_real_workers_drain_the_backlog(rig, tmp_path: Path) -> None:
    agent, _clock = rig()
    first = agent.tick()
    scale = _only(agent, "scale_workers")
    expected = scale.extra["expectation"]
    check = expected["checks"][0]
    assert check["metric"] == "brain.pending.extract" and check["op"] == "<=" and expected["source"] == "rules"
    assert check["target"] < check["baseline"]
    assert first.verifications == ()  # nothing to check yet
    wait_for(lambda: agent.observe().brain.pending["extract"] <= check["target"], "the workers to drain the backlog")

    second = agent.tick()

    assert [v["verdict"] for v in second.verifications if v["action_id"] == scale.id] == ["verified"]
    verdict = _verdict(agent, scale.id)
    assert verdict.outcome.status == "verified" and verdict.extra["verifies"] == scale.id
    assert verdict.seq > scale.seq and agent.decisions.verify().ok  # in the same keyed chain
    agent.tick()  # judged once: a later tick adds no second verdict
    _verdict(agent, scale.id)
    config = write_toml(agent.settings, tmp_path / "brainops.toml")
    shown = cli(config, "decisions", "--action", scale.id)
    assert shown.returncode == 0, shown.stderr
    assert "expected: backlog" in shown.stdout and f"verdict {verdict.id}" in shown.stdout
    unknown = cli(config, "decisions", "--action", "nosuchid")
    assert unknown.returncode == 2 and "no decision has the id 'nosuchid'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_scale_up_whose_workers_do_not_drain_is_missed_with_the_numbers(rig) -> None:
    agent, clock = rig(item_ms=5000)  # a batch takes minutes: the new workers finish nothing
    agent.tick()
    scale = _only(agent, "scale_workers")
    check = scale.extra["expectation"]["checks"][0]
    horizon = scale.extra["expectation"]["horizon_s"]
    agent.tick()
    assert not linked(agent.decisions, scale.id), "judged before its horizon although not met"

    clock.ahead = horizon + 5
    agent.tick()

    verdict = _verdict(agent, scale.id)
    assert verdict.outcome.status == "missed"
    result = verdict.outcome.data["results"][0]
    assert result["observed"] == check["baseline"] and result["target"] == check["target"] and not result["held"]
    target = f"{check['target']:,.0f}"
    assert f"brain.pending.extract {check['baseline']:,.0f} (expected <= {target}" in verdict.outcome.detail


def test_harmful_scale_down_proposes_scaling_back_through_the_guard(rig, tmp_path: Path) -> None:
    from support.brain_rig import pending_records

    from brain.store import BrainStore

    # The planner starts no workers from zero here, so what scales extract back up is the rollback alone.
    agent, clock = rig(workers={"extract": {"max": 4, "activation_backlog": 100_000}})
    _mark_all_extracted(agent.settings.brain_uri)  # a quiet brain: scaling down looks safe
    agent.request("scale_workers", {"kind": "extract", "host": "local", "count": 2}, "test")
    wait_for(lambda: _extract_workers(agent) == 2, "two extract workers")
    agent.request("scale_workers", {"kind": "extract", "host": "local", "count": 0}, "test", "quiet hours")
    down = next(r for r in agent.decisions.all() if r.action == "scale_workers" and r.args["count"] == 0)
    assert down.extra["expectation"]["source"] == "derived" and down.outcome.status == "done"
    wait_for(lambda: _extract_workers(agent) == 0, "the extract workers to stop")
    baseline = down.extra["expectation"]["checks"][0]["baseline"]
    texts = [f"Ada Lovelace wrote to Person{i} about engines." for i in range(300)]
    BrainStore(agent.settings.brain_uri).add("records", pending_records("late", texts, "late", time.time()))

    clock.ahead = 30.0  # within the horizon: a scale-down must hold until then, and this one already fails
    report = agent.tick()

    verdict = _verdict(agent, down.id)
    assert verdict.outcome.status == "missed" and verdict.outcome.data["harmed"] is True
    assert verdict.outcome.data["results"][0]["observed"] >= baseline + 300
    back = [(p, o) for p, o in zip(report.proposals, report.outcomes, strict=True) if p.rollback_of == down.id]
    assert len(back) == 1, report.proposals
    proposal, outcome = back[0]
    assert proposal.args == {"kind": "extract", "host": "local", "count": 2} and outcome.status == "done"
    rollback = next(r for r in linked(agent.decisions, down.id) if r.action == "scale_workers")
    assert rollback.verdict == "allow" and rollback.extra["rollback_of"] == down.id
    wait_for(lambda: _extract_workers(agent) == 2, "the extract workers to be back")
    assert not agent.verifier.rollbacks_due(clock()), "a rollback is proposed once"
    shown = cli(write_toml(agent.settings, tmp_path / "brainops.toml"), "decisions", "--action", down.id)
    assert "missed" in shown.stdout and f"rollback {rollback.id}" in shown.stdout, shown.stdout + shown.stderr
