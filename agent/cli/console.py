"""The one way CLI output is printed: Rich wraps at 80 columns whenever stdout is not a terminal (pipes,
files, journald, CI), which cuts paths and rationales mid-word. Off a terminal, lines are never wrapped."""

from __future__ import annotations

import os
import sys
from typing import Any

NO_WRAP_WIDTH = 10_000


def make_console(*, stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS"):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=NO_WRAP_WIDTH, soft_wrap=True)

