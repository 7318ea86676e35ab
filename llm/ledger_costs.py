"""Dollars the ledger settled since a time, per tier: the LLM side of cost per result."""

from __future__ import annotations

from pathlib import Path

from core.statedb import connect, resolve_db_path


def settled_cost_by_tier(state_db: str | Path, since: float) -> dict[str, float]:
    path = resolve_db_path(state_db)
    if not path.is_file():
        return {}
    with connect(path) as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'ledger_entries'").fetchone() is None:
            return {}
        rows = conn.execute(
            "SELECT tier, COALESCE(SUM(cost), 0) FROM ledger_entries"
            " WHERE status = 'settled' AND settled_at >= ? GROUP BY tier ORDER BY tier",
            (since,),
        ).fetchall()
    return {str(r[0]): round(float(r[1]), 6) for r in rows}
