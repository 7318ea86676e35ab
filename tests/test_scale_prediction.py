"""A scaling proposal's prediction reaches the people asked and the record: the approval store keeps it, the
Slack prompt, `brainops approvals`, `brainops status` and the `brainops run` console show its summary, and the
decision log keeps its figures (drain_s, ...) as plain JSON fields."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.agent_rig import NO_CPU_CEILING, copy_brain, kill_workers, make_settings, write_policy, write_toml
from typer.testing import CliRunner

from agent.state.decisions import DecisionLog
from core.domain import Outcome, PlannerInfo, PolicyDecision, Proposal, ScalePrediction, Verdict
from core.ports import DecisionEntry

if TYPE_CHECKING:
    from agent.service.agent import Agent

PREDICTION = ScalePrediction(
    kind="extract",
    before=0,
    after=3,
    backlog=6200,
    arrival_per_min=50.0,
    per_worker_per_min=60.0,
    basis="measured",
    drain_s=1320.0,
    wait_objective_s=300.0,
    compute_per_hour_delta=0.41,
)
SUMMARY = PREDICTION.summary()  # "0 -> 3 extract: backlog 6,200 drains in ~22 min, +$0.41/h compute"
SCALE = Proposal(
    action="scale_workers",
    args={"kind": "extract", "host": "local", "count": 3},
    rationale="burst of records",
    prediction=PREDICTION,
)


def test_the_decision_record_keeps_the_prediction_as_fields(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "state.db", key=b"k" * 32)
    allow = PolicyDecision(verdict=Verdict.ALLOW, rule_ids=("scale.ok",))
    for key, extra in (("t1:0", None), ("t1:1", {"approval_id": "apr-1"})):
        entry = DecisionEntry("t1", key, SCALE, PlannerInfo(), "digest", allow, Outcome(status="done"), extra=extra)
        log.record(entry, now=1_000.0)
    noop = DecisionEntry("t1", "t1:2", Proposal(action="noop"), PlannerInfo(), "digest", allow, Outcome(status="noop"))
    log.record(noop, now=1_000.0)

    first, second, third = DecisionLog(log.path).all()  # read back from SQLite
    assert first.prediction == PREDICTION and second.prediction == PREDICTION and third.prediction is None
    assert second.extra["approval_id"] == "apr-1"  # the entry's own extra fields stay beside it
    fields = json.loads(first.to_json())["extra"]["prediction"]  # what `brainops decisions --json` prints
    assert fields == PREDICTION.model_dump(mode="json")
    assert fields["drain_s"] == 1320.0 and fields["after"] == 3 and fields["basis"] == "measured"
    assert "prediction" not in third.extra
    assert log.verify().ok  # the prediction is hashed and signed with the rest of the record


@pytest.fixture
def agent(tmp_path: Path, small_brain: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Agent]:
    from agent.service.agent import Agent

    ask = {"scale_workers": {"approval_when": [{"id": "any_scale", "when": {"count": {"gt": 0}}}]}}
    policy = write_policy(tmp_path / "policy.yaml", **NO_CPU_CEILING, approvers=["alice"], actions=ask)
    settings = make_settings(tmp_path, copy_brain(small_brain, tmp_path), policy)
    monkeypatch.setenv("BRAINOPS_CONFIG", str(write_toml(settings, tmp_path / "brainops.toml")))
    made = Agent(settings)
    yield made
    kill_workers(settings.run_dir)


def test_a_scale_approval_shows_its_prediction_and_the_record_keeps_it(
    agent: Agent, capsys: pytest.CaptureFixture[str]
) -> None:
    from slack_sdk.models.blocks import Block

    from agent.cli import run as cli_run
    from agent.cli import state as cli_state
    from agent.service.agent import RequestedPlanner
    from agent.slack.blocks import approval_blocks, approval_text, expired_blocks
    from agent.state.approvals import ApprovalStore

    report = agent.tick(planner=RequestedPlanner(SCALE))
    assert [o.status for o in report.outcomes] == ["pending"], report.outcomes
    approval_id = report.outcomes[0].data["approval_id"]

    cli_run.print_report(report)  # what `brainops run` prints for the tick
    assert f"expected: {SUMMARY}" in capsys.readouterr().out

    approval = ApprovalStore(agent.settings.state_db).get(approval_id)  # a fresh store: it was persisted
    assert approval is not None and approval.prediction == PREDICTION

    text, blocks = approval_text(approval), approval_blocks(approval)
    assert SUMMARY in text
    escaped = SUMMARY.replace(">", "&gt;")  # mrkdwn escaping of "->"
    assert escaped in json.dumps(blocks)
    assert escaped in json.dumps(expired_blocks(approval))  # the closed prompt still says what was asked
    for block in blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]  # Slack would accept the prompt

    app = __import__("typer").Typer()
    cli_state.register(app)
    cli_run.register(app)
    listed = CliRunner().invoke(app, ["approvals"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    assert SUMMARY in listed.output
    from agent.slack.backend import AgentSlackBackend

    assert f"expected: {SUMMARY}" in AgentSlackBackend(agent).approvals_text()  # `/brainops approvals`
    status = CliRunner().invoke(app, ["status", "--json"])
    assert status.exit_code == 0, status.output
    (pending,) = json.loads(status.output)["pending_approvals"]
    assert pending["expected"] == SUMMARY and pending["prediction"]["drain_s"] == 1320.0

    denied = agent.answer(approval_id, False, "alice", "not now")
    assert denied.ok, denied.message
    records = [r for r in agent.decisions.all() if r.action == "scale_workers"]
    assert [r.outcome.status for r in records] == ["pending", "denied"]
    assert all(r.prediction == PREDICTION for r in records)  # also through the approval's checkpointed thread
    logged = CliRunner().invoke(app, ["decisions", "--json"])
    assert logged.exit_code == 0, logged.output
    lines = [json.loads(line) for line in logged.output.splitlines()]
    assert [r["extra"]["prediction"]["drain_s"] for r in lines if r["action"] == "scale_workers"] == [1320.0] * 2
