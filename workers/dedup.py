"""Dedup worker: one pass of entity resolution over the live entities, merges logged and reversible.

`run_dedup` is the whole pass (embed missing name vectors -> block -> compare -> score -> group -> merge; the
steps are in docs/ARCHITECTURE.md, "Entity resolution"); `DedupWorker.step` runs it under
`workers.runtime.WorkerRun` so the dispatcher sees a status file and SIGTERM drains.
Meta keys written (see brain.store): dedup_candidates (what a dry run would absorb; 0 after a real run),
dedup_dry_run_at, relationships_rewired_since_recluster (+= relationships repointed); a dry run also stores
its merge plan (dedup_plan, dedup_plan_summary: workers/dedup_plan.py), which a live run with `plan` is held to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from brain.store import BrainStore
from core.domain import is_plan_hash
from workers.dedup_adjudicate import CompletesText, LLMAdjudicator
from workers.dedup_match import Adjudicator, MatchConfig
from workers.dedup_plan import PlanGuard, clear_plan, plan_from_report, save_plan
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
    relationship_graph,
    score_against_truth,
    store_vectors,
)
from workers.dedup_undo import record_run
from workers.runtime import WorkerRun, single_pass


@dataclass(frozen=True)
class DedupConfig:
    brain: str
    dry_run: bool = False
    loop: bool = False
    match: MatchConfig = field(default_factory=MatchConfig)
    plan: str | None = None  # a live run merges only this dry run's plan (workers/dedup_plan.py)
    max_merges: int | None = None  # and stops, merging nothing, if it would absorb more entities

    def __post_init__(self) -> None:
        if not self.brain:
            raise ValueError("--brain is required")
        if self.plan is not None and not is_plan_hash(self.plan):
            raise ValueError(f"--plan must be a plan hash (64 hex digits), got {self.plan!r}")
        if self.plan is not None and (self.dry_run or self.loop):
            raise ValueError("--plan is for one live run: not with --dry-run (which makes a plan) or --loop")
        if self.max_merges is not None and self.max_merges < 0:
            raise ValueError(f"--max-merges must be >= 0, got {self.max_merges}")


def run_dedup(
    store: BrainStore,
    *,
    dry_run: bool = False,
    match: MatchConfig | None = None,
    encoder: Encoder | None = None,
    progress: ProgressHook | None = None,
    adjudicate: Adjudicator | None = None,
    plan: str | None = None,
    max_merges: int | None = None,
) -> DedupReport:
    """One full pass. A dry run embeds in memory and writes only the candidate count and its plan to meta.
    A live run given a `plan` hash (and `max_merges`) is held to it: see workers/dedup_plan.py."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    guard = None if dry_run else PlanGuard.load(store, plan, max_merges)  # a stale plan stops here
    entities_version = store.fresh("entities").version
    entities = load_live_entities(store)
    degree, neighbours = relationship_graph(store)
    context = community_labels(store, entities.ids)
    timings["load_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    embedded = []
    if not entities.has_vector.all():
        embedded = list(embed_missing(entities, encoder or default_encoder(), progress=progress))
    timings["embed_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    merges, result = plan_merges(entities, degree, match or MatchConfig(), context, neighbours, adjudicate)
    if guard is not None:
        merges = guard.admit(merges)  # more than approved stops here; else only the approved merges
    timings["match_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    merge_ids: list[str] = []
    repointed = 0
    if not dry_run:
        import numpy as np

        store_vectors(store, entities, np.asarray(embedded, dtype=np.int64))
        stamp = time.time()
        merge_ids, repointed = apply_merges(store, merges, stamp)
        if plan is not None and merge_ids:
            record_run(store, plan, stamp)  # `undo_dedup` of this run finds its merges by the plan it merged
    report = DedupReport(
        live_entities=len(entities.ids),
        embedded=len(embedded),
        candidate_pairs=result.candidates,
        merges=tuple(merges),
        merge_ids=tuple(merge_ids),
        relationships_repointed=repointed,
        dry_run=dry_run,
        quality=score_against_truth(entities, merges),
        timings=timings,
        model=result.model.summary() if result.model else {},
        adjudications=tuple(result.adjudications),
    )
    record_run_meta(store, report)
    if dry_run:
        save_plan(store, plan_from_report(report, entities_version))
    elif merge_ids:
        clear_plan(store)  # merged: the plan is spent (or, made before these merges, out of date)
    timings["write_s"] = time.perf_counter() - t0
    return report


class DedupWorker:
    """`step()` = one pass; in --loop mode a new pass starts only once the live entities changed."""

    def __init__(
        self, config: DedupConfig, store: BrainStore, encoder: Encoder | None = None, llm: CompletesText | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.encoder = encoder
        self.llm = llm if config.match.max_llm_calls > 0 else None
        self.reports: list[DedupReport] = []
        self._seen_version: int | None = None

    def step(self) -> int:
        version = self.store.fresh("entities").version
        if version == self._seen_version:
            return 0
        report = run_dedup(
            self.store,
            dry_run=self.config.dry_run,
            match=self.config.match,
            encoder=self.encoder,
            adjudicate=LLMAdjudicator(self.llm, self.config.match.max_llm_calls) if self.llm else None,
            plan=self.config.plan,
            max_merges=self.config.max_merges,
        )
        self.reports.append(report)
        # Our own writes bump the version; remember the one after them so they do not retrigger a pass.
        self._seen_version = self.store.fresh("entities").version
        return report.absorbed


def run_dedup_worker(
    config: DedupConfig, run: WorkerRun, encoder: Encoder | None = None, llm: CompletesText | None = None
) -> tuple[int, DedupWorker]:
    """`llm` (the fleet LLM, when configured) adjudicates ambiguous pairs, at most max_llm_calls per pass."""
    store = BrainStore(config.brain)
    store.table("entities")  # fail fast with a clear StoreError when the brain is missing
    worker = DedupWorker(config, store, encoder, llm)
    run.install_signal_handlers()
    step = worker.step if config.loop else single_pass(worker.step)
    return run.loop(step, forever=config.loop), worker
