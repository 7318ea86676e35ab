"""`brainops worker KIND`: one worker process. The dispatcher starts these."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("extract")
def extract(
    brain: str = typer.Option(..., "--brain", help="LanceDB path or object-store URI of the brain."),
    shard: str | None = typer.Option(None, "--shard", help="Take only shard i/n of the records."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    loop: bool = typer.Option(False, "--loop", help="Wait for new records instead of exiting when idle."),
    status_file: Path | None = typer.Option(None, "--status-file"),
    item_ms: int = typer.Option(0, "--item-ms", min=0, help="Simulated per-record LLM latency (ms)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Stop after this many records."),
) -> None:
    """Extract entities and relationships from records not yet extracted."""
    from workers.extract import ExtractConfig, run_extract
    from workers.runtime import WorkerRun, parse_shard
    from workers.store import StoreError

    try:
        config = ExtractConfig(brain, parse_shard(shard), batch_size, loop, item_ms, limit)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    run = WorkerRun(kind="extract", status_file=status_file)
    try:
        code = run_extract(config, run)
    except StoreError as exc:
        typer.echo(f"extract: {exc}", err=True)
        raise typer.Exit(1) from exc
    except Exception as exc:  # the status file already says crashed; keep the log a plain traceback
        import traceback

        typer.echo(traceback.format_exc(), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"extract: {run.processed} records in {run.batches} batches, exit {code}")
    raise typer.Exit(code)


@app.command("embed")
def embed(
    brain: str = typer.Option(..., "--brain", help="LanceDB path or object-store URI of the brain."),
    table: str = typer.Option("records", "--table", help="records or entities (entities embed their name)."),
    shard: str | None = typer.Option(None, "--shard", help="Take only shard i/n of the rows."),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, fp32, bf16 (CPU) or fp16 (CUDA)."),
    loop: bool = typer.Option(False, "--loop", help="Wait for new rows instead of exiting when idle."),
    status_file: Path | None = typer.Option(None, "--status-file"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Stop after this many rows."),
) -> None:
    """Embed rows that have no vector or whose text changed since they were embedded."""
    from workers.embed import EmbedConfig, run_embed
    from workers.embedder import EmbedderError
    from workers.runtime import WorkerRun, parse_shard
    from workers.store import StoreError

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
