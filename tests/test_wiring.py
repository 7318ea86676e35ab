"""One way to wire a tick: `brainops tick`, the eval runner and the simulator build identically configured
planners through agent.service.build (they had drifted: evals dropped allow_strategic and read_only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.settings import HostConfig, LLMConfig, Settings, TierConfig

POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


def _settings(tmp: Path, llm: LLMConfig | None = None) -> Settings:
    return Settings(
        home=tmp / "home",
        brain_uri=str(tmp / "brain"),
        policy_file=POLICY,
        demo_seed=False,
        hosts=[HostConfig(name="local", role="brain")],
        llm=llm or LLMConfig(),
    )


def _tiers() -> LLMConfig:
    tiers = [
        TierConfig(name=n, model=f"openai/{n}-model", api_base="http://127.0.0.1:9", api_key_env="WIRING_KEY")
        for n in ("routine", "escalation", "strategic")
    ]
    return LLMConfig(tiers=tiers, max_steps=4, max_invalid_calls=1)


def _shape(planner: Any) -> dict[str, Any]:
    """Everything that configures a planner, as plain values."""
    from graphs.measured import MeasuredPlanner
    from graphs.planners import FallbackPlanner
    from graphs.rule_planner import RulePlanner

    if isinstance(planner, MeasuredPlanner):
        return {"measured": _shape(planner.inner), "meters": _shape(planner.rules)}
    if isinstance(planner, RulePlanner):
        return {"rules": planner.params}
    assert isinstance(planner, FallbackPlanner)
    model = planner.primary
    return {
        "fallback": _shape(planner.fallback),
        "type": type(model).__name__,
        "tools": sorted(model.tools),  # type: ignore[attr-defined]
        "max_steps": model.max_steps,  # type: ignore[attr-defined]
        "max_invalid": model.max_invalid,  # type: ignore[attr-defined]
        "allow_strategic": model.allow_strategic,  # type: ignore[attr-defined]
    }


def _scenario_planner(settings: Settings, agent: Any, tmp: Path, planner: str) -> Any:
    from evals.runner import llm_factory, rules_factory

    factory = rules_factory if planner == "rules" else llm_factory(settings, tmp / "eval")
    return factory(None, agent.policy, agent.engine, settings.planner)  # type: ignore[arg-type]


@pytest.mark.parametrize("planner", ["rules", "llm"])
def test_a_scenario_and_a_tick_get_identically_configured_planners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planner: str
) -> None:
    from agent.service.agent import Agent

    monkeypatch.setenv("WIRING_KEY", "k")
    settings = _settings(tmp_path, _tiers() if planner == "llm" else None)
    agent = Agent(settings)
    in_tick = _shape(agent.planner)
    in_scenario = _shape(_scenario_planner(settings, agent, tmp_path, planner))
    assert in_scenario == in_tick
    if planner == "llm":
        model = in_tick["measured"]
        assert model["allow_strategic"] is True and model["max_steps"] == 4 and model["max_invalid"] == 1


def test_the_simulator_runs_the_rule_planner_the_tick_builds(tmp_path: Path) -> None:
    from agent.service.agent import Agent
    from evals.simulator import rules_planner

    agent = Agent(_settings(tmp_path))
    assert _shape(rules_planner(agent.policy, agent.engine)) == _shape(agent.planner)


def test_every_tick_shows_the_model_the_same_policy_summary(tmp_path: Path) -> None:
    from agent.service.build import POLICY_SUMMARY_KEYS, policy_summary
    from policies.loader import load_policy

    summary = policy_summary(load_policy(POLICY))
    assert set(summary) == POLICY_SUMMARY_KEYS and "read_only" in summary
