"""The decision log: one append-only, hash-chained SQLite record per decision (DESIGN.md, "Contracts").

Each record's `hash` is sha256 over the canonical JSON of all its other fields plus `prev_hash`, the hash of
the record before it, so editing, deleting or reordering any record breaks the chain from that point on.
SQLite triggers refuse UPDATE and DELETE; tampering then needs dropping a trigger, and `verify()` still
catches the change. Secrets are redacted before a record is hashed or stored.

The sha256 chain is unkeyed: anyone who can write state.db can recompute it. So each record also carries
`mac`, an hmac-sha256 chain (`record_mac`: the record's hash, its seq and the previous record's mac) keyed
by a secret kept outside the state directory (`load_decision_key`: BRAINOPS_DECISION_KEY, else a 0600 key
file). Records written before the hmac existed have `mac` NULL and verify as "legacy unkeyed"; once a keyed
record exists, every later one must be keyed. The chain head (`ChainHead`, `N:HEX`) is logged on every
append and exported as a metric, so truncation or a wipe shows when `verify(expect_head=...)` compares the
log with a head recorded elsewhere. docs/OPERATIONS.md ("Decision log") has the threat model.

The key handling lives in decision_key.py, the chain's data types and checks (verify, head) in decision_chain.py;
this module keeps the log and its write path, and re-exports their public names.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.state.decision_chain import (
    _JSON_COLUMNS,
    GENESIS_HASH,
    HEAD_HEX,
    MAC_VERSION,
    MIN_EXPECT_HEX,
    ChainHead,
    ExpectedHead,
    VerifyReport,
    _expected,
    _head,
    _row_fields,
    _sequence_high_water,
    read_head,
    record_hash,
    record_mac,
    verify_log,
    verify_with_segments,
)
from agent.state.decision_key import (
    DECISION_KEY_ENV,
    KEY_FILE_NAME,
    MIN_KEY_CHARS,
    DecisionKeyError,
    default_key_file,
    key_file_path,
    load_decision_key,
)
from core.domain import Outcome, PlannerInfo, ScalePrediction, Verdict
from core.redact import redact, redact_text
from core.statedb import canonical_json, connect, init_schema, read_tx, resolve_db_path, write_tx

if TYPE_CHECKING:
    from core.ports import DecisionEntry
    from core.settings import Settings

# The names other modules import from here, wherever they are defined.
__all__ = [
    "DECISION_KEY_ENV",
    "EXPECTATION_FIELD",
    "GENESIS_HASH",
    "HEAD_HEX",
    "KEY_FILE_NAME",
    "MAC_VERSION",
    "MIN_EXPECT_HEX",
    "MIN_KEY_CHARS",
    "PREDICTION_FIELD",
    "ROLLBACK_FIELD",
    "VERIFIES_FIELD",
    "VERIFY_ACTION",
    "ChainHead",
    "DecisionKeyError",
    "DecisionLog",
    "DecisionRecord",
    "ExpectedHead",
    "VerifyReport",
    "default_key_file",
    "key_file_path",
    "load_decision_key",
    "read_head",
    "record_hash",
    "record_mac",
    "verify_log",
]

log = logging.getLogger("brainops.decisions")

# Where a record keeps its proposal's prediction, as plain JSON fields (kind, before, after, drain_s, ...), so
# that later ticks and offline checks can compare what was expected with what happened.
PREDICTION_FIELD = "prediction"
EXPECTATION_FIELD = "expectation"  # what a mutating action should do (core/expectations.py), checked later
VERIFIES_FIELD = "verifies"  # on a `verify` record: the id of the decision it checks
ROLLBACK_FIELD = "rollback_of"  # on a rollback: the id of the decision it reverses
VERIFY_ACTION = "verify"

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
    hash TEXT NOT NULL,
    mac TEXT
);
CREATE INDEX IF NOT EXISTS decisions_tick ON decisions(tick_id);
CREATE INDEX IF NOT EXISTS decisions_key ON decisions(idempotency_key);
CREATE INDEX IF NOT EXISTS decisions_time ON decisions(time);
CREATE INDEX IF NOT EXISTS decisions_action ON decisions(action, seq);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decision log is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decision log is append-only: DELETE refused'); END;
"""


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
    mac: str | None = None  # hmac-sha256 chain; None on legacy records written before it existed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["planner"] = self.planner.model_dump(mode="json")
        data["outcome"] = self.outcome.model_dump(mode="json")
        data["rule_ids"] = list(self.rule_ids)
        data["reasons"] = list(self.reasons)
        return data

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @property
    def prediction(self) -> ScalePrediction | None:
        """What the action was expected to do (its proposal's prediction, kept in `extra["prediction"]`)."""
        stored = self.extra.get(PREDICTION_FIELD)
        return ScalePrediction.model_validate(stored) if isinstance(stored, dict) else None

    def expected_hash(self) -> str:
        return record_hash(self.to_dict())


# ---------------------------------------------------------------- the log


class DecisionLog:
    """Append-only decision log in SQLite. Safe across threads and processes.

    `key` (tests) or the key from `load_decision_key(key_file)` signs each appended record; it is loaded on
    the first append, not at construction, so reading the log needs no key.
    """

    def __init__(self, db_path: str | Path, *, key: bytes | None = None, key_file: str | Path | None = None) -> None:
        self.path = resolve_db_path(db_path)
        self.key_file = key_file
        self._key = key
        init_schema(self.path, _DDL)
        _add_mac_column(self.path)

    @classmethod
    def from_settings(cls, settings: Settings) -> DecisionLog:
        return cls(settings.state_db, key_file=settings.decision_key_file)

    def signing_key(self) -> bytes:
        """The hmac key, created on first use when there is none (DecisionKeyError when unusable)."""
        if self._key is None:
            self._key = load_decision_key(self.key_file, state_dir=self.path.parent, create=True)
        if self._key is None:  # pragma: no cover - create=True always yields a key or raises
            raise DecisionKeyError("no decision key")
        return self._key

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
        key = self.signing_key()  # before the write lock: a first use may create the key file
        with connect(self.path) as conn, write_tx(conn):
            earlier = _first_with_key(conn, idempotency_key) if once else None
            if earlier is not None:
                return earlier
            fields["seq"], fields["prev_hash"], prev_mac = _next_position(conn)
            fields["hash"] = record_hash(fields)
            fields["mac"] = record_mac(key, fields["seq"], fields["hash"], prev_mac)
            _insert(conn, fields)
        head = ChainHead(fields["seq"], fields["mac"], keyed=True)
        log.info("decision chain head", extra={"seq": head.seq, "hash": head.short, "head": str(head)})
        return _from_fields(fields)

    def record(self, entry: DecisionEntry, now: float) -> str:
        """The graphs' `Recorder` port: one record per entry key, however often the node re-runs."""
        decision = entry.decision
        extra = dict(entry.extra or {})
        if entry.proposal.prediction is not None:
            extra[PREDICTION_FIELD] = entry.proposal.prediction.model_dump(mode="json")
        if entry.proposal.expectation is not None:
            extra[EXPECTATION_FIELD] = entry.proposal.expectation.model_dump(mode="json")
        if entry.proposal.rollback_of is not None:
            extra[ROLLBACK_FIELD] = entry.proposal.rollback_of
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
            extra=extra,
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

    def get(self, record_id: str) -> DecisionRecord | None:
        rows = self._select("SELECT * FROM decisions WHERE id = ?", (record_id,))
        return rows[0] if rows else None

    def select(self, sql: str, params: Sequence[Any]) -> list[DecisionRecord]:
        """Records by a read-only query over `decisions` (agent/state/decision_links.py asks its questions so)."""
        return self._select(sql, params)

    def count(self) -> int:
        with connect(self.path) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])

    def head(self) -> ChainHead | None:
        """The newest record's seq and mac (None: empty log)."""
        with connect(self.path) as conn:
            return _head(conn)

    def verify(self, expect_head: ExpectedHead | str | None = None) -> VerifyReport:
        """Walk the chain: every hash recomputes, every prev_hash links, every mac checks with the key, no
        sequence number is missing; with `expect_head`, the log still reaches that head unchanged."""
        key = self._key if self._key is not None else load_decision_key(self.key_file, state_dir=self.path.parent)
        with connect(self.path) as conn, read_tx(conn):
            rows = conn.execute("SELECT * FROM decisions ORDER BY seq").fetchall()
            return verify_with_segments(conn, rows, _sequence_high_water(conn), key, _expected(expect_head))

    def _select(self, sql: str, params: Sequence[Any]) -> list[DecisionRecord]:
        with connect(self.path) as conn:
            return [_from_row(row) for row in conn.execute(sql, params)]


# ---------------------------------------------------------------- writing


def _add_mac_column(path: Path) -> None:
    """Logs made before the hmac chain get the `mac` column; their records stay as they are (legacy)."""

    def has_mac(conn: sqlite3.Connection) -> bool:
        return any(r["name"] == "mac" for r in conn.execute("PRAGMA table_info(decisions)"))

    with connect(path) as conn:
        if has_mac(conn):
            return
        with write_tx(conn):
            if not has_mac(conn):
                conn.execute("ALTER TABLE decisions ADD COLUMN mac TEXT")


def _next_position(conn: sqlite3.Connection) -> tuple[int, str, str | None]:
    row = conn.execute("SELECT seq, hash, mac FROM decisions ORDER BY seq DESC LIMIT 1").fetchone()
    last_seq = max(row["seq"] if row else 0, _sequence_high_water(conn))
    return last_seq + 1, row["hash"] if row else GENESIS_HASH, row["mac"] if row else None


def _first_with_key(conn: sqlite3.Connection, key: str | None) -> DecisionRecord | None:
    sql = "SELECT * FROM decisions WHERE idempotency_key = ? ORDER BY seq LIMIT 1"
    row = conn.execute(sql, (key,)).fetchone()
    return _from_row(row) if row else None


def _insert(conn: sqlite3.Connection, fields: Mapping[str, Any]) -> None:
    columns = list(fields)
    values = [json.dumps(fields[c]) if c in _JSON_COLUMNS else fields[c] for c in columns]
    marks = ", ".join("?" for _ in columns)
    conn.execute(f"INSERT INTO decisions ({', '.join(columns)}) VALUES ({marks})", values)


def _from_row(row: sqlite3.Row) -> DecisionRecord:
    return _from_fields(_row_fields(row))


def _from_fields(fields: Mapping[str, Any]) -> DecisionRecord:
    values = dict(fields)
    values["planner"] = PlannerInfo.model_validate(values["planner"])
    values["outcome"] = Outcome.model_validate(values["outcome"])
    values["rule_ids"] = tuple(values["rule_ids"])
    values["reasons"] = tuple(values["reasons"])
    return DecisionRecord(**values)
