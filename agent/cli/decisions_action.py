"""`brainops decisions --action ID`: one action, what it expected, and the verdicts and rollbacks chained to it."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from agent.state.decisions import DecisionLog, DecisionRecord


def show_action(log: DecisionLog, wanted: str, as_json: bool) -> None:
    """Exit 2 with one sentence when no record, or more than one, has that id (or id prefix)."""
    record = _find(log, wanted)
    from agent.state.decision_links import linked as links

    linked = links(log, record.id)
    if as_json:
        for r in (record, *linked):
            typer.echo(r.to_json())
        return
    from core.timefmt import when

    now = time.time()
    expected = record.extra.get("expectation")
    typer.echo(f"{record.id}  {when(record.time, now)}  {record.action} {json.dumps(record.args, sort_keys=True)}")
    typer.echo(f"  outcome: {record.outcome.status} {record.outcome.detail}".rstrip())
    if isinstance(expected, dict):
        source = "" if expected.get("source") == "rules" else f" ({expected.get('source')})"
        typer.echo(f"  expected{source}: {expected.get('summary')}")
    else:
        typer.echo("  expected: nothing recorded")
    if not linked:
        typer.echo("  no verdict yet")
    for r in linked:
        kind = "verdict" if r.action == "verify" else "rollback"
        what = r.outcome.status if r.action == "verify" else f"{r.action} {json.dumps(r.args, sort_keys=True)}"
        typer.echo(f"  {kind} {r.id} {when(r.time, now)}: {what} {r.outcome.detail}".rstrip())


def _find(log: DecisionLog, wanted: str) -> DecisionRecord:
    exact = log.get(wanted)
    if exact is not None:
        return exact
    matches = [r for r in log.all() if r.id.startswith(wanted)] if len(wanted) >= 6 else []
    if len(matches) == 1:
        return matches[0]
    why = "no decision has" if not matches else f"{len(matches)} decisions have"
    typer.echo(f"error: {why} the id {wanted!r} (`brainops decisions` lists the ids with --json)", err=True)
    raise typer.Exit(2)
