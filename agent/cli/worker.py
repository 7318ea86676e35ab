"""`brainops worker KIND`: one worker process. The dispatcher starts these."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from core.kinds import kind

if TYPE_CHECKING:
    from llm.fleet import FleetLLM
    from workers.runtime import WorkerRun

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True)

# The dispatcher always passes --brain; by hand, a worker works on the config's brain.
BRAIN_HELP = "LanceDB path or object-store URI of the brain (default: brain_uri from the config, else <home>/brain)."


def _brain(brain: str | None) -> str:
    if brain:
        return brain
    from core.settings import load_settings

    return load_settings().brain_path


@app.command("extract", help=kind("extract").summary)
def extract(
    brain: str | None = typer.Option(None, "--brain", help=BRAIN_HELP),
    shard: str | None = typer.Option(None, "--shard", help="Take only shard i/n of the records."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    loop: bool = typer.Option(False, "--loop", help="Wait for new records instead of exiting when idle."),
    status_file: Path | None = typer.Option(None, "--status-file"),
    item_ms: int = typer.Option(0, "--item-ms", min=0, help="Simulated per-record LLM latency (ms)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Stop after this many records."),
) -> None:
    brain = _brain(brain)
    from workers.extract import ExtractConfig, run_extract
    from workers.runtime import WorkerRun, parse_shard

    try:
        lane = _worker_number(status_file)
        config = ExtractConfig(brain, parse_shard(shard), batch_size, loop, item_ms, limit, lane)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    run = WorkerRun(kind="extract", status_file=status_file)
    code = _guarded("extract", run, lambda: run_extract(config, run))
    typer.echo(f"extract: {run.processed} records in {run.batches} batches, exit {code}")
    raise typer.Exit(code)


def _worker_number(status_file: Path | None) -> int:
    """The dispatcher names workers KIND-HOST-N (and their status files after them): N spreads lanes."""
    import re

    found = re.search(r"-(\d+)$", status_file.name.split(".")[0]) if status_file else None
    return int(found.group(1)) if found else os.getpid()


@app.command("embed", help=kind("embed").summary)
def embed(
    brain: str | None = typer.Option(None, "--brain", help=BRAIN_HELP),
    table: str = typer.Option("records", "--table", help="records or entities (entities embed their name)."),
    shard: str | None = typer.Option(None, "--shard", help="Take only shard i/n of the rows."),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, fp32, bf16 (CPU) or fp16 (CUDA)."),
    loop: bool = typer.Option(False, "--loop", help="Wait for new rows instead of exiting when idle."),
    status_file: Path | None = typer.Option(None, "--status-file"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Stop after this many rows."),
) -> None:
    brain = _brain(brain)
    from brain.embedder import EmbedderError
    from brain.store import StoreError
    from workers.embed import EmbedConfig, run_embed
    from workers.runtime import WorkerRun, parse_shard

    try:
        config = EmbedConfig(brain, table, parse_shard(shard), batch_size, device, dtype, loop, limit)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    run = WorkerRun(kind="embed", status_file=status_file)
    try:
        code = run_embed(config, run)
    except (StoreError, EmbedderError) as exc:
        run.state = "crashed"
        run.write_status(exit_code=1)
        typer.echo(f"embed: {exc}", err=True)
        raise typer.Exit(1) from exc
    except Exception as exc:  # the status file already says crashed; keep the log a plain traceback
        import traceback

        typer.echo(traceback.format_exc(), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"embed: {run.processed} {table} in {run.batches} batches, exit {code}")
    raise typer.Exit(code)


@app.command("dedup", help=kind("dedup").summary)
def dedup(
    brain: str | None = typer.Option(None, "--brain", help=BRAIN_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Find merges, write only their count and plan."),
    loop: bool = typer.Option(False, "--loop", help="Run again whenever the entities change."),
    status_file: Path | None = typer.Option(None, "--status-file"),
    plan: str | None = typer.Option(
        None, "--plan", help="Merge only this dry run's plan (its hash); stop if it is no longer the current one."
    ),
    max_merges: int | None = typer.Option(
        None, "--max-merges", min=0, help="Stop, merging nothing, if the merges found now absorb more entities."
    ),
    llm_calls: int = typer.Option(
        50, "--llm-calls", min=0, help="Ambiguous pairs the fleet LLM may judge per pass (0: never ask a model)."
    ),
) -> None:
    brain = _brain(brain)
    from workers.dedup import DedupConfig, run_dedup_worker
    from workers.dedup_match import MatchConfig

    try:
        config = DedupConfig(
            brain,
            dry_run=dry_run,
            loop=loop,
            plan=plan,
            max_merges=max_merges,
            match=MatchConfig(max_llm_calls=llm_calls),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    from workers.runtime import WorkerRun

    run = WorkerRun(kind="dedup", status_file=status_file)
    llm = fleet_llm_or_none() if llm_calls else None
    code, worker = _guarded("dedup", run, lambda: run_dedup_worker(config, run, llm=llm))
    if run.refusal:
        typer.echo(f"dedup: {run.refusal} (nothing was merged)", err=True)
        raise typer.Exit(code)
    absorbed = sum(r.absorbed for r in worker.reports)
    typer.echo(f"dedup: {len(worker.reports)} passes, {absorbed} entities {'to merge' if dry_run else 'merged'}")
    raise typer.Exit(code)


@app.command("recluster", help=kind("recluster").summary)
def recluster(
    brain: str | None = typer.Option(None, "--brain", help=BRAIN_HELP),
    seed: int = typer.Option(42, "--seed", help="Leiden seed: the same graph and seed give the same partition."),
    resolution: float = typer.Option(
        1.0, "--resolution", min=0.0, help="Modularity resolution of every Leiden pass (level 0, split proposals)."
    ),
    max_size: int = typer.Option(
        100, "--max-size", min=0, help="Split communities larger than this even when a split does not pay (0: no cap)."
    ),
    method: str = typer.Option(
        "hierarchical", "--method", help="hierarchical (levels, splits judged by description length) or flat."
    ),
    loop: bool = typer.Option(False, "--loop", help="Run again whenever relationships or entities change."),
    status_file: Path | None = typer.Option(None, "--status-file"),
) -> None:
    brain = _brain(brain)
    from workers.recluster import ReclusterConfig, run_recluster_worker

    try:
        config = ReclusterConfig(
            brain,
            seed=seed,
            resolution=resolution,
            max_size=max_size or None,
            method=method,  # type: ignore[arg-type]  # checked by ReclusterConfig
            loop=loop,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    from workers.runtime import WorkerRun

    run = WorkerRun(kind="recluster", status_file=status_file)
    code, worker = _guarded("recluster", run, lambda: run_recluster_worker(config, run))
    last = worker.reports[-1] if worker.reports else None
    summary = (
        f"{last.communities} leaf communities, levels {'/'.join(map(str, last.levels)) or '-'} "
        f"({last.kept_ids} kept ids), modularity {last.modularity:.4f}"
        if last
        else "nothing to do"
    )
    typer.echo(f"recluster: {summary}")
    raise typer.Exit(code)


def _guarded(kind: str, run: WorkerRun, body: Callable[[], T]) -> T:
    """Run a worker body; expected failures (missing brain, no model) exit 1 with one clear line."""
    from brain.embedder import EmbedderError
    from brain.store import StoreError

    try:
        return body()
    except (StoreError, EmbedderError) as exc:
        run.state = "crashed"
        run.write_status(exit_code=1)
        typer.echo(f"{kind}: {exc}", err=True)
        raise typer.Exit(1) from exc
    except Exception as exc:  # the status file already says crashed; keep the log a plain traceback
        import traceback

        typer.echo(traceback.format_exc(), err=True)
        raise typer.Exit(1) from exc


def fleet_llm_or_none() -> FleetLLM | None:
    """The fleet LLM when the inherited settings (brainops.toml / BRAINOPS_* env) configure model tiers;
    None means extractive summaries. The worker gets it built: settings are loaded here, at the entry point."""
    from core.settings import load_settings

    settings = load_settings()
    if not settings.llm.tiers:
        return None
    from llm.fleet import fleet_llm_from_settings
    from llm.ledger import TokenLedger
    from policies.live import live_policy

    policy = live_policy(settings)  # routing.max_share as the file says now, re-read on every call
    return fleet_llm_from_settings(
        settings, TokenLedger.from_settings(settings), share_caps=lambda: policy.current().routing.max_share
    )


@app.command("wisdom", help=kind("wisdom").summary)
def wisdom(
    brain: str | None = typer.Option(None, "--brain", help=BRAIN_HELP),
    shard: str | None = typer.Option(None, "--shard", help="Take only shard i/n of the communities."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    loop: bool = typer.Option(False, "--loop", help="Wait for new communities instead of exiting when idle."),
    status_file: Path | None = typer.Option(None, "--status-file"),
    item_ms: int = typer.Option(0, "--item-ms", min=0, help="Simulated per-community latency without a model."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Stop after this many communities."),
) -> None:
    brain = _brain(brain)
    from workers.runtime import WorkerRun, parse_shard
    from workers.wisdom import WisdomConfig, run_wisdom

    try:
        config = WisdomConfig(brain, parse_shard(shard), batch_size, loop, item_ms, limit)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    run = WorkerRun(kind="wisdom", status_file=status_file)
    code = _guarded("wisdom", run, lambda: run_wisdom(config, run, fleet_llm_or_none()))
    typer.echo(f"wisdom: {run.processed} communities in {run.batches} batches, exit {code}")
    raise typer.Exit(code)


def _pinned_tier(task: str) -> Callable[[], str | None]:
    """The tier the ledger pins a task's calls to (the planner's routing action sets it), read per batch."""
    from core.settings import load_settings
    from llm.ledger import TokenLedger

    ledger = TokenLedger.from_settings(load_settings())
    return lambda: ledger.task_tier(task)


@app.command("reasoning", help=kind("reasoning").summary)
def reasoning(
    brain: str | None = typer.Option(None, "--brain", help=BRAIN_HELP),
    shard: str | None = typer.Option(None, "--shard", help="Take only shard i/n of the wisdom entries."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    loop: bool = typer.Option(False, "--loop", help="Wait for new wisdom instead of exiting when idle."),
    status_file: Path | None = typer.Option(None, "--status-file"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Stop after this many attempts."),
) -> None:
    brain = _brain(brain)
    from workers.reasoning import NoModelError, ReasoningConfig, run_reasoning
    from workers.runtime import WorkerRun, parse_shard

    try:
        config = ReasoningConfig(brain, parse_shard(shard), batch_size, loop, limit)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    run = WorkerRun(kind="reasoning", status_file=status_file)
    llm = fleet_llm_or_none()
    if llm is None:  # no offline chain: one clear line, not a traceback
        run.state = "crashed"
        run.write_status(exit_code=1)
        typer.echo(f"reasoning: {NoModelError.__doc__}", err=True)
        raise typer.Exit(1)
    code = _guarded("reasoning", run, lambda: run_reasoning(config, run, llm, _pinned_tier("reasoning")))
    typer.echo(f"reasoning: {run.processed} attempts in {run.batches} batches, exit {code}")
    raise typer.Exit(code)


@app.command("analyze_queries", help=kind("analyze_queries").summary)
def analyze_queries(
    brain: str | None = typer.Option(None, "--brain", help=BRAIN_HELP),
    status_file: Path | None = typer.Option(None, "--status-file"),
    poor_score: float = typer.Option(
        0.5, "--poor-score", min=0.0, max=1.0, help="A topic whose mean best score is under this is poorly answered."
    ),
    covered_similarity: float = typer.Option(
        0.6, "--covered-similarity", min=0.0, max=1.0, help="... unless a wisdom entry is this close to its centroid."
    ),
) -> None:
    brain = _brain(brain)
    from workers.analyze_queries import QueryAnalysisConfig, run_analyze_queries
    from workers.runtime import WorkerRun

    config = QueryAnalysisConfig(brain, poor_score=poor_score, covered_similarity=covered_similarity)
    run = WorkerRun(kind="analyze_queries", status_file=status_file)
    code, report = _guarded("analyze_queries", run, lambda: run_analyze_queries(config, run))
    summary = (
        f"{report.queries} queries in {report.topics} topics, {report.priorities} poorly answered written as "
        f"priorities, {report.dropped} earlier priorities now covered"
        if report
        else "nothing to do"
    )
    typer.echo(f"analyze_queries: {summary}")
    raise typer.Exit(code)


@app.command("index", help=kind("index").summary)
def index(
    brain: str | None = typer.Option(None, "--brain", help=BRAIN_HELP),
    status_file: Path | None = typer.Option(None, "--status-file"),
) -> None:
    brain = _brain(brain)
    from core.settings import load_settings
    from policies.live import live_policy
    from workers.index import IndexJobConfig, run_index_worker
    from workers.runtime import WorkerRun

    rules = live_policy(load_settings()).current().index  # the policy file as it is now
    worker_id = status_file.name.split(".")[0] if status_file else None
    config = IndexJobConfig(
        brain, rules.build_settings(), rules.probe_settings(job=True), rules.search_settings(), worker_id
    )
    run = WorkerRun(kind="index", status_file=status_file)
    code, worker = _guarded("index", run, lambda: run_index_worker(config, run))
    typer.echo(f"index: {worker.runs[-1].summary() if worker.runs else 'nothing done'}")
    raise typer.Exit(code)
