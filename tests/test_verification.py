"""The verdict on an expectation, learning from it and the anomaly after repeated misses, on a real SQLite
decision log (the whole loop with real workers: tests/test_verification_e2e.py)."""

from __future__ import annotations

from pathlib import Path

from support.observations import NOW, extract_backlog

from agent.service.verification import Verifier
from agent.state.corrections import CorrectionStore
from agent.state.decisions import DecisionLog
from core.actions import action, with_expectation
from core.domain import BrainStats, Outcome, Proposal, ScalePrediction
from core.expectations import judge
from graphs.verifying import merge
from policies.model import Verification

KEY = b"k" * 32


def _scale_up(backlog: int = 1_500) -> Proposal:
    prediction = ScalePrediction(
        kind="extract",
        before=1,
        after=3,
        backlog=backlog,
        arrival_per_min=10.0,
        per_worker_per_min=60.0,
        basis="measured",
        drain_s=60.0 * backlog / (3 * 60.0 - 10.0),
    )
    args = {"kind": "extract", "host": "worker1", "count": 3}
    return with_expectation(
        extract_backlog(), Proposal(action="scale_workers", args=args, prediction=prediction), "rules"
    )


def _at(backlog: int, when: float, **brain: object):
    return extract_backlog(time=when, brain=BrainStats(records=10_000, pending={"extract": backlog}, **brain))


def test_a_drain_is_verified_early_waits_while_on_its_way_and_is_missed_at_the_horizon_with_numbers() -> None:
    expectation = _scale_up().expectation
    assert expectation is not None and expectation.drain is not None
    target = expectation.checks[0].target
    assert 0 < target < 1_500 and expectation.horizon_s > 60

    early = judge(expectation, NOW, _at(int(target) - 1, NOW + 60), NOW + 60)
    assert early is not None and early.verdict == "verified" and "horizon" in early.detail
    assert judge(expectation, NOW, _at(1_400, NOW + 60), NOW + 60) is None  # too early to tell
    late = NOW + expectation.horizon_s + 1
    missed = judge(expectation, NOW, _at(1_400, late), late)
    assert missed is not None and missed.verdict == "missed"
    assert f"brain.pending.extract 1,400 (expected <= {target:,.0f}, was 1,500)" in missed.detail
    unread = judge(expectation, NOW, _at(0, late, error="brain unreachable"), late)
    assert unread is not None and unread.verdict == "inconclusive" and "brain unreachable" in unread.detail


def test_a_scale_down_must_hold_until_its_horizon_and_a_failure_is_harm_with_a_rollback() -> None:
    prediction = ScalePrediction(
        kind="extract", before=3, after=1, backlog=0, arrival_per_min=5.0, per_worker_per_min=60.0,
        basis="measured", drain_s=0.0, wait_objective_s=600.0,
    )  # fmt: skip
    obs = extract_backlog(desired={"extract@worker1": 3})
    down = Proposal(
        action="scale_workers", args={"kind": "extract", "host": "worker1", "count": 1}, prediction=prediction
    )
    expectation = action("scale_workers").expect(obs, down)  # type: ignore[misc]
    assert expectation is not None and expectation.hold and expectation.checks[0].target == 600.0
    assert judge(expectation, NOW, _at(10, NOW + 60), NOW + 60) is None  # fine so far, not yet verified
    harmed = judge(expectation, NOW, _at(900, NOW + 60), NOW + 60)
    assert harmed is not None and harmed.verdict == "missed" and harmed.harmed
    assert expectation.rollback is not None and expectation.rollback.args["count"] == 3
    done = judge(expectation, NOW, _at(10, NOW + 601), NOW + 601)
    assert done is not None and done.verdict == "verified"


def _log_scale(log: DecisionLog, proposal: Proposal, when: float, tick: str) -> str:
    extra = {"expectation": proposal.expectation.model_dump(mode="json")} if proposal.expectation else {}
    record = log.append(
        tick_id=tick, action=proposal.action, args=proposal.args, outcome=Outcome(status="done"), extra=extra, now=when
    )
    return record.id


def test_misses_correct_the_throughput_estimate_and_repeated_ones_are_an_anomaly(tmp_path: Path) -> None:
    log, store = DecisionLog(tmp_path / "state.db", key=KEY), CorrectionStore(tmp_path / "state.db")
    verifier = Verifier(log, store, Verification(miss_anomaly_after=2))
    proposal = _scale_up()
    assert proposal.expectation is not None
    horizon = proposal.expectation.horizon_s
    ids = [_log_scale(log, proposal, NOW + i * 10_000, f"t{i}") for i in range(2)]
    assert verifier.check(_at(1_200, NOW + horizon + 1), NOW + horizon + 1, "v0")[0].judgement.verdict == "missed"
    assert verifier.anomalies() == []  # one miss is no pattern
    first = store.factors()[("extract", "worker1")]
    assert 0.2 <= first < 1.0  # drained slower than predicted: the estimate comes down
    late = NOW + 10_000 + horizon + 1
    again = verifier.check(_at(1_300, late), late, "v1")
    assert [v.action_id for v in again] == [ids[1]]
    assert verifier.check(_at(1_300, late), late, "v2") == []  # each action is judged once
    assert store.factors()[("extract", "worker1")] < first
    assert verifier.anomalies() == ["scale_workers missed its expectation 2 times in a row"]


def test_the_planner_sizes_and_predicts_with_the_learnt_correction() -> None:
    """Two workers measured at 200/min each; verified outcomes on host w said half that: the corrected planner
    predicts 100/min per worker and asks for more workers for the same backlog and objective."""
    from test_capacity import _obs

    from graphs.capacity import CostModel
    from graphs.planners import PlanContext
    from graphs.rule_planner import RuleParams, RulePlanner, ScalingParams

    p = ScalingParams(stage="extract", max_workers=16, target_per_worker=200.0, max_wait_s=300.0)
    plain = RulePlanner(RuleParams(scaling={"extract": p}, cost=CostModel({"*": 0.5})))
    learnt = RulePlanner(plain.params, corrections=lambda: {("extract", "w"): 0.5})
    ups: dict[str, Proposal] = {}
    for name, planner in (("plain", plain), ("learnt", learnt)):
        for i in range(3):
            obs = _obs(NOW + i * 30, 1_500, [i * 100, i * 100])
            result = planner.plan(PlanContext(obs, obs.time))
        ups[name] = next(q for q in result.proposals if q.action == "scale_workers")
    before, after = ups["plain"].prediction, ups["learnt"].prediction
    assert before is not None and after is not None
    assert after.per_worker_per_min == before.per_worker_per_min / 2
    assert ups["learnt"].args["count"] > ups["plain"].args["count"]


def test_a_rollback_on_the_planners_own_key_marks_its_proposal_and_otherwise_comes_first() -> None:
    back = Proposal(action="scale_workers", args={"kind": "extract", "host": "w", "count": 3}, rollback_of="d1")
    own = Proposal(action="scale_workers", args={"kind": "extract", "host": "w", "count": 5}, rationale="burst")
    merged = merge([back], [own])
    assert len(merged) == 1 and merged[0].args["count"] == 5 and merged[0].rollback_of == "d1"
    noop = Proposal(action="noop", rationale="all stages within targets")
    assert merge([back], [noop]) == (back,)


def test_a_repeated_miss_escalates_the_planner_tier_and_shows_in_status_and_slack(tmp_path: Path) -> None:
    from slack_sdk.models.blocks import Block
    from support.agent_rig import cli, make_settings, write_policy, write_toml

    from agent.service.observer import save_last_observation
    from agent.slack.blocks import VERIFICATION_ALERT, alert_blocks
    from graphs.llm_prompt import anomalies

    missed = "scale_workers missed its expectation 3 times in a row"
    obs = extract_backlog(missed_expectations=(missed,))
    assert missed in anomalies(obs) and not anomalies(extract_backlog())  # the analysis tier plans, not routine

    settings = make_settings(tmp_path, str(tmp_path / "brain"), write_policy(tmp_path / "policy.yaml"))
    save_last_observation(settings, obs)
    shown = cli(write_toml(settings, tmp_path / "brainops.toml"), "status")
    assert shown.returncode == 0, shown.stderr
    assert f"anomaly: {missed}" in " ".join(shown.stdout.split())

    text, blocks = alert_blocks(VERIFICATION_ALERT + missed)
    assert text == f"Verification: {missed}" and "Crash loop" not in text
    for block in blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]


def test_verification_scenarios_judge_their_recorded_trajectories_and_roll_back(tmp_path: Path) -> None:
    import dataclasses

    import yaml

    from core.settings import PlannerConfig
    from evals.runner import SuiteSetup, rules_factory, run_suite
    from evals.scenario import load_scenarios

    scenarios = [s for s in load_scenarios() if s.id.startswith("verify-")]
    assert len(scenarios) >= 3 and any(s.control for s in scenarios)
    wrong = next(s for s in scenarios if s.id == "verify-scale-down-harm-rollback")
    wrong = dataclasses.replace(
        wrong, id="wrong", expect=dataclasses.replace(wrong.expect, verifications={"d-down-1": "verified"})
    )
    data = yaml.safe_load(Path("policies/default.yaml").read_text())
    setup = SuiteSetup(data, PlannerConfig().model_dump(), tmp_path / "state", rules_factory)
    run = run_suite([*scenarios, wrong], setup, progress=False)
    results = {r.scenario_id: r.runs[0] for r in run.results}
    assert all(results[s.id].score.passed for s in scenarios), {k: v.score.failures for k, v in results.items()}
    assert results["wrong"].score.failures == (
        "verification of d-down-1: missed (after 5 min: brain.pending.extract 1,400 (expected <= 600, was 150)), "
        "expected verified",
    )
