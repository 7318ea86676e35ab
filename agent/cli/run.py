"""`brainops run | tick | pause | resume` (`status` is in agent/cli/status.py): the agent's own commands.

Output: text through agent/cli/console.py; with settings.json_logs, `run` writes only JSON lines (log records on
stderr, one object per decision on stdout); `tick --json` keeps stdout for its one document (progress on stderr).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import typer

from agent.cli.report import log_report, print_report, report_json

if TYPE_CHECKING:
    from agent.service.agent import Agent, TickReport
    from core.settings import Settings

# The shortest tick interval, core.settings.MIN_TICK_SECONDS (not imported at module level: --help stays instant).
MIN_INTERVAL_S = 1.0

Say = Callable[[str], None]  # one line of progress or notice: a console line, or a log record under json_logs
log = logging.getLogger("brainops.run")


def register(app: typer.Typer) -> None:
    from agent.cli.status import status

    app.command("run", help="The main job: tick every N seconds, plus cron jobs, until SIGINT/SIGTERM.")(run)
    app.command("tick", help="Run one observe -> plan -> guard -> act -> record pass.")(tick)
    app.command("status", help="Fleet, brain, workers, budget and pending approvals (instant: no brain scan).")(status)
    app.command("pause", help="Pause autonomous ticks (chat, CLI actions and approvals keep working).")(pause)
    app.command("resume", help="Resume autonomous ticks.")(resume)


def printer(*, stderr: bool = False) -> Say:
    """Plain lines (no markup) on stdout, or on stderr where stdout is reserved for data (`--json`)."""
    from agent.cli.console import make_console

    console = make_console(stderr=stderr)
    return lambda text: console.print(text, markup=False, highlight=False)


def pause(
    by: str = typer.Option(..., "--by", help="Who pauses (shown in status)."),
    config: str = typer.Option(None, "--config", "-c"),
) -> None:
    _agent(_settings(config)).pause(by)
    printer()(f"autonomous loop paused by {by}")


def resume(config: str = typer.Option(None, "--config", "-c")) -> None:
    _agent(_settings(config)).resume()
    printer()("autonomous loop resumed")


def _settings(config: str | None) -> Settings:
    from core.settings import load_settings

    return load_settings(config)


def _trace() -> None:
    """OpenTelemetry traces when the OTEL_* environment asks for them (core/telemetry.py)."""
    from core import telemetry

    telemetry.setup()


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


def ensure_brain(settings: Settings, *, dry_run: bool = False, say: Say | None = None, progress: bool = True) -> bool:
    """True when the brain exists or was just seeded as the small demo one (a first run on a fresh machine: no
    config file, no brain_uri). A dry run seeds nothing: without a brain it says so and returns False.
    `say` gets the one line of news (default: stdout); the seed's progress bar, if any, is on stderr."""
    if brain_exists(settings):
        return True
    say = say or printer()
    path = settings.brain_path
    if dry_run:
        say(f"No brain at {path}: a tick would seed a small demo brain there; dry run, nothing written.")
        return False
    from brain.seed import seed_brain

    say(f"No brain at {path}: seeding a {settings.demo_scale} demo brain")
    seed_brain(path, settings.demo_scale, seed=7, show_progress=progress)
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
    _trace()
    settings = _settings(config)
    if interval is not None:
        settings.schedule.tick_seconds = interval
    if settings.json_logs:  # from here on every line is JSON: records on stderr, decisions on stdout
        from agent.service.logging_setup import configure_logging

        configure_logging(json_logs=True)
    brain_exists(settings)  # a mistyped brain_uri fails here, before anything is written
    settings.ensure_dirs()
    with _one_loop(settings):
        _run_loop(settings, ticks)


@contextlib.contextmanager
def _one_loop(settings: Settings) -> Iterator[None]:
    """One `brainops run` per home: a second one exits 2 naming the pid that holds the home."""
    from agent.cli.console import EXIT_USAGE
    from agent.service.locks import LoopAlreadyRunning, LoopLock

    try:
        with LoopLock(settings.home / "loop.lock"):
            yield
    except LoopAlreadyRunning as exc:
        if settings.json_logs:
            log.error("%s", exc)
        else:
            typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def _run_loop(settings: Settings, ticks: int | None) -> None:
    from agent.service.scheduler import AgentLoop

    say: Say = log.info if settings.json_logs else printer()
    ensure_brain(settings, say=say, progress=not settings.json_logs)
    agent = _agent(settings)
    if settings.ray is not None:
        _ = agent.fleet  # joins (or starts) Ray here, on the main thread: an unreachable one ends `run` before tick 1
    _attach_slack(agent, say)
    say(
        f"brainops run: tick every {settings.schedule.tick_seconds:g}s on "
        f"{', '.join(h.name for h in settings.hosts)}; brain {settings.brain_path}; planner "
        f"{type(agent.planner).__name__}. Ctrl-C stops (workers and approvals stay)."
    )
    on_report, on_error, exporter = _with_metrics(agent, say)
    loop = AgentLoop(agent, on_report=on_report, on_error=on_error, max_ticks=ticks or None)
    try:
        loop.run_forever()
    finally:
        if exporter is not None:
            exporter.close()
    say(f"stopped after {loop.ticks} tick(s); workers keep running, approvals stay pending.")


def _printers(json_logs: bool) -> tuple[Callable[[TickReport], None], Callable[[BaseException], None]]:
    if json_logs:
        return log_report, lambda exc: log.error("tick failed: %s: %s", type(exc).__name__, exc)
    say = printer()
    return print_report, lambda exc: say(f"tick failed: {type(exc).__name__}: {exc}")


def _with_metrics(agent: Agent, say: Say) -> tuple[Any, Any, Any]:
    """(on_report, on_error, exporter): the printers, plus Prometheus updates when metrics_port is set."""
    show, show_error = _printers(agent.settings.json_logs)
    port = agent.settings.metrics_port
    if port is None:
        return show, show_error, None
    from agent.service.metrics import BrainopsMetrics, start_exporter, tick_callbacks

    metrics = BrainopsMetrics()
    exporter = start_exporter(metrics, port, agent.settings.metrics_address)
    say(f"metrics on {exporter.url}")
    count, fail = tick_callbacks(metrics, agent)

    def on_report(report: TickReport) -> None:
        count(report)
        show(report)

    def on_error(exc: BaseException) -> None:
        fail(exc)
        show_error(exc)

    return on_report, on_error, exporter


def tick(
    config: str = typer.Option(None, "--config", "-c"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Plan and guard, record, execute nothing."),
    as_json: bool = typer.Option(
        False, "--json", help="The tick as one JSON document on stdout (progress and notices on stderr)."
    ),
) -> None:
    _trace()
    settings = _settings(config)
    if not ensure_brain(settings, dry_run=dry_run, say=printer(stderr=as_json)):
        return
    settings.ensure_dirs()
    report = _agent(settings).tick(dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(report_json(report), indent=2))
    else:
        print_report(report)


def _attach_slack(agent: Agent, say: Say) -> None:
    if agent.settings.slack.mode == "off":
        return
    from agent.slack.backend import attach_to_agent

    try:
        attach_to_agent(agent)
    except Exception as exc:  # Slack down or a revoked token must not keep the agent from running
        say(f"Slack not started: {type(exc).__name__}: {exc}")
