"""Times as an operator reads them, in the CLI and in Slack alike."""

from __future__ import annotations


def when(ts: float | None, now: float | None = None) -> str:
    """A time as an operator reads it: ISO-8601 in local time with its offset, and how long ago or ahead
    ("2026-12-01T19:30:12+00:00 (3 min ago)"). The one way CLI and Slack output show a time."""
    import time

    if ts is None:
        return "-"
    now = time.time() if now is None else now
    return f"{local_iso(ts)} ({age(ts - now)})"


def local_iso(ts: float) -> str:
    """ISO-8601 in local time with its offset: the machine-readable half of `when`."""
    from datetime import datetime

    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def age(delta_s: float) -> str:
    """A signed duration in words: "in 4 min", "3 h ago", "just now"."""
    span = abs(delta_s)
    if span < 5:
        return "just now"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        if span >= size:
            amount = f"{span / size:.0f} {unit}"
            break
    return f"in {amount}" if delta_s > 0 else f"{amount} ago"


def iso(ts: float) -> str:
    """An absolute UTC time for text that is stored (rationales, records): an age would go stale."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
