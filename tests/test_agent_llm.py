"""Whole ticks with the LLM planner: real litellm over HTTP to the scripted server, real graph, guard and log."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.agent_rig import NO_CPU_CEILING, copy_brain, kill_workers, make_settings, write_policy
from support.fake_llm_server import FakeLLMServer, HttpError, three_tier_config, tool_calls

from agent.service.agent import Agent

pytestmark = pytest.mark.slow  # whole ticks on a seeded brain; the planner's own tests are test_llm_planner.py


@pytest.fixture
def llm_agent(tmp_path: Path, small_brain: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_LLM_KEY", "sk-test-secret-value-123456")
    with FakeLLMServer() as server:
        policy = write_policy(tmp_path / "policy.yaml", **NO_CPU_CEILING)
        settings = make_settings(
            tmp_path, copy_brain(small_brain, tmp_path), policy, llm=three_tier_config(server.base_url)
        )
        agent = Agent(settings)
        yield agent, server
        kill_workers(settings.run_dir)


def test_model_reads_then_proposes_a_guarded_action_and_the_record_carries_tokens(llm_agent) -> None:
    agent, server = llm_agent
    server.script(
        tool_calls(("get_processing_rates", {})),
        tool_calls(("scale_workers", {"kind": "extract", "host": "local", "count": 2, "rationale": "backlog"})),
        tool_calls(("noop", {"reason": "done"})),
    )
    report = agent.tick()
    assert report.planner.kind == "model" and report.planner.tokens_in > 0
    actions = [p.action for p in report.proposals]
    assert "scale_workers" in actions
    scale = report.outcomes[actions.index("scale_workers")]
    assert scale.status == "done", scale
    records = agent.decisions.by_tick(report.tick_id)
    assert sum(r.planner.tokens_in for r in records) == report.planner.tokens_in  # charged once per tick
    assert records[0].planner.model == "openai/routine-model"
    dump = " ".join(r.to_json() for r in agent.decisions.all())
    assert "sk-test-secret-value-123456" not in dump


def test_invalid_calls_are_recorded_then_rules_decide(llm_agent) -> None:
    agent, server = llm_agent
    server.script(
        tool_calls(("scale_workers", '{"kind": "extract", "host": ')),  # broken JSON
        tool_calls(("scale_workers", {"kind": "extract", "host": "nowhere", "count": 2, "rationale": "x"})),
        tool_calls(("reboot_host", {"host": "local"})),  # unknown tool
    )
    report = agent.tick()
    assert report.planner.kind == "rules" and report.planner.fallback_reason
    assert len(report.rejected) == 3
    rejected = [r for r in agent.decisions.by_tick(report.tick_id) if "planner.invalid_call" in r.rule_ids]
    assert len(rejected) == 3
    assert any("nowhere" in " ".join(r.reasons) or "unknown host" in " ".join(r.reasons) for r in rejected)
    assert all(r.outcome.status == "denied" for r in rejected)


def test_provider_outage_falls_back_to_rules_without_hanging(llm_agent) -> None:
    agent, server = llm_agent
    server.script(*[HttpError(503) for _ in range(12)])
    report = agent.tick()
    assert report.planner.kind == "rules"
    assert "provider" in (report.planner.fallback_reason or "") or report.planner.fallback_reason
    assert report.proposals  # the rule planner still decided
