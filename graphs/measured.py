"""The planner the agent runs: whoever plans (a model, or the rules), the rules' capacity meters learn from every
tick and each scaling proposal carries its predicted effect."""

from __future__ import annotations

from dataclasses import dataclass, replace

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
        proposals = tuple(self.rules.with_prediction(ctx.observation, p) for p in result.proposals)
        return replace(result, proposals=proposals)
