"""Archiving old decision records to segment files, with the chain verifiable across segments and the live log.

A segment is a gzipped JSON-lines file of records exactly as the log stores them (seq, hash, prev_hash, mac
and every field), so its records verify with the same walk as the live ones: verification reads every
segment, in order, then the live rows, as one chain (`archived_rows`). Each segment also has a row in
`decision_segments` (its seq range, its last record's hash and mac, the file's sha256 and path), signed with
the decision key, so nobody without the key can pass a deletion off as an archive.

Nothing leaves the log before its copy is safe: the segment is written to a temporary name, fsynced, renamed,
its directory fsynced, then read back and verified; only then, in one transaction, is its row inserted and
its records deleted (the delete trigger lets through only records a segment row covers). A crash between
the two steps leaves the records in the log and a segment file that the next run rewrites under the same
name. The newest record is never archived, so the log always holds the chain's head.
"""

from __future__ import annotations

import gzip
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.state.decision_chain import GENESIS_HASH, _verify_rows
from agent.state.decision_segments import _file_sha256, read_segment, segment_mac, segments
from core import faults
from core.statedb import canonical_json, connect, read_tx, write_tx

MAX_SEGMENT_RECORDS = 50_000
ROW_OVERHEAD_BYTES = 200  # what a record costs beyond its text columns (ids, hashes, index entries)

_DDL = """
CREATE TABLE IF NOT EXISTS decision_segments (
    segment INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    last_mac TEXT,
    records INTEGER NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at REAL NOT NULL,
    mac TEXT NOT NULL
);
"""
# The log's delete trigger, relaxed to let through exactly the records a segment row covers.
_TRIGGER = """
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
WHEN OLD.seq > (SELECT COALESCE(MAX(last_seq), 0) FROM decision_segments)
BEGIN SELECT RAISE(ABORT, 'decision log is append-only: DELETE refused'); END;
"""


class ArchiveError(RuntimeError):
    """The records could not be archived safely; nothing was deleted."""


@dataclass(frozen=True)
class ArchiveReport:
    records: int
    first_seq: int = 0
    last_seq: int = 0
    path: str = ""
    bytes_written: int = 0


def prepare(path: Path) -> None:
    """The segments table, and the delete trigger that lets archived records go (idempotent)."""
    with connect(path) as conn, write_tx(conn):
        conn.execute(_DDL)
        row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'decisions_no_delete'")
        sql = (row.fetchone() or [""])[0] or ""
        if "decision_segments" not in sql:
            conn.execute("DROP TRIGGER IF EXISTS decisions_no_delete")
            conn.execute(_TRIGGER)


# ---------------------------------------------------------------- archiving


def archivable(conn: sqlite3.Connection, before: float) -> tuple[int, int, float | None]:
    """(records, approximate bytes, oldest time) of the records `archive` would move: older than `before`,
    never the newest."""
    sql = (
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(args) + LENGTH(rationale) + LENGTH(outcome) + LENGTH(extra)"
        " + LENGTH(planner) + LENGTH(reasons) + ?), 0), MIN(time) FROM decisions"
        " WHERE time < ? AND seq < (SELECT MAX(seq) FROM decisions)"
    )
    count, size, oldest = conn.execute(sql, (ROW_OVERHEAD_BYTES, before)).fetchone()
    return int(count), int(size), None if oldest is None else float(oldest)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_segment(target: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(filename=target.stem, mode="wb", fileobj=raw, mtime=0) as gz:
            for row in rows:
                gz.write((canonical_json(dict(row)) + "\n").encode("utf-8"))
        raw.flush()
        os.fsync(raw.fileno())
    tmp.replace(target)
    _fsync_dir(target.parent)


def _chain_start(seg: Mapping[str, Any] | None) -> tuple[int, str]:
    return (int(seg["last_seq"]) + 1, str(seg["last_hash"])) if seg else (1, GENESIS_HASH)


def archive(db_path: Path, archive_dir: Path, before: float, key: bytes, now: float) -> ArchiveReport:
    """Move the records older than `before` (never the newest) to one segment file; see the module doc."""
    prepare(db_path)
    with connect(db_path) as conn, read_tx(conn):
        done = segments(conn)
        sql = "SELECT * FROM decisions WHERE time < ? AND seq < (SELECT MAX(seq) FROM decisions) ORDER BY seq LIMIT ?"
        rows = [dict(r) for r in conn.execute(sql, (before, MAX_SEGMENT_RECORDS))]
    if not rows:
        return ArchiveReport(0)
    first_seq, start_hash = _chain_start(done[-1] if done else None)
    if int(rows[0]["seq"]) != first_seq or rows[0]["prev_hash"] != start_hash:
        raise ArchiveError(f"record #{rows[0]['seq']} does not continue the archived chain at #{first_seq}")
    # A gap (a record newer than `before` between older ones) ends the segment: segments are contiguous.
    contiguous = [r for i, r in enumerate(rows) if int(r["seq"]) == first_seq + i]
    target = archive_dir / f"decisions-{first_seq:012d}.jsonl.gz"
    _write_segment(target, contiguous)
    _check_written(target, contiguous, done, key)
    faults.point("archive_before_delete")
    last = contiguous[-1]
    seg = {
        "segment": len(done) + 1,
        "first_seq": first_seq,
        "last_seq": int(last["seq"]),
        "last_hash": last["hash"],
        "last_mac": last.get("mac"),
        "records": len(contiguous),
        "path": str(target.resolve()),
        "sha256": _file_sha256(target),
        "created_at": now,
    }
    seg["mac"] = segment_mac(key, seg)
    with connect(db_path) as conn, write_tx(conn):
        columns, marks = ", ".join(seg), ", ".join("?" for _ in seg)
        conn.execute(f"INSERT INTO decision_segments ({columns}) VALUES ({marks})", list(seg.values()))
        conn.execute("DELETE FROM decisions WHERE seq BETWEEN ? AND ?", (first_seq, seg["last_seq"]))
    return ArchiveReport(len(contiguous), first_seq, int(seg["last_seq"]), str(target), target.stat().st_size)


def _check_written(target: Path, rows: Sequence[Mapping[str, Any]], done: list[dict[str, Any]], key: bytes) -> None:
    """Read the segment back: the same records, and the chain verifies through them from the last segment."""
    back = read_segment(target)
    if back != [dict(r) for r in rows]:
        raise ArchiveError(f"segment {target} does not read back as written; nothing was deleted")
    last = done[-1] if done else None
    start = (int(last["last_seq"]) + 1, str(last["last_hash"]), last["last_mac"]) if last else None
    report = _verify_rows(back, 0, key, start=start)
    if not report.ok:
        raise ArchiveError(f"the records to archive do not verify ({report.reason}); nothing was deleted")
