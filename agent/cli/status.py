"""`brainops status`: fleet, brain, workers, budget and pending approvals from what the last tick saved.

Instant: no brain scan, no host contacted, nothing heavy imported (litellm, lancedb, langgraph stay unloaded).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from core.domain import Observation
    from core.settings import Settings


def status(config: str = typer.Option(None, "--config", "-c"), as_json: bool = typer.Option(False, "--json")) -> None:
    from agent.service.observer import load_last_observation
    from core.settings import load_settings
    from policies.live import policy_status

    settings = load_settings(config)
    obs = load_last_observation(settings)
    workers = _live_workers(settings)
    approvals = _pending_approvals(settings)
    problem = policy_status(settings)
    paused = _paused_by(settings)
    if as_json:
        payload = {
            "policy_problem": problem,
            "paused_by": paused,
            "observed_at": _iso(obs.time) if obs else None,
            "observation": obs.model_dump(mode="json") if obs else None,
            "workers": workers,
            "pending_approvals": approvals,
        }
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    _print_status(obs, workers, approvals, problem, paused)


def _print_status(
    obs: Observation | None,
    workers: list[dict[str, Any]],
    approvals: list[dict[str, Any]],
    problem: str | None,
    paused: str | None,
) -> None:
    from rich.markup import escape

    from agent.cli.console import make_console
    from core.timefmt import when

    console = make_console()
    if problem:
        console.print(f"[bold red]{escape(problem)}[/]")
    if paused:
        console.print(f"[bold yellow]Autonomous loop paused by {escape(paused)}[/] (`brainops resume`)")
    if obs is None:
        console.print("[yellow]No tick has run yet[/] (run `brainops tick` or `brainops run`).")
    else:
        console.print(f"[dim]last observation {when(obs.time)}[/]", highlight=False)
        for missed in obs.missed_expectations:  # the model planner is on a stronger tier while this lasts
            console.print(f"[bold red]anomaly: {escape(missed)}[/] (`brainops decisions --action ID`)")
        console.print(_hosts_table(obs))
        if obs.brain.error:
            console.print(f"[bold red]brain: {escape(obs.brain.error)}[/] (the figures below are unknown, not zero)")
        console.print(_brain_table(obs))
        if obs.brain.dedup_plan is not None:  # the first line only; `brainops approvals` shows the sample
            console.print(escape(obs.brain.dedup_plan.lines()[0]), highlight=False)
        console.print(escape(_budget_line(obs)), highlight=False)
    console.print(_workers_table(workers))
    console.print(_approvals_table(approvals))


def _paused_by(settings: Settings) -> str | None:
    from agent.service.agent import Agent

    return Agent(settings).paused_by()


def _iso(ts: float | None) -> str | None:
    """A time in JSON output: ISO-8601 local with its offset (the text output adds the age: core.timefmt.when)."""
    from datetime import datetime

    return None if ts is None else datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def _live_workers(settings: Settings) -> list[dict[str, Any]]:
    import sqlite3

    path = settings.home / "dispatcher.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT id, kind, host, state, pid, total_restarts, started_at FROM workers "
            "WHERE state IN ('active','draining','backoff','fatal') ORDER BY kind, id"
        ).fetchall()
    return [{**dict(r), "started": _iso(r["started_at"])} for r in rows]


def _pending_approvals(settings: Settings) -> list[dict[str, Any]]:
    from agent.state.approvals import ApprovalStore

    if not settings.state_db.exists():
        return []
    now = time.time()
    return [
        {
            "id": a.id,
            "action": a.action,
            "args": a.args,
            "risk": a.risk,
            "rationale": a.rationale,
            "rule_ids": list(a.rule_ids),
            "reasons": list(a.reasons),
            "created": _iso(a.created_at),
            "expires": _iso(a.expires_at),
            "expires_at": a.expires_at,
            "expires_in_s": a.expires_at - now,
            "prediction": a.prediction.model_dump(mode="json") if a.prediction else None,
            "expected": a.prediction.summary() if a.prediction else None,
        }
        for a in ApprovalStore(settings.state_db).pending(now)
    ]


def _hosts_table(obs: Observation) -> Table:
    from rich.markup import escape
    from rich.table import Table

    table = Table("host", "up", "cpu %", "mem %", "disk %", "load1", "gpus", title="Fleet")
    for h in obs.hosts:
        gpus = ", ".join(f"{g.name} {g.util_percent:.0f}%" for g in h.gpus) or "-"
        up = "[green]yes[/]" if h.reachable else f"[red]no[/] {escape(h.error or '')}"
        table.add_row(
            escape(h.host),
            up,
            f"{h.cpu_percent:.0f}",
            f"{h.mem_percent:.0f}",
            f"{h.disk_percent:.0f}",
            f"{h.load1:.2f}",
            escape(gpus),
        )
    return table


def _brain_table(obs: Observation) -> Table:
    from rich.table import Table

    b = obs.brain
    table = Table(
        "stage",
        "pending",
        "rate/min",
        title=(
            f"Brain: {b.records} records, {b.entities} entities, {b.relationships} relationships, "
            f"{b.communities} communities, dup est {b.duplicate_estimate:.2%}"
        ),
    )
    for stage, pending in sorted(b.pending.items()):
        table.add_row(stage, str(pending), f"{obs.rates.get(stage, 0.0):.1f}")
    return table


def _budget_line(obs: Observation) -> str:
    b = obs.budget
    used = b.used_tokens / b.window_tokens if b.window_tokens else 0.0
    routing = ", ".join(f"{k} {v:.0%}" for k, v in b.routing.items()) or "default"
    return f"Budget: {b.used_tokens:,} / {b.window_tokens:,} tokens ({used:.1%}), pace {b.pace:.2f}, routing {routing}"


def _workers_table(workers: list[dict[str, Any]]) -> Table:
    from rich.markup import escape
    from rich.table import Column, Table

    from core.timefmt import when

    table = Table(
        Column("worker", no_wrap=True), "kind", "host", "state", "pid", "restarts", "started", title="Workers"
    )
    for w in workers:
        style = {"fatal": "bold red", "backoff": "yellow", "draining": "cyan"}.get(w["state"], "green")
        table.add_row(
            escape(w["id"]),
            w["kind"],
            escape(w["host"]),
            f"[{style}]{w['state']}[/]",
            str(w["pid"] or "-"),
            str(w["total_restarts"]),
            when(w["started_at"]),
        )
    return table


def _approvals_table(approvals: list[dict[str, Any]]) -> Table:
    from rich.markup import escape
    from rich.table import Column, Table

    from core.timefmt import when

    table = Table(
        Column("approval", no_wrap=True),  # the id to copy into `brainops approve`: never cut
        "action",
        "args",
        "rule",
        "expires",
        "expected",
        title="Pending approvals",
    )
    for a in approvals:
        table.add_row(
            escape(a["id"]),
            escape(a["action"]),
            escape(json.dumps(a["args"])),
            escape(", ".join(a["rule_ids"])),
            when(a["expires_at"]),
            escape(a.get("expected") or ""),
        )
    return table
