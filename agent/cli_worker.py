"""`brainops worker KIND`: one worker process. The dispatcher starts these."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
