"""The planner contract. A planner turns one observation into proposals; it never executes anything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.domain import Observation, PlannerInfo, Proposal


@dataclass(frozen=True)
class RejectedCall:
    """A model tool call that was refused (bad JSON, unknown tool, bad args, policy deny), and why."""

    tool: str
    arguments: str
    reason: str


@dataclass(frozen=True)
class PlanContext:
    observation: Observation
    now: float
    recent_decisions: Sequence[dict[str, Any]] = ()
    policy_summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanResult:
    proposals: tuple[Proposal, ...]
    planner: PlannerInfo
    rejected: tuple[RejectedCall, ...] = ()


@dataclass(frozen=True)
class PlanFailed:
    """The planner could not produce a plan (provider down, budget exhausted, too many invalid calls)."""

    reason: str
    planner: PlannerInfo
    rejected: tuple[RejectedCall, ...] = ()


class Planner(Protocol):
    def plan(self, ctx: PlanContext) -> PlanResult | PlanFailed: ...


@dataclass(frozen=True)
class FallbackPlanner:
    """Try the primary (model) planner; on a typed failure the deterministic fallback decides.

    The fallback's PlannerInfo keeps the primary's token use and the reason, so the record shows both.
    """

    primary: Planner
    fallback: Planner

    def plan(self, ctx: PlanContext) -> PlanResult | PlanFailed:
        try:
            first = self.primary.plan(ctx)
        except Exception as exc:  # an unexpected provider or parsing error must not cost the tick its decision
            first = PlanFailed(reason=f"model planner error: {type(exc).__name__}: {exc}", planner=PlannerInfo())
        if isinstance(first, PlanResult):
            return first
        second = self.fallback.plan(ctx)
        if isinstance(second, PlanFailed):
            return second
        info = second.planner.model_copy(
            update={
                "tokens_in": first.planner.tokens_in,
                "tokens_out": first.planner.tokens_out,
                "cost": first.planner.cost,
                "fallback_reason": first.reason,
                "model": first.planner.model,
                "tier": first.planner.tier,
            }
        )
        return PlanResult(proposals=second.proposals, planner=info, rejected=first.rejected + second.rejected)
