"""`brainops brain ...` and `brainops dedup ...`. Every command works on the config's brain unless told another."""

from __future__ import annotations

import json
from typing import Any

import typer

from agent.cli.console import EXIT_USAGE

app = typer.Typer(no_args_is_help=True)
__import__("agent.cli.brain_queries", fromlist=["register"]).register(app)  # `brainops brain import-queries`

PATH_HELP = "Where the brain lives: LanceDB path or URI (default: brain_uri from the config, else <home>/brain)."


def brain_path(path: str | None) -> str:
    """`--path` as given, else the loaded config's brain (brain_uri, else <home>/brain)."""
    if path:
        return path
    from core.settings import load_settings

    return load_settings().brain_path


def register_top_level(root: typer.Typer) -> None:
    """Commands that live at the top level (`brainops dedup`)."""
    from agent.cli import dedup as cli_dedup

    cli_dedup.register_top_level(root)


@app.command("seed")
def seed(
    path: str | None = typer.Option(None, "--path", help=PATH_HELP),
    scale: str = typer.Option("small", "--scale", help="small (~2K records) or seed (485,848 records)."),
    seed_value: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same brain."),
    force: bool = typer.Option(False, "--force", help="Replace a brain that already has records."),
    embed_entities: bool = typer.Option(False, "--embed-entities", help="Embed entity names now."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write a synthetic brain with ground truth (planted duplicates, decoys, communities)."""
    from dataclasses import asdict

    from brain.seed import SCALES, seed_brain
    from brain.store import StoreError

    if scale not in SCALES:
        raise typer.BadParameter(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    path = brain_path(path)
    try:
        report = seed_brain(path, scale, seed_value, force=force, embed_entities=embed_entities)
    except StoreError as exc:
        typer.echo(f"seed: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
        return
    typer.echo(
        f"seeded {report.scale} brain at {report.uri} in {report.seconds:.1f}s: {report.records:,} records, "
        f"{report.entities:,} entities ({report.duplicates} planted duplicates {report.duplicate_kinds}, "
        f"{report.decoy_pairs} decoy pairs, {report.near_miss_pairs} near misses), "
        f"{report.relationships:,} relationships, {report.communities:,} communities"
    )


@app.command("stats")
def stats(
    path: str | None = typer.Option(None, "--path", help=PATH_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Counts, per-stage backlog and graph health of the brain (fast: filtered counts and meta)."""
    path = brain_path(path)
    result, took_ms = _load_stats(path)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.table import Table

    from agent.cli.console import make_console

    table = Table(title=f"brain {path} ({took_ms:.0f} ms)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key == "pending":
            for stage, n in value.items():
                table.add_row(f"pending.{stage}", f"{n:,}")
        elif key in ("reasoning", "queries", "reasoning_yield"):
            for name, figure in value.items():
                table.add_row(f"{key}.{name}", _fmt(figure))
        else:
            table.add_row(key, _fmt(value))
    make_console().print(table)


@app.command("compact")
def compact(
    path: str | None = typer.Option(None, "--path", help=PATH_HELP),
    keep_minutes: float = typer.Option(10.0, "--keep-minutes", min=0.0, help="Keep versions this recent."),
) -> None:
    """Merge small fragments, drop old versions and rows that repeat a key (run off the hot path)."""
    from datetime import timedelta

    from brain.store import BrainStore, StoreError

    path = brain_path(path)
    store = BrainStore(path)
    if not store.exists():
        typer.echo(f"compact: no brain at {path}", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        report = store.compact(timedelta(minutes=keep_minutes))
    except StoreError as exc:
        typer.echo(f"compact: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"compacted {len(report.tables)} tables in {report.seconds:.2f}s, "
        f"{report.versions_removed} old versions removed, {report.duplicate_rows_removed} duplicate rows removed"
    )


@app.command("prepare-embedder")
def prepare_embedder(
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, fp32, bf16 (CPU) or fp16 (CUDA)."),
) -> None:
    """Calibrate bf16 and compile the CPU embedder once on this host (`make install` runs this).

    Afterwards every embed or dedup worker loads the model in about 1 s instead of about 5 s.
    """
    import time

    from brain.embedder import EmbedderError, load_embedder

    started = time.perf_counter()
    try:
        info = load_embedder(device, dtype).info
    except EmbedderError as exc:
        typer.echo(f"prepare-embedder: {exc}", err=True)
        raise typer.Exit(1) from exc
    cosine = "" if info.calibration_cosine is None else f", bf16 vs fp32 cosine {info.calibration_cosine:.4f}"
    typer.echo(
        f"embedder ready in {time.perf_counter() - started:.1f}s: {info.device} {info.dtype} "
        f"({info.dtype_reason}{cosine}), backend {info.backend}"
    )


def _load_stats(path: str) -> tuple[dict[str, Any], float]:
    """The stats and how long computing them took (ms), the import and connect excluded."""
    import time

    from brain.store import BrainStore

    store = BrainStore(path)
    if not store.exists():
        typer.echo(f"stats: no brain at {path} (run `brainops brain seed --path {path}`)", err=True)
        raise typer.Exit(EXIT_USAGE)
    started = time.perf_counter()
    stats = store.stats()
    took_ms = (time.perf_counter() - started) * 1000
    out = stats.model_dump(mode="json")
    out["reasoning"].pop("tiers")
    out["reasoning_yield"] = {
        t.tier: f"{t.valid}/{t.attempts} valid ({t.yield_rate:.0%}), ${t.cost:.4f}" for t in stats.reasoning.tiers
    }
    return out, took_ms


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


__import__("agent.cli.brain_search", fromlist=["register"]).register(app)  # `brainops brain search "text"`
