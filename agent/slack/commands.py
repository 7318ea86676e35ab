"""Parsing of `/brainops ...` slash-command text into typed commands (bad input -> usage text)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from core.kinds import SCALABLE_KINDS

MAX_DECISIONS = 50
DEFAULT_DECISIONS = 10
MAX_SCALE_COUNT = 64

USAGE = (
    """*Usage:* `/brainops <command>`
• `status` — fleet, workers and queues
• `decisions [n]` — the last n decisions (default 10, max 50)
• `budget` — token budget and pace
• `approvals` — pending approvals
• `scale KIND N [HOST]` — desired N workers of KIND ("""
    + ", ".join(SCALABLE_KINDS)
    + """)
• `dedup [--dry-run]` — run entity dedup once
• `recluster` — rebuild communities once
• `pause` / `resume` — stop / restart the autonomous loop
• `help` — this text
Actions go through the same policy guard as the agent; risky ones post an approval prompt."""
)

ReadKind = Literal["status", "decisions", "budget", "approvals", "help"]


@dataclass(frozen=True)
class ReadCommand:
    """A read-only question; `n` only matters for `decisions`."""

    kind: ReadKind
    n: int = DEFAULT_DECISIONS


@dataclass(frozen=True)
class ActionCommand:
    """An action request that must pass the policy guard."""

    action: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ControlCommand:
    kind: Literal["pause", "resume"]


@dataclass(frozen=True)
class UsageError:
    message: str

    def text(self) -> str:
        return f":warning: {self.message}\n{USAGE}"


Command = ReadCommand | ActionCommand | ControlCommand | UsageError
Parser = Callable[[list[str], str], Command]


def parse_command(text: str, default_host: str) -> Command:
    words = text.split()
    if not words:
        return ReadCommand("help")
    name, rest = words[0].lower(), words[1:]
    parser = _PARSERS.get(name)
    if parser is None:
        return UsageError(f"unknown command `{name}`")
    return parser(rest, default_host)


def _no_args(kind: ReadKind) -> Parser:
    def parse(rest: list[str], _host: str) -> Command:
        return UsageError(f"`{kind}` takes no arguments") if rest else ReadCommand(kind)

    return parse


def _parse_decisions(rest: list[str], _host: str) -> Command:
    if not rest:
        return ReadCommand("decisions")
    if len(rest) > 1 or not rest[0].isdigit() or not 1 <= int(rest[0]) <= MAX_DECISIONS:
        return UsageError(f"`decisions [n]`: n must be a whole number from 1 to {MAX_DECISIONS}")
    return ReadCommand("decisions", n=int(rest[0]))


def _parse_scale(rest: list[str], default_host: str) -> Command:
    if len(rest) not in (2, 3):
        return UsageError("`scale KIND N [HOST]` needs a kind and a count")
    kind, count = rest[0].lower(), rest[1]
    if kind not in SCALABLE_KINDS:
        return UsageError(f"`scale`: kind must be one of {', '.join(SCALABLE_KINDS)}, not `{kind}`")
    if not count.isdigit() or int(count) > MAX_SCALE_COUNT:
        return UsageError(f"`scale`: N must be a whole number from 0 to {MAX_SCALE_COUNT}, not `{count}`")
    host = rest[2] if len(rest) == 3 else default_host
    return ActionCommand("scale_workers", {"kind": kind, "host": host, "count": int(count)})


def _parse_dedup(rest: list[str], _host: str) -> Command:
    if rest not in ([], ["--dry-run"]):
        return UsageError("`dedup` takes only `--dry-run`")
    return ActionCommand("run_dedup", {"dry_run": bool(rest)})


def _parse_recluster(rest: list[str], _host: str) -> Command:
    if rest:
        return UsageError("`recluster` takes no arguments")
    return ActionCommand("run_recluster", {"reason": "requested from Slack"})


def _control(kind: Literal["pause", "resume"]) -> Parser:
    def parse(rest: list[str], _host: str) -> Command:
        return UsageError(f"`{kind}` takes no arguments") if rest else ControlCommand(kind)

    return parse


_PARSERS: dict[str, Parser] = {
    "status": _no_args("status"),
    "budget": _no_args("budget"),
    "approvals": _no_args("approvals"),
    "help": _no_args("help"),
    "decisions": _parse_decisions,
    "scale": _parse_scale,
    "dedup": _parse_dedup,
    "recluster": _parse_recluster,
    "pause": _control("pause"),
    "resume": _control("resume"),
}
