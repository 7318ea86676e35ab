"""What the graphs need from the outside world. The agent wires real implementations; evals wire simulated ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from core.domain import Observation, Outcome, PlannerInfo, PolicyDecision, Proposal


class Observer(Protocol):
    def __call__(self, now: float) -> Observation: ...


class Guard(Protocol):
    def __call__(self, proposal: Proposal, obs: Observation, now: float) -> PolicyDecision: ...


class Actor(Protocol):
    def execute(self, proposal: Proposal, key: str, *, dry_run: bool = False) -> Outcome:
        """Run the action once per key: a second call with a done key returns the first outcome, runs nothing."""
        ...


@dataclass(frozen=True)
class ApprovalRequest:
    approval_id: str
    tick_id: str
    proposal: Proposal
    decision: PolicyDecision
    planner: PlannerInfo
    observation_digest: str


class ApprovalDesk(Protocol):
    def open(self, request: ApprovalRequest, now: float) -> float:
        """Create the durable approval record (idempotent on id); returns its expiry time."""
        ...


@dataclass(frozen=True)
class DecisionEntry:
    tick_id: str
    key: str
    proposal: Proposal
    planner: PlannerInfo
    observation_digest: str
    decision: PolicyDecision | None
    outcome: Outcome
    approver: str | None = None
    approved_at: float | None = None
    extra: dict[str, Any] | None = None


class Recorder(Protocol):
    def record(self, entry: DecisionEntry, now: float) -> str:
        """Append one decision (idempotent on entry.key); returns the decision id."""
        ...
