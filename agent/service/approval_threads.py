"""Approval threads: one checkpointed approval graph per approval record, kept in step with the record.

The durable approval record (agent/approvals.py) is the truth about the answer; the graph thread is what
acts on it. Every path that can leave them out of step — a process dying between answer and resume, an
answer landing after the TTL, a CLI answer racing the tick that opened the approval — is closed by
`settle`, which each tick runs: any thread still waiting on a decided record is resumed with that decision.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.domain import Observation, Outcome, PlannerInfo, PolicyDecision, Verdict

if TYPE_CHECKING:
    from agent.state.approvals import Approval, ApprovalStore

EXPIRED_REASON = "approval expired: default deny"


@dataclass
class ApprovalThreads:
    graph: Any  # compiled graphs.approval graph with a checkpointer
    store: ApprovalStore
    lock: AbstractContextManager[Any]  # the home lock: one process at a time resumes a thread
    clock: Callable[[], float]
    notify: Callable[[str, dict[str, Any]], None]
    policy_blocks: Callable[[], str | None] = lambda: None  # reason approved actions may not run now (read-only)

    def start_from_tick(self, state: dict[str, Any]) -> None:
        """Start a waiting thread for each approval the tick opened."""
        rows = zip(state["proposals"], state["verdicts"], state["outcomes"], strict=True)
        digest = Observation.model_validate(state["observation"]).digest()
        for proposal, verdict, outcome in rows:
            if outcome["status"] == "pending":
                initial = {
                    "approval_id": outcome["data"]["approval_id"],
                    "tick_id": state["tick_id"],
                    "proposal": proposal,
                    "decision": verdict,
                    "planner": state["planner"],
                    "observation_digest": digest,
                }
                self._start(initial)

    def resume(self, approval: Approval) -> Outcome | None:
        """Resume the thread with the record's decision and return what it did; None when nothing was waiting
        (it never runs twice)."""
        from langgraph.types import Command

        from agent.state.approvals import verify_binding

        with self.lock:
            config = _config(approval.id)
            if not self.graph.get_state(config).values:
                self._start(_initial_from_record(approval))
            snapshot = self.graph.get_state(config)
            if not snapshot.next:
                return None
            proposal = snapshot.values.get("proposal", {})
            bound = verify_binding(approval, proposal.get("action", ""), proposal.get("args", {}))
            state = self.graph.invoke(Command(resume=self._answer(approval, bound)), config, durability="sync")
        self.notify("approval_closed", {"approval": approval})
        return Outcome.model_validate(state["outcome"])

    def expire_due(self) -> list[Approval]:
        """Overdue pending approvals become denials, recorded as expired."""
        expired = self.store.expire_due(self.clock())
        for approval in expired:
            self.resume(self.store.get(approval.id) or approval)
        return expired

    def settle(self, recent: int = 50) -> int:
        """Resume threads still waiting on an already decided (or late-expired) record."""
        resumed = 0
        for approval in self.store.recent(recent):
            if approval.status != "pending" and self.resume(approval) is not None:
                resumed += 1
        return resumed

    def _answer(self, approval: Approval, bound: bool) -> dict[str, Any]:
        if approval.status == "expired":
            status, why = "expired", EXPIRED_REASON
        elif not bound:
            status, why = "denied", "approval does not match the waiting action's arguments"
        elif approval.approved and (blocked := self.policy_blocks()):
            status, why = "denied", f"approved, but {blocked}"
        else:
            status, why = ("approved" if approval.approved else "denied"), approval.reason or ""
        at = approval.decided_at if approval.decided_at is not None else self.clock()
        return {"status": status, "by": approval.decided_by, "at": at, "reason": why}

    def _start(self, initial: dict[str, Any]) -> None:
        config = _config(initial["approval_id"])
        if not self.graph.get_state(config).values:
            self.graph.invoke(initial, config, durability="sync")


def _config(approval_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": approval_id}}


def _initial_from_record(approval: Approval) -> dict[str, Any]:
    """A thread rebuilt from the durable record alone (the opening tick died before starting it)."""
    decision = PolicyDecision(verdict=Verdict.NEEDS_APPROVAL, rule_ids=approval.rule_ids, risk=approval.risk)
    return {
        "approval_id": approval.id,
        "tick_id": approval.tick_id,
        "proposal": {
            "action": approval.action,
            "args": approval.args,
            "rationale": approval.rationale,
            "prediction": approval.prediction.model_dump(mode="json") if approval.prediction else None,
        },
        "decision": decision.model_dump(mode="json"),
        "planner": PlannerInfo().model_dump(mode="json"),
        "observation_digest": "",
    }
