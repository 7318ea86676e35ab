"""The decision log's chain as data, and its checks (see agent/state/decisions.py for the design).

`record_hash` and `record_mac` define a record's sha256 hash and hmac; `verify_log` and `read_head` read a log
without opening it for writing (read-only connections, no schema setup, no key created); `_verify_rows` is the
walk both they and `DecisionLog.verify` use. The log itself and its write path live in decisions.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.state.decision_key import DECISION_KEY_ENV, DecisionKeyError, load_decision_key
from agent.state.decision_segments import archived_rows
from core.statedb import BUSY_TIMEOUT_S, canonical_json, read_tx, sha256_hex

GENESIS_HASH = "0" * 64
HEAD_HEX = 32  # hex digits of the head's hash printed, logged and exported
MIN_EXPECT_HEX = 16  # shortest hash prefix `--expect-head` accepts
MAC_VERSION = "brainops-decision-log/hmac-sha256/v1"

_JSON_COLUMNS = ("planner", "args", "rule_ids", "reasons", "outcome", "extra")


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


def record_hash(fields: Mapping[str, Any]) -> str:
    """sha256 over every field except `hash` and `mac` (so `prev_hash` and `seq` are covered)."""
    body = {k: v for k, v in fields.items() if k not in ("hash", "mac")}
    return sha256_hex(canonical_json(body))


def record_mac(key: bytes, seq: int, record_hash_hex: str, prev_mac: str | None) -> str:
    """hmac-sha256 over the record's hash (which covers every field and `prev_hash`), its seq and the previous
    record's mac ("" after a legacy record or at the start): without the key no one can extend or redo it."""
    message = canonical_json({"v": MAC_VERSION, "seq": seq, "hash": record_hash_hex, "prev_mac": prev_mac or ""})
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


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
    return _read_and_verify(path, key, _expected(expect_head))


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


def _read_and_verify(path: Path, key: bytes | None, expect: ExpectedHead | None) -> VerifyReport:
    """The whole chain, archived segments (agent/state/decision_archive.py) first, in one read transaction."""
    conn = _connect_readonly(path)
    if conn is None:
        return _verify_rows([], 0, key, expect)
    try:
        with read_tx(conn):
            if not _has_table(conn, "decisions"):
                return _verify_rows([], 0, key, expect)
            rows = conn.execute("SELECT * FROM decisions ORDER BY seq").fetchall()
            high_water = _sequence_high_water(conn) if _has_table(conn, "sqlite_sequence") else 0
            return verify_with_segments(conn, rows, high_water, key, expect)
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


def _sequence_high_water(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'decisions'").fetchone()
    return int(row[0]) if row else 0


def _row_fields(row: Mapping[str, Any] | sqlite3.Row) -> dict[str, Any]:
    fields = dict(row)
    fields.setdefault("mac", None)  # a log not opened for writing since the hmac chain came has no column
    for column in _JSON_COLUMNS:
        fields[column] = json.loads(fields[column])
    return fields


def _verify_rows(
    rows: Sequence[Mapping[str, Any]],
    high_water: int,
    key: bytes | None,
    expect: ExpectedHead | None = None,
    start: tuple[int, str, str | None] | None = None,
) -> VerifyReport:
    """The walk from genesis, or from `start` (seq, prev hash, prev mac: where an archived segment ends)."""
    prev_hash, prev_mac = GENESIS_HASH, None
    expected_seq, legacy_through, keyed_from = 1, 0, None
    if start is not None:
        expected_seq, prev_hash, prev_mac = start
        keyed_from = expected_seq - 1 if prev_mac else None
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


def verify_with_segments(
    conn: sqlite3.Connection, live: Sequence[Mapping[str, Any]], high_water: int, key: bytes | None, expect: Any
) -> VerifyReport:
    """The chain from genesis: archived segments, then the live rows. Call inside one read transaction."""
    archived, problem = archived_rows(conn, key)
    if problem:
        first = int(archived[-1]["seq"]) + 1 if archived else 1
        return VerifyReport(ok=False, checked=len(archived), reason=problem, first_bad_seq=first)
    return _verify_rows([*archived, *live], high_water, key, expect)
