"""Per (kind, host) correction factors for the rule planner's throughput estimates, learnt from verified and missed
scaling actions (agent/service/verification.py) and kept in state.db, so every process and restart plans with them.

A factor multiplies the measured per-worker throughput the planner sizes and predicts with: 0.5 says scaling
actions on that host drained half as fast as predicted. Each verdict moves it halfway towards what it showed.
"""

from __future__ import annotations

from pathlib import Path

from core.statedb import connect, init_schema, resolve_db_path, write_tx

MIN_FACTOR, MAX_FACTOR = 0.2, 5.0
LEARNING_RATE = 0.5

_DDL = """
CREATE TABLE IF NOT EXISTS estimate_corrections (
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    factor REAL NOT NULL,
    samples INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (kind, host)
);
"""


class CorrectionStore:
    def __init__(self, db_path: str | Path) -> None:
        self.path = resolve_db_path(db_path)
        init_schema(self.path, _DDL)

    def factors(self) -> dict[tuple[str, str], float]:
        with connect(self.path) as conn:
            rows = conn.execute("SELECT kind, host, factor FROM estimate_corrections").fetchall()
        return {(r["kind"], r["host"]): float(r["factor"]) for r in rows}

    def learn(self, kind: str, host: str, ratio: float, now: float) -> float:
        """One outcome: observed / predicted throughput (against the factor in force when it was predicted).
        Returns the new factor."""
        with connect(self.path) as conn, write_tx(conn):
            row = conn.execute(
                "SELECT factor, samples FROM estimate_corrections WHERE kind = ? AND host = ?", (kind, host)
            ).fetchone()
            old, samples = (float(row["factor"]), int(row["samples"])) if row else (1.0, 0)
            seen = min(MAX_FACTOR, max(MIN_FACTOR, old * ratio))
            new = round(min(MAX_FACTOR, max(MIN_FACTOR, old + LEARNING_RATE * (seen - old))), 4)
            conn.execute(
                "INSERT INTO estimate_corrections(kind, host, factor, samples, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(kind, host) DO UPDATE SET factor = excluded.factor, samples = excluded.samples,"
                " updated_at = excluded.updated_at",
                (kind, host, new, samples + 1, now),
            )
        return new
