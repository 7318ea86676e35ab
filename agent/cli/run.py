"""`brainops run | tick | status`: the agent's own commands."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from agent.cli.console import make_console

if TYPE_CHECKING:
    from agent.service.agent import Agent, TickReport
    from core.settings import Settings

console = make_console()
# The shortest tick interval, core.settings.MIN_TICK_SECONDS (not imported at module level: --help stays instant).
MIN_INTERVAL_S = 1.0

_STYLE = {"done": "green", "pending": "yellow", "denied": "red", "failed": "bold red", "expired": "red"}


def register(app: typer.Typer) -> None:
    app.command("run", help="The main job: tick every N seconds, plus cron jobs, until SIGINT/SIGTERM.")(run)
    app.command("tick", help="Run one observe -> plan -> guard -> act -> record pass.")(tick)
    app.command("status", help="Fleet, brain, workers, budget and pending approvals (instant: no brain scan).")(status)
    app.command("pause", help="Pause autonomous ticks (chat, CLI actions and approvals keep working).")(pause)
    app.command("resume", help="Resume autonomous ticks.")(resume)


def pause(
    by: str = typer.Option(..., "--by", help="Who pauses (shown in status)."),
    config: str = typer.Option(None, "--config", "-c"),
) -> None:
    _agent(_settings(config)).pause(by)
    console.print(f"autonomous loop paused by {by}")


def resume(config: str = typer.Option(None, "--config", "-c")) -> None:
    _agent(_settings(config)).resume()
    console.print("autonomous loop resumed")


def _settings(config: str | None) -> Settings:
    from core.settings import load_settings

    return load_settings(config)


def _agent(settings: Settings) -> Agent:
    from agent.service.agent import Agent

    return Agent(settings)


def brain_exists(settings: Settings) -> bool:
    """Whether the brain exists. A missing one that may not be seeded with the demo brain (`Settings.
    seeds_demo_brain`: never at a brain_uri someone wrote) is a ConfigError naming where brain_uri was written."""
    from brain.store import BrainStore
    from core.config_errors import ConfigError

    if BrainStore(settings.brain_path).exists():
        return True
    if not settings.seeds_demo_brain:
        raise ConfigError([_missing_brain(settings)])
    return False


def ensure_brain(settings: Settings, *, dry_run: bool = False) -> bool:
    """True when the brain exists or was just seeded as the small demo one (a first run on a fresh machine: no
    config file, no brain_uri). A dry run seeds nothing: without a brain it says so and returns False."""
    if brain_exists(settings):
        return True
    path = settings.brain_path
    if dry_run:
        console.print(f"No brain at {path}: a tick would seed a small demo brain there; dry run, nothing written.")
        return False
    from brain.seed import seed_brain

    console.print(f"[bold]No brain at {path}: seeding a {settings.demo_scale} demo brain[/]")
    seed_brain(path, settings.demo_scale, seed=7)
    return True


def _missing_brain(settings: Settings) -> str:
    path = settings.brain_path
    seed = f"`brainops brain seed --path {path}` creates one"
    if settings.brain_uri and "brain_uri" in settings.model_fields_set:
        where = settings.where("brain_uri") or "brain_uri"
        return (
            f"{where}: brain_uri: no brain at {path}; fix brain_uri, or {seed} (never a demo brain at a set brain_uri)"
        )
    where = settings.where("demo_seed") or str(settings.config_file or "settings")
    return (
        f"{where}: no brain at {path} (brain_uri not set: <home>/brain); set brain_uri, {seed}, or set demo_seed = true"
    )


def run(
    config: str = typer.Option(None, "--config", "-c", help="brainops.toml (default: ./brainops.toml)"),
    ticks: int | None = typer.Option(
        None, "--ticks", min=1, help="Stop after this many ticks (default: run until stopped)."
    ),
    interval: float | None = typer.Option(
        None,
        "--interval",
        min=MIN_INTERVAL_S,
        help=f"Seconds between ticks, at least {MIN_INTERVAL_S:g} (default: schedule.tick_seconds).",
    ),
) -> None:
    settings = _settings(config)
    if interval is not None:
        settings.schedule.tick_seconds = interval
    brain_exists(settings)  # a mistyped brain_uri fails here, before anything is written
    settings.ensure_dirs()
    with _one_loop(settings):
        _run_loop(settings, ticks)


@contextlib.contextmanager
def _one_loop(settings: Settings) -> Iterator[None]:
    """One `brainops run` per home: a second one exits 2 naming the pid that holds the home."""
    from agent.service.locks import LoopAlreadyRunning, LoopLock

    try:
        with LoopLock(settings.home / "loop.lock"):
            yield
    except LoopAlreadyRunning as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _run_loop(settings: Settings, ticks: int | None) -> None:
    from agent.service.scheduler import AgentLoop

    ensure_brain(settings)
    agent = _agent(settings)
    _attach_slack(agent)
    console.print(
        f"[bold]brainops run[/]: tick every {settings.schedule.tick_seconds:g}s on "
        f"{', '.join(h.name for h in settings.hosts)}; brain {settings.brain_path}; planner "
        f"{type(agent.planner).__name__}. Ctrl-C stops (workers and approvals stay)."
    )
    if settings.json_logs:
        from agent.service.logging_setup import configure_logging

        configure_logging(json_logs=True)
    on_report, on_error, exporter = _with_metrics(agent)
    loop = AgentLoop(agent, on_report=on_report, on_error=on_error, max_ticks=ticks or None)
    try:
        loop.run_forever()
    finally:
        if exporter is not None:
            exporter.close()
    console.print(f"[bold]stopped[/] after {loop.ticks} tick(s); workers keep running, approvals stay pending.")


def _with_metrics(agent: Agent) -> tuple[Any, Any, Any]:
    """(on_report, on_error, exporter): the console printers, plus Prometheus updates when metrics_port is set."""
    port = agent.settings.metrics_port
    if port is None:
        return print_report, _print_error, None
    from agent.service.metrics import BrainopsMetrics, start_exporter, tick_callbacks

    metrics = BrainopsMetrics()
    exporter = start_exporter(metrics, port, agent.settings.metrics_address)
    console.print(f"[dim]metrics on {exporter.url}[/]")
    count, fail = tick_callbacks(metrics, agent)

    def on_report(report: TickReport) -> None:
        count(report)
        print_report(report)

    def on_error(exc: BaseException) -> None:
        fail(exc)
        _print_error(exc)

    return on_report, on_error, exporter


def tick(
    config: str = typer.Option(None, "--config", "-c"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Plan and guard, record, execute nothing."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    settings = _settings(config)
    if not ensure_brain(settings, dry_run=dry_run):
        return
    settings.ensure_dirs()
    report = _agent(settings).tick(dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(_report_json(report), indent=2))
    else:
        print_report(report)


def print_report(report: TickReport) -> None:
    from rich.markup import escape

    planner = report.planner.kind if report.planner.kind != "model" else f"model {report.planner.tier}"
    if report.planner.fallback_reason:
        planner += f" (fallback: {report.planner.fallback_reason})"
    stamp = time.strftime("%H:%M:%S")
    console.print(f"[dim]{stamp}[/] tick [bold]{report.tick_id}[/] planner={planner} {report.duration_s:.2f}s")
    for rejected in report.rejected:
        console.print(f"   [red]rejected model call[/] {rejected.get('tool')}: {rejected.get('reason')}")
    for proposal, verdict, outcome in zip(report.proposals, report.verdicts, report.outcomes, strict=True):
        style = _STYLE.get(outcome.status, "white")
        args = " ".join(f"{k}={v}" for k, v in proposal.args.items())
        rules = ",".join(verdict.get("rule_ids", []))
        console.print(
            f"   {proposal.action} {args} [dim]<- {proposal.rationale}[/]\n"
            f"     [{style}]{outcome.status}[/] [dim]{verdict.get('verdict')} ({rules})[/] {outcome.detail}"
        )
        if proposal.prediction is not None:
            console.print(f"     expected: {escape(proposal.prediction.summary())}", highlight=False)


def _print_error(exc: BaseException) -> None:
    console.print(f"[bold red]tick failed:[/] {type(exc).__name__}: {exc}")


def _report_json(report: TickReport) -> dict[str, Any]:
    return {
        "tick_id": report.tick_id,
        "planner": report.planner.model_dump(mode="json"),
        "decisions": [
            {"proposal": p.model_dump(mode="json"), "verdict": v, "outcome": o.model_dump(mode="json")}
            for p, v, o in zip(report.proposals, report.verdicts, report.outcomes, strict=True)
        ],
        "rejected": list(report.rejected),
        "duration_s": report.duration_s,
    }


def _attach_slack(agent: Agent) -> None:
    if agent.settings.slack.mode == "off":
        return
    from agent.slack.backend import attach_to_agent

    try:
        attach_to_agent(agent)
    except Exception as exc:  # Slack down or a revoked token must not keep the agent from running
        console.print(f"[bold yellow]Slack not started:[/] {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- status


def status(config: str = typer.Option(None, "--config", "-c"), as_json: bool = typer.Option(False, "--json")) -> None:
    from agent.service.observer import load_last_observation

    settings = _settings(config)
    obs = load_last_observation(settings)
    workers = _live_workers(settings)
    approvals = _pending_approvals(settings)
    if as_json:
        from policies.live import policy_status

        payload = {
            "policy_problem": policy_status(settings),
            "observation": obs.model_dump(mode="json") if obs else None,
            "workers": workers,
            "pending_approvals": approvals,
        }
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    from policies.live import policy_status

    if problem := policy_status(settings):
        console.print(f"[bold red]{problem}[/]")
    paused = _agent(settings).paused_by()
    if paused:
        console.print(f"[bold yellow]Autonomous loop paused by {paused}[/] (`brainops resume`)")
    if obs is None:
        console.print("[yellow]No tick has run yet[/] (run `brainops tick` or `brainops run`).")
    else:
        console.print(f"[dim]last observation {time.time() - obs.time:.0f}s ago[/]")
        console.print(_hosts_table(obs))
        if obs.brain.error:
            console.print(f"[bold red]brain: {obs.brain.error}[/] (the figures below are unknown, not zero)")
        console.print(_brain_table(obs))
        if obs.brain.dedup_plan is not None:  # the first line only; `brainops approvals` shows the sample
            from rich.markup import escape

            console.print(escape(obs.brain.dedup_plan.lines()[0]), highlight=False)
        console.print(_budget_line(obs))
    console.print(_workers_table(workers))
    console.print(_approvals_table(approvals))


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
    return [dict(r) for r in rows]


def _pending_approvals(settings: Settings) -> list[dict[str, Any]]:
    from agent.state.approvals import ApprovalStore

    if not settings.state_db.exists():
        return []
    return [
        {
            "id": a.id,
            "action": a.action,
            "args": a.args,
            "risk": a.risk,
            "expires_in_s": a.expires_at - time.time(),
            "prediction": a.prediction.model_dump(mode="json") if a.prediction else None,
            "expected": a.prediction.summary() if a.prediction else None,
        }
        for a in ApprovalStore(settings.state_db).pending(time.time())
    ]


def _hosts_table(obs: Any) -> Table:
    table = Table("host", "up", "cpu %", "mem %", "disk %", "load1", "gpus", title="Fleet")
    for h in obs.hosts:
        gpus = ", ".join(f"{g.name} {g.util_percent:.0f}%" for g in h.gpus) or "-"
        up = "[green]yes[/]" if h.reachable else f"[red]no[/] {h.error or ''}"
        table.add_row(
            h.host, up, f"{h.cpu_percent:.0f}", f"{h.mem_percent:.0f}", f"{h.disk_percent:.0f}", f"{h.load1:.2f}", gpus
        )
    return table


def _brain_table(obs: Any) -> Table:
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


def _budget_line(obs: Any) -> str:
    b = obs.budget
    used = b.used_tokens / b.window_tokens if b.window_tokens else 0.0
    routing = ", ".join(f"{k} {v:.0%}" for k, v in b.routing.items()) or "default"
    return f"Budget: {b.used_tokens:,} / {b.window_tokens:,} tokens ({used:.1%}), pace {b.pace:.2f}, routing {routing}"


def _workers_table(workers: list[dict[str, Any]]) -> Table:
    table = Table("worker", "kind", "host", "state", "pid", "restarts", title="Workers")
    for w in workers:
        style = {"fatal": "bold red", "backoff": "yellow", "draining": "cyan"}.get(w["state"], "green")
        table.add_row(
            w["id"], w["kind"], w["host"], f"[{style}]{w['state']}[/]", str(w["pid"] or "-"), str(w["total_restarts"])
        )
    return table


def _approvals_table(approvals: list[dict[str, Any]]) -> Table:
    table = Table("approval", "action", "args", "risk", "expires in", "expected", title="Pending approvals")
    for a in approvals:
        expected = a.get("expected") or ""
        table.add_row(a["id"], a["action"], json.dumps(a["args"]), a["risk"], f"{a['expires_in_s']:.0f}s", expected)
    return table
