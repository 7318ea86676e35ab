"""The links between decisions that verification adds (agent/service/verification.py): an action, the `verify`
record that judged it (`extra.verifies`) and the rollback proposed for it (`extra.rollback_of`), as queries over
the decision log."""

from __future__ import annotations

from agent.state.decisions import VERIFY_ACTION, DecisionLog, DecisionRecord
from core.statedb import connect


def awaiting_verification(log: DecisionLog, since: float) -> list[DecisionRecord]:
    """Actions done since `since` that carry an expectation and have no verification yet, oldest first."""
    sql = (
        "SELECT * FROM decisions d WHERE d.time >= ? AND json_extract(d.outcome, '$.status') = 'done'"
        " AND json_extract(d.extra, '$.expectation') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM decisions v"
        " WHERE v.action = ? AND v.idempotency_key = 'verify:' || d.id) ORDER BY d.seq"
    )
    return log.select(sql, (since, VERIFY_ACTION))


def done_after(log: DecisionLog, seq: int, until: float) -> list[DecisionRecord]:
    """Actions done after record `seq` and by time `until` that carry an expectation."""
    sql = (
        "SELECT * FROM decisions WHERE seq > ? AND time <= ? AND json_extract(outcome, '$.status') = 'done'"
        " AND json_extract(extra, '$.expectation') IS NOT NULL ORDER BY seq"
    )
    return log.select(sql, (seq, until))


def unanswered_rollbacks(log: DecisionLog, since: float) -> list[DecisionRecord]:
    """Verifications since `since` that ask for a rollback no decision has proposed yet."""
    sql = (
        "SELECT * FROM decisions v WHERE v.action = ? AND v.time >= ?"
        " AND json_extract(v.outcome, '$.data.rollback') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM decisions d"
        " WHERE json_extract(d.extra, '$.rollback_of') = json_extract(v.extra, '$.verifies')) ORDER BY v.seq"
    )
    return log.select(sql, (VERIFY_ACTION, since))


def linked(log: DecisionLog, record_id: str) -> list[DecisionRecord]:
    """The verifications of a decision and the rollbacks proposed for it, in log order."""
    sql = (
        "SELECT * FROM decisions WHERE json_extract(extra, '$.verifies') = ?"
        " OR json_extract(extra, '$.rollback_of') = ? ORDER BY seq"
    )
    return log.select(sql, (record_id, record_id))


def verdicts(log: DecisionLog, action: str, n: int) -> list[str]:
    """The newest `n` verdicts on actions named `action`, newest first."""
    sql = (
        "SELECT json_extract(outcome, '$.status') AS verdict FROM decisions WHERE action = ?"
        " AND json_extract(args, '$.action') = ? ORDER BY seq DESC LIMIT ?"
    )
    with connect(log.path) as conn:
        return [str(r["verdict"]) for r in conn.execute(sql, (VERIFY_ACTION, action, n))]
