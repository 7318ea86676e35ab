"""Every tick's observation, stored by its digest, so `brainops eval replay` can re-run decisions on it.

Decision records carry `observation_digest`; this archive (same `<home>/state.db`) maps it back to the
full Observation. Identical observations share one row.
"""

from __future__ import annotations

from pathlib import Path

from core.domain import Observation
from core.statedb import connect, init_schema, resolve_db_path, write_tx

_DDL = """
CREATE TABLE IF NOT EXISTS observations (
    digest TEXT PRIMARY KEY,
    time REAL NOT NULL,
    body TEXT NOT NULL
);
"""


class ObservationArchive:
    def __init__(self, state_db: str | Path) -> None:
        self.path = resolve_db_path(state_db)
        init_schema(self.path, _DDL)

    def put(self, obs: Observation) -> str:
        """Store the observation (idempotent on its digest); returns the digest."""
        digest = obs.digest()
        with connect(self.path) as conn, write_tx(conn):
            conn.execute(
                "INSERT OR IGNORE INTO observations(digest, time, body) VALUES (?, ?, ?)",
                (digest, obs.time, obs.model_dump_json()),
            )
        return digest

    def get(self, digest: str) -> Observation | None:
        with connect(self.path) as conn:
            row = conn.execute("SELECT body FROM observations WHERE digest = ?", (digest,)).fetchone()
        return Observation.model_validate_json(row["body"]) if row else None

    def count(self) -> int:
        with connect(self.path) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM observations").fetchone()[0])
