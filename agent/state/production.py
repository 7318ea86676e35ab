"""What the pipeline had produced at the start of each UTC day, so cost per result compares like with like.

One row per UTC day: the first observation of the day stores the brain's counts (core.domain.PRODUCED), and a
window's production is the counts now less those of the window's first snapshot (agent/service/cost_report.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

from core.statedb import connect, init_schema, resolve_db_path, write_tx

_DDL = """
CREATE TABLE IF NOT EXISTS production_snapshots (
    day TEXT PRIMARY KEY,
    time REAL NOT NULL,
    counts TEXT NOT NULL
);
"""


def utc_day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


class ProductionSnapshots:
    def __init__(self, state_db: str | Path) -> None:
        self.path = resolve_db_path(state_db)
        init_schema(self.path, _DDL)

    def record(self, now: float, counts: Mapping[str, int]) -> None:
        """The day's first counts (later calls the same day change nothing)."""
        with connect(self.path) as conn, write_tx(conn):
            conn.execute(
                "INSERT OR IGNORE INTO production_snapshots(day, time, counts) VALUES (?, ?, ?)",
                (utc_day(now), now, json.dumps(dict(counts), sort_keys=True)),
            )

    def first_since(self, day: str) -> tuple[float, dict[str, int]] | None:
        """The earliest snapshot on or after UTC day `day` (YYYY-MM-DD)."""
        with connect(self.path) as conn:
            row = conn.execute(
                "SELECT time, counts FROM production_snapshots WHERE day >= ? ORDER BY day LIMIT 1", (day,)
            ).fetchone()
        return (float(row["time"]), {k: int(v) for k, v in json.loads(row["counts"]).items()}) if row else None
