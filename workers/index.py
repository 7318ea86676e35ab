"""The `index` job: one optimize_index pass over the records' vector index (brain/vector_index.py).

Started by the optimize_index action through the dispatcher like dedup and recluster; the settings (thresholds,
build and search parameters, the minimum age of a pruned version) are the policy file's `index` section, read
at the worker's entry point. Its result (before and after: p50/p95, recall@10, fragments) goes to the brain's
meta table, where the next tick finds it and records it as the job's measured effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from brain.store import BrainStore
from brain.vector_index import optimize_index
from core.domain import IndexRun
from workers.runtime import WorkerRun, single_pass

if TYPE_CHECKING:
    from brain.index_probe import ProbeSettings, SearchSettings
    from brain.vector_index import BuildSettings


@dataclass(frozen=True)
class IndexJobConfig:
    brain: str
    build: BuildSettings
    probe: ProbeSettings
    search: SearchSettings
    worker_id: str | None = None

    def __post_init__(self) -> None:
        if not self.brain:
            raise ValueError("--brain is required")


@dataclass
class IndexWorker:
    config: IndexJobConfig
    store: BrainStore
    runs: list[IndexRun] = field(default_factory=list)

    def step(self) -> int:
        c = self.config
        self.runs.append(optimize_index(self.store, c.build, c.probe, c.search, worker_id=c.worker_id))
        return 1


def run_index_worker(config: IndexJobConfig, run: WorkerRun) -> tuple[int, IndexWorker]:
    store = BrainStore(config.brain)
    store.table("records")  # fail fast with a clear StoreError when the brain is missing
    worker = IndexWorker(config, store)
    run.install_signal_handlers()
    return run.loop(single_pass(worker.step), forever=False), worker
