"""The planner contract. A planner turns one observation into proposals; it never executes anything."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.domain import Observation, PlannerInfo, Proposal


@dataclass(frozen=True)
class RejectedCall:
    """A model tool call that was refused (bad JSON, unknown tool, bad args, policy deny), and why."""

    tool: str
    arguments: str
    reason: str


MODEL_SHARE = 0.8  # of the tick deadline the model planner may use; the rest is for the rules and the effects


@dataclass(frozen=True)
class Deadline:
    """When the tick must be done (`at`, a time.monotonic() value) and its configured length, for the record.
    The observation, the planner and the effects share it: the model planner stops at `model_at` (so the rules
    and the effects still fit), and past `at` no mutating action starts."""

    at: float
    budget_s: float

    @property
    def model_at(self) -> float:
        return self.at - (1.0 - MODEL_SHARE) * self.budget_s

    @classmethod
    def after(cls, budget_s: float) -> Deadline:
        return cls(time.monotonic() + budget_s, budget_s)

    def left(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0

    def elapsed(self) -> float:
        """Seconds since the tick started."""
        return self.budget_s - self.left()

    def stopped(self, what: str) -> str:
        """E.g. "tick deadline 60s: model planner stopped after 48.1s"."""
        return f"tick deadline {self.budget_s:g}s: {what} stopped after {self.elapsed():.1f}s"


@dataclass(frozen=True)
class PlanContext:
    observation: Observation
    now: float
    recent_decisions: Sequence[dict[str, Any]] = ()
    policy_summary: dict[str, Any] = field(default_factory=dict)
    deadline: Deadline | None = None  # None: no bound (evals, replay, the simulator)


@dataclass(frozen=True)
class PlanResult:
    proposals: tuple[Proposal, ...]
    planner: PlannerInfo
    rejected: tuple[RejectedCall, ...] = ()
    call_ids: Mapping[str, str] = field(default_factory=dict)  # Proposal.key() -> the model's tool call id


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

    The fallback's PlannerInfo keeps the primary's token use and the reason, so the record shows both. A model
    planner that reaches the tick's deadline fails that way too ("tick deadline 60s: ..."): the rules, which
    need no network, still decide in time.
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


@dataclass(frozen=True)
class RequestedPlanner:
    """A human's chat or CLI request (or an MCP client's call) as a planner: the proposal still goes through
    guard, act and record; a call whose arguments did not validate is recorded as rejected."""

    proposal: Proposal | RejectedCall
    info: PlannerInfo = field(default_factory=lambda: PlannerInfo(kind="human"))
    call_id: str | None = None  # the MCP request that proposed it

    def plan(self, ctx: PlanContext) -> PlanResult:
        if isinstance(self.proposal, RejectedCall):
            return PlanResult(proposals=(), planner=self.info, rejected=(self.proposal,))
        call_ids = {self.proposal.key(): self.call_id} if self.call_id else {}
        return PlanResult(proposals=(self.proposal,), planner=self.info, call_ids=call_ids)
