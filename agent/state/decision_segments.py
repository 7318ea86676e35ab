"""Reading archived decision-log segments back for verification (agent/state/decision_archive.py writes them).

Kept apart from the archiver so the chain's checks (decision_chain.py) can read segments without importing it.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.state.decision_key import DECISION_KEY_ENV, DecisionKeyError
from core.statedb import canonical_json

SEGMENT_VERSION = "brainops-decision-segment/hmac-sha256/v1"


def segment_mac(key: bytes, segment: Mapping[str, Any]) -> str:
    fields = {k: segment[k] for k in ("segment", "first_seq", "last_seq", "last_hash", "last_mac", "sha256")}
    message = canonical_json({"v": SEGMENT_VERSION, **fields})
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def _has_segments(conn: sqlite3.Connection) -> bool:
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'decision_segments'"
    return conn.execute(sql).fetchone() is not None


def segments(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    if not _has_segments(conn):
        return []
    return [dict(r) for r in conn.execute("SELECT * FROM decision_segments ORDER BY segment")]


def read_segment(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def archived_rows(conn: sqlite3.Connection, key: bytes | None) -> tuple[list[dict[str, Any]], str | None]:
    """Every archived record, oldest first, read from the segment files the log lists; or the reason they
    cannot be trusted (a missing or changed file, a segment row not signed with this key)."""
    rows: list[dict[str, Any]] = []
    for seg in segments(conn):
        where = f"archived segment {seg['segment']} (records {seg['first_seq']}..{seg['last_seq']})"
        if key is None:
            raise DecisionKeyError(f"{where} is signed: set {DECISION_KEY_ENV} or decision_key_file to verify it")
        if not hmac.compare_digest(segment_mac(key, seg), str(seg["mac"])):
            return rows, f"{where}: its row in the log is not signed with the decision key (forged or edited)"
        path = Path(seg["path"])
        if not path.is_file():
            return rows, f"{where} is missing at {path}"
        if _file_sha256(path) != seg["sha256"]:
            return rows, f"{where} at {path} was changed since it was archived (sha256 differs)"
        found = read_segment(path)
        if len(found) != seg["records"] or not found or found[-1]["hash"] != seg["last_hash"]:
            return rows, f"{where} at {path} does not hold the records its row names"
        rows += found
    return rows, None
