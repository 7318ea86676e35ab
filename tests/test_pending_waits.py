"""While a human is asked about an action and target, the rule planner waits: never a second, parallel prompt."""

from __future__ import annotations

from pathlib import Path

from core.domain import BrainStats, BudgetState, HostMetrics, Observation, PendingApproval
from core.settings import PlannerConfig
from graphs.planners import PlanContext
from policies.engine import PolicyEngine
from policies.loader import load_policy

POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
NOW = 1_800_000_000.0


def _plan(obs: Observation) -> list[tuple[str, dict]]:
    from agent.service.build import build_planner

    policy = load_policy(POLICY)
    planner = build_planner(policy, PolicyEngine(policy, known_hosts=["worker1"]), PlannerConfig())
    result = planner.plan(PlanContext(obs, NOW))
    return [(p.action, p.args) for p in result.proposals]  # type: ignore[union-attr]


def _obs(pending: tuple[PendingApproval, ...] = ()) -> Observation:
    return Observation(
        time=NOW,
        hosts=(HostMetrics(host="worker1", cpu_percent=20.0, mem_percent=20.0, cpu_count=8),),
        brain=BrainStats(pending={"extract": 4000}),
        budget=BudgetState(window_tokens=800_000_000, used_tokens=400_000_000, pace=1.5),
        desired={"extract@worker1": 2},
        pending_approvals=pending,
    )


def test_an_open_scale_approval_is_not_asked_again() -> None:
    asked = _plan(_obs())
    assert ("scale_workers", {"kind": "extract", "host": "worker1", "count": 4}) in asked  # 2 x 100% step
    assert any(a == "set_model_routing" for a, _ in asked)
    pending = (
        PendingApproval(
            id="apr-1",
            action="scale_workers",
            args={"kind": "extract", "host": "worker1", "count": 5},
            expires_at=NOW + 600,
        ),
        PendingApproval(
            id="apr-2", action="set_model_routing", args={"weights": {"routine": 1.0}}, expires_at=NOW + 600
        ),
    )
    waiting = _plan(_obs(pending))
    assert not any(a in ("scale_workers", "set_model_routing") for a, _ in waiting), waiting
