"""Build, refresh and tidy the records' vector index (what the `optimize_index` job does; workers/index.py).

One pass, idempotent: it measures (brain/index_probe.py), then builds the IVF_PQ index when there is none,
retrains it from scratch when recall fell under the policy's minimum or the table outgrew the rows it was
trained on, and always runs `Table.optimize`: small fragments merged, rows appended since the index was built
added to it, and versions older than `keep_versions_s` pruned (Lance never removes the current version, and
the minimum age keeps what concurrent readers still use). Then it measures again. A second run on a healthy
index only compacts and prunes what there is.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from brain.index_probe import METRIC, VECTOR_COLUMN, ProbeSettings, SearchSettings, probe, table_figures
from brain.lance_ops import with_conflict_retry
from core.domain import IndexHealth, IndexRun

if TYPE_CHECKING:
    from lancedb.table import Table

    from brain.store import BrainStore

META_INDEX_TRAINED_ROWS = "index_trained_rows"  # table rows when the vector index was last trained
META_INDEX_LAST_RUN = "index_last_run"  # JSON of core.domain.IndexRun: the last job's before and after


@dataclass(frozen=True)
class BuildSettings:
    rows_per_partition: int = 4_096  # IVF partitions = rows / this (coarse partitions train fast on few cores)
    num_sub_vectors: int = 48  # PQ sub-vectors: 384 / 48 = 8 dimensions each
    max_iterations: int = 50  # k-means iterations when training
    recall_min: float = 0.95  # under this the index is retrained, not only refreshed
    rebuild_growth: float = 4.0  # retrain once the table holds this many times the rows it was trained on
    keep_versions_s: float = 3600.0  # versions younger than this stay (readers may still use them)


def partitions_for(rows: int, build: BuildSettings) -> int:
    return max(1, round(rows / build.rows_per_partition))


def train(tbl: Table, rows: int, build: BuildSettings) -> str:
    """Train (or retrain, replacing) the IVF_PQ index on records.vector; returns what it did."""
    from lancedb.index import IvfPq

    parts = partitions_for(rows, build)
    config = IvfPq(
        distance_type=METRIC,
        num_partitions=parts,
        num_sub_vectors=build.num_sub_vectors,
        max_iterations=build.max_iterations,
    )
    t0 = time.perf_counter()
    with_conflict_retry(lambda: tbl.create_index(VECTOR_COLUMN, config=config, replace=True))
    return f"IVF_PQ ({parts} partitions, {build.num_sub_vectors} sub-vectors) in {time.perf_counter() - t0:.1f} s"


def index_step(store: BrainStore, before: IndexHealth, build: BuildSettings, probe_cfg: ProbeSettings) -> str | None:
    """Build or retrain when due; None when the index only needs the refresh `optimize` gives it."""
    if before.rows < probe_cfg.min_rows:
        return f"no index: {before.rows:,} records is under {probe_cfg.min_rows:,} (exact search is fast enough)"
    tbl = store.fresh("records")
    trained = store.meta_float(META_INDEX_TRAINED_ROWS)
    if not before.indexed:
        why = "built"
    elif before.recall_at_10 is not None and before.recall_at_10 < build.recall_min:
        why = f"retrained (recall@10 {before.recall_at_10:.3f} < {build.recall_min})"
    elif trained and before.rows > build.rebuild_growth * trained:
        why = f"retrained ({before.rows:,} rows, trained on {int(trained):,})"
    else:
        return None
    done = train(tbl, before.rows, build)
    store.meta_set(META_INDEX_TRAINED_ROWS, before.rows)
    return f"{why} {done}"


def optimize_index(
    store: BrainStore,
    build: BuildSettings,
    probe_cfg: ProbeSettings,
    search: SearchSettings,
    worker_id: str | None = None,
) -> IndexRun:
    """The job's one pass (module docstring); stores and returns its IndexRun."""
    started = time.time()
    before = probe(store, probe_cfg, search)
    steps = [step] if (step := index_step(store, before, build, probe_cfg)) else []
    tbl = store.fresh("records")
    versions, latest, fragments = len(tbl.list_versions()), tbl.version, table_figures(tbl)["fragments"]

    def tidy() -> None:
        tbl.checkout_latest()
        tbl.optimize(cleanup_older_than=timedelta(seconds=build.keep_versions_s))

    with_conflict_retry(tidy)
    tbl.checkout_latest()
    figures = table_figures(tbl)
    if figures["fragments"] != fragments:
        steps.append(f"compacted {fragments} -> {figures['fragments']} fragments")
    if before.indexed and before.unindexed_rows and not step:
        steps.append(f"indexed {before.unindexed_rows:,} rows appended since the last build")
    after = probe(store, probe_cfg, search)
    run = IndexRun(
        run_id=uuid.uuid4().hex,
        worker_id=worker_id,
        started_at=started,
        finished_at=time.time(),
        steps=tuple(steps),
        versions_pruned=max(0, versions + (tbl.version - latest) - figures["versions"]),
        before=before,
        after=after,
    )
    store.meta_set(META_INDEX_LAST_RUN, run.model_dump_json())
    return run


def last_run(store: BrainStore) -> IndexRun | None:
    raw = store.meta_get(META_INDEX_LAST_RUN)
    if not raw:
        return None
    try:
        return IndexRun.model_validate_json(raw)
    except ValueError:  # written by another version of brainops
        return None


def drop_vector_index(store: BrainStore, table: str) -> str:
    """Drop the vector index on `table`'s vector column (the rollback of an index that made search worse):
    search goes back to exact. Dropping what is already gone says so and changes nothing."""
    tbl = store.fresh(table)
    names = [ix.name for ix in tbl.list_indices() if VECTOR_COLUMN in ix.columns]
    for name in names:
        with_conflict_retry(partial(tbl.drop_index, name))
    if not names:
        return f"{table} has no vector index: nothing dropped"
    if table == "records":
        store.meta_set(META_INDEX_TRAINED_ROWS, 0)  # the next build trains from scratch
    return f"dropped the vector index {', '.join(names)} on {table}: search is exact again"
