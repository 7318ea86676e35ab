"""`brainops brain ...` and `brainops dedup ...`."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


def register_top_level(root: typer.Typer) -> None:
    """Commands that live at the top level (`brainops dedup`)."""
