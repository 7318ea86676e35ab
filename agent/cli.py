"""The `brainops` command. Heavy libraries are imported inside commands, so --help and status stay instant."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Autonomous operations agent for a self-hosted LLM brain.")


def _register() -> None:
    from agent import cli_brain, cli_worker

    app.add_typer(cli_brain.app, name="brain", help="Seed, inspect and compact the brain store.")
    app.add_typer(cli_worker.app, name="worker", help="Run one worker process (embed, dedup, recluster, extract, wisdom).")
    cli_brain.register_top_level(app)


_register()

if __name__ == "__main__":
    app()
