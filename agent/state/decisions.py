"""The decision log: one append-only, hash-chained SQLite record per decision (DESIGN.md, "Contracts").

Each record's `hash` is sha256 over the canonical JSON of all its other fields plus `prev_hash`, the hash of
the record before it, so editing, deleting or reordering any record breaks the chain from that point on.
SQLite triggers refuse UPDATE and DELETE; tampering then needs dropping a trigger, and `verify()` still
catches the change. Secrets are redacted before a record is hashed or stored.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.domain import Outcome, PlannerInfo, Verdict
from core.redact import redact, redact_text
from core.statedb import canonical_json, connect, init_schema, read_tx, resolve_db_path, sha256_hex, write_tx

if TYPE_CHECKING:
    from core.ports import DecisionEntry

GENESIS_HASH = "0" * 64

_DDL = """
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tick_id TEXT NOT NULL,
    time REAL NOT NULL,
    planner TEXT NOT NULL,
    action TEXT NOT NULL,
    args TEXT NOT NULL,
    rationale TEXT NOT NULL,
    observation_digest TEXT,
    verdict TEXT,
    rule_ids TEXT NOT NULL,
    reasons TEXT NOT NULL,
    approver TEXT,
    approved_at REAL,
    outcome TEXT NOT NULL,
    idempotency_key TEXT,
    extra TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_tick ON decisions(tick_id);
CREATE INDEX IF NOT EXISTS decisions_key ON decisions(idempotency_key);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decision log is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decision log is append-only: DELETE refused'); END;
"""

_JSON_COLUMNS = ("planner", "args", "rule_ids", "reasons", "outcome", "extra")


@dataclass(frozen=True)
class DecisionRecord:
    seq: int
    id: str
    tick_id: str
    time: float
    planner: PlannerInfo
    action: str
    args: dict[str, Any]
    rationale: str
    observation_digest: str | None
    verdict: str | None
    rule_ids: tuple[str, ...]
    reasons: tuple[str, ...]
    approver: str | None
    approved_at: float | None
    outcome: Outcome
    idempotency_key: str | None
    extra: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["planner"] = self.planner.model_dump(mode="json")
        data["outcome"] = self.outcome.model_dump(mode="json")
        data["rule_ids"] = list(self.rule_ids)
        data["reasons"] = list(self.reasons)
        return data

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    def expected_hash(self) -> str:
        return record_hash(self.to_dict())


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    first_bad_id: str | None = None
    reason: str | None = None


def record_hash(fields: Mapping[str, Any]) -> str:
    """sha256 over every field except `hash` itself (so `prev_hash` and `seq` are covered)."""
    body = {k: v for k, v in fields.items() if k != "hash"}
    return sha256_hex(canonical_json(body))


class DecisionLog:
    """Append-only decision log in SQLite. Safe across threads and processes."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = resolve_db_path(db_path)
        init_schema(self.path, _DDL)

    def append(
        self,
        *,
        tick_id: str,
        action: str,
        outcome: Outcome,
        args: Mapping[str, Any] | None = None,
        rationale: str = "",
        planner: PlannerInfo | None = None,
        observation_digest: str | None = None,
        verdict: Verdict | str | None = None,
        rule_ids: Iterable[str] = (),
        reasons: Iterable[str] = (),
        approver: str | None = None,
        approved_at: float | None = None,
        idempotency_key: str | None = None,
        extra: Mapping[str, Any] | None = None,
        record_id: str | None = None,
        now: float | None = None,
        once: bool = False,
    ) -> DecisionRecord:
        """Append one record atomically; concurrent appenders (threads or processes) form one chain.

        With `once=True` and an idempotency key that is already logged, nothing is appended and the
        earlier record is returned: a re-run graph node records its decision only once.
        """
        if once and not idempotency_key:
            raise ValueError("once=True needs an idempotency_key")
        if not tick_id or not action:
            raise ValueError("a decision needs a tick_id and an action")
        fields: dict[str, Any] = {
            "id": record_id or uuid.uuid4().hex,
            "tick_id": tick_id,
            "time": float(time.time() if now is None else now),
            "planner": (planner or PlannerInfo()).model_dump(mode="json"),
            "action": action,
            "args": redact(dict(args or {})),
            "rationale": redact_text(rationale),
            "observation_digest": observation_digest,
            "verdict": None if verdict is None else str(Verdict(verdict).value),
            "rule_ids": [str(r) for r in rule_ids],
            "reasons": [redact_text(str(r)) for r in reasons],
            "approver": approver,
            "approved_at": None if approved_at is None else float(approved_at),
            "outcome": redact(outcome.model_dump(mode="json")),
            "idempotency_key": idempotency_key,
            "extra": redact(dict(extra or {})),
        }
        canonical_json(fields)  # fail fast on values JSON cannot carry (NaN, objects)
        with connect(self.path) as conn, write_tx(conn):
            earlier = _first_with_key(conn, idempotency_key) if once else None
            if earlier is not None:
                return earlier
            fields["seq"], fields["prev_hash"] = _next_position(conn)
            fields["hash"] = record_hash(fields)
            _insert(conn, fields)
        return _from_fields(fields)

    def record(self, entry: DecisionEntry, now: float) -> str:
        """The graphs' `Recorder` port: one record per entry key, however often the node re-runs."""
        decision = entry.decision
        return self.append(
            tick_id=entry.tick_id,
            action=entry.proposal.action,
            args=entry.proposal.args,
            rationale=entry.proposal.rationale,
            planner=entry.planner,
            observation_digest=entry.observation_digest,
            verdict=decision.verdict if decision else None,
            rule_ids=decision.rule_ids if decision else (),
            reasons=decision.reasons if decision else (),
            approver=entry.approver,
            approved_at=entry.approved_at,
            outcome=entry.outcome,
            idempotency_key=entry.key,
            extra=entry.extra,
            now=now,
            once=True,
        ).id

    def last(self, n: int = 20) -> list[DecisionRecord]:
        """The newest `n` records, oldest first."""
        if n <= 0:
            return []
        rows = self._select("SELECT * FROM decisions ORDER BY seq DESC LIMIT ?", (n,))
        return list(reversed(rows))

    def all(self) -> list[DecisionRecord]:
        return self._select("SELECT * FROM decisions ORDER BY seq", ())

    def by_tick(self, tick_id: str) -> list[DecisionRecord]:
        return self._select("SELECT * FROM decisions WHERE tick_id = ? ORDER BY seq", (tick_id,))

    def by_key(self, idempotency_key: str) -> list[DecisionRecord]:
        return self._select("SELECT * FROM decisions WHERE idempotency_key = ? ORDER BY seq", (idempotency_key,))

    def count(self) -> int:
        with connect(self.path) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])

    def verify(self) -> VerifyReport:
        """Walk the chain: every hash recomputes, every prev_hash links, no sequence number is missing."""
        with connect(self.path) as conn, read_tx(conn):
            rows = conn.execute("SELECT * FROM decisions ORDER BY seq").fetchall()
            high_water = _sequence_high_water(conn)
        return _verify_rows(rows, high_water)

    def _select(self, sql: str, params: Sequence[Any]) -> list[DecisionRecord]:
        with connect(self.path) as conn:
            return [_from_row(row) for row in conn.execute(sql, params)]


def _next_position(conn: sqlite3.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1").fetchone()
    last_seq = max(row["seq"] if row else 0, _sequence_high_water(conn))
    return last_seq + 1, row["hash"] if row else GENESIS_HASH


def _first_with_key(conn: sqlite3.Connection, key: str | None) -> DecisionRecord | None:
    sql = "SELECT * FROM decisions WHERE idempotency_key = ? ORDER BY seq LIMIT 1"
    row = conn.execute(sql, (key,)).fetchone()
    return _from_row(row) if row else None


def _sequence_high_water(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'decisions'").fetchone()
    return int(row[0]) if row else 0


def _insert(conn: sqlite3.Connection, fields: Mapping[str, Any]) -> None:
    columns = list(fields)
    values = [json.dumps(fields[c]) if c in _JSON_COLUMNS else fields[c] for c in columns]
    marks = ", ".join("?" for _ in columns)
    conn.execute(f"INSERT INTO decisions ({', '.join(columns)}) VALUES ({marks})", values)


def _row_fields(row: sqlite3.Row) -> dict[str, Any]:
    fields = dict(row)
    for column in _JSON_COLUMNS:
        fields[column] = json.loads(fields[column])
    return fields


def _from_row(row: sqlite3.Row) -> DecisionRecord:
    return _from_fields(_row_fields(row))


def _from_fields(fields: Mapping[str, Any]) -> DecisionRecord:
    values = dict(fields)
    values["planner"] = PlannerInfo.model_validate(values["planner"])
    values["outcome"] = Outcome.model_validate(values["outcome"])
    values["rule_ids"] = tuple(values["rule_ids"])
    values["reasons"] = tuple(values["reasons"])
    return DecisionRecord(**values)


def _verify_rows(rows: Sequence[sqlite3.Row], high_water: int) -> VerifyReport:
    prev_hash = GENESIS_HASH
    expected_seq = 1
    for checked, row in enumerate(rows):
        fields = _row_fields(row)
        problem = _link_problem(fields, prev_hash, expected_seq)
        if problem:
            return VerifyReport(ok=False, checked=checked, first_bad_id=fields["id"], reason=problem)
        prev_hash, expected_seq = fields["hash"], fields["seq"] + 1
    if high_water >= expected_seq:
        reason = f"records {expected_seq}..{high_water} are missing from the end of the log"
        return VerifyReport(ok=False, checked=len(rows), first_bad_id=None, reason=reason)
    return VerifyReport(ok=True, checked=len(rows))


def _link_problem(fields: Mapping[str, Any], prev_hash: str, expected_seq: int) -> str | None:
    if fields["seq"] != expected_seq:
        return f"sequence gap: expected record #{expected_seq}, found #{fields['seq']} (deleted record)"
    if fields["prev_hash"] != prev_hash:
        return f"record #{fields['seq']} does not link to the record before it (deleted or reordered)"
    if record_hash(fields) != fields["hash"]:
        return f"record #{fields['seq']} content does not match its hash (edited)"
    return None
