"""Dedup worker: one pass of entity resolution over the live entities, merges logged and reversible.

`run_dedup` is the whole pass (embed missing name vectors -> match -> group -> merge); `DedupWorker.step`
runs it under `workers.runtime.WorkerRun` so the dispatcher sees a status file and SIGTERM drains.
Meta keys written (see workers.store): dedup_candidates (what a dry run would absorb; 0 after a real run),
dedup_dry_run_at, relationships_rewired_since_recluster (+= relationships repointed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from brain.store import BrainStore
from workers.dedup_match import MatchConfig
from workers.dedup_store import (
    DedupReport,
    Encoder,
    ProgressHook,
    apply_merges,
    community_labels,
    default_encoder,
    embed_missing,
    load_live_entities,
    plan_merges,
    record_run_meta,
    relationship_degree,
    score_against_truth,
    store_vectors,
)
from workers.runtime import WorkerRun, single_pass


@dataclass(frozen=True)
class DedupConfig:
    brain: str
    dry_run: bool = False
    loop: bool = False
    match: MatchConfig = field(default_factory=MatchConfig)

    def __post_init__(self) -> None:
        if not self.brain:
            raise ValueError("--brain is required")


def run_dedup(
    store: BrainStore,
    *,
    dry_run: bool = False,
    match: MatchConfig | None = None,
    encoder: Encoder | None = None,
    progress: ProgressHook | None = None,
) -> DedupReport:
    """One full pass. A dry run embeds in memory and writes only the candidate count to meta."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    entities = load_live_entities(store)
    degree = relationship_degree(store)
    context = community_labels(store, entities.ids)
    timings["load_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    embedded = []
    if not entities.has_vector.all():
        embedded = list(embed_missing(entities, encoder or default_encoder(), progress=progress))
    timings["embed_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    merges, n_pairs = plan_merges(entities, degree, match or MatchConfig(), context)
    timings["match_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    merge_ids: list[str] = []
    repointed = 0
    if not dry_run:
        import numpy as np

        store_vectors(store, entities, np.asarray(embedded, dtype=np.int64))
        merge_ids, repointed = apply_merges(store, merges)
    report = DedupReport(
        live_entities=len(entities.ids),
        embedded=len(embedded),
        candidate_pairs=n_pairs,
        merges=tuple(merges),
        merge_ids=tuple(merge_ids),
        relationships_repointed=repointed,
        dry_run=dry_run,
        quality=score_against_truth(entities, merges),
        timings=timings,
    )
    record_run_meta(store, report)
    timings["write_s"] = time.perf_counter() - t0
    return report


class DedupWorker:
    """`step()` = one pass; in --loop mode a new pass starts only once the live entities changed."""

    def __init__(self, config: DedupConfig, store: BrainStore, encoder: Encoder | None = None) -> None:
        self.config = config
        self.store = store
        self.encoder = encoder
        self.reports: list[DedupReport] = []
        self._seen_version: int | None = None

    def step(self) -> int:
        version = self.store.fresh("entities").version
        if version == self._seen_version:
            return 0
        report = run_dedup(self.store, dry_run=self.config.dry_run, match=self.config.match, encoder=self.encoder)
        self.reports.append(report)
        # Our own writes bump the version; remember the one after them so they do not retrigger a pass.
        self._seen_version = self.store.fresh("entities").version
        return report.absorbed


def run_dedup_worker(config: DedupConfig, run: WorkerRun, encoder: Encoder | None = None) -> tuple[int, DedupWorker]:
    store = BrainStore(config.brain)
    store.table("entities")  # fail fast with a clear StoreError when the brain is missing
    worker = DedupWorker(config, store, encoder)
    run.install_signal_handlers()
    step = worker.step if config.loop else single_pass(worker.step)
    return run.loop(step, forever=config.loop), worker
