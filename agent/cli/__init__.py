"""The `brainops` command. Off a terminal (piped, a file, journald, CI) help text must not wrap at 80 columns
either: typer renders it with Rich at the width `TERMINAL_WIDTH` gives, read once when typer loads."""

import os
import sys

if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
    os.environ.setdefault("TERMINAL_WIDTH", "200")
