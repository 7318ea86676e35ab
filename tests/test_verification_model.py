"""Expectations the planning model states itself (`expect` on a mutating action tool, "metric<=target@seconds"):
used when sane (source "model"), else the derived one records why; judged by the verifier on a later tick, with
the LLM planner over real litellm and HTTP to the local scripted provider."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.agent_rig import NO_CPU_CEILING, copy_brain, kill_workers, make_settings, write_policy
from support.fake_llm_server import FakeLLMServer, three_tier_config, tool_calls
from support.observations import extract_backlog

from agent.service.agent import Agent
from agent.state.decision_links import linked
from core.actions import with_expectation
from core.domain import Proposal
from core.expectations import MAX_HORIZON_S
from tools.registry import action_tools

SCALE = {"kind": "extract", "host": "worker1", "count": 3}


def _stated(text: str) -> Proposal:
    return with_expectation(extract_backlog(), Proposal(action="scale_workers", args=SCALE, stated=text), "derived")


def test_a_sane_stated_expectation_is_the_models_own_with_the_actions_harm_and_rollback() -> None:
    made = _stated("brain.pending.extract<=50@900s").expectation
    assert made is not None and made.source == "model" and made.horizon_s == 900
    (check,) = made.checks
    assert (check.metric, check.op, check.target) == ("brain.pending.extract", "<=", 50.0)
    assert check.baseline == extract_backlog().brain.pending["extract"] and made.subject == "scale:extract"
    assert _stated("brain.pending.extract<=50@999999").expectation.horizon_s == MAX_HORIZON_S  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("brain.no_such_figure<=1@60", "not a figure of the observation"),
        ("the backlog will fall", "is not METRIC<=TARGET@SECONDS"),
        ("brain.pending.extract==5@60", "is not METRIC<=TARGET@SECONDS"),
        ("brain.pending.extract<=1..2@60", "must be numbers"),
    ],
)
def test_an_unusable_stated_expectation_falls_back_to_the_derived_one_saying_why(text: str, why: str) -> None:
    made = _stated(text).expectation
    assert made is not None and made.source == "derived" and made.stated_refused is not None
    assert why in made.stated_refused, made.stated_refused


def test_every_mutating_tool_takes_expect_and_it_is_no_action_argument() -> None:
    from core.actions import MUTATING_ACTIONS, action

    tools = {t.name: t for t in action_tools()}
    for name in sorted(MUTATING_ACTIONS):
        params = tools[name].get_input_schema().model_fields
        assert "expect" in params and "expect" not in action(name).arg_names, name
    assert "expect" not in tools["noop"].get_input_schema().model_fields
    made = tools["scale_workers"].invoke({**SCALE, "rationale": "r", "expect": "brain.pending.extract<=5@60"})
    assert made.args == SCALE and made.stated == "brain.pending.extract<=5@60"


@pytest.mark.slow  # two whole ticks on a seeded brain with real extract workers
def test_the_models_stated_expectation_is_recorded_and_judged_on_a_later_tick(
    tmp_path: Path, small_brain: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLM_KEY", "test")
    with FakeLLMServer() as server:
        policy = write_policy(tmp_path / "policy.yaml", **NO_CPU_CEILING)
        brain = copy_brain(small_brain, tmp_path)
        settings = make_settings(tmp_path, brain, policy, llm=three_tier_config(server.base_url))
        agent = Agent(settings)
        try:
            backlog = agent.observe().brain.pending["extract"]
            stated = f"brain.pending.extract<={backlog}@120s"  # no more waiting than now, within two minutes
            args = {"kind": "extract", "host": "local", "count": 1, "rationale": f"{backlog} waiting", "expect": stated}
            server.script(tool_calls(("scale_workers", args)), tool_calls(("noop", {"reason": "done"})))
            first = agent.tick()
            assert first.planner.kind == "model", first.planner
            scale = next(r for r in agent.decisions.by_tick(first.tick_id) if r.action == "scale_workers")
            assert scale.outcome.status == "done", scale.outcome
            expected = scale.extra["expectation"]
            assert expected["source"] == "model" and expected["checks"][0]["target"] == backlog
            assert expected["horizon_s"] == 120 and "stated by the model" in expected["summary"]

            server.script(tool_calls(("noop", {"reason": "scaled last tick"})))
            second = agent.tick()

            verdicts = [v for v in second.verifications if v["action_id"] == scale.id]
            assert [v["verdict"] for v in verdicts] == ["verified"], second.verifications
            (verdict,) = [r for r in linked(agent.decisions, scale.id) if r.action == "verify"]
            assert verdict.outcome.data["source"] == "model"
        finally:
            kill_workers(settings.run_dir)
