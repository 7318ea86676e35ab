"""What the graphs need from the outside world. The agent wires real implementations; evals wire simulated ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.domain import Observation, Outcome, PlannerInfo, PolicyDecision, Proposal
from core.llm_types import LLMResult, Message, Purpose


class Observer(Protocol):
    def __call__(self, now: float) -> Observation: ...


class Guard(Protocol):
    def __call__(self, proposal: Proposal, obs: Observation, now: float) -> PolicyDecision: ...


class Actor(Protocol):
    def execute(self, proposal: Proposal, key: str, *, dry_run: bool = False, recovering: bool = False) -> Outcome:
        """Run the action once per key: a second call with a done key returns the first outcome, runs nothing.
        `recovering` (a tick a crash left half done): finish only what was claimed; start nothing new."""
        ...


@dataclass(frozen=True)
class ApprovalRequest:
    approval_id: str
    tick_id: str
    proposal: Proposal
    decision: PolicyDecision
    planner: PlannerInfo
    observation_digest: str
    # Observed facts shown to the approver beside the arguments (e.g. the dedup plan a run_dedup names); the
    # approval is bound to the arguments, not to these.
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalTicket:
    """The approval a request waits on: its own, or one already pending for the same action and arguments."""

    approval_id: str
    expires_at: float
    existing: bool = False


class ApprovalDesk(Protocol):
    def open(self, request: ApprovalRequest, now: float) -> ApprovalTicket:
        """Create the durable approval record (idempotent on id). One pending approval per action and
        arguments: a request for the same thing gets the open one back (`existing`), never a second prompt."""
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


class Effects(Protocol):
    """What actions do to the world: the dispatcher and the ledger in the agent, the fleet model in evals.
    Each method is one real effect and returns a line for the decision record."""

    def scale(self, kind: str, host: str, count: int) -> str: ...
    def start_embedding(self, host: str, shards: int, table: str, job_key: str) -> str: ...
    def run_job(
        self,
        kind: str,
        host: str | None,
        job_key: str,
        dry_run: bool = False,
        plan: str | None = None,
        max_merges: int | None = None,
    ) -> str:
        """A one-shot job. dedup: `plan` (a dry run's hash) and `max_merges` hold a live run to what was approved."""
        ...

    def set_routing(self, weights: Mapping[str, float]) -> str: ...
    def set_task_tier(self, task: str, tier: str) -> str:
        """Pin one task's fleet calls (reasoning) to a tier: the ledger's routing state its workers read."""
        ...

    def restart_worker(self, worker_id: str) -> str: ...
    def stop_worker(self, worker_id: str) -> str: ...
    def reclaim_disk(self, target: str, *, older_than_days: float, keep: int) -> str:
        """Free disk on the brain host: target "versions" (old LanceDB versions), "logs" (rotate worker logs) or
        "decisions" (archive old decision records to segment files). Never the only copy of anything."""
        ...

    def undo_dedup(self, run: str) -> str:
        """Undo every merge of the live dedup run that merged plan `run` (the rollback of a harmful dedup)."""
        ...

    def drop_index(self, table: str) -> str:
        """Drop the vector index on `table` (the rollback of an index build that made search worse)."""
        ...


class ChatRouter(Protocol):
    """What a model planner needs from a model router (llm.router.TierRouter is one): one chat call,
    routed by purpose to a model tier, answering with a reply or a typed failure (it never raises for those).
    `deadline` (a time.monotonic() value) bounds the call: no request outlives it, none starts after it."""

    def complete(
        self,
        messages: Sequence[Message],
        *,
        purpose: Purpose = "routine",
        tools: Sequence[dict[str, Any]] | None = None,
        deadline: float | None = None,
        temperature: float | None = None,
        tool_choice: str | None = None,
    ) -> LLMResult: ...
