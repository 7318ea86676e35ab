"""A tick that does nothing, or less than it wanted, says which limit or state decided it, with the numbers:
never "all stages within targets" while work waits."""

from __future__ import annotations

from pathlib import Path

from core.domain import BrainStats, HostMetrics, Observation, Proposal
from core.settings import PlannerConfig
from core.timefmt import iso
from graphs.planners import PlanContext
from policies.engine import PolicyEngine
from policies.loader import load_policy

POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
NOW = 1_800_000_000.0


def plan(obs: Observation) -> list[Proposal]:
    from agent.service.build import build_planner

    policy = load_policy(POLICY)
    planner = build_planner(policy, PolicyEngine(policy, known_hosts=["worker1", "worker2"]), PlannerConfig())
    result = planner.plan(PlanContext(obs, NOW))
    return list(result.proposals)  # type: ignore[union-attr]


def host(name: str, cpu: float) -> HostMetrics:
    return HostMetrics(host=name, cpu_percent=cpu, mem_percent=30.0, cpu_count=8)


def only_noop(proposals: list[Proposal]) -> str:
    assert [p.action for p in proposals] == ["noop"], proposals
    return proposals[0].rationale


def test_work_waiting_on_a_full_host_names_the_ceiling() -> None:
    obs = Observation(time=NOW, hosts=(host("worker1", 100.0),), brain=BrainStats(pending={"extract": 1000}))
    why = only_noop(plan(obs))
    assert "all stages within targets" not in why
    assert "extract backlog 1000" in why and "worker1 at cpu 100%" in why and "ceilings 90%" in why


def test_a_partial_step_says_how_many_were_not_placed_and_why() -> None:
    # room for one extract worker (est 25% cpu each) under the 90% ceiling; the backlog asks for more
    obs = Observation(time=NOW, hosts=(host("worker1", 60.0),), brain=BrainStats(pending={"extract": 1000}))
    [scale] = [p for p in plan(obs) if p.action == "scale_workers"]
    assert scale.args["count"] == 1
    assert "scale up to 1 in total" in scale.rationale
    assert "of 2 not placed" in scale.rationale or "of 4 not placed" in scale.rationale
    assert "worker1" in scale.rationale


def test_a_dedup_in_cooldown_or_refused_says_until_when() -> None:
    brain = BrainStats(entities=1000, duplicate_estimate=0.05, duplicate_candidates=50)
    cooling = Observation(time=NOW, hosts=(host("worker1", 10.0),), brain=brain, recent_actions={"run_dedup": NOW - 60})
    why = only_noop(plan(cooling))
    assert "duplicate estimate 5.00%" in why and f"in cooldown until {iso(NOW - 60 + 3600)}" in why
    refused = cooling.model_copy(update={"recent_actions": {"refused:run_dedup": NOW - 120}})
    why = only_noop(plan(refused))
    assert f"refused at {iso(NOW - 120)}" in why and "all stages within targets" not in why


def test_a_quiet_fleet_still_says_so() -> None:
    obs = Observation(time=NOW, hosts=(host("worker1", 10.0),), brain=BrainStats(pending={"extract": 0}))
    assert only_noop(plan(obs)).startswith("all stages within targets")
