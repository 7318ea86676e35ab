"""SQLite plumbing shared by the decision log, approvals and the token ledger (all in `<home>/state.db`).

Every thread gets its own connection (cached, see `connect`), so the stores are safe to use from many
threads and processes at once. Writers take `BEGIN IMMEDIATE`: the write lock is held from the first read, so a
read-check-write (next hash in the chain, budget left) can never interleave with another writer.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
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


MAX_CACHED_PER_THREAD = 8
_local = threading.local()


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to `path` for this thread, kept open between calls.

    Opening one per call cost ~10-20 ms: closing the last connection to a WAL database checkpoints and
    deletes the WAL file. The cache is per thread and per process (a forked child never reuses its
    parent's connection) and notices when the file at `path` was replaced.
    """
    yield _cached_connection(path)


def _cached_connection(path: Path) -> sqlite3.Connection:
    cache: OrderedDict[str, tuple[int, tuple[int, int], sqlite3.Connection]] | None = getattr(_local, "conns", None)
    if cache is None:
        cache = _local.conns = OrderedDict()
    key = str(path.resolve())
    identity = _file_identity(path)
    cached = cache.get(key)
    if cached is not None and cached[0] == os.getpid() and identity is not None and cached[1] == identity:
        cache.move_to_end(key)
        return cached[2]
    if cached is not None:
        _close_quietly(cache.pop(key)[2], owned=cached[0] == os.getpid())
    conn = _open(path)
    cache[key] = (os.getpid(), _file_identity(path) or (0, 0), conn)
    while len(cache) > MAX_CACHED_PER_THREAD:
        pid, _, old = cache.popitem(last=False)[1]
        _close_quietly(old, owned=pid == os.getpid())
    return conn


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=True)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    # In WAL mode NORMAL still survives any process crash; only a power cut may lose the newest commits.
    # FULL would fsync on every commit, which made each ledger reservation cost a disk flush.
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


_inherited: list[sqlite3.Connection] = []


def _close_quietly(conn: sqlite3.Connection, owned: bool) -> None:
    if owned:
        conn.close()
    else:  # inherited over fork: the parent's. Keep a reference so garbage collection never closes it here.
        _inherited.append(conn)


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
