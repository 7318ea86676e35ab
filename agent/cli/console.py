"""The one way CLI output is printed, and the exit codes every command uses.

On a terminal, Rich: colour (none with NO_COLOR), wrapped at the terminal's width (or COLUMNS). Off a terminal
(pipes, files, journald, CI) Rich would wrap at 80 columns and cut paths and rationales mid-word; there every
line is printed whole and plain: no colour, no wrapping, no highlighting, unless COLUMNS asks for a width.
"""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

NO_WRAP_WIDTH = 10_000

# Exit codes, the same for every command (README "Exit codes"): the root app's error boundary (main.py) maps
# user-fixable errors to EXIT_USAGE; a command that was answered "no" exits EXIT_REFUSED.
EXIT_OK = 0
EXIT_REFUSED = 1  # refused or failed: a denied or refused action, a failed check, an unreachable host
EXIT_USAGE = 2  # a usage or config error: bad option, bad config/policy/brain path (what click gives a bad option)


def is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed or odd stream
        return False


def columns() -> int | None:
    """COLUMNS from the environment, when it is a usable width."""
    try:
        width = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return None
    return width if width >= 20 else None


def make_console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if is_terminal(stream):
        return Console(stderr=stderr)  # Rich itself honours NO_COLOR and COLUMNS on a terminal
    width = columns()
    if width is not None:
        return Console(stderr=stderr, width=width, highlight=False, emoji=False)
    return Console(stderr=stderr, width=NO_WRAP_WIDTH, soft_wrap=True, highlight=False, emoji=False)
