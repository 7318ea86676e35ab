"""The planner the agent runs: whoever plans (a model, or the rules), the rules' capacity meters learn from every
tick, each scaling proposal carries its predicted effect, and every mutating proposal its expectation (the
model's own, or one derived by the rules' estimator)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from core.actions import with_expectation
from core.expectation_types import ExpectationSource
from graphs.planners import PlanContext, PlanFailed, Planner, PlanResult
from graphs.rule_planner import RulePlanner


@dataclass(frozen=True)
class MeasuredPlanner:
    """Whoever plans (a model, or the rules), the capacity meters learn from every tick and each scaling
    proposal carries its predicted effect into the guard, the record and any approval prompt."""

    inner: Planner
    rules: RulePlanner

    def plan(self, ctx: PlanContext) -> PlanResult | PlanFailed:
        self.rules.measure(ctx.observation)
        result = self.inner.plan(ctx)
        if not isinstance(result, PlanResult):
            return result
        obs = ctx.observation
        source: ExpectationSource = "rules" if result.planner.kind == "rules" else "derived"
        proposals = tuple(with_expectation(obs, self.rules.with_prediction(obs, p), source) for p in result.proposals)
        return replace(result, proposals=proposals)


def inside_measured(planner: Planner, wrap: Callable[[Planner], Planner]) -> Planner:
    """`wrap` applied inside the measuring planner, or around `planner` when it is none: what `wrap` adds to the
    plan gets predictions and expectations like the rest."""
    return replace(planner, inner=wrap(planner.inner)) if isinstance(planner, MeasuredPlanner) else wrap(planner)
