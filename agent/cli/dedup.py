"""`brainops dedup [--dry-run] --brain URI` and `brainops dedup undo MERGE_ID... | --last-run --brain URI`."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from workers.dedup_store import DedupReport

app = typer.Typer(no_args_is_help=False, invoke_without_command=True)


def register_top_level(root: typer.Typer) -> None:
    root.add_typer(app, name="dedup", help="Merge duplicate entities (reversibly), or undo merges.")


@app.callback()
def dedup(
    ctx: typer.Context,
    brain: str | None = typer.Option(None, "--brain", help="LanceDB path or object-store URI of the brain."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List the merges; write nothing but their count and plan (what a live run merges)."
    ),
    as_json: bool = typer.Option(False, "--json"),
    limit: int = typer.Option(50, "--show", min=0, help="Merges to list in the table."),
    llm_calls: int = typer.Option(
        50, "--llm-calls", min=0, help="Ambiguous pairs the fleet LLM may judge (0: never ask a model)."
    ),
) -> None:
    """Find duplicate live entities of the same type and merge them (each merge logged and undoable)."""
    if ctx.invoked_subcommand is not None:
        return
    if not brain:
        raise typer.BadParameter("--brain is required", param_hint="--brain")
    report = _run(brain, dry_run, llm_calls, show_progress=not as_json)
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
        return
    _print_report(report, limit)
    if dry_run:
        from brain.store import BrainStore
        from workers.dedup_plan import load_plan

        plan = load_plan(BrainStore(brain))
        if plan is not None:
            typer.echo(f"stored as the brain's dedup plan {plan.hash} ({plan.absorbed} entities)")


@app.command("undo")
def undo(
    merge_ids: list[str] = typer.Argument(None, help="Ids from `brainops dedup` output or the merge_log table."),
    last_run: bool = typer.Option(False, "--last-run", help="Undo every merge of the newest dedup run."),
    brain: str = typer.Option(..., "--brain", help="LanceDB path or object-store URI of the brain."),
) -> None:
    """Restore the entities and relationships of merges exactly as they were before them (newest first)."""
    from brain.store import BrainStore, StoreError
    from workers.dedup_undo import last_run_merge_ids, undo_merges

    if bool(merge_ids) == last_run:
        raise typer.BadParameter("give merge ids or --last-run (one of the two)")
    store = BrainStore(brain)
    try:
        ids = list(merge_ids) if merge_ids else last_run_merge_ids(store)
        results = undo_merges(store, ids)
    except StoreError as exc:
        typer.echo(f"dedup undo: {exc}", err=True)
        raise typer.Exit(1) from exc
    for result in results:
        if result.ok:
            typer.echo(
                f"undid {result.merge_id}: {result.entities_restored} entities, "
                f"{result.relationships_restored} relationship endpoints restored"
            )
        else:
            typer.echo(f"dedup undo {result.merge_id}: {result.status}: {result.detail}", err=True)
    if last_run and not ids:
        typer.echo("dedup undo: no merges left to undo")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _run(brain: str, dry_run: bool, llm_calls: int, show_progress: bool) -> DedupReport:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.cli.worker import fleet_llm_or_none
    from brain.store import BrainStore, StoreError
    from workers.dedup import run_dedup
    from workers.dedup_adjudicate import LLMAdjudicator
    from workers.dedup_match import MatchConfig

    store = BrainStore(brain)
    llm = fleet_llm_or_none() if llm_calls else None
    adjudicate = LLMAdjudicator(llm, llm_calls) if llm else None
    columns = (TextColumn("embedding entity names"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not show_progress, transient=True) as bar:
        task = bar.add_task("embed", total=None)
        try:
            return run_dedup(
                store,
                dry_run=dry_run,
                match=MatchConfig(max_llm_calls=llm_calls),
                adjudicate=adjudicate,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except StoreError as exc:
            typer.echo(f"dedup: {exc}", err=True)
            raise typer.Exit(1) from exc


def _print_report(report: DedupReport, limit: int) -> None:
    from rich.table import Table

    from agent.cli.console import make_console

    verb = "would merge" if report.dry_run else "merged"
    table = Table(title=f"dedup: {verb} {report.absorbed} entities into {len(report.merges)} survivors")
    table.add_column("merge", no_wrap=True)
    for col in ("kept", "absorbed", "score", "reason"):
        table.add_column(col)
    ids = report.merge_ids or ("-",) * len(report.merges)
    for merge_id, m in list(zip(ids, report.merges, strict=True))[:limit]:
        table.add_row(merge_id, m.kept_name, ", ".join(m.absorbed_names), f"{m.score:.3f}", m.reason)
    console = make_console()
    console.print(table)
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items())
    console.print(
        f"{report.live_entities:,} live entities, {report.embedded:,} embedded, "
        f"{report.candidate_pairs} candidate pairs, {report.relationships_repointed} relationships repointed ({timing})"
    )
    if report.adjudications:
        said = sum(1 for a in report.adjudications if a.get("same"))
        console.print(f"the fleet LLM judged {len(report.adjudications)} ambiguous pairs: {said} the same entity")
    if report.quality is not None:
        q = report.quality
        console.print(f"against truth_cluster: precision {q.precision:.3f}, recall {q.recall:.3f}")
