"""The dispatcher's memory in SQLite: desired worker counts and one row per worker slot it ever made.

Slot states: active (a process should be alive), draining (asked to stop), backoff (crashed, waiting to
restart), fatal (crashed too often; needs `clear_fatal`), and the ended states retired (scaled down or
exited cleanly), done (one-shot finished) and failed (one-shot crashed).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from fleet.hosts import WorkerOptions

LIVE_STATES = ("active", "draining", "backoff", "fatal")
ENDED_STATES = ("retired", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS desired (
    kind TEXT NOT NULL, host TEXT NOT NULL, count INTEGER NOT NULL, options TEXT NOT NULL,
    updated_at REAL NOT NULL, PRIMARY KEY (kind, host));
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, host TEXT NOT NULL, options TEXT NOT NULL,
    one_shot INTEGER NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL, started_at REAL,
    pid INTEGER, restarts TEXT NOT NULL, total_restarts INTEGER NOT NULL, next_start_at REAL,
    last_exit INTEGER, ended_at REAL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS workers_by_state ON workers (state, kind, host);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Desired:
    kind: str
    host: str
    count: int
    options: WorkerOptions


@dataclass(frozen=True)
class WorkerRow:
    id: str
    kind: str
    host: str
    options: WorkerOptions
    one_shot: bool
    state: str
    created_at: float
    started_at: float | None = None
    pid: int | None = None
    restarts: tuple[float, ...] = ()  # restart times, pruned to the back-off window
    total_restarts: int = 0
    next_start_at: float | None = None
    last_exit: int | None = None
    ended_at: float | None = None
    seq: int = 0  # creation order; breaks created_at ties ("newest first")

    def evolve(self, **changes: object) -> WorkerRow:
        return replace(self, **changes)  # type: ignore[arg-type]


class Registry:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10.0)
        try:
            db.executescript(_SCHEMA)
        finally:
            db.close()

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """One connection per call: safe from any thread (the scheduler runs jobs in a pool)."""
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    # ------------------------------------------------------------ desired

    def set_desired(self, d: Desired, now: float) -> None:
        with self.connect() as db:
            db.execute(
                "INSERT INTO desired VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, host) DO UPDATE SET "
                "count = excluded.count, options = excluded.options, updated_at = excluded.updated_at",
                (d.kind, d.host, d.count, json.dumps(d.options.to_json()), now),
            )

    def desired(self) -> list[Desired]:
        with self.connect() as db:
            rows = db.execute("SELECT kind, host, count, options FROM desired ORDER BY kind, host").fetchall()
        return [
            Desired(r["kind"], r["host"], r["count"], WorkerOptions.from_json(json.loads(r["options"]))) for r in rows
        ]

    # ------------------------------------------------------------ workers

    def next_seq(self, name: str) -> int:
        with self.connect() as db:
            db.execute("INSERT INTO counters VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1", (name,))
            return int(db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0])

    def save(self, w: WorkerRow) -> None:
        with self.connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO workers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    w.id,
                    w.kind,
                    w.host,
                    json.dumps(w.options.to_json()),
                    int(w.one_shot),
                    w.state,
                    w.created_at,
                    w.started_at,
                    w.pid,
                    json.dumps(list(w.restarts)),
                    w.total_restarts,
                    w.next_start_at,
                    w.last_exit,
                    w.ended_at,
                    w.seq,
                ),
            )

    def get(self, worker_id: str) -> WorkerRow | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM workers WHERE id = ?", (worker_id,)).fetchone()
        return None if row is None else _row(row)

    def live(self) -> list[WorkerRow]:
        marks = ", ".join("?" * len(LIVE_STATES))
        with self.connect() as db:
            rows = db.execute(
                f"SELECT * FROM workers WHERE state IN ({marks}) ORDER BY created_at, seq", LIVE_STATES
            ).fetchall()
        return [_row(r) for r in rows]

    def recent_ended(self, limit: int) -> list[WorkerRow]:
        marks = ", ".join("?" * len(ENDED_STATES))
        with self.connect() as db:
            rows = db.execute(
                f"SELECT * FROM workers WHERE state IN ({marks}) ORDER BY ended_at DESC LIMIT ?",
                (*ENDED_STATES, limit),
            ).fetchall()
        return [_row(r) for r in rows]


def _row(r: sqlite3.Row) -> WorkerRow:
    return WorkerRow(
        id=r["id"],
        kind=r["kind"],
        host=r["host"],
        options=WorkerOptions.from_json(json.loads(r["options"])),
        one_shot=bool(r["one_shot"]),
        state=r["state"],
        created_at=r["created_at"],
        started_at=r["started_at"],
        pid=r["pid"],
        restarts=tuple(json.loads(r["restarts"])),
        total_restarts=r["total_restarts"],
        next_start_at=r["next_start_at"],
        last_exit=r["last_exit"],
        ended_at=r["ended_at"],
        seq=r["seq"],
    )
