"""SQLite plumbing shared by the decision log, approvals and the token ledger (all in `<home>/state.db`).

Every operation opens its own short-lived connection, so the stores are safe to use from many threads
and processes at once. Writers take `BEGIN IMMEDIATE`: the write lock is held from the first read, so a
read-check-write (next hash in the chain, budget left) can never interleave with another writer.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_S = 30.0


def canonical_json(value: Any) -> str:
    """One byte-exact JSON form per value: what hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolve_db_path(db_path: str | Path) -> Path:
    path = Path(db_path)
    if str(db_path) in ("", ":memory:"):
        raise ValueError("state stores need a file path (each call opens its own connection)")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    # In WAL mode NORMAL still survives any process crash; only a power cut may lose the newest commits.
    # FULL would fsync on every commit, which made each ledger reservation cost a disk flush.
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def write_tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def read_tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction: several SELECTs see one consistent snapshot."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def init_schema(path: Path, ddl: str) -> None:
    """Create tables once; safe when several processes open a fresh database at the same moment."""
    with connect(path) as conn:
        _enable_wal(conn)
        with write_tx(conn):
            for statement in _split_statements(ddl):
                conn.execute(statement)


def _enable_wal(conn: sqlite3.Connection) -> None:
    # Switching to WAL needs a moment without other connections; the busy handler does not always
    # cover it, so retry briefly. WAL lets readers (CLI, metrics) run while the agent writes.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _split_statements(ddl: str) -> list[str]:
    statements: list[str] = []
    current = ""
    for line in ddl.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement: {current.strip()[:80]}")
    return statements
