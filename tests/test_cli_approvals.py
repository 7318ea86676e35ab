"""`brainops approvals | approve | deny` explain themselves with stdout piped (CliRunner is not a tty; one test runs
the real entry point in a subprocess): the full id, action and arguments, the rationale with its numbers, the
policy rule and its reason, the predicted effect, the observed facts and the time left, as ISO-8601 times with
their age and never epoch seconds; `approve` takes a unique start of an id; `--json` is one JSON document."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agent.cli import state as cli_state
from agent.state.approvals import Approval, ApprovalStore
from agent.state.decisions import DecisionLog
from core.domain import Outcome, ScalePrediction

REPO = Path(__file__).resolve().parent.parent
# Longer than any terminal: a table or a wrapping console would cut or fold it.
LONG_ID = "apr-t20261201T193012-" + "0123456789abcdef" * 6 + "-0"
OTHER_ID = "apr-t20261201T193012-second-0"
RATIONALE = "extract backlog 6,200 at 180/min with 4 workers misses the 30 min wait objective by 4 min: 4 -> 7"
RULE, REASON = "risk.scale_workers.large_scale", "scaling one kind above 4 workers on a host"
PREDICTION = ScalePrediction(
    kind="extract",
    before=4,
    after=7,
    backlog=6200,
    arrival_per_min=40.0,
    per_worker_per_min=45.0,
    basis="measured",
    drain_s=1320.0,
    compute_per_hour_delta=0.41,
)
SUMMARY = PREDICTION.summary()
ISO = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    policy = tmp_path / "policy.yaml"
    text = (REPO / "policies" / "default.yaml").read_text()
    policy.write_text(re.sub(r"(?m)^approvers:.*$", "approvers: [alice]", text))
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("BRAINOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BRAINOPS_POLICY_FILE", str(policy))
    monkeypatch.setenv("BRAINOPS_CONFIG", str(tmp_path / "empty.toml"))
    monkeypatch.delenv("COLUMNS", raising=False)
    return tmp_path / "home"


def _app() -> typer.Typer:
    app = typer.Typer()
    cli_state.register(app)
    return app


def _scale(store: ApprovalStore, approval_id: str = LONG_ID, ttl_s: float = 7230, **kw: object) -> Approval:
    return store.create(
        approval_id,
        "t20261201T193012",
        "scale_workers",
        {"kind": "extract", "host": "worker-pc", "count": 7},
        RATIONALE,
        "medium",
        (RULE,),
        "planner:rules",
        ttl_s,
        prediction=PREDICTION,
        reasons=(REASON,),
        **kw,  # type: ignore[arg-type]
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def _no_epoch(text: str, *stamps: float) -> None:
    for ts in stamps:
        assert str(int(ts)) not in text, f"epoch {int(ts)} in output:\n{text}"


def test_the_listing_shows_everything_an_approver_needs_with_stdout_piped(home: Path) -> None:
    approval = _scale(ApprovalStore(home / "state.db"))
    result = CliRunner().invoke(_app(), ["approvals"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    lines = out.splitlines()
    assert lines[0].startswith(LONG_ID + "  scale_workers  pending, risk medium")  # whole, on one line
    assert '"count": 7' in out and '"host": "worker-pc"' in out and '"kind": "extract"' in out
    assert f"rationale:  {RATIONALE}" in out  # the numbers, uncut
    assert f"policy:     {RULE}: {REASON}" in out
    assert f"expected:   {SUMMARY}" in out
    (expires,) = [line for line in lines if line.strip().startswith("expires:")]
    assert _iso(approval.expires_at) in expires and "(in 2 h)" in expires and "denied" in expires
    assert re.search(rf"requested:  by planner:rules in tick t20261201T193012, {ISO} \(just now\)", out)
    assert f"brainops approve {LONG_ID} --by NAME" in out and f"brainops deny {LONG_ID} --by NAME" in out
    assert all(len(line) < 10_000 for line in lines) and "…" not in out
    _no_epoch(out, approval.created_at, approval.expires_at)


def test_the_real_command_piped_through_a_subprocess(home: Path) -> None:
    approval = _scale(ApprovalStore(home / "state.db"))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "approvals"],
        cwd=REPO,
        env=env,
        capture_output=True,  # stdout is a pipe, not a terminal
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for needle in (LONG_ID, RATIONALE, f"{RULE}: {REASON}", SUMMARY, _iso(approval.expires_at), "(in 2 h)"):
        assert needle in out, (needle, out)
    assert out.splitlines()[0].startswith(LONG_ID)
    _no_epoch(out, approval.created_at, approval.expires_at)


def test_approvals_json_is_one_document(home: Path) -> None:
    approval = _scale(ApprovalStore(home / "state.db"))
    result = CliRunner().invoke(_app(), ["approvals", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # nothing else on stdout
    (row,) = document["approvals"]
    assert row["id"] == LONG_ID and row["action"] == "scale_workers" and row["args"]["count"] == 7
    assert row["rationale"] == RATIONALE and row["rules"] == [{"id": RULE, "reason": REASON}]
    assert row["expected"] == SUMMARY and row["prediction"]["drain_s"] == 1320.0
    assert row["open"] is True and 7200 < row["expires_in_s"] <= 7230
    assert row["expires_at"] == _iso(approval.expires_at) and re.fullmatch(ISO, document["now"])
    _no_epoch(result.stdout, approval.created_at, approval.expires_at)
    empty = CliRunner().invoke(_app(), ["approvals", "--json", "--all"])
    assert json.loads(empty.stdout)["approvals"][0]["id"] == LONG_ID


def test_decided_approvals_show_who_and_when_as_iso_times(home: Path) -> None:
    store = ApprovalStore(home / "state.db")
    _scale(store)
    runner = CliRunner()
    approved = runner.invoke(_app(), ["approve", LONG_ID, "--by", "alice"])
    assert approved.exit_code == 0, approved.output
    decided = store.get(LONG_ID)
    assert decided is not None and decided.decided_at is not None
    twice = runner.invoke(_app(), ["deny", LONG_ID, "--by", "alice", "--reason", "no"])
    assert twice.exit_code == 1
    assert f"already approved by alice at {_iso(decided.decided_at)} (just now)" in twice.stderr
    listed = runner.invoke(_app(), ["approvals", "--all"])
    assert listed.exit_code == 0, listed.output
    assert f"decided:    approved by alice at {_iso(decided.decided_at)} (just now)" in listed.stdout
    assert "brainops approve" not in listed.stdout  # nothing left to answer
    _no_epoch(twice.output + listed.output, decided.decided_at, decided.created_at)
    assert runner.invoke(_app(), ["approvals"]).stdout.strip() == "no pending approvals"


def test_expired_approval_says_so_with_its_time(home: Path) -> None:
    store = ApprovalStore(home / "state.db")
    approval = _scale(store, ttl_s=60, now=time.time() - 600)
    store.expire_due()
    listed = CliRunner().invoke(_app(), ["approvals", "--all"])
    assert f"expired:    {_iso(approval.expires_at)} (9 min ago): no answer in time, so denied" in listed.stdout
    late = CliRunner().invoke(_app(), ["approve", LONG_ID[:30], "--by", "alice"])
    assert late.exit_code == 1 and f"expired at {_iso(approval.expires_at)} (9 min ago)" in late.stderr


def test_approve_takes_a_unique_start_of_the_id(home: Path) -> None:
    store = ApprovalStore(home / "state.db")
    _scale(store)
    store.create(OTHER_ID, "t2", "run_dedup", {"dry_run": False}, "24 merges", "high", ("r",), "rules", 600)
    runner = CliRunner()
    ambiguous = runner.invoke(_app(), ["approve", "apr-t2026", "--by", "alice"])
    assert ambiguous.exit_code == 2 and ambiguous.stdout == ""
    (sentence,) = ambiguous.stderr.strip().splitlines()
    assert "'apr-t2026' is the start of 2 open approvals" in sentence and LONG_ID in sentence and OTHER_ID in sentence
    unknown = runner.invoke(_app(), ["deny", "apr-nope", "--by", "alice", "--reason", "x"])
    assert unknown.exit_code == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert "no approval id is or starts with 'apr-nope'" in unknown.stderr
    assert store.get(LONG_ID).status == "pending"  # type: ignore[union-attr]

    approved = runner.invoke(_app(), ["approve", LONG_ID[:24], "--by", "alice"])
    assert approved.exit_code == 0, approved.output
    assert approved.stdout.strip() == f"{LONG_ID} approved by alice"
    # the one still open is named by the shared start; the decided one cannot be answered anyway
    denied = runner.invoke(_app(), ["deny", "apr-t2026", "--by", "alice", "--reason", "not now"])
    assert denied.exit_code == 0 and OTHER_ID in denied.stdout


def test_reasons_come_from_the_decision_log_for_records_that_kept_none(home: Path) -> None:
    """An approval made without reasons (an older version, or a caller that passed none) shows the reasons
    its tick recorded in the decision log."""
    store = ApprovalStore(home / "state.db")
    store.create(
        OTHER_ID, "t7", "run_dedup", {"dry_run": False}, "24 merges", "high", ("risk.run_dedup.live",), "r", 600
    )
    listed = CliRunner().invoke(_app(), ["approvals"])
    assert "policy:     risk.run_dedup.live\n" in listed.stdout  # no reason known yet: the rule id alone
    DecisionLog(home / "state.db").append(
        tick_id="t7",
        action="run_dedup",
        args={"dry_run": False},
        verdict="needs_approval",
        rule_ids=("risk.run_dedup.live",),
        reasons=("a live dedup merging more than 20 entities",),
        outcome=Outcome(status="pending", data={"approval_id": OTHER_ID}),
    )
    listed = CliRunner().invoke(_app(), ["approvals"])
    assert "policy:     risk.run_dedup.live: a live dedup merging more than 20 entities" in listed.stdout
