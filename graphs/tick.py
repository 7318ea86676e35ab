"""The tick graph: observe -> plan -> guard -> act -> record, one checkpointed thread per tick.

Risky proposals are not executed here: `act` opens a durable approval for each, and the approval graph
(graphs/approval.py, one thread per approval) waits for the human, then acts and records. So a pending
approval never holds back the tick's allowed actions.

A tick may carry a deadline (`deadline`, a time.monotonic() value, and `deadline_s`, its length): the planner
gets it in its PlanContext, and past it `act` starts no mutating action ("skipped: tick deadline passed").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Required, TypedDict

from core import telemetry
from core.actions import MUTATING_ACTIONS
from core.domain import Observation, Outcome, PlannerInfo, PolicyDecision, Proposal, Verdict
from core.faults import point
from core.ports import Actor, ApprovalDesk, ApprovalRequest, DecisionEntry, Guard, Observer, Recorder
from graphs.planners import Deadline, PlanContext, Planner, PlanResult, RejectedCall


class TickState(TypedDict, total=False):
    tick_id: Required[str]
    now: Required[float]
    dry_run: Required[bool]
    recovering: bool  # resumed after a crash: unclaimed actions are not run late on a stale observation
    deadline: float  # time.monotonic() by which the tick must be done (absent: no bound)
    deadline_s: float  # the deadline's configured length, for the record
    observation: dict[str, Any]
    proposals: list[dict[str, Any]]
    planner: dict[str, Any]
    rejected: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]
    decision_ids: list[str]
    call_ids: dict[str, str]  # Proposal.key() -> the tool call that proposed it (model or MCP client)


def build_tick_graph(
    *,
    observer: Observer,
    planner: Planner,
    guard: Guard,
    actor: Actor,
    project: Callable[[Proposal, Observation], Observation] | None = None,
    desk: ApprovalDesk,
    recorder: Recorder,
    recent_decisions: Callable[[int], list[dict[str, Any]]] = lambda _n: [],
    policy_summary: Callable[[], dict[str, Any]] = dict,
    checkpointer: Any = None,
    clock: Callable[[], float] = time.time,
) -> Any:
    """Compile the tick graph around the given parts (real ones in the agent, simulated ones in evals)."""
    from langgraph.graph import END, START, StateGraph

    tool_spans: dict[str, telemetry.SpanLike] = {}  # execute_tool spans from act until record has their decision

    def observe(state: TickState) -> dict[str, Any]:
        obs = observer(state["now"])
        return {"observation": obs.model_dump(mode="json")}

    def plan(state: TickState) -> dict[str, Any]:
        obs = Observation.model_validate(state["observation"])
        ctx = PlanContext(obs, state["now"], recent_decisions(20), policy_summary(), _deadline(state))
        with telemetry.span("plan") as span:
            result = planner.plan(ctx)
            span.set(_plan_attributes(result.planner, len(result.rejected)))
        rejected = [r.__dict__ for r in result.rejected]
        if not isinstance(result, PlanResult):
            noop = Proposal(action="noop", rationale=f"no plan: {result.reason}")
            return {"proposals": [noop.model_dump()], "planner": result.planner.model_dump(), "rejected": rejected}
        return {
            "proposals": [p.model_dump() for p in result.proposals],
            "planner": result.planner.model_dump(),
            "rejected": rejected,
            "call_ids": dict(result.call_ids),
        }

    def guard_node(state: TickState) -> dict[str, Any]:
        """Proposals are judged in order against the fleet as the tick's earlier ones leave it (`project`):
        together they may not over-commit a host that each alone would fit."""
        obs = Observation.model_validate(state["observation"])
        projected, earlier = obs, 0
        verdicts = []
        for raw in state["proposals"]:
            proposal = Proposal.model_validate(raw)
            decision = guard(proposal, projected, state["now"])
            if (
                decision.verdict is Verdict.DENY
                and earlier
                and guard(proposal, obs, state["now"]).verdict is not Verdict.DENY
            ):
                why = f"with this tick's {earlier} earlier scaling proposal(s) counted"
                decision = decision.model_copy(
                    update={"rule_ids": ("tick.joint", *decision.rule_ids), "reasons": (*decision.reasons, why)}
                )
            elif decision.verdict is not Verdict.DENY and project is not None:
                after = project(proposal, projected)
                earlier += after is not projected
                projected = after
            if state.get("dry_run") and decision.verdict is not Verdict.DENY:
                decision = decision.model_copy(update={"dry_run": True})
            verdicts.append(decision.model_dump(mode="json"))
        return {"verdicts": verdicts}

    def act(state: TickState) -> dict[str, Any]:
        outcomes = []
        obs = Observation.model_validate(state["observation"])
        planner_info = PlannerInfo.model_validate(state["planner"])
        for index, (raw, raw_verdict) in enumerate(zip(state["proposals"], state["verdicts"], strict=True)):
            proposal, decision = Proposal.model_validate(raw), PolicyDecision.model_validate(raw_verdict)
            key = f"{state['tick_id']}:{index}"
            span = tool_spans[key] = telemetry.tool_span(proposal.action, state.get("call_ids", {}).get(proposal.key()))
            with telemetry.current(span):
                outcome = _act_one(proposal, decision, key, state, obs, planner_info, actor, desk, clock)
            span.set(_tool_attributes(decision, outcome))
            if outcome.status == "failed":
                span.fail("action_failed")
            outcomes.append(outcome.model_dump(mode="json"))
        return {"outcomes": outcomes}

    def record(state: TickState) -> dict[str, Any]:
        point("before_record")
        planner_info = PlannerInfo.model_validate(state["planner"])
        digest = Observation.model_validate(state["observation"]).digest()
        ids = []
        for index, rejected in enumerate(state.get("rejected", [])):
            entry = _rejected_entry(state["tick_id"], index, RejectedCall(**rejected), planner_info, digest)
            ids.append(recorder.record(entry, clock()))
        rows = zip(state["proposals"], state["verdicts"], state["outcomes"], strict=True)
        for index, (raw, raw_verdict, raw_outcome) in enumerate(rows):
            entry = DecisionEntry(
                tick_id=state["tick_id"],
                key=f"{state['tick_id']}:{index}",
                proposal=Proposal.model_validate(raw),
                # Token use is charged once per tick, on its first decision.
                planner=planner_info if index == 0 else _without_usage(planner_info),
                observation_digest=digest,
                decision=PolicyDecision.model_validate(raw_verdict),
                outcome=Outcome.model_validate(raw_outcome),
            )
            ids.append(recorder.record(entry, clock()))
            span = tool_spans.pop(entry.key, telemetry.OFF)
            span.set({"brainops.decision.id": ids[-1]})
            span.end()
        return {"decision_ids": ids}

    graph = StateGraph(TickState)
    graph.add_node("observe", observe)
    graph.add_node("plan", plan)
    graph.add_node("guard", guard_node)
    graph.add_node("act", act)
    graph.add_node("record", record)
    graph.add_edge(START, "observe")
    graph.add_edge("observe", "plan")
    graph.add_edge("plan", "guard")
    graph.add_edge("guard", "act")
    graph.add_edge("act", "record")
    graph.add_edge("record", END)
    return graph.compile(checkpointer=checkpointer)


def _act_one(
    proposal: Proposal,
    decision: PolicyDecision,
    key: str,
    state: TickState,
    obs: Observation,
    planner_info: PlannerInfo,
    actor: Actor,
    desk: ApprovalDesk,
    clock: Callable[[], float],
) -> Outcome:
    if decision.verdict is Verdict.DENY:
        return Outcome(status="denied", detail="; ".join(decision.reasons))
    if decision.verdict is Verdict.NEEDS_APPROVAL:
        if decision.dry_run:
            return Outcome(status="dry_run", detail="would ask for approval")
        request = ApprovalRequest(
            approval_id=f"apr-{key.replace(':', '-')}",
            tick_id=state["tick_id"],
            proposal=proposal,
            decision=decision,
            planner=planner_info,
            observation_digest=obs.digest(),
            context=approval_context(proposal, obs),
        )
        ticket = desk.open(request, clock())
        data = {"approval_id": ticket.approval_id, "expires_at": ticket.expires_at}
        if ticket.existing:
            return Outcome(status="skipped", detail=f"already waiting for approval {ticket.approval_id}", data=data)
        return Outcome(status="pending", detail=f"waiting for approval {ticket.approval_id}", data=data)
    if proposal.action == "noop":
        return Outcome(status="noop", detail=proposal.rationale)
    deadline = _deadline(state)
    if deadline is not None and deadline.passed() and proposal.action in MUTATING_ACTIONS:
        late = f"({deadline.budget_s:g}s; {deadline.elapsed():.1f}s in)"
        return Outcome(status="skipped", detail=f"skipped: tick deadline passed {late}")
    return actor.execute(proposal, key, dry_run=decision.dry_run, recovering=bool(state.get("recovering")))


def approval_context(proposal: Proposal, obs: Observation) -> dict[str, Any]:
    """Observed facts an approver needs beside the arguments: for a live run_dedup, the plan it names (count
    and sample pairs with their scores), or that it names no plan the brain holds."""
    named = proposal.args.get("plan")
    if proposal.action != "run_dedup" or not isinstance(named, str):
        return {}
    plan = obs.brain.dedup_plan
    if plan is None or plan.hash != named:
        return {"dedup_plan_unknown": named}
    return {"dedup_plan": plan.model_dump(mode="json")}


def _deadline(state: TickState) -> Deadline | None:
    """The tick's deadline; none for a tick resumed after a crash (it finishes what it had claimed)."""
    if "deadline" not in state or state.get("recovering"):
        return None
    return Deadline(state["deadline"], state.get("deadline_s", 0.0))


def _rejected_entry(tick_id: str, index: int, call: RejectedCall, planner: PlannerInfo, digest: str) -> DecisionEntry:
    return DecisionEntry(
        tick_id=tick_id,
        key=f"{tick_id}:rejected:{index}",
        proposal=Proposal(action=call.tool or "invalid_call", args={"raw": call.arguments[:500]}, rationale=""),
        planner=_without_usage(planner),
        observation_digest=digest,
        decision=PolicyDecision(verdict=Verdict.DENY, rule_ids=("planner.invalid_call",), reasons=(call.reason,)),
        outcome=Outcome(status="denied", detail=f"rejected model call: {call.reason}"),
    )


def _plan_attributes(info: PlannerInfo, rejected: int) -> dict[str, Any]:
    return {
        "brainops.planner": info.label,
        telemetry.REQUEST_MODEL: info.model,
        telemetry.INPUT_TOKENS: info.tokens_in,
        telemetry.OUTPUT_TOKENS: info.tokens_out,
        "brainops.planner.fallback_reason": info.fallback_reason,
        "brainops.planner.rejected_calls": rejected,
    }


def _tool_attributes(decision: PolicyDecision, outcome: Outcome) -> dict[str, Any]:
    return {
        "brainops.policy.verdict": decision.verdict.value,
        "brainops.policy.rule_ids": decision.rule_ids,
        "brainops.approval.id": outcome.data.get("approval_id"),
        "brainops.outcome.status": outcome.status,
    }


def _without_usage(info: PlannerInfo) -> PlannerInfo:
    return info.model_copy(update={"tokens_in": 0, "tokens_out": 0, "cost": 0.0})
