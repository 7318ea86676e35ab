"""What `BrainStore.stats` reports about reasoning and queries: the backlog of wisdom without a chain, the
yield per tier over a window, the queries not yet analyzed and the topics without coverage.

A brain made before these tables existed has none of them: every figure is then 0, never an error.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from core.domain import BrainStats, QueryStats, ReasoningStats, TierYield


class BrainStore(Protocol):
    """What these figures read of brain.store.BrainStore (which calls them: no import back)."""

    def table_names(self) -> list[str]: ...
    def fresh(self, name: str) -> Any: ...


REASONING_MAX_ATTEMPTS = 3  # a wisdom entry whose answers failed validation this often is given up on
REASONING_YIELD_WINDOW_S = 86_400.0  # attempts counted for the yield per tier


def read_or_none(store: BrainStore, name: str, columns: list[str], where: str | None = None) -> pa.Table | None:
    """The table's columns at its latest version; None when the brain predates the table."""
    if name not in store.table_names():
        return None
    return store.fresh(name).to_lance().to_table(columns=columns, filter=where)


def reasoning_todo(store: BrainStore) -> list[tuple[str, str, int]]:
    """(wisdom id, community id, attempts so far) of wisdom entries without a chain and with attempts left."""
    wisdom = store.fresh("wisdom").to_lance().to_table(columns=["id", "community_id"])
    chains = read_or_none(store, "reasoning_chains", ["wisdom_id"])
    attempts = read_or_none(store, "reasoning_attempts", ["wisdom_id"])
    done = set(chains.column(0).to_pylist()) if chains is not None else set()
    tries: dict[str, int] = {}
    if attempts is not None:
        for wid in attempts.column(0).to_pylist():
            tries[wid] = tries.get(wid, 0) + 1
    rows = zip(wisdom.column("id").to_pylist(), wisdom.column("community_id").to_pylist(), strict=True)
    return sorted(
        (wid, cid, tries.get(wid, 0))
        for wid, cid in rows
        if wid not in done and tries.get(wid, 0) < REASONING_MAX_ATTEMPTS
    )


def reasoning_stats(store: BrainStore, now: float | None = None) -> tuple[ReasoningStats, int]:
    """The reasoning figures and the backlog (wisdom entries still to turn into a chain)."""
    now = time.time() if now is None else now
    since = now - REASONING_YIELD_WINDOW_S
    attempts = read_or_none(store, "reasoning_attempts", ["tier", "valid", "cost"], where=f"created_at >= {since!r}")
    tiers: list[TierYield] = []
    if attempts is not None and attempts.num_rows:
        grouped = attempts.group_by("tier").aggregate([("valid", "count"), ("valid", "sum"), ("cost", "sum")])
        for row in grouped.to_pylist():
            tiers.append(
                TierYield(
                    tier=str(row["tier"]),
                    attempts=int(row["valid_count"]),
                    valid=int(row["valid_sum"] or 0),
                    cost=round(float(row["cost_sum"] or 0.0), 6),
                )
            )
    chains = read_or_none(store, "reasoning_chains", ["id"])
    runbooks = read_or_none(store, "runbooks", ["id"])
    stats = ReasoningStats(
        chains=chains.num_rows if chains is not None else 0,
        runbooks=runbooks.num_rows if runbooks is not None else 0,
        window_s=REASONING_YIELD_WINDOW_S,
        tiers=tuple(sorted(tiers, key=lambda t: t.tier)),
    )
    return stats, len(reasoning_todo(store))


def query_stats(store: BrainStore) -> QueryStats:
    queries = read_or_none(store, "queries", ["topic_id"])
    priorities = read_or_none(store, "priorities", ["id"])
    if queries is None:
        return QueryStats()
    return QueryStats(
        total=queries.num_rows,
        unanalyzed=int(pc.sum(pc.is_null(queries.column(0))).as_py() or 0),
        topics_without_coverage=priorities.num_rows if priorities is not None else 0,
    )


def priority_communities(store: BrainStore) -> list[str]:
    """Leaf community ids the priorities name, the worst answered topic first (lowest mean best score)."""
    rows = read_or_none(store, "priorities", ["community_ids", "best_score", "queries"])
    if rows is None:
        return []
    ranked = sorted(rows.to_pylist(), key=lambda r: (r["best_score"], -r["queries"]))
    return list(dict.fromkeys(cid for r in ranked for cid in (r["community_ids"] or ())))


def with_insight_stats(store: BrainStore, base: BrainStats, now: float) -> BrainStats:
    """`base` with the reasoning and query figures, and their backlogs under pending["reasoning"/"queries"]."""
    reasoning, todo = reasoning_stats(store, now)
    queries = query_stats(store)
    pending = {**base.pending, "reasoning": todo, "queries": queries.unanalyzed}
    return base.model_copy(update={"reasoning": reasoning, "queries": queries, "pending": pending})
