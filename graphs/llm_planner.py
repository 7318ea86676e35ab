"""The model planner: a bounded tool-calling loop whose only output is policy-checked proposals.

Read-only tools run and their results go back to the model; action tools only build Proposals, which the
policy engine checks inside the loop so the model can correct a denied or invalid call. Too many invalid
calls, a provider failure, an exhausted budget or the tick's deadline (its model share, checked before each
call and passed to the router, which cuts each request's timeout to it) end in PlanFailed, and the tick falls
back to the rules.

Every call asks for temperature 0 and tool_choice "required"; the schemas carry the tick's host, worker and
tier names as enums (graphs/tool_schemas.py); the last allowed step offers only the action tools, so the
model must propose or noop; a call repeating one already made this tick (same tool, same arguments) is
rejected instead of run again. Outside text is fenced with a token drawn per plan (core/fence.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from core.domain import Observation, PlannerInfo, PolicyDecision, Proposal, Verdict
from core.fence import new_fence_token
from core.llm_types import LLMFailure, LLMReply, RawToolCall, Role
from core.ports import ChatRouter
from graphs.llm_prompt import anomalies, first_messages, tool_result_text
from graphs.planners import Deadline, PlanContext, PlanFailed, Planner, PlanResult, RejectedCall
from graphs.tool_schemas import TickNames, declared_args, is_decision_tool, tick_schemas, trimmed_schema

TEMPERATURE = 0.0
TOOL_CHOICE = "required"
LAST_STEP_NOTE = "Last step: decide now with an action tool (noop if nothing is needed); no read-only tools."


class PolicyEngine(Protocol):
    def evaluate(self, proposal: Proposal, obs: Observation, now: float) -> PolicyDecision: ...


class Tool(Protocol):
    """The part of langchain_core's BaseTool the planner uses."""

    name: str

    def invoke(self, input: Any) -> Any: ...


@dataclass(frozen=True)
class CallOutcome:
    """What one tool call produced: the text the model sees, plus a proposal or a rejection."""

    reply: str
    proposal: Proposal | None = None
    rejection: RejectedCall | None = None
    risky: bool = False


@dataclass
class _Run:
    """Mutable per-plan bookkeeping; lives for one `plan()` call only."""

    role: Role  # the call's purpose (routine, analysis, strategic): the router picks the tier from it
    messages: list[dict[str, Any]]
    fence_token: str
    schemas: dict[str, dict[str, Any]]  # this tick's schemas by tool name
    offered: frozenset[str] = frozenset()  # tools offered on the current step
    calls_made: set[tuple[str, str]] = field(default_factory=set)  # (tool, canonical arguments) this tick
    proposals: list[Proposal] = field(default_factory=list)
    call_ids: dict[str, str] = field(default_factory=dict)  # Proposal.key() -> the tool call that made it
    rejected: list[RejectedCall] = field(default_factory=list)
    invalid: int = 0
    escalated_for_risk: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    tier: str | None = None
    model: str | None = None

    def count(self, reply: LLMReply) -> None:
        self.tokens_in += reply.tokens_in
        self.tokens_out += reply.tokens_out
        self.cost += reply.cost
        self.tier, self.model = reply.tier, reply.model

    def info(self, fallback_reason: str | None = None) -> PlannerInfo:
        return PlannerInfo(
            kind="model",
            model=self.model,
            tier=self.tier,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            cost=round(self.cost, 8),
            fallback_reason=fallback_reason,
        )


class LLMPlanner:
    def __init__(
        self,
        router: ChatRouter,
        tools: Sequence[Tool],
        engine: PolicyEngine,
        max_steps: int = 6,
        max_invalid: int = 2,
        allow_strategic: bool = False,
    ) -> None:
        if max_steps < 1 or max_invalid < 0:
            raise ValueError(f"max_steps must be >= 1 and max_invalid >= 0, got {max_steps}, {max_invalid}")
        self.router = router
        self.tools = {t.name: t for t in tools}
        self.engine = engine
        self.max_steps = max_steps
        self.max_invalid = max_invalid
        self.allow_strategic = allow_strategic
        self.schemas = [trimmed_schema(t) for t in tools]  # names are filled in per tick (tick_schemas)

    def tick_schemas(self, ctx: PlanContext) -> list[dict[str, Any]]:
        return tick_schemas(self.schemas, TickNames.of(ctx))

    def plan(self, ctx: PlanContext) -> PlanResult | PlanFailed:
        token = new_fence_token()
        schemas = self.tick_schemas(ctx)
        run = _Run(
            role=self.initial_role(ctx),
            messages=first_messages(ctx.observation, ctx.recent_decisions, token),
            fence_token=token,
            schemas={s["function"]["name"]: s for s in schemas},
        )
        deadline = ctx.deadline
        stop_at = None if deadline is None else deadline.model_at
        for step in range(self.max_steps):
            if deadline is not None and _past(stop_at):  # checked before every model call
                return _out_of_time(deadline, run)
            offered = self._offer(run, last=step == self.max_steps - 1, first=step == 0)
            reply = self.router.complete(
                run.messages,
                purpose=run.role,
                tools=offered,
                deadline=stop_at,
                temperature=TEMPERATURE,
                tool_choice=TOOL_CHOICE,
            )
            if isinstance(reply, LLMFailure):
                if deadline is not None and _past(stop_at):  # the tiers ran out of time, not out of health
                    return _out_of_time(deadline, run)
                return PlanFailed(f"llm {reply.kind}: {reply.detail}", run.info(reply.kind), tuple(run.rejected))
            run.count(reply)
            run.messages.append(reply.assistant_message())
            done = self._step(run, reply, ctx)
            if run.invalid > self.max_invalid:
                reason = f"{run.invalid} invalid tool calls (max {self.max_invalid})"
                return PlanFailed(reason, run.info("invalid_calls"), tuple(run.rejected))
            if done:
                return PlanResult(tuple(run.proposals), run.info(), tuple(run.rejected), dict(run.call_ids))
        if run.proposals:
            return PlanResult(tuple(run.proposals), run.info(), tuple(run.rejected), dict(run.call_ids))
        reason = f"no proposal within {self.max_steps} steps"
        return PlanFailed(reason, run.info("max_steps"), tuple(run.rejected))

    def _offer(self, run: _Run, *, last: bool, first: bool) -> list[dict[str, Any]]:
        """Every tool, or on the last step only the action tools (and a note saying so)."""
        offered = [s for name, s in run.schemas.items() if not last or is_decision_tool(name)]
        run.offered = frozenset(s["function"]["name"] for s in offered)
        if last and not first:
            run.messages.append({"role": "user", "content": LAST_STEP_NOTE})
        return offered

    def initial_role(self, ctx: PlanContext) -> Role:
        flags = anomalies(ctx.observation)
        if self.allow_strategic and len(flags) >= 2:
            return "strategic"
        return "analysis" if flags else "routine"

    # ------------------------------------------------------------- one model step

    def _step(self, run: _Run, reply: LLMReply, ctx: PlanContext) -> bool:
        """Handle one reply; True when the plan is complete."""
        if not reply.tool_calls:
            if run.proposals:
                return True
            run.invalid += 1
            text = (reply.text or "")[:200]
            run.rejected.append(RejectedCall("", text, "no tool call: propose via an action tool (noop if idle)"))
            run.messages.append({"role": "user", "content": "Decide by calling an action tool (noop if idle)."})
            return False
        step_ok, proposed = True, False
        for call in reply.tool_calls:
            outcome = self._guarded_call(call, ctx, run)
            run.messages.append({"role": "tool", "tool_call_id": call.id, "content": outcome.reply})
            if outcome.rejection is not None:
                run.invalid += 1
                run.rejected.append(outcome.rejection)
                step_ok = False
            elif outcome.proposal is not None:
                step_ok &= self._accept(run, outcome, call)
                proposed = True
        return step_ok and proposed

    def _guarded_call(self, call: RawToolCall, ctx: PlanContext, run: _Run) -> CallOutcome:
        """The call, unless it was not offered on this step or repeats one already made this tick."""
        if call.name in run.schemas and call.name not in run.offered:
            return _reject(call, f"{call.name} is not offered on the last step: decide with an action tool")
        key = (call.name, _canonical(call.arguments))
        if key in run.calls_made:
            return _reject(call, f"repeated call: {call.name} with these arguments was already made this tick")
        run.calls_made.add(key)
        return self.handle_call(call, ctx, run.role, run.fence_token, run.schemas.get(call.name))

    def _accept(self, run: _Run, outcome: CallOutcome, call: RawToolCall) -> bool:
        """Keep the proposal unless a routine call made a risky one: then an analysis call (stronger tier) confirms."""
        assert outcome.proposal is not None
        if outcome.risky and run.role == "routine" and not run.escalated_for_risk:
            run.escalated_for_risk = True
            run.role = "analysis"
            run.calls_made.discard((call.name, _canonical(call.arguments)))  # confirming means calling it again
            run.messages[-1]["content"] = (
                f"held: {outcome.reply} This is a risky action; confirm it by calling it again, "
                "or propose something safer."
            )
            return False
        if all(p.key() != outcome.proposal.key() for p in run.proposals):
            run.proposals.append(outcome.proposal)
            run.call_ids[outcome.proposal.key()] = call.id
        return True

    # ------------------------------------------------------------- one tool call

    def handle_call(
        self,
        call: RawToolCall,
        ctx: PlanContext,
        role: Role,
        fence_token: str | None = None,
        schema: dict[str, Any] | None = None,
    ) -> CallOutcome:
        tool = self.tools.get(call.name)
        if tool is None:
            return _reject(call, f"unknown tool {call.name!r}; available: {', '.join(sorted(self.tools))}")
        args = _parse_arguments(call.arguments)
        if isinstance(args, str):
            return _reject(call, args)
        takes = declared_args(schema or trimmed_schema(tool))  # what the model was offered, no observed args
        unexpected = sorted(set(args) - set(takes))
        if unexpected:
            return _reject(call, f"unexpected arguments {unexpected}; {call.name} takes {takes}")
        if _wants_ctx(tool):
            args["ctx"] = _tool_context(ctx, fence_token or new_fence_token())
        try:
            result = tool.invoke(args)
        except ValidationError as exc:
            return _reject(call, "invalid arguments: " + _validation_summary(exc))
        if not isinstance(result, Proposal):
            return CallOutcome(tool_result_text(result))
        return self._judge(call, result, ctx)

    def _judge(self, call: RawToolCall, proposal: Proposal, ctx: PlanContext) -> CallOutcome:
        decision = self.engine.evaluate(proposal, ctx.observation, ctx.now)
        rules = ", ".join(decision.rule_ids) or "-"
        why = "; ".join(decision.reasons) or "no reason given"
        if decision.verdict == Verdict.DENY:
            return _reject(call, f"denied by policy ({rules}): {why}")
        risky = decision.verdict == Verdict.NEEDS_APPROVAL or decision.risk == "high"
        note = "needs human approval" if decision.verdict == Verdict.NEEDS_APPROVAL else "allowed"
        return CallOutcome(f"proposed {proposal.action}: {note} ({rules}).", proposal=proposal, risky=risky)


def make_llm_planner(
    router: ChatRouter,
    tools: Sequence[Tool],
    engine: PolicyEngine,
    max_steps: int = 6,
    max_invalid: int = 2,
    allow_strategic: bool = False,
) -> Planner:
    return LLMPlanner(router, tools, engine, max_steps, max_invalid, allow_strategic)


# ----------------------------------------------------------------- helpers


def _past(at: float | None) -> bool:
    return at is not None and time.monotonic() >= at


def _out_of_time(deadline: Deadline, run: _Run) -> PlanFailed:
    reason = deadline.stopped("model planner")  # the record carries it whether the rules or a noop follow
    return PlanFailed(reason, run.info(reason), tuple(run.rejected))


def _reject(call: RawToolCall, reason: str) -> CallOutcome:
    return CallOutcome(f"rejected: {reason}", rejection=RejectedCall(call.name, call.arguments, reason))


def _parse_arguments(raw: str) -> dict[str, Any] | str:
    try:
        args = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        return f"arguments are not valid JSON ({exc.msg} at char {exc.pos})"
    if not isinstance(args, dict):
        return f"arguments must be a JSON object, got {type(args).__name__}"
    return args


def _validation_summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in exc.errors())


def _wants_ctx(tool: Tool) -> bool:
    get_schema = getattr(tool, "get_input_schema", None)
    return get_schema is not None and "ctx" in getattr(get_schema(), "model_fields", {})


def _canonical(raw: str) -> str:
    """The arguments as one string regardless of key order or spacing; unparseable ones verbatim."""
    try:
        return json.dumps(json.loads(raw or "{}"), sort_keys=True, separators=(",", ":"))
    except json.JSONDecodeError:
        return raw


def _tool_context(ctx: PlanContext, fence_token: str) -> Any:
    from tools.context import ToolContext

    recent = tuple(ctx.recent_decisions)
    return ToolContext(
        observation=ctx.observation,
        recent_decisions=lambda n: recent[-n:],
        policy_summary=dict(ctx.policy_summary),
        fence_token=fence_token,
    )
