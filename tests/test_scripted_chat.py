"""The in-process scripted chat model (support.scripted_chat): a langchain chat model with bind_tools, and a
ChatRouter that drives the real LLMPlanner, real tools and real policy engine with no HTTP server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from support.observations import NOW, extract_backlog
from support.scripted_chat import ProviderDown, ScriptedChatModel, ai_text, ai_tool_calls

from core.domain import HostMetrics, Proposal
from graphs.llm_planner import LLMPlanner
from graphs.planners import FallbackPlanner, PlanContext, PlanFailed, PlanResult
from graphs.rule_planner import RuleParams, RulePlanner
from policies.engine import PolicyEngine
from policies.loader import load_policy
from tools.registry import action_tools, read_only_tools

POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


def context(**changes: object) -> PlanContext:
    return PlanContext(observation=extract_backlog(**changes), now=NOW)


def planner(model: ScriptedChatModel) -> LLMPlanner:
    return LLMPlanner(model, [*read_only_tools(), *action_tools()], PolicyEngine(load_policy(POLICY)))


def scale(count: object) -> tuple[str, dict[str, object]]:
    return ("scale_workers", {"kind": "extract", "host": "worker1", "count": count, "rationale": "backlog 1500"})


def test_bind_tools_passes_the_schemas_and_the_script_plays_in_order() -> None:
    model = ScriptedChatModel(script=[ai_tool_calls(("get_workers", {"kind": "extract"})), ai_text("all good")])

    first = model.bind_tools(read_only_tools()).invoke("how many extract workers?")
    second = model.invoke("and now?")

    assert isinstance(first, AIMessage)
    assert [(c["name"], c["args"]) for c in first.tool_calls] == [("get_workers", {"kind": "extract"})]
    assert first.usage_metadata and first.usage_metadata["input_tokens"] > 0
    assert second.content == "all good"
    assert "get_workers" in model.calls[0].tool_names and model.calls[1].tools == ()
    with pytest.raises(AssertionError, match="script exhausted at call 3"):
        model.invoke("one more")


def test_a_planning_step_runs_in_process_read_tool_then_allowed_proposal() -> None:
    model = ScriptedChatModel(
        script=[ai_tool_calls(("get_workers", {"kind": "extract"})), ai_tool_calls(scale(3))],
        input_cost_per_mtok=0.5,
        output_cost_per_mtok=1.5,
    )

    result = planner(model).plan(context())

    assert isinstance(result, PlanResult), result
    assert result.proposals == (
        Proposal(
            action="scale_workers", args={"kind": "extract", "host": "worker1", "count": 3}, rationale="backlog 1500"
        ),
    )
    first, second = model.calls
    assert {"get_workers", "scale_workers", "noop"} <= first.tool_names
    assert first.role == second.role == "routine"
    assert (first.temperature, first.tool_choice) == (second.temperature, second.tool_choice) == (0.0, "required")
    assert '"extract-worker1-1"' in second.tool_results()[0]  # the read tool ran on the real observation
    usage = [c.reply.usage_metadata for c in model.calls if c.reply and c.reply.usage_metadata]
    info = result.planner
    assert (info.kind, info.tier, info.model) == ("model", "routine", "scripted")
    assert info.tokens_in == sum(u["input_tokens"] for u in usage) > 0
    assert info.tokens_out == sum(u["output_tokens"] for u in usage) > 0
    assert info.cost == pytest.approx((info.tokens_in * 0.5 + info.tokens_out * 1.5) / 1e6, rel=1e-6)


def test_malformed_and_denied_calls_go_back_to_the_model() -> None:
    truncated = ("scale_workers", '{"kind": "extract", "host": "worker1", "count": ')
    model = ScriptedChatModel(script=[ai_tool_calls(truncated), ai_tool_calls(scale(40)), ai_tool_calls(scale(3))])

    result = planner(model).plan(context())

    assert isinstance(result, PlanResult), result
    assert [p.args["count"] for p in result.proposals] == [3]
    not_json, denied = result.rejected
    assert "not valid JSON" in not_json.reason and denied.reason.startswith("denied by policy (")
    assert model.calls[1].tool_results()[0].startswith("rejected: arguments are not valid JSON")
    assert denied.reason in model.calls[2].tool_results()[-1]
    assert model.remaining() == 0


def test_anomaly_asks_for_analysis() -> None:
    model = ScriptedChatModel(script=[ai_tool_calls(("noop", {"reason": "worker1 is down; waiting"}))])
    down = HostMetrics(host="worker1", reachable=False, error="ssh timeout")

    result = planner(model).plan(context(hosts=(HostMetrics(host="brain"), down)))

    assert isinstance(result, PlanResult) and result.planner.tier == "analysis"
    assert [c.role for c in model.calls] == ["analysis"]


def test_provider_down_is_a_typed_failure_and_the_rules_take_over() -> None:
    model = ScriptedChatModel(script=[ProviderDown("overloaded"), ProviderDown("still overloaded")])

    failed = planner(model).plan(context())
    assert isinstance(failed, PlanFailed) and failed.reason.startswith("llm provider_failed")

    result = FallbackPlanner(planner(model), RulePlanner(RuleParams(scaling={}))).plan(context())
    assert isinstance(result, PlanResult) and result.planner.kind == "rules"
    assert "provider_failed" in (result.planner.fallback_reason or "")


def test_tool_messages_keep_the_ids_the_model_sent() -> None:
    from support.scripted_chat import to_langchain

    history: list[dict[str, Any]] = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "noop", "arguments": "{oops"}},
                {"id": "b", "type": "function", "function": {"name": "noop", "arguments": '{"reason": "x"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "rejected"},
    ]
    _, _, turn, result = to_langchain(history)
    assert isinstance(turn, AIMessage) and isinstance(result, ToolMessage)
    assert [c["id"] for c in turn.tool_calls] == ["b"] and [c["id"] for c in turn.invalid_tool_calls] == ["a"]
    assert result.tool_call_id == "a"
