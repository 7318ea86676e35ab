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
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sqlite3
import stat
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.domain import Outcome, PlannerInfo, Verdict
from core.redact import redact, redact_text
from core.statedb import (
    BUSY_TIMEOUT_S,
    canonical_json,
    connect,
    init_schema,
    read_tx,
    resolve_db_path,
    sha256_hex,
    write_tx,
)

if TYPE_CHECKING:
    from core.ports import DecisionEntry
    from core.settings import Settings

GENESIS_HASH = "0" * 64
DECISION_KEY_ENV = "BRAINOPS_DECISION_KEY"
KEY_FILE_NAME = "decision-log.key"
MIN_KEY_CHARS = 16
HEAD_HEX = 32  # hex digits of the head's hash printed, logged and exported
MIN_EXPECT_HEX = 16  # shortest hash prefix `--expect-head` accepts
MAC_VERSION = "brainops-decision-log/hmac-sha256/v1"

log = logging.getLogger("brainops.decisions")

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

    def expected_hash(self) -> str:
        return record_hash(self.to_dict())


@dataclass(frozen=True)
class ChainHead:
    """The newest record: its seq and its mac (a legacy unkeyed record: its sha256 hash)."""

    seq: int
    digest: str
    keyed: bool

    @property
    def short(self) -> str:
        return self.digest[:HEAD_HEX]

    def __str__(self) -> str:
        return f"{self.seq}:{self.short}"


@dataclass(frozen=True)
class ExpectedHead:
    """A head recorded outside state.db (`N:HEX`, HEX a prefix of at least MIN_EXPECT_HEX hex digits)."""

    seq: int
    prefix: str

    @classmethod
    def parse(cls, text: str) -> ExpectedHead:
        match = re.fullmatch(r"\s*(\d+):([0-9a-fA-F]+)\s*", text)
        if not match or int(match[1]) < 1 or not MIN_EXPECT_HEX <= len(match[2]) <= 64:
            raise ValueError(
                f"expected a chain head N:HASH (N >= 1, HASH {MIN_EXPECT_HEX} to 64 hex digits, as "
                f"`brainops decisions head` prints it), got {text!r}"
            )
        return cls(int(match[1]), match[2].lower())

    def __str__(self) -> str:
        return f"{self.seq}:{self.prefix}"


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    first_bad_id: str | None = None
    reason: str | None = None
    first_bad_seq: int | None = None
    legacy_through: int = 0  # last seq of the unkeyed legacy prefix (0: none)
    head: ChainHead | None = None


class DecisionKeyError(RuntimeError):
    """The decision log's hmac key is unusable (missing where needed, too short, readable by others)."""


def record_hash(fields: Mapping[str, Any]) -> str:
    """sha256 over every field except `hash` and `mac` (so `prev_hash` and `seq` are covered)."""
    body = {k: v for k, v in fields.items() if k not in ("hash", "mac")}
    return sha256_hex(canonical_json(body))


def record_mac(key: bytes, seq: int, record_hash_hex: str, prev_mac: str | None) -> str:
    """hmac-sha256 over the record's hash (which covers every field and `prev_hash`), its seq and the previous
    record's mac ("" after a legacy record or at the start): without the key no one can extend or redo it."""
    message = canonical_json({"v": MAC_VERSION, "seq": seq, "hash": record_hash_hex, "prev_mac": prev_mac or ""})
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- the key


def default_key_file() -> Path:
    """$XDG_CONFIG_HOME/brainops/decision-log.key, else ~/.config/brainops/decision-log.key."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "brainops" / KEY_FILE_NAME


def key_file_path(key_file: str | Path | None) -> Path:
    return Path(key_file).expanduser() if key_file else default_key_file()


def load_decision_key(
    key_file: str | Path | None = None, *, state_dir: Path | None = None, create: bool = False
) -> bytes | None:
    """The hmac key: $BRAINOPS_DECISION_KEY if set, else the key file (made, 0600, when `create` and missing).

    None when there is no key and `create` is False. Raises DecisionKeyError for a key file inside the
    state directory, readable or writable by group/other, not a regular file, or holding too short a key.
    The key itself is never logged nor put in an error message.
    """
    env = os.environ.get(DECISION_KEY_ENV, "").strip()
    if env:
        if len(env) < MIN_KEY_CHARS:
            raise DecisionKeyError(f"{DECISION_KEY_ENV} is set but shorter than {MIN_KEY_CHARS} characters")
        return env.encode("utf-8")
    path = key_file_path(key_file)
    if state_dir is not None and _is_inside(path, state_dir):
        raise DecisionKeyError(
            f"decision key file {path} is inside the state directory {state_dir}: whoever can rewrite state.db "
            "could read it; set decision_key_file to a path outside it"
        )
    if not os.path.lexists(path):
        if not create:
            return None
        _create_key_file(path)
    return _read_key_file(path)


def _is_inside(path: Path, directory: Path) -> bool:
    try:
        return path.resolve().is_relative_to(directory.resolve())
    except OSError:
        return False


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{KEY_FILE_NAME}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # atomic and exclusive: a concurrent first use keeps whichever key landed first
        except FileExistsError:
            return
    finally:
        os.unlink(tmp)
    log.warning("created the decision log key file %s (mode 0600); back it up: verifying the log needs it", path)


def _read_key_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise DecisionKeyError(f"cannot read decision key file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DecisionKeyError(f"decision key file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise DecisionKeyError(
                f"refusing decision key file {path}: group/other can access it (mode {mode:04o}); "
                f"run `chmod 600 {path}`"
            )
        with os.fdopen(os.dup(fd), "rb") as handle:
            secret = handle.read().strip()
    finally:
        os.close(fd)
    if len(secret) < MIN_KEY_CHARS:
        raise DecisionKeyError(f"decision key file {path} holds fewer than {MIN_KEY_CHARS} characters")
    return secret


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
            high_water = _sequence_high_water(conn)
        return _verify_rows(rows, high_water, key, _expected(expect_head))

    def _select(self, sql: str, params: Sequence[Any]) -> list[DecisionRecord]:
        with connect(self.path) as conn:
            return [_from_row(row) for row in conn.execute(sql, params)]


# ---------------------------------------------------------------- read-only access (verify, head)


def verify_log(
    db_path: str | Path,
    *,
    key: bytes | None = None,
    key_file: str | Path | None = None,
    expect_head: ExpectedHead | str | None = None,
) -> VerifyReport:
    """`DecisionLog.verify` without opening the log for writing: no schema setup, no directory made, no key
    created, a read-only connection (immutable when even that cannot open), so it works on a full disk or a
    read-only state directory. A missing file or table reads as an empty log."""
    path = Path(db_path)
    if key is None:
        key = load_decision_key(key_file, state_dir=path.parent)
    rows, high_water = _read_readonly(path)
    return _verify_rows(rows, high_water, key, _expected(expect_head))


def read_head(db_path: str | Path) -> ChainHead | None:
    """The chain head, read-only (None: no log or an empty one)."""
    path = Path(db_path)
    conn = _connect_readonly(path)
    if conn is None:
        return None
    try:
        return _head(conn) if _has_table(conn, "decisions") else None
    finally:
        conn.close()


def _connect_readonly(path: Path) -> sqlite3.Connection | None:
    if not path.exists():
        return None
    uri = path.resolve().as_uri()
    # mode=ro still needs the WAL index (<db>-shm) to exist or be creatable; in a read-only directory or on a
    # full disk it may not be, and immutable=1 reads the file as it is (nobody can be writing it then).
    for params in ("mode=ro", "mode=ro&immutable=1"):
        conn = sqlite3.connect(f"{uri}?{params}", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()
            if "immutable" in params:
                raise
            continue
        return conn
    return None  # pragma: no cover - the loop returns or raises


def _read_readonly(path: Path) -> tuple[list[sqlite3.Row], int]:
    conn = _connect_readonly(path)
    if conn is None:
        return [], 0
    try:
        with read_tx(conn):
            if not _has_table(conn, "decisions"):
                return [], 0
            rows = conn.execute("SELECT * FROM decisions ORDER BY seq").fetchall()
            high_water = _sequence_high_water(conn) if _has_table(conn, "sqlite_sequence") else 0
        return rows, high_water
    finally:
        conn.close()


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return conn.execute(sql, (name,)).fetchone() is not None


def _head(conn: sqlite3.Connection) -> ChainHead | None:
    row = conn.execute("SELECT * FROM decisions ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        return None
    mac = dict(row).get("mac")
    return ChainHead(int(row["seq"]), mac or row["hash"], keyed=mac is not None)


def _expected(expect_head: ExpectedHead | str | None) -> ExpectedHead | None:
    return ExpectedHead.parse(expect_head) if isinstance(expect_head, str) else expect_head


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
    fields.setdefault("mac", None)  # a log not opened for writing since the hmac chain came has no column
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


def _verify_rows(
    rows: Sequence[sqlite3.Row], high_water: int, key: bytes | None, expect: ExpectedHead | None = None
) -> VerifyReport:
    prev_hash, prev_mac = GENESIS_HASH, None
    expected_seq, legacy_through, keyed_from = 1, 0, None
    digests: dict[int, str] = {}
    for checked, row in enumerate(rows):
        fields = _row_fields(row)
        problem = _link_problem(fields, prev_hash, expected_seq) or _mac_problem(fields, prev_mac, keyed_from, key)
        if problem:
            return VerifyReport(
                ok=False,
                checked=checked,
                first_bad_id=fields["id"],
                reason=problem,
                first_bad_seq=min(int(fields["seq"]), expected_seq),
                legacy_through=legacy_through,
            )
        seq, mac = int(fields["seq"]), fields["mac"]
        if mac is None:
            legacy_through = seq
        elif keyed_from is None:
            keyed_from = seq
        digests[seq] = mac or fields["hash"]
        prev_hash, prev_mac, expected_seq = fields["hash"], mac, seq + 1
    last = expected_seq - 1
    head = ChainHead(last, digests[last], keyed=last > legacy_through) if rows else None

    def bad(seq: int, reason: str) -> VerifyReport:
        return VerifyReport(
            ok=False, checked=len(rows), reason=reason, first_bad_seq=seq, legacy_through=legacy_through, head=head
        )

    if high_water >= expected_seq:
        what = "the log was wiped" if not rows else "truncated"
        return bad(expected_seq, f"records {expected_seq}..{high_water} are missing from the end of the log ({what})")
    if expect is not None:
        if not rows:
            return bad(1, f"the log is empty but head {expect} was recorded (wiped)")
        if last < expect.seq:
            return bad(
                last + 1,
                f"the log ends at seq {last} but head {expect} was recorded: "
                f"records {last + 1}..{expect.seq} were deleted (truncated)",
            )
        if not digests[expect.seq].startswith(expect.prefix):
            return bad(
                expect.seq,
                f"record #{expect.seq} is {expect.seq}:{digests[expect.seq][:HEAD_HEX]}, not the recorded head "
                f"{expect} (the log was rewritten)",
            )
    return VerifyReport(ok=True, checked=len(rows), legacy_through=legacy_through, head=head)


def _link_problem(fields: Mapping[str, Any], prev_hash: str, expected_seq: int) -> str | None:
    if fields["seq"] != expected_seq:
        return f"sequence gap: expected record #{expected_seq}, found #{fields['seq']} (deleted record)"
    if fields["prev_hash"] != prev_hash:
        return f"record #{fields['seq']} does not link to the record before it (deleted or reordered)"
    if record_hash(fields) != fields["hash"]:
        return f"record #{fields['seq']} content does not match its hash (edited)"
    return None


def _mac_problem(
    fields: Mapping[str, Any], prev_mac: str | None, keyed_from: int | None, key: bytes | None
) -> str | None:
    seq, mac = int(fields["seq"]), fields["mac"]
    if mac is None:
        if keyed_from is not None:
            return f"record #{seq} has no hmac but the chain is keyed from #{keyed_from} (rewritten without the key)"
        return None
    if key is None:
        raise DecisionKeyError(
            f"record #{seq} is hmac-keyed but no decision key is available: set {DECISION_KEY_ENV} or "
            "decision_key_file to the key the log was written with"
        )
    if not hmac.compare_digest(record_mac(key, seq, fields["hash"], prev_mac), str(mac)):
        return f"record #{seq} hmac does not match (edited and recomputed without the key, or another key)"
    return None
