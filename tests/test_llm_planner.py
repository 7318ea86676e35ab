"""The tool-calling planner against real litellm over HTTP, the real tools, policy engine and ledger."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.fake_llm_server import FakeLLMServer, HttpError, RecordedRequest, Text, three_tier_config, tool_calls
from support.observations import NOW, extract_backlog

from core.domain import HostMetrics, Observation, Proposal, WorkerInfo
from graphs.llm_planner import LLMPlanner, make_llm_planner
from graphs.planners import FallbackPlanner, PlanContext, PlanFailed, PlanResult
from graphs.rule_planner import RuleParams, RulePlanner
from llm.ledger import TokenLedger
from llm.router import TierRouter
from policies.engine import PolicyEngine
from policies.loader import load_policy
from tools.registry import action_tools, read_only_tools

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
pytestmark = pytest.mark.usefixtures("fake_llm_key")
POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


@pytest.fixture
def ledger(tmp_path: Path) -> TokenLedger:
    return TokenLedger(tmp_path / "state.db")


def planner(server: FakeLLMServer, ledger: TokenLedger, max_invalid: int = 2) -> LLMPlanner:
    router = TierRouter(three_tier_config(server.base_url), ledger)
    engine = PolicyEngine(load_policy(POLICY))
    made = make_llm_planner(router, [*read_only_tools(), *action_tools()], engine, 6, max_invalid)
    assert isinstance(made, LLMPlanner)
    return made


def observation(**changes: object) -> Observation:
    return extract_backlog(**changes)


def context(obs: Observation | None = None) -> PlanContext:
    return PlanContext(observation=obs or observation(), now=NOW)


def tool_messages(request: RecordedRequest) -> list[str]:
    return [m["content"] for m in request.body["messages"] if m["role"] == "tool"]


def usage_total(server: FakeLLMServer) -> tuple[int, int]:
    """Prompt and completion tokens the server reported in its successful replies."""
    return server.usage_in, server.usage_out


def scale(count: object, host: str = "worker1") -> tuple[str, dict[str, object]]:
    return ("scale_workers", {"kind": "extract", "host": host, "count": count, "rationale": "backlog 1500"})


def test_read_tool_then_allowed_proposal(server: FakeLLMServer, ledger: TokenLedger) -> None:
    server.script(
        tool_calls(("get_workers", {"kind": "extract"})),
        tool_calls(scale(3)),
        model="routine-model",
    )

    result = planner(server, ledger).plan(context())

    assert isinstance(result, PlanResult), result
    assert result.proposals == (
        Proposal(
            action="scale_workers", args={"kind": "extract", "host": "worker1", "count": 3}, rationale="backlog 1500"
        ),
    )
    assert result.rejected == ()
    first, second = server.requests
    assert {t["function"]["name"] for t in first.body["tools"]} >= {"get_workers", "scale_workers", "noop"}
    assert "ctx" not in json.dumps(first.body["tools"])  # injected args never reach the model
    assert [(r.body["temperature"], r.body["tool_choice"]) for r in server.requests] == [(0, "required")] * 2
    assert '"extract-worker1-1"' in tool_messages(second)[0]  # the read tool ran on the real observation
    info = result.planner
    assert (info.kind, info.tier, info.model) == ("model", "routine", "openai/routine-model")
    assert (info.tokens_in, info.tokens_out) == usage_total(server)
    assert info.cost == pytest.approx((info.tokens_in * 0.5 + info.tokens_out * 1.5) / 1e6, rel=1e-6)
    assert ledger.state().used_tokens == info.tokens_in + info.tokens_out


def test_invalid_calls_go_back_to_the_model_and_get_corrected(server: FakeLLMServer, ledger: TokenLedger) -> None:
    server.script(
        tool_calls(("scale_workers", '{"kind": "extract", "host": "worker1", "count": ')),  # truncated JSON
        tool_calls(scale(-2)),  # fails the tool's own argument schema
        tool_calls(scale(3)),
        model="routine-model",
    )

    result = planner(server, ledger, max_invalid=2).plan(context())

    assert isinstance(result, PlanResult), result
    assert [p.args["count"] for p in result.proposals] == [3]
    reasons = [r.reason for r in result.rejected]
    assert "not valid JSON" in reasons[0] and "count: Input should be greater than or equal to 0" in reasons[1]
    assert "rejected: arguments are not valid JSON" in tool_messages(server.requests[1])[0]
    assert "greater than or equal to 0" in tool_messages(server.requests[2])[-1]


def test_policy_deny_is_shown_to_the_model(server: FakeLLMServer, ledger: TokenLedger) -> None:
    server.script(tool_calls(scale(40)), tool_calls(scale(3)), model="routine-model")

    result = planner(server, ledger).plan(context())

    assert isinstance(result, PlanResult), result
    assert [p.args["count"] for p in result.proposals] == [3]
    (denied,) = result.rejected
    assert denied.tool == "scale_workers" and denied.reason.startswith("denied by policy (")
    assert denied.reason in tool_messages(server.requests[1])[0]


def test_too_many_invalid_calls_fall_back_to_rules(server: FakeLLMServer, ledger: TokenLedger) -> None:
    server.script(
        tool_calls(("delete_everything", {})),
        tool_calls(("scale_workers", "not json")),
        tool_calls(("scale_workers", {"kind": "extract", "host": "worker1", "count": 2, "shell": "rm -rf /"})),
        Text("unused"),
        model="routine-model",
    )
    model_planner = planner(server, ledger, max_invalid=2)

    failed = model_planner.plan(context())
    assert isinstance(failed, PlanFailed)
    assert "3 invalid tool calls" in failed.reason and failed.planner.tokens_in > 0
    assert [r.tool for r in failed.rejected] == ["delete_everything", "scale_workers", "scale_workers"]
    assert "unknown tool 'delete_everything'" in failed.rejected[0].reason
    assert "unexpected arguments ['shell']" in failed.rejected[2].reason
    assert server.remaining("routine-model") == 1  # abandoned right after the third invalid call

    server.clear("routine-model")
    server.script(*[tool_calls(("nope", {}))] * 3, model="routine-model")
    rules = RulePlanner(RuleParams(scaling={}))
    result = FallbackPlanner(model_planner, rules).plan(context())
    assert isinstance(result, PlanResult)
    assert result.planner.kind == "rules" and "invalid tool calls" in (result.planner.fallback_reason or "")
    assert len(result.rejected) == 3


def test_anomaly_uses_the_escalation_tier(server: FakeLLMServer, ledger: TokenLedger) -> None:
    down = HostMetrics(host="worker1", reachable=False, error="ssh timeout")
    obs = observation(hosts=(HostMetrics(host="brain"), down))
    server.script(tool_calls(("noop", {"reason": "worker1 is down; waiting"})), model="escalation-model")

    result = planner(server, ledger).plan(context(obs))

    assert isinstance(result, PlanResult) and result.planner.tier == "escalation"
    assert [r.model for r in server.requests] == ["escalation-model"]
    prompt = json.loads(server.requests[0].body["messages"][1]["content"])
    assert prompt["anomalies"] == ["host worker1 is down"]


def test_risky_routine_proposal_is_confirmed_by_the_escalation_tier(server: FakeLLMServer, ledger: TokenLedger) -> None:
    dedup = ("run_dedup", {"rationale": "dup estimate 3%", "expected_merges": 300})
    server.script(tool_calls(dedup), model="routine-model")
    server.script(tool_calls(dedup), model="escalation-model")

    result = planner(server, ledger).plan(context())

    assert isinstance(result, PlanResult), result
    assert [p.action for p in result.proposals] == ["run_dedup"]
    assert [r.model for r in server.requests] == ["routine-model", "escalation-model"]
    assert "risky action; confirm it" in tool_messages(server.requests[1])[0]
    assert result.planner.tier == "escalation"


def test_provider_down_or_budget_gone_is_a_typed_failure(server: FakeLLMServer, tmp_path: Path) -> None:
    broke = TokenLedger(tmp_path / "broke.db", window_tokens=100)
    failed = planner(server, broke).plan(context())
    assert isinstance(failed, PlanFailed) and failed.reason.startswith("llm budget_exhausted")
    assert server.requests == []

    for model in ("routine-model", "escalation-model", "strategic-model"):
        server.script(HttpError(503, "overloaded"), model=model)
    failed = planner(server, TokenLedger(tmp_path / "ok.db")).plan(context())
    assert isinstance(failed, PlanFailed) and failed.reason.startswith("llm provider_failed")


def test_strategic_tier_only_when_allowed(server: FakeLLMServer, ledger: TokenLedger) -> None:
    fatal = WorkerInfo(id="extract-worker1-1", kind="extract", host="worker1", state="fatal", restarts=5)
    obs = observation(hosts=(HostMetrics(host="brain", reachable=False),), workers=(fatal,))
    router = TierRouter(three_tier_config(server.base_url), ledger)
    engine = PolicyEngine(load_policy(POLICY))
    tools = [*read_only_tools(), *action_tools()]
    noop = tool_calls(("noop", {"reason": "brain down, worker fatal: wait for the host"}))
    server.script(noop, model="escalation-model")
    server.script(noop, model="strategic-model")

    cautious = make_llm_planner(router, tools, engine).plan(context(obs))
    allowed = make_llm_planner(router, tools, engine, allow_strategic=True).plan(context(obs))

    assert isinstance(cautious, PlanResult) and cautious.planner.tier == "escalation"
    assert isinstance(allowed, PlanResult) and allowed.planner.tier == "strategic"
