"""A short history of backlog per stage, for processing rates (net items drained per minute)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

from core.statedb import connect, init_schema, resolve_db_path, write_tx

_DDL = """
CREATE TABLE IF NOT EXISTS stage_history (
    time REAL NOT NULL,
    stage TEXT NOT NULL,
    pending INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS stage_history_time ON stage_history(stage, time);
"""


class StageHistory:
    def __init__(self, db_path: str | Path, keep_s: float = 6 * 3600.0) -> None:
        self.path = resolve_db_path(db_path)
        self.keep_s = keep_s
        init_schema(self.path, _DDL)

    def add(self, now: float, pending: Mapping[str, int]) -> None:
        with connect(self.path) as conn, write_tx(conn):
            conn.executemany(
                "INSERT INTO stage_history(time, stage, pending) VALUES (?, ?, ?)",
                [(now, stage, int(n)) for stage, n in pending.items()],
            )
            conn.execute("DELETE FROM stage_history WHERE time < ?", (now - self.keep_s,))

    def rates(self, now: float, window_s: float = 300.0) -> dict[str, float]:
        """Net drain per minute over the window: (oldest pending - newest pending) / minutes.

        Negative means the backlog grows faster than the workers drain it."""
        out: dict[str, float] = {}
        with connect(self.path) as conn:
            rows = conn.execute(
                "SELECT stage, MIN(time) AS t0, MAX(time) AS t1 FROM stage_history WHERE time >= ? GROUP BY stage",
                (now - window_s,),
            ).fetchall()
            for row in rows:
                if row["t1"] <= row["t0"]:
                    continue
                first = _pending_at(conn, row["stage"], row["t0"])
                last = _pending_at(conn, row["stage"], row["t1"])
                out[row["stage"]] = (first - last) / ((row["t1"] - row["t0"]) / 60.0)
        return out

    def series(self, stage: str, since: float) -> list[tuple[float, int]]:
        with connect(self.path) as conn:
            rows = conn.execute(
                "SELECT time, pending FROM stage_history WHERE stage = ? AND time >= ? ORDER BY time",
                (stage, since),
            ).fetchall()
        return [(r["time"], r["pending"]) for r in rows]


def _pending_at(conn: sqlite3.Connection, stage: str, t: float) -> int:
    row = conn.execute("SELECT pending FROM stage_history WHERE stage = ? AND time = ? LIMIT 1", (stage, t)).fetchone()
    return int(row["pending"]) if row else 0
