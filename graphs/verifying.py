"""The planner wrapper that checks earlier actions before planning (agent/service/verification.py does the
checking and recording) and puts the reversal of any that made things worse into this tick's proposals, so a
rollback goes through the same guard, approvals and decision log as every other action.

Where the planner itself proposes a change on the same subject (the same cooldown key: a scale-down that let
the backlog grow, and the planner scaling that kind up again), its proposal, sized on what is observed now,
stands and is recorded as the rollback; otherwise the verifier's reversal is proposed first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from core.actions import cooldown_key
from core.domain import Observation, Proposal
from core.expectation_types import Expectation, Judgement
from graphs.planners import PlanContext, PlanFailed, Planner, PlanResult


def rollback_for(action_id: str, action: str, expectation: Expectation, judgement: Judgement) -> Proposal | None:
    """The reversal a verdict asks for: only a miss that made things worse, on an action that declares one."""
    back = expectation.rollback
    if judgement.verdict != "missed" or not judgement.harmed or back is None:
        return None
    why = f"rollback of {action} {action_id} ({back.why or 'reverse it'}): it made things worse, {judgement.detail}"
    return Proposal(action=back.action, args=back.args, rationale=why, rollback_of=action_id)


Rollbacks = Callable[[Observation, float], Sequence[Proposal]]  # (observation, now) -> reversals due


@dataclass(frozen=True)
class VerifyingPlanner:
    inner: Planner
    rollbacks: Rollbacks

    def plan(self, ctx: PlanContext) -> PlanResult | PlanFailed:
        due = list(self.rollbacks(ctx.observation, ctx.now))
        result = self.inner.plan(ctx)
        if not due or not isinstance(result, PlanResult):
            return result
        return replace(result, proposals=merge(due, result.proposals))


def merge(rollbacks: Sequence[Proposal], proposals: Sequence[Proposal]) -> tuple[Proposal, ...]:
    """The planner's proposals, each one on a rollback's key marked as that rollback, then the other rollbacks
    first; a planner noop is dropped when a rollback is proposed."""
    by_key = {cooldown_key(r.action, r.args): r for r in rollbacks}
    out: list[Proposal] = []
    for p in proposals:
        back = by_key.pop(cooldown_key(p.action, p.args), None)
        if back is not None and p.rollback_of is None:
            p = p.model_copy(
                update={"rollback_of": back.rollback_of, "rationale": f"{p.rationale}; also the {back.rationale}"}
            )
        out.append(p)
    rest = list(by_key.values())
    if rest:
        out = [p for p in out if p.action != "noop"]
    return (*rest, *out)
