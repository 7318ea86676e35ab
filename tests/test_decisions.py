"""Decision log: hash chain, tamper detection, append-only triggers, concurrent appenders, redaction."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.state.decisions import GENESIS_HASH, DecisionLog
from core.domain import Outcome, PlannerInfo, PolicyDecision, Proposal, Verdict
from core.ports import DecisionEntry
from core.redact import REDACTED

REPO = Path(__file__).resolve().parent.parent


def _append(log: DecisionLog, n: int, tick: str = "t1") -> None:
    for i in range(n):
        log.append(
            tick_id=tick,
            action="scale_workers",
            args={"kind": "embed", "host": "local", "count": i},
            rationale=f"backlog step {i}",
            planner=PlannerInfo(kind="model", model="openai/glm", tier="routine", tokens_in=10, tokens_out=5),
            observation_digest="abc123",
            verdict=Verdict.ALLOW,
            rule_ids=("workers.max",),
            outcome=Outcome(status="done", detail=f"{i} running"),
            idempotency_key=f"{tick}:{i}",
            now=1_700_000_000.5 + i,
        )


def _tamper(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER decisions_no_update")
    conn.execute("DROP TRIGGER decisions_no_delete")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


@pytest.fixture
def log(tmp_path: Path) -> DecisionLog:
    return DecisionLog(tmp_path / "state.db")


def test_chain_links_and_verifies(log: DecisionLog) -> None:
    _append(log, 5)
    records = log.all()
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    assert all(r.hash == r.expected_hash() for r in records)
    assert log.verify().ok and log.verify().checked == 5
    assert [r.args["count"] for r in log.last(2)] == [3, 4]
    assert log.by_tick("t1") == records and log.by_tick("other") == []


def test_record_round_trips_as_json(log: DecisionLog) -> None:
    _append(log, 1)
    record = log.all()[0]
    data = json.loads(record.to_json())
    assert data["planner"]["tier"] == "routine" and data["outcome"]["status"] == "done"
    assert data["verdict"] == "allow" and data["rule_ids"] == ["workers.max"]
    assert data["hash"] == record.hash and data["prev_hash"] == GENESIS_HASH


def test_update_and_delete_are_refused(log: DecisionLog) -> None:
    _append(log, 2)
    conn = sqlite3.connect(log.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE decisions SET action = 'noop' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM decisions WHERE seq = 2")
    conn.close()
    assert log.verify().ok


def test_edited_record_is_detected(log: DecisionLog) -> None:
    _append(log, 4)
    victim = log.all()[2]
    _tamper(log.path, "UPDATE decisions SET args = '{\"count\": 99}' WHERE seq = 3")
    report = log.verify()
    assert not report.ok and report.first_bad_id == victim.id and report.checked == 2
    assert "edited" in (report.reason or "")


def test_edit_with_recomputed_hash_fails_the_hmac(log: DecisionLog) -> None:
    _append(log, 3)
    records = log.all()
    forged = records[1].to_dict() | {"action": "noop"}
    from agent.state.decisions import record_hash

    _tamper(
        log.path,
        f"UPDATE decisions SET action = 'noop', hash = '{record_hash(forged)}' WHERE seq = 2",
    )
    report = log.verify()  # the recomputed sha256 links; the hmac (keyed) catches the forged record itself
    assert not report.ok and report.first_bad_id == records[1].id and report.first_bad_seq == 2
    assert "hmac does not match" in (report.reason or "")


def test_deleted_middle_record_is_detected(log: DecisionLog) -> None:
    _append(log, 4)
    after = log.all()[2]
    _tamper(log.path, "DELETE FROM decisions WHERE seq = 2")
    report = log.verify()
    assert not report.ok and report.first_bad_id == after.id and "gap" in (report.reason or "")


def test_deleted_tail_is_detected_even_after_new_appends(log: DecisionLog) -> None:
    _append(log, 3)
    _tamper(log.path, "DELETE FROM decisions WHERE seq = 3")
    report = log.verify()
    assert not report.ok and "missing from the end" in (report.reason or "")
    DecisionLog(log.path)  # reopening restores the triggers
    log.append(tick_id="t2", action="noop", outcome=Outcome(status="noop"))
    assert not log.verify().ok


def test_reordered_records_are_detected(log: DecisionLog) -> None:
    _append(log, 3)
    _tamper(
        log.path,
        "UPDATE decisions SET seq = 100 WHERE seq = 2",
        "UPDATE decisions SET seq = 2 WHERE seq = 3",
        "UPDATE decisions SET seq = 3 WHERE seq = 100",
    )
    report = log.verify()
    assert not report.ok and report.checked == 1


def test_secrets_are_redacted_before_hashing(log: DecisionLog) -> None:
    record = log.append(
        tick_id="t1",
        action="set_model_routing",
        args={"api_key": "abc", "nested": {"password": "pw", "max_tokens": 512}, "note": "use sk-ABCDEF0123456789xyz"},
        rationale="slack token xoxb-1234567890-abcdef leaked in a log line",
        reasons=("Bearer abcdefghijklmnop1234",),
        outcome=Outcome(status="failed", detail="auth with sk-ABCDEF0123456789xyz failed"),
    )
    raw = Path(log.path).read_bytes()
    for secret in (b"sk-ABCDEF", b"xoxb-1234", b"abcdefghijklmnop1234"):
        assert secret not in raw
    assert record.args["api_key"] == REDACTED and record.args["nested"]["password"] == REDACTED
    assert record.args["nested"]["max_tokens"] == 512
    assert record.args["note"] == f"use {REDACTED}" and REDACTED in record.rationale
    assert REDACTED in record.outcome.detail and record.reasons == (f"{REDACTED}",)
    assert log.verify().ok


def test_bad_input_is_refused(log: DecisionLog) -> None:
    with pytest.raises(ValueError, match="tick_id"):
        log.append(tick_id="", action="noop", outcome=Outcome(status="noop"))
    with pytest.raises(ValueError):
        log.append(tick_id="t", action="noop", verdict="maybe", outcome=Outcome(status="noop"))
    with pytest.raises(ValueError):
        log.append(tick_id="t", action="noop", args={"x": float("nan")}, outcome=Outcome(status="noop"))
    assert log.count() == 0


def test_recorder_port_records_each_key_once(log: DecisionLog) -> None:
    entry = DecisionEntry(
        tick_id="t9",
        key="t9:0",
        proposal=Proposal(action="run_dedup", args={"dry_run": True, "expected_merges": 3}, rationale="dups"),
        planner=PlannerInfo(),
        observation_digest="d",
        decision=PolicyDecision(verdict=Verdict.NEEDS_APPROVAL, rule_ids=("dedup.approval",), reasons=("risky",)),
        outcome=Outcome(status="pending"),
        extra={"approval_id": "ap-1"},
    )
    first = log.record(entry, now=10.0)
    again = log.record(entry, now=11.0)
    assert first == again and log.count() == 1
    record = log.by_key("t9:0")[0]
    assert record.verdict == "needs_approval" and record.extra == {"approval_id": "ap-1"}
    assert record.reasons == ("risky",) and record.args["expected_merges"] == 3


_APPENDER = textwrap.dedent(
    """
    import sys
    from agent.state.decisions import DecisionLog
    from core.domain import Outcome
    log = DecisionLog(sys.argv[1])
    for i in range(int(sys.argv[3])):
        log.append(tick_id=sys.argv[2], action="noop", args={"i": i}, outcome=Outcome(status="noop"))
    """
)


@pytest.mark.slow
def test_concurrent_processes_form_one_chain(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    procs, per_proc = 4, 25
    children = [
        subprocess.Popen([sys.executable, "-c", _APPENDER, str(db), f"p{p}", str(per_proc)], cwd=REPO)
        for p in range(procs)
    ]
    assert [c.wait(timeout=60) for c in children] == [0] * procs
    log = DecisionLog(db)
    records = log.all()
    assert len(records) == procs * per_proc
    assert log.verify().ok
    for p in range(procs):
        assert [r.args["i"] for r in log.by_tick(f"p{p}")] == list(range(per_proc))
    assert len({r.prev_hash for r in records}) == len(records)  # no fork in the chain
