"""HPA-style stability: whole ticks (real graph, rule planner, policy engine, actor, decision log) over a noisy
backlog never flap the worker count; a real drop scales down only after the stabilization window."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path

from agent.service.actor import ActionRuns, Actor
from agent.service.build import rule_params
from agent.state.decisions import DecisionLog
from core.domain import BrainStats, HostMetrics, Observation
from core.ports import ApprovalTicket
from core.settings import PlannerConfig
from graphs.rule_planner import RecommendationHistory, RulePlanner
from graphs.tick import build_tick_graph
from policies.engine import PolicyEngine
from policies.loader import load_policy

POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
TICK_S = 30.0


@dataclass
class Fleet:
    """Desired extract workers on one host; the backlog is whatever the test says it is."""

    workers: int = 4
    backlog: int = 2000
    changes: list[tuple[float, int]] = field(default_factory=list)
    approvals_asked: list[object] = field(default_factory=list)
    now: float = 1_000_000.0

    def open(self, request: object, now: float) -> ApprovalTicket:  # ApprovalDesk port: nobody answers here
        self.approvals_asked.append(request)
        return ApprovalTicket(request.approval_id, now + 900)  # type: ignore[attr-defined]

    def observe(self, now: float) -> Observation:
        return Observation(
            time=now,
            hosts=(HostMetrics(host="local", cpu_count=8, cpu_percent=20, mem_percent=30),),
            brain=BrainStats(records=10_000, pending={"extract": self.backlog}),
            desired={"extract@local": self.workers},
            recent_actions={"scale_workers:extract@local": self.changes[-1][0]} if self.changes else {},
        )

    # Effects (agent.actor): only scaling happens in this test.
    def steps(self, start: int = 4) -> list[tuple[int, int]]:
        """(before, after) worker counts of every change."""
        counts = [start, *(n for _, n in self.changes)]
        return list(itertools.pairwise(counts))

    def scale(self, kind: str, host: str, count: int) -> str:
        self.workers = count
        self.changes.append((self.now, count))
        return f"{kind}@{host}={count}"


def ungated_policy(tmp_path: Path) -> object:
    """The default policy without the approval gate on scaling, so only the planner keeps counts steady."""
    import yaml

    raw = yaml.safe_load(POLICY.read_text())
    raw["actions"]["scale_workers"]["approval_when"] = []
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_policy(path)


def run_ticks(tmp_path: Path, fleet: Fleet, backlogs: list[int]) -> None:
    policy = ungated_policy(tmp_path)
    params = rule_params(policy, PlannerConfig(scaled_kinds=["extract"]))
    graph = build_tick_graph(
        observer=fleet.observe,
        planner=RulePlanner(params, RecommendationHistory()),
        guard=PolicyEngine(policy, known_hosts=["local"]).evaluate,
        actor=Actor(effects=fleet, runs=ActionRuns(tmp_path / "state.db"), clock=lambda: fleet.now),  # type: ignore[arg-type]
        desk=fleet,
        recorder=DecisionLog(tmp_path / "state.db"),
        clock=lambda: fleet.now,
    )
    for i, backlog in enumerate(backlogs):
        fleet.backlog = backlog
        graph.invoke({"tick_id": f"t{i}", "now": fleet.now})
        fleet.now += TICK_S


def test_noisy_backlog_around_target_never_flaps(tmp_path: Path) -> None:
    rng = random.Random(42)
    target = 4 * 500  # 4 workers x target_backlog_per_worker
    fleet = Fleet(workers=4)
    # +-25% noise: outside the 10% tolerance on most ticks, so only stabilization keeps the count steady.
    run_ticks(tmp_path, fleet, [int(target * rng.uniform(0.75, 1.25)) for _ in range(120)])
    ups = sum(1 for a, b in fleet.steps() if b > a)
    downs = sum(1 for a, b in fleet.steps() if b < a)
    # A noise peak may add a worker once; a scale-down right after it (a flap) must not happen.
    directions = [b > a for a, b in fleet.steps()]
    flips = sum(1 for x, y in itertools.pairwise(directions) if x != y)
    assert downs == 0, fleet.changes
    assert flips == 0 and ups <= 1, fleet.changes
    assert 4 <= fleet.workers <= 6 and not fleet.approvals_asked
    log = DecisionLog(tmp_path / "state.db")
    assert log.verify().ok and log.count() >= 120


def test_real_drop_scales_down_only_after_stabilization(tmp_path: Path) -> None:
    fleet = Fleet(workers=4)
    run_ticks(tmp_path, fleet, [2000] * 4 + [0] * 30)  # the backlog vanishes at tick 4
    assert fleet.changes, "the fleet should scale down eventually"
    first_down_at, _ = fleet.changes[0]
    drop_at = 1_000_000.0 + 4 * TICK_S
    assert first_down_at - drop_at >= 300.0  # HPA scale-down stabilization window from the policy
    assert all(b < a for a, b in fleet.steps())
    assert fleet.workers == 0
    assert max(a - b for a, b in fleet.steps()) <= 2  # max_step_down
