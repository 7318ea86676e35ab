"""Writes a planned synthetic brain into a `BrainStore`, in big batches, with a progress bar on stderr."""

from __future__ import annotations

import time
from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from brain.schema import TABLES
from brain.seed_insight import insight_tables
from brain.seed_plan import (
    RECLUSTER_AGE_S,
    ScaleSpec,
    SeedReport,
    community_tables,
    entity_table,
    plan_entities,
    plan_relationships,
    record_batches,
)
from brain.store import META_LAST_RECLUSTER_AT, BrainStore


def write_brain(
    store: BrainStore, spec: ScaleSpec, scale: str, seed: int, *, embed_entities: bool, show_progress: bool
) -> SeedReport:
    started = now = time.time()
    timings: dict[str, float] = {}
    existing = set(store.table_names())
    for name in TABLES:
        if name in existing:
            store.db.drop_table(name)
    store.open_or_create()

    t0 = time.perf_counter()
    plan = plan_entities(scale, seed)
    relationships = plan_relationships(plan, spec, seed, now)
    timings["plan_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    vectors = None
    if embed_entities:
        from brain.embedder import load_embedder

        vectors = load_embedder().encode(list(plan.names))
    store.add("entities", entity_table(plan, seed, now, vectors))
    store.add("relationships", relationships)
    communities, wisdom = community_tables(plan, seed, now)
    store.add("communities", communities)
    store.add("wisdom", wisdom)
    names = dict(zip(plan.ids, plan.names, strict=True))
    for name, rows in insight_tables(scale, wisdom, communities, names, seed, now).items():
        store.add(name, rows)
    timings["graph_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    pending = _write_records(store, plan_records=(plan, spec, seed, now), show_progress=show_progress)
    timings["records_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    store.ensure_indexes()
    store.meta_set_many(
        {
            META_LAST_RECLUSTER_AT: now - RECLUSTER_AGE_S,
            "seed_scale": scale,
            "seed_seed": seed,
            "seeded_at": now,
        }
    )
    timings["index_s"] = time.perf_counter() - t0
    return SeedReport(
        uri=store.uri,
        scale=scale,
        seed=seed,
        records=spec.records,
        entities=len(plan.ids),
        relationships=relationships.num_rows,
        communities=communities.num_rows,
        wisdom=wisdom.num_rows,
        duplicates=len(plan.duplicates),
        duplicate_kinds=dict(Counter(d.kind for d in plan.duplicates)),
        decoy_pairs=len(plan.decoys),
        near_miss_pairs=len(plan.near_misses),
        records_pending_embed=pending,
        seconds=round(time.time() - started, 3),
        timings={k: round(v, 3) for k, v in timings.items()},
    )


def _write_records(store: BrainStore, plan_records: tuple, show_progress: bool) -> int:
    plan, spec, seed, now = plan_records
    pending = 0
    progress = Progress(
        TextColumn("seeding records"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not show_progress,
    )
    with progress:
        task = progress.add_task("records", total=spec.records)
        for table, batch_pending in record_batches(plan, spec, seed, now):
            store.add("records", table)
            pending += batch_pending
            progress.advance(task, table.num_rows)
    return pending
