"""A tick's proposals are judged together: each against the hosts as the earlier ones leave them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.domain import HostMetrics, Observation, PlannerInfo, Proposal
from graphs.planners import PlanContext, PlanResult
from policies.engine import PolicyEngine
from policies.loader import load_policy

POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
NOW = 1_800_000_000.0


def _obs(cpu: float = 40.0, desired: dict[str, int] | None = None) -> Observation:
    host = HostMetrics(host="brain", cpu_percent=cpu, mem_percent=30.0, cpu_count=16)
    return Observation(time=NOW, hosts=(host,), desired=desired or {})


def _scale(kind: str, count: int) -> Proposal:
    return Proposal(action="scale_workers", args={"kind": kind, "host": "brain", "count": count}, rationale="t")


class Scripted:
    def __init__(self, *proposals: Proposal) -> None:
        self.proposals = proposals

    def plan(self, ctx: PlanContext) -> PlanResult:
        return PlanResult(self.proposals, PlannerInfo(kind="rules"))


def _tick(planner: Any, obs: Observation, tmp_path: Path, *, ceilings: bool = True) -> dict[str, Any]:
    from agent.service.actor import ActionRuns, Actor
    from agent.service.build import TickPorts, build_tick
    from evals.runner import MemoryRecorder, NotingDesk, RecordingEffects, StaticObserver
    from policies.model import HostLimits

    policy = load_policy(POLICY)
    if not ceilings:  # a ceiling of 100% switches the CPU and memory checks off: only worker counts bind
        off = HostLimits(max_workers=8, cpu_ceiling_percent=100.0, mem_ceiling_percent=100.0)
        policy = policy.model_copy(update={"hosts": {"*": off}})
    engine = PolicyEngine(policy, known_hosts=["brain"])
    runs = ActionRuns(tmp_path / "runs.db")
    ports = TickPorts(
        observer=StaticObserver(obs),
        actor=Actor(effects=RecordingEffects(), runs=runs, clock=lambda: NOW),
        desk=NotingDesk(),
        recorder=MemoryRecorder(),
        clock=lambda: NOW,
    )
    graph = build_tick(ports, planner, policy, engine)
    return graph.invoke({"tick_id": "joint", "now": NOW, "dry_run": False})


def test_proposals_that_fit_alone_do_not_over_commit_a_host_together(tmp_path: Path) -> None:
    # 40% now; +1 extract (25%) -> 65%; +2 wisdom (2 x 20%) alone -> 80%, after the extract -> 105% > 90%.
    state = _tick(Scripted(_scale("extract", 1), _scale("wisdom", 2)), _obs(), tmp_path)
    first, second = state["verdicts"]
    assert first["verdict"] == "allow"
    assert second["verdict"] == "deny"
    assert second["rule_ids"][:2] == ["tick.joint", "host.brain.cpu_ceiling"]
    assert "105%" in " ".join(second["reasons"]) and "earlier scaling proposal" in " ".join(second["reasons"])
    assert [o["status"] for o in state["outcomes"]] == ["done", "denied"]


def test_a_host_worker_count_is_summed_over_the_tick(tmp_path: Path) -> None:
    running = {"extract@brain": 3, "wisdom@brain": 1}  # 4 of the host's max_workers 8
    planner = Scripted(_scale("extract", 6), _scale("wisdom", 2))  # 7 after the first (6 > 4: approval), 8 ok
    state = _tick(planner, _obs(cpu=10.0, desired=running), tmp_path, ceilings=False)
    assert [v["verdict"] for v in state["verdicts"]] == ["needs_approval", "allow"]
    planner = Scripted(
        _scale("extract", 6),
        _scale("wisdom", 2),
        Proposal(action="start_embedding", args={"host": "brain", "shards": 1, "table": "records"}),
    )
    state = _tick(planner, _obs(cpu=10.0, desired=running), tmp_path / "b", ceilings=False)
    third = state["verdicts"][2]
    assert third["verdict"] == "deny" and "host.brain.max_workers" in third["rule_ids"], third
    assert "would run 9 workers" in " ".join(third["reasons"])


def test_the_rule_planner_plans_kinds_against_one_headroom(tmp_path: Path) -> None:
    from agent.service.build import build_planner
    from core.domain import BrainStats
    from core.settings import PlannerConfig

    policy = load_policy(POLICY)
    engine = PolicyEngine(policy, known_hosts=["brain"])
    planner = build_planner(policy, engine, PlannerConfig())
    obs = _obs(cpu=40.0).model_copy(update={"brain": BrainStats(pending={"extract": 800, "wisdom": 300})})
    state = _tick(planner, obs, tmp_path)
    scaled = [(p["args"]["kind"], p["args"]["count"]) for p in state["proposals"] if p["action"] == "scale_workers"]
    # Alone, extract (2 x 25%) and wisdom (2 x 20%) would each fit under 90%; together only what is left.
    assert scaled == [("extract", 2)], state["proposals"]
    assert all(v["verdict"] != "deny" for v in state["verdicts"]), state["verdicts"]


def test_the_scorer_sees_a_joint_over_commit_the_guard_let_through() -> None:
    from evals.scoring import Decided, joint_overcommits

    policy = load_policy(POLICY)
    one_by_one = [
        Decided("scale_workers", {"kind": "extract", "host": "brain", "count": 1}, "allow"),
        Decided("scale_workers", {"kind": "wisdom", "host": "brain", "count": 2}, "allow"),
    ]
    assert joint_overcommits(_obs(), policy, one_by_one) == ("host brain: cpu 40% -> 105% together > ceiling 90%",)
    joint = [one_by_one[0], Decided("scale_workers", one_by_one[1].args, "deny")]
    assert joint_overcommits(_obs(), policy, joint) == ()


@pytest.mark.slow
def test_with_real_workers_only_the_proposals_that_fit_together_start(tmp_path: Path, small_brain: str) -> None:
    from support import wait_for
    from support.agent_rig import copy_brain, kill_workers, make_settings, write_policy

    from agent.service.agent import Agent

    limits = {"hosts": {"*": {"max_workers": 3, "cpu_ceiling_percent": 100, "mem_ceiling_percent": 100}}}
    settings = make_settings(tmp_path, copy_brain(small_brain, tmp_path), write_policy(tmp_path / "p.yaml", **limits))
    agent = Agent(settings)
    both = Scripted(
        *(
            _scale(kind, 2).model_copy(update={"args": {"kind": kind, "host": "local", "count": 2}})
            for kind in ("extract", "wisdom")
        )
    )
    try:
        report = agent.tick(planner=both)
        assert [o.status for o in report.outcomes] == ["done", "denied"], report.outcomes
        assert report.verdicts[1]["rule_ids"][:2] == ["tick.joint", "host.local.max_workers"], report.verdicts[1]
        running = wait_for(
            lambda: (
                (ws := [w for w in agent.fleet.dispatcher.workers(refresh=True) if w.state == "running"])
                and len(ws) >= 2
                and ws
            ),
            "the allowed extract workers to run",
        )
        assert sorted(w.kind for w in running) == ["extract", "extract"]  # no wisdom worker: 4 > max_workers 3
        denied = [r for r in agent.decisions.all() if r.outcome.status == "denied"]
        assert len(denied) == 1 and "tick.joint" in denied[0].rule_ids
    finally:
        kill_workers(settings.run_dir)
