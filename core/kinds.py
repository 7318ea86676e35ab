"""The worker kinds: the one declaration every other list of kinds is derived from.

Adding a kind: declare it here, write its module in workers/, and give it a command in
agent/cli/worker.py (docs/ARCHITECTURE.md, "Adding a worker kind"). tests/test_registries.py fails while a
declaration is incomplete (no command, no simulator profile, an option the worker command does not take).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# WorkerOptions fields (fleet/hosts.py) a kind's command may take. The dispatcher sets shard, loop, table,
# dry_run, plan and max_merges itself; the rest may also be given as defaults in brainops.toml's
# [worker_defaults.KIND].
OptionName = Literal["shard", "batch_size", "loop", "item_ms", "limit", "table", "dry_run", "plan", "max_merges"]
DISPATCHER_OPTIONS: frozenset[str] = frozenset({"shard", "loop", "table", "dry_run", "plan", "max_merges"})
HomeRole = Literal["brain", "worker"]


@dataclass(frozen=True)
class SimProfile:
    """How one worker of the kind behaves in the fleet simulator (evals/sim_model.py): its typical throughput
    and footprint, measured on the seed's fleet."""

    throughput_per_min: float
    cpu_share: float
    mem_share: float
    start_delay_s: float = 20.0
    tokens_per_item: int = 0
    home: HomeRole = "brain"
    batch_items: int = 1  # items one step() takes at once (the worker's default batch_size); a job: 1


@dataclass(frozen=True)
class WorkerKindSpec:
    name: str
    stage: str  # the key of BrainStats.pending this kind works down
    summary: str  # the help line of `brainops worker NAME`
    scalable: bool  # long-running and scaled by count (scale_workers); else a one-shot job
    llm_bound: bool  # its items are LLM calls paid from the token budget
    options: frozenset[str]
    sim: SimProfile

    @property
    def default_options(self) -> frozenset[str]:
        """Options an operator may set in [worker_defaults.NAME]."""
        return self.options - DISPATCHER_OPTIONS


# Order: scalable kinds first, in the order planners consider them.
KINDS: tuple[WorkerKindSpec, ...] = (
    WorkerKindSpec(
        "extract",
        stage="extract",
        summary="Extract entities and relationships from records not yet extracted.",
        scalable=True,
        llm_bound=True,
        options=frozenset({"shard", "batch_size", "loop", "item_ms", "limit"}),
        sim=SimProfile(
            throughput_per_min=50.0, cpu_share=12.0, mem_share=4.0, tokens_per_item=1500, home="worker", batch_items=64
        ),
    ),
    WorkerKindSpec(
        "embed",
        stage="embed",
        summary="Embed rows that have no vector or whose text changed since they were embedded.",
        scalable=True,
        llm_bound=False,
        options=frozenset({"shard", "batch_size", "loop", "limit", "table"}),
        sim=SimProfile(throughput_per_min=3000.0, cpu_share=30.0, mem_share=8.0, start_delay_s=60.0, batch_items=256),
    ),
    WorkerKindSpec(
        "wisdom",
        stage="wisdom",
        summary="Write one insight per community that has none (fleet LLM when configured, else extractive).",
        scalable=True,
        llm_bound=True,
        options=frozenset({"shard", "batch_size", "loop", "item_ms", "limit"}),
        sim=SimProfile(throughput_per_min=12.0, cpu_share=10.0, mem_share=4.0, tokens_per_item=3000, batch_items=16),
    ),
    WorkerKindSpec(
        "dedup",
        stage="dedup",
        summary="Merge duplicate live entities of the same type; every merge is logged and undoable.",
        scalable=False,
        llm_bound=False,
        options=frozenset({"loop", "dry_run", "plan", "max_merges"}),
        sim=SimProfile(throughput_per_min=0.0, cpu_share=20.0, mem_share=10.0, start_delay_s=5.0),
    ),
    WorkerKindSpec(
        "recluster",
        stage="recluster",
        summary="Rebuild community levels with Leiden; matching communities keep their ids (and their wisdom).",
        scalable=False,
        llm_bound=False,
        options=frozenset({"loop"}),
        sim=SimProfile(throughput_per_min=0.0, cpu_share=20.0, mem_share=10.0, start_delay_s=5.0),
    ),
    WorkerKindSpec(
        "reasoning",
        stage="reasoning",
        summary="Turn wisdom entries and their communities into validated reasoning chains and runbooks (fleet LLM).",
        scalable=True,
        llm_bound=True,
        options=frozenset({"shard", "batch_size", "loop", "limit"}),
        sim=SimProfile(throughput_per_min=6.0, cpu_share=5.0, mem_share=3.0, tokens_per_item=4000, batch_items=8),
    ),
    WorkerKindSpec(
        "analyze_queries",
        stage="queries",
        summary="Cluster unanalyzed queries into topics; poorly answered ones become wisdom and reasoning priorities.",
        scalable=False,
        llm_bound=False,
        options=frozenset(),
        sim=SimProfile(throughput_per_min=0.0, cpu_share=20.0, mem_share=8.0, start_delay_s=30.0),
    ),
    WorkerKindSpec(
        "index",
        stage="index",
        summary="Build or refresh the records' vector index, compact fragments, prune old versions; "
        "records search latency and recall before and after.",
        scalable=False,
        llm_bound=False,
        options=frozenset(),
        sim=SimProfile(throughput_per_min=0.0, cpu_share=40.0, mem_share=10.0, start_delay_s=5.0),
    ),
)

BY_NAME: dict[str, WorkerKindSpec] = {k.name: k for k in KINDS}
WORKER_KINDS: tuple[str, ...] = tuple(BY_NAME)
SCALABLE_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS if k.scalable)
JOB_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS if not k.scalable)
LLM_BOUND_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS if k.llm_bound)
STAGES: tuple[str, ...] = tuple(dict.fromkeys(k.stage for k in KINDS))
STAGE_OF_KIND: dict[str, str] = {k.name: k.stage for k in KINDS}
EMBED_TABLES: tuple[str, ...] = ("records", "entities")


def kind(name: str) -> WorkerKindSpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown worker kind {name!r}; known: {', '.join(WORKER_KINDS)}") from None
