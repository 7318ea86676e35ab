"""The approval graph: approve (interrupt) -> act -> record, one checkpointed thread per approval.

The thread id is the approval id. `interrupt()` re-runs its node from the top on resume, so the approve
node has no side effect; the action runs in `act` under the approval id as its idempotency key, so a
resumed or replayed thread never runs it twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypedDict

from core.domain import Outcome, PlannerInfo, PolicyDecision, Proposal
from core.ports import Actor, DecisionEntry, Recorder


class ApprovalState(TypedDict, total=False):
    approval_id: str
    tick_id: str
    proposal: dict[str, Any]
    decision: dict[str, Any]
    planner: dict[str, Any]
    observation_digest: str
    answer: dict[str, Any]  # {"status": approved|denied|expired, "by": str|None, "at": float, "reason": str}
    outcome: dict[str, Any]
    decision_id: str


def build_approval_graph(
    *, actor: Actor, recorder: Recorder, checkpointer: Any, clock: Callable[[], float] = time.time
) -> Any:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    def approve(state: ApprovalState) -> dict[str, Any]:
        answer = interrupt({"approval_id": state["approval_id"], "proposal": state["proposal"]})
        return {"answer": dict(answer)}

    def act(state: ApprovalState) -> dict[str, Any]:
        answer = state["answer"]
        if answer.get("status") != "approved":
            expired = answer.get("status") == "expired"
            detail = answer.get("reason") or ("approval expired: default deny" if expired else "denied")
            outcome = Outcome(status="expired" if expired else "denied", detail=detail)
            return {"outcome": outcome.model_dump(mode="json")}
        proposal = Proposal.model_validate(state["proposal"])
        decision = PolicyDecision.model_validate(state["decision"])
        outcome = actor.execute(proposal, state["approval_id"], dry_run=decision.dry_run)
        return {"outcome": outcome.model_dump(mode="json")}

    def record(state: ApprovalState) -> dict[str, Any]:
        answer = state["answer"]
        entry = DecisionEntry(
            tick_id=state["tick_id"],
            key=f"{state['approval_id']}:answer",
            proposal=Proposal.model_validate(state["proposal"]),
            planner=PlannerInfo.model_validate(state["planner"]).model_copy(
                update={"tokens_in": 0, "tokens_out": 0, "cost": 0.0}
            ),
            observation_digest=state["observation_digest"],
            decision=PolicyDecision.model_validate(state["decision"]),
            outcome=Outcome.model_validate(state["outcome"]),
            approver=answer.get("by"),
            approved_at=answer.get("at"),
            extra={"approval_id": state["approval_id"]},
        )
        return {"decision_id": recorder.record(entry, clock())}

    graph = StateGraph(ApprovalState)
    graph.add_node("approve", approve)
    graph.add_node("act", act)
    graph.add_node("record", record)
    graph.add_edge(START, "approve")
    graph.add_edge("approve", "act")
    graph.add_edge("act", "record")
    graph.add_edge("record", END)
    return graph.compile(checkpointer=checkpointer)
