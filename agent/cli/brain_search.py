"""`brainops brain search "text"`: the records nearest a text, as the serving path finds them.

The text is embedded with the project's embedder (brain/embedder.py) and searched through the records' vector
index when there is one, with the policy's `index.nprobes` and `index.refine_factor` (brain/index_probe.py's
`search_records`, the path the probe times). `--exact` searches without the index, for comparison.
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from agent.cli.console import EXIT_USAGE

PATH_HELP = "Where the brain lives: LanceDB path or URI (default: brain_uri from the config, else <home>/brain)."


def register(app: typer.Typer) -> None:
    app.command("search")(search)


def search(
    text: str = typer.Argument(..., help="What to look for, in words."),
    k: int = typer.Option(10, "--k", min=1, max=100, help="How many records to return."),
    path: str | None = typer.Option(None, "--path", help=PATH_HELP),
    exact: bool = typer.Option(False, "--exact", help="Search without the vector index (slow on big brains)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The records nearest a text (cosine), through the vector index when there is one."""
    if not text.strip():
        typer.echo("search: the text is empty; give the words to search for", err=True)
        raise typer.Exit(EXIT_USAGE)
    from brain.store import BrainStore
    from core.settings import load_settings
    from policies.live import live_policy

    settings = load_settings()
    path = path or settings.brain_path
    store = BrainStore(path)
    if not store.exists():
        typer.echo(f"search: no brain at {path} (run `brainops brain seed --path {path}`)", err=True)
        raise typer.Exit(EXIT_USAGE)
    rules = live_policy(settings).current().index
    hits, took_ms, indexed = _search(store, text, k, rules.search_settings(), exact)
    if as_json:
        out = {"query": text, "k": k, "indexed": indexed and not exact, "took_ms": took_ms, "hits": hits}
        typer.echo(json.dumps(out, indent=2))
        return
    _print(hits, text, took_ms, indexed and not exact)


def _search(store: Any, text: str, k: int, search: Any, exact: bool) -> tuple[list[dict[str, Any]], float, bool]:
    from brain.embedder import load_embedder
    from brain.index_probe import search_records, vector_index

    vector = load_embedder().encode([text])[0]
    tbl = store.fresh("records")
    started = time.perf_counter()
    query = search_records(tbl, vector, k, search, exact=exact).select(["id", "text", "_distance"])
    rows = query.to_arrow().to_pylist()
    took_ms = round((time.perf_counter() - started) * 1000, 2)
    hits = [{"id": r["id"], "score": round(1.0 - float(r["_distance"]), 4), "text": r["text"]} for r in rows]
    return hits, took_ms, vector_index(tbl) is not None


def _print(hits: list[dict[str, Any]], text: str, took_ms: float, indexed: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from agent.cli.console import make_console

    how = "vector index" if indexed else "exact search"
    table = Table(title=f"{len(hits)} records nearest {text!r} ({how}, {took_ms:.1f} ms)")
    for column, justify in (("#", "right"), ("score", "right"), ("id", "left"), ("text", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for rank, hit in enumerate(hits, 1):
        snippet = (hit["text"] or "")[:160]
        table.add_row(str(rank), f"{hit['score']:.3f}", escape(hit["id"]), escape(snippet))
    make_console().print(table)
    if not hits:
        typer.echo("no embedded records to search (run the embed worker first)")
