"""`brainops brain import-queries FILE.jsonl`: what the brain was asked, for analyze_queries to cluster."""

from __future__ import annotations

from pathlib import Path

import typer

from agent.cli.console import EXIT_USAGE


def register(app: typer.Typer) -> None:
    app.command("import-queries")(import_queries)


def import_queries(
    file: Path = typer.Argument(..., help="JSONL, one query a line: text, time (unix s), hits, best_score (0..1)."),
    path: str | None = typer.Option(None, "--path", help="Where the brain lives (default: the config's brain)."),
) -> None:
    """Import a query log into the brain's queries table (all lines or none; the same line twice adds nothing)."""
    from agent.cli.brain import brain_path
    from brain.queries_import import QueryImportError, import_queries
    from brain.store import BrainStore

    uri = brain_path(path)
    store = BrainStore(uri)
    if not store.exists():
        typer.echo(f"import-queries: no brain at {uri} (run `brainops brain seed --path {uri}`)", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        report = import_queries(store, file)
    except QueryImportError as exc:
        typer.echo(f"import-queries: {exc}; nothing was imported", err=True)
        raise typer.Exit(EXIT_USAGE) from exc
    typer.echo(f"import-queries: {report.added} new queries from {report.lines} lines")
