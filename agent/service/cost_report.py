"""Cost per result: what the pipeline produced and what it cost, today and this month (UTC).

Produced: records processed (extracted), entities, wisdom entries, reasoning chains and runbooks (their
tables are counted when the brain has them, else 0, and `absent_tables` says so). Cost: the ledger's settled
LLM dollars per tier, plus compute: every configured host's `cost_per_hour` (policy `hosts:`) for the
window's hours. A window runs from its first production snapshot (agent/state/production.py, the first tick of
the day or month) to now, so both sides cover the same time.

STATUS.json (`write_status`) carries these figures for dashboards and scripts; its schema is in
docs/OPERATIONS.md ("STATUS.json").
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.domain import PRODUCED, BrainStats, CostStats, CostWindow, Observation

if TYPE_CHECKING:
    from core.settings import Settings

EXTRA_TABLES = {"chains": "reasoning_chains", "runbooks": "runbooks"}  # produced kind -> brain table
STATUS_VERSION = 1


def brain_counts(brain: BrainStats, extra: Mapping[str, int]) -> dict[str, int]:
    processed = max(0, brain.records - brain.pending.get("extract", 0))
    return {"records": processed, "entities": brain.entities, "wisdom": brain.wisdom, **extra}


def light_brain_stats(brain_path: str) -> BrainStats:
    """Just the counts cost per result needs (no dedup or community scans): for `brainops budget`."""
    from brain.store import BrainStore

    store = BrainStore(brain_path)
    if not store.exists():
        return BrainStats(error=f"no brain at {brain_path}")
    records = store.fresh("records")
    return BrainStats(
        records=records.count_rows(),
        entities=store.fresh("entities").count_rows(),
        wisdom=store.fresh("wisdom").count_rows(),
        pending={"extract": records.count_rows("extracted = false OR extracted IS NULL")},
    )


def extra_counts(brain_path: str) -> tuple[dict[str, int], tuple[str, ...]]:
    """Rows of the optional tables (chains, runbooks) and which of them the brain does not have."""
    from brain.store import BrainStore

    store = BrainStore(brain_path)
    names = set(store.table_names()) if store.exists() else set()
    counts: dict[str, int] = {}
    absent: list[str] = []
    for kind, table in EXTRA_TABLES.items():
        if table in names:
            counts[kind] = int(store.db.open_table(table).count_rows())
        else:
            counts[kind], absent = 0, [*absent, kind]
    return counts, tuple(absent)


def _window(
    settings: Settings,
    start: tuple[float, dict[str, int]] | None,
    now_counts: Mapping[str, int],
    host_costs: Mapping[str, float],
    now: float,
) -> CostWindow | None:
    from llm.ledger_costs import settled_cost_by_tier

    if start is None:
        return None
    since, then = start
    hours = max(0.0, now - since) / 3600.0
    by_tier = settled_cost_by_tier(settings.state_db, since)
    return CostWindow(
        since=since,
        hours=round(hours, 4),
        produced={k: max(0, int(now_counts.get(k, 0)) - int(then.get(k, 0))) for k in PRODUCED},
        llm_cost=round(sum(by_tier.values()), 6),
        llm_cost_by_tier=by_tier,
        compute_cost=round(sum(host_costs.values()) * hours, 6),
    )


def cost_stats(
    settings: Settings,
    brain: BrainStats,
    host_costs: Mapping[str, float],
    now: float,
    *,
    record: bool = True,
) -> CostStats:
    """Today's and the month's figures; `record` stores today's first snapshot (the tick does, reports do not)."""
    from agent.state.production import ProductionSnapshots, utc_day

    if brain.error:
        return CostStats(error=f"brain unreadable: nothing produced is counted ({brain.error[:200]})")
    extra, absent = extra_counts(settings.brain_path)
    counts = brain_counts(brain, extra)
    snapshots = ProductionSnapshots(settings.state_db)
    if record:
        snapshots.record(now, counts)
    today = utc_day(now)
    day = _window(settings, snapshots.first_since(today), counts, host_costs, now)
    month = _window(settings, snapshots.first_since(today[:8] + "01"), counts, host_costs, now)
    return CostStats(totals=counts, day=day, month=month, absent_tables=absent)


def per_result(window: CostWindow | None) -> dict[str, float | None]:
    if window is None:
        return {"per_1k_records": None, "per_wisdom": None, "per_chain": None}
    return {
        "per_1k_records": window.cost_per("records", 1000),
        "per_wisdom": window.cost_per("wisdom"),
        "per_chain": window.cost_per("chains"),
    }


def window_document(w: CostWindow | None) -> dict[str, Any] | None:
    """One window as STATUS.json and `brainops budget --json` show it: its fields, total and per-result figures."""
    if w is None:
        return None
    return {**w.model_dump(mode="json"), "total_cost": round(w.total_cost, 6), **per_result(w)}


def status_document(obs: Observation, now: float) -> dict[str, Any]:
    """STATUS.json's content (docs/OPERATIONS.md, "STATUS.json")."""
    window = window_document

    storage = obs.storage
    return {
        "version": STATUS_VERSION,
        "generated_at": now,
        "generated_at_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "produced_total": dict(obs.cost.totals),
        "absent_tables": list(obs.cost.absent_tables),
        "cost": {"day": window(obs.cost.day), "month": window(obs.cost.month), "error": obs.cost.error},
        "budget": {"cost_today": obs.budget.cost_today, "daily_cost_cap": obs.budget.daily_cost_cap},
        "storage": {
            "host": storage.host,
            "disk_percent": storage.disk_percent,
            "reclaimable_bytes": {k: t.bytes for k, t in storage.reclaimable.items()},
            "error": storage.error,
        },
    }


def write_status(path: Path, document: Mapping[str, Any]) -> None:
    """Atomically: readers see the previous file or this one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
