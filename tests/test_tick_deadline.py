"""The tick deadline: a hanging or slow provider costs at most one timeout per tier, the model planner stops in
time for the rules, and past the deadline no mutating action starts. Real litellm over real HTTP to the
stand-in (tests/support/fake_llm_server.py); elapsed times are measured with time.monotonic, never slept."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from support.agent_rig import NO_CPU_CEILING, copy_brain, kill_workers, make_settings, write_policy
from support.fake_llm_server import FakeLLMServer, Hang, Slow, Text, tool_calls

from core.domain import BrainStats, HostMetrics, Observation, Outcome, PlannerInfo, PolicyDecision, Proposal, Verdict
from core.ports import ApprovalTicket, DecisionEntry
from core.settings import LLMConfig, ScheduleConfig, TierConfig
from graphs.llm_planner import make_llm_planner
from graphs.planners import Deadline, FallbackPlanner, PlanContext, Planner, PlanResult
from graphs.rule_planner import RuleParams, RulePlanner
from graphs.tick import build_tick_graph
from llm.ledger import TokenLedger
from llm.router import LLMReply, TierRouter
from policies.engine import PolicyEngine
from policies.loader import load_policy
from tools.registry import action_tools, read_only_tools

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
pytestmark = pytest.mark.usefixtures("fake_llm_key")
POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
NOW = 1_800_000_000.0
TIER_TIMEOUT_S = 1.0
SLACK_S = 0.8  # scheduling and HTTP overhead on a loaded test machine


def three_providers(base_url: str, timeout_s: float = TIER_TIMEOUT_S) -> LLMConfig:
    """routine < escalation < strategic, one per provider path litellm takes (OpenAI SDK, Anthropic, zai)."""
    return LLMConfig(
        tiers=[
            TierConfig(
                name=name,
                model=f"{provider}/{name}-model",
                api_base=base_url,
                api_key_env="FAKE_LLM_KEY",
                max_tokens=256,
                input_cost_per_mtok=1.0,
                output_cost_per_mtok=2.0,
                timeout_s=timeout_s,
            )
            for name, provider in (("routine", "openai"), ("escalation", "anthropic"), ("strategic", "zai"))
        ],
        # a routine call may climb through every tier here (none is kept for strategic calls alone), so one
        # planner call reaches all three provider paths
        strategic_tier="escalation",
        fallback_cost_ceiling=1.0,
    )


def observation() -> Observation:
    return Observation(
        time=NOW,
        hosts=(HostMetrics(host="worker1", cpu_count=8, cpu_percent=20),),
        brain=BrainStats(records=10_000, pending={"extract": 1_500}),
        desired={"extract@worker1": 1},
    )


def model_then_rules(server: FakeLLMServer, tmp_path: Path, timeout_s: float = TIER_TIMEOUT_S) -> FallbackPlanner:
    router = TierRouter(three_providers(server.base_url, timeout_s), TokenLedger(tmp_path / "state.db"))
    engine = PolicyEngine(load_policy(POLICY))
    model = make_llm_planner(router, [*read_only_tools(), *action_tools()], engine, max_steps=6)
    return FallbackPlanner(primary=model, fallback=RulePlanner(RuleParams(scaling={})))


def timed_plan(planner: Planner, deadline: Deadline | None) -> tuple[Any, float]:
    started = time.monotonic()
    result = planner.plan(PlanContext(observation(), NOW, deadline=deadline))
    return result, time.monotonic() - started


@pytest.fixture(autouse=True)
def litellm_loaded(server: FakeLLMServer, tmp_path: Path, fake_llm_key: None) -> None:
    """One quick call first, so litellm's first-use imports are not counted in a measured plan."""
    server.script(Text("warm"))
    router = TierRouter(three_providers(server.base_url), TokenLedger(tmp_path / "warm.db"))
    assert isinstance(router.complete([{"role": "user", "content": "hi"}]), LLMReply)
    server.clear()
    server.clear_requests()


# ----------------------------------------------------------------- the planner


@pytest.mark.slow
def test_three_hanging_tiers_cost_one_timeout_each_then_the_rules_decide(server: FakeLLMServer, tmp_path: Path) -> None:
    server.script(*[Hang()] * 12)  # enough for any retries: each one would be another request and timeout

    result, elapsed = timed_plan(model_then_rules(server, tmp_path), Deadline.after(30.0))

    assert isinstance(result, PlanResult) and result.planner.kind == "rules"
    assert "every tier failed" in (result.planner.fallback_reason or "")
    assert sorted(r.model for r in server.requests) == ["escalation-model", "routine-model", "strategic-model"]
    assert elapsed < 3 * TIER_TIMEOUT_S + SLACK_S  # zai's SDK retries made it 5 timeouts (about 5 s)


@pytest.mark.slow
def test_hanging_tiers_stop_at_the_deadline_and_the_record_says_why(server: FakeLLMServer, tmp_path: Path) -> None:
    server.script(*[Hang()] * 12)

    result, elapsed = timed_plan(model_then_rules(server, tmp_path), Deadline.after(2.5))

    assert isinstance(result, PlanResult) and result.planner.kind == "rules"
    reason = result.planner.fallback_reason or ""
    assert reason.startswith("tick deadline 2.5s: model planner stopped after "), reason
    assert elapsed < 2.5  # the model's share (80%) ends at 2.0 s: the rules and the effects fit in the rest
    assert len(server.requests) <= 3


@pytest.mark.slow
def test_a_slow_model_is_stopped_between_steps_and_not_blamed(server: FakeLLMServer, tmp_path: Path) -> None:
    """Each step answers within the tier's timeout, but six of them do not fit the deadline."""
    server.script(*[Slow(0.6, tool_calls(("get_processing_rates", {})))] * 10, model="routine-model")
    planner = model_then_rules(server, tmp_path, timeout_s=5.0)

    result, elapsed = timed_plan(planner, Deadline.after(2.5))

    assert isinstance(result, PlanResult) and result.planner.kind == "rules"
    assert (result.planner.fallback_reason or "").startswith("tick deadline 2.5s: model planner stopped after 2.")
    assert result.planner.tokens_in > 0  # the steps that answered are still charged
    assert elapsed < 2.5  # without the deadline: 6 steps x 0.6 s, then "no proposal within 6 steps"
    sent = [r.model for r in server.requests]
    assert sent in (["routine-model"] * 3, ["routine-model"] * 4), sent  # the last one cut short; no other tier
    router = planner.primary.router  # type: ignore[attr-defined]
    assert router.cooling_down() == {}  # stopped by the deadline, not the tier's own timeout: no cooldown


def test_a_deadline_already_passed_makes_no_model_call(server: FakeLLMServer, tmp_path: Path) -> None:
    server.script(tool_calls(("noop", {"reason": "unused"})))
    late = Deadline(time.monotonic() - 1.0, 5.0)

    result, _elapsed = timed_plan(model_then_rules(server, tmp_path), late)

    assert isinstance(result, PlanResult) and result.planner.kind == "rules"
    assert (result.planner.fallback_reason or "").startswith("tick deadline 5s: model planner stopped after 6.")
    assert server.requests == []


# ----------------------------------------------------------------- act


class Stubs:
    """Observer, planner, guard, actor, desk and recorder of one graph; the actor counts what it runs."""

    def __init__(self) -> None:
        self.executed: list[str] = []
        self.recorded: list[DecisionEntry] = []

    def observe(self, now: float) -> Observation:
        return observation()

    def plan(self, ctx: PlanContext) -> PlanResult:
        scale = Proposal(action="scale_workers", args={"kind": "extract", "host": "worker1", "count": 2})
        return PlanResult((scale, Proposal(action="noop", rationale="and nothing else")), PlannerInfo())

    def guard(self, proposal: Proposal, obs: Observation, now: float) -> PolicyDecision:
        return PolicyDecision(verdict=Verdict.ALLOW, rule_ids=("test",))

    def execute(self, proposal: Proposal, key: str, *, dry_run: bool = False, recovering: bool = False) -> Outcome:
        self.executed.append(proposal.action)
        return Outcome(status="done")

    def open(self, request: object, now: float) -> ApprovalTicket:
        raise AssertionError("nothing here needs approval")

    def record(self, entry: DecisionEntry, now: float) -> str:
        self.recorded.append(entry)
        return f"d{len(self.recorded)}"

    def graph(self, planner: Planner | None = None) -> Any:
        return build_tick_graph(
            observer=self.observe,
            planner=planner or self,
            guard=self.guard,
            actor=self,  # type: ignore[arg-type]
            desk=self,  # type: ignore[arg-type]
            recorder=self,
        )


@pytest.mark.parametrize(("left_s", "ran"), [(-1.0, []), (60.0, ["scale_workers"])], ids=["passed", "in-time"])
def test_past_the_deadline_no_mutating_action_starts(left_s: float, ran: list[str]) -> None:
    stubs = Stubs()
    state = {"tick_id": "t1", "now": NOW, "dry_run": False, "deadline": time.monotonic() + left_s, "deadline_s": 60.0}

    final = stubs.graph().invoke(state)

    assert stubs.executed == ran
    scale, noop = (Outcome.model_validate(o) for o in final["outcomes"])
    assert noop.status == "noop"
    if not ran:
        assert scale.status == "skipped" and scale.detail.startswith("skipped: tick deadline passed (60s; 61."), scale
        assert stubs.recorded[0].outcome == scale  # the record says why it did not run


def test_a_model_planner_without_rules_behind_it_ends_in_a_recorded_noop(server: FakeLLMServer, tmp_path: Path) -> None:
    stubs = Stubs()
    model = model_then_rules(server, tmp_path).primary
    state = {"tick_id": "t2", "now": NOW, "dry_run": False, "deadline": time.monotonic() - 1.0, "deadline_s": 60.0}

    final = stubs.graph(model).invoke(state)

    assert server.requests == [] and stubs.executed == []
    (entry,) = stubs.recorded
    assert entry.proposal.action == "noop" and entry.outcome.status == "noop"
    assert entry.proposal.rationale.startswith("no plan: tick deadline 60s: model planner stopped after 61.")
    assert (entry.planner.fallback_reason or "").startswith("tick deadline 60s: model planner stopped after 61.")
    assert final["planner"]["kind"] == "model"


# ----------------------------------------------------------------- config


def test_the_deadline_is_a_strict_schedule_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import Settings

    assert ScheduleConfig().tick_deadline_s == 60.0
    for bad in (0, -5):
        with pytest.raises(ValidationError):
            ScheduleConfig(tick_deadline_s=bad)
    config = tmp_path / "brainops.toml"
    config.write_text("[schedule]\ntick_deadline_s = 45\n")
    monkeypatch.setenv("BRAINOPS_CONFIG", str(config))
    assert Settings(home=tmp_path).schedule.tick_deadline_s == 45.0


# ----------------------------------------------------------------- a whole tick


@pytest.mark.slow
def test_a_whole_tick_with_every_tier_hanging_ends_by_its_deadline(
    server: FakeLLMServer, tmp_path: Path, small_brain: str
) -> None:
    from agent.service.agent import Agent

    policy = write_policy(tmp_path / "policy.yaml", **NO_CPU_CEILING)
    settings = make_settings(
        tmp_path,
        copy_brain(small_brain, tmp_path),
        policy,
        llm=three_providers(server.base_url),
        schedule=ScheduleConfig(tick_deadline_s=2.5),
    )
    agent = Agent(settings)
    server.script(*[Hang()] * 12)
    try:
        started = time.monotonic()
        report = agent.tick()
        elapsed = time.monotonic() - started
    finally:
        kill_workers(settings.run_dir)

    assert report.planner.kind == "rules"
    reason = report.planner.fallback_reason or ""
    assert reason.startswith("tick deadline 2.5s: model planner stopped after "), reason
    assert report.proposals  # the rules still decided
    records = agent.decisions.by_tick(report.tick_id)
    assert records and all(r.planner.fallback_reason == reason for r in records)
    assert len(server.requests) <= 3  # at most one request per tier
    assert elapsed < 2.5 + 1.5  # the deadline, plus the effects started in time and the record
