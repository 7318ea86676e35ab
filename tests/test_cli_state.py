"""`decisions`, `decisions verify`, `approvals`, `approve`, `deny`, `budget` against a real state.db."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agent.cli import state as cli_state
from agent.state.approvals import Approval, ApprovalStore
from agent.state.decisions import DecisionLog
from core.domain import Outcome
from core.settings import Settings
from llm.ledger import Reservation, TokenLedger

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    policy = tmp_path / "policy.yaml"
    text = (REPO / "policies" / "default.yaml").read_text()
    policy.write_text(re.sub(r"(?m)^approvers:.*$", "approvers: [alice]", text))
    monkeypatch.setenv("BRAINOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BRAINOPS_POLICY_FILE", str(policy))
    (tmp_path / "empty.toml").write_text("")  # a config path must exist; this one adds nothing to the env
    monkeypatch.setenv("BRAINOPS_CONFIG", str(tmp_path / "empty.toml"))
    return tmp_path / "home"


def _app(resumed: list[str] | None = None) -> typer.Typer:
    app = typer.Typer()

    def on_answered(_settings: Settings, approval: Approval) -> None:
        if resumed is not None:
            resumed.append(f"{approval.id}:{approval.status}")

    cli_state.register(app, on_answered=on_answered)
    return app


def test_decisions_json_and_verify(home: Path) -> None:
    log = DecisionLog(home / "state.db")
    for i in range(3):
        log.append(tick_id=f"t{i}", action="noop", args={"reason": f"r{i}"}, outcome=Outcome(status="noop"))
    runner = CliRunner()
    listed = runner.invoke(_app(), ["decisions", "--last", "2", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [r["tick_id"] for r in rows] == ["t1", "t2"]
    table = runner.invoke(_app(), ["decisions"])
    assert table.exit_code == 0 and "noop" in table.output
    ok = runner.invoke(_app(), ["decisions", "verify"])
    assert ok.exit_code == 0 and "3 records" in ok.output

    conn = sqlite3.connect(home / "state.db")
    conn.execute("DROP TRIGGER decisions_no_update")
    conn.execute("UPDATE decisions SET action = 'scale_workers' WHERE seq = 2")
    conn.commit()
    conn.close()
    bad = runner.invoke(_app(), ["decisions", "verify"])
    assert bad.exit_code == 1 and "TAMPERED" in bad.output


def test_approve_deny_and_listing(home: Path) -> None:
    store = ApprovalStore(home / "state.db")
    for approval_id, dry in (("ap-1", False), ("ap-2", True)):  # one pending approval per action + arguments
        store.create(approval_id, "t1", "run_dedup", {"dry_run": dry}, "dups", "high", ("r",), "rules", 600)
    resumed: list[str] = []
    runner = CliRunner()
    listed = runner.invoke(_app(resumed), ["approvals"])
    assert listed.exit_code == 0 and "ap-1" in listed.output and "ap-2" in listed.output

    refused = runner.invoke(_app(resumed), ["approve", "ap-1", "--by", "mallory"])
    assert refused.exit_code == 1 and "not_approver" in refused.output and resumed == []
    approved = runner.invoke(_app(resumed), ["approve", "ap-1", "--by", "alice"])
    assert approved.exit_code == 0 and resumed == ["ap-1:approved"]
    twice = runner.invoke(_app(resumed), ["deny", "ap-1", "--by", "alice", "--reason", "changed my mind"])
    assert twice.exit_code == 1 and "already_decided" in twice.output
    denied = runner.invoke(_app(resumed), ["deny", "ap-2", "--by", "alice", "--reason", "not now"])
    assert denied.exit_code == 0 and resumed == ["ap-1:approved", "ap-2:denied"]
    missing_reason = runner.invoke(_app(resumed), ["deny", "ap-2", "--by", "alice"])
    assert missing_reason.exit_code == 2
    assert store.pending() == []


def test_budget_table(home: Path) -> None:
    ledger = TokenLedger(home / "state.db")
    r = ledger.reserve("routine", 5000)
    assert isinstance(r, Reservation)
    ledger.settle(r, 3000, 1000, 0.02)
    ledger.set_routing({"routine": 60, "escalation": 35, "strategic": 5})
    result = CliRunner().invoke(_app(), ["budget"])
    assert result.exit_code == 0, result.output
    assert "4,000" in result.output and "routing routine" in result.output and "60%" in result.output


def test_budget_json_is_one_document(home: Path) -> None:
    ledger = TokenLedger(home / "state.db")
    r = ledger.reserve("routine", 5000)
    assert isinstance(r, Reservation)
    ledger.settle(r, 3000, 1000, 0.02)
    result = CliRunner().invoke(_app(), ["budget", "--json"])
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)  # nothing else on stdout
    assert state["used_tokens"] == 4000 and state["remaining_tokens"] == state["window_tokens"] - 4000
    assert state["per_tier"] == {"routine": 4000} and state["cost_today"] == 0.02
    assert state["burning_too_fast"] is (state["pace"] > 1)


def test_decisions_verify_json_keeps_the_exit_codes(home: Path) -> None:
    log = DecisionLog(home / "state.db")
    for i in range(3):
        log.append(tick_id=f"t{i}", action="noop", args={"i": i}, outcome=Outcome(status="noop"))
    runner = CliRunner()
    ok = runner.invoke(_app(), ["decisions", "verify", "--json"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert report["ok"] is True and report["checked"] == 3 and report["head_seq"] == 3 and report["head_keyed"]
    assert report["head"] == runner.invoke(_app(), ["decisions", "head"]).stdout.strip()
    assert report["summary"].startswith("ok: 3 records")
    matched = json.loads(
        runner.invoke(_app(), ["decisions", "verify", "--json", "--expect-head", report["head"]]).stdout
    )
    assert matched["ok"] and matched["expected_head"] == report["head"]

    conn = sqlite3.connect(home / "state.db")
    conn.execute("DROP TRIGGER decisions_no_update")
    conn.execute("UPDATE decisions SET action = 'scale_workers' WHERE seq = 2")
    conn.commit()
    conn.close()
    bad = runner.invoke(_app(), ["decisions", "verify", "--json"])
    assert bad.exit_code == 1
    tampered = json.loads(bad.stdout)
    assert tampered["ok"] is False and tampered["first_bad_seq"] == 2 and "TAMPERED at seq 2" in bad.stderr


def test_decisions_table_shows_iso_times_not_epoch(home: Path) -> None:
    DecisionLog(home / "state.db").append(tick_id="t1", action="noop", args={}, outcome=Outcome(status="noop"))
    (record,) = DecisionLog(home / "state.db").last(1)
    table = CliRunner().invoke(_app(), ["decisions"])
    assert table.exit_code == 0, table.output
    stamp = datetime.fromtimestamp(record.time).astimezone().isoformat(timespec="seconds")
    assert f"{stamp} (just now)" in table.stdout and str(int(record.time)) not in table.stdout
