"""The `brainops` command. Heavy libraries are imported inside commands, so --help and status stay instant.

Calling `app` (the `brainops` script, `python -m agent.cli`) is the one error boundary: an error the user can
fix prints `file:line: reason` or one sentence to stderr, no traceback (`--debug` shows it). Exit codes, the
same for every command (agent/cli/console.py):
  0  ok
  1  refused or failed: a denied or refused action (`approve` by a non-approver, a changed host key, a guard
     that says no), a check that failed (`doctor` FAIL, `decisions verify` TAMPERED, an unreachable host), a
     `worker` command that failed (the dispatcher reads 1 as failed; a worker's own codes are in
     workers/runtime.py), or an unexpected error (a bug: its traceback)
  2  usage or config error: a bad option or argument (click's own code), a config, policy or brain path that
     does not load, a second `run` on the same home
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from agent.cli.console import EXIT_REFUSED, EXIT_USAGE

if TYPE_CHECKING:
    from agent.state.approvals import Approval
    from core.domain import Outcome
    from core.settings import Settings

EXIT_WORKER_FAILED = EXIT_REFUSED

# (module, exception class) of the errors a user can fix (exit 2); looked up in sys.modules, so none is imported.
EXPECTED_ERRORS = (
    ("core.config_errors", "ConfigError"),
    ("policies.loader", "PolicyError"),
    ("brain.store", "StoreError"),
    ("tomllib", "TOMLDecodeError"),
)
# ... and those that say a host refused or could not be reached (exit 1): the config may be right.
REFUSED_ERRORS = (
    ("fleet.remote", "RemoteError"),
    ("fleet.host_keys", "HostKeyFetchError"),
    ("fleet.ray_host", "RayUnavailable"),
)


class _Invocation:
    debug = False
    command: str | None = None


def _match(exc: BaseException, kinds: tuple[tuple[str, str], ...]) -> str | None:
    for module, name in kinds:
        kind = getattr(sys.modules.get(module), name, None)
        if isinstance(kind, type) and isinstance(exc, kind):
            return module
    return None


def expected_error(exc: BaseException) -> str | None:
    """What to print for an error the user can fix; None for anything else (a bug: keep its traceback)."""
    module = _match(exc, EXPECTED_ERRORS + REFUSED_ERRORS)
    if module is None:
        return None
    text = str(exc).strip() or type(exc).__name__
    return text if module in ("core.config_errors", "policies.loader") else f"error: {text}"


def exit_code(exc: BaseException, command: str | None) -> int:
    """The exit code of an expected error (see the module docstring)."""
    if command == "worker" or _match(exc, REFUSED_ERRORS):
        return EXIT_REFUSED
    return EXIT_USAGE


class BrainopsApp(typer.Typer):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            message = expected_error(exc)
            if message is None or _Invocation.debug:
                raise
            print(message, file=sys.stderr)
            sys.exit(exit_code(exc, _Invocation.command))


app = BrainopsApp(
    no_args_is_help=True, add_completion=True, help="Autonomous operations agent for a self-hosted LLM brain."
)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("brainops")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"brainops {version()}")
        raise typer.Exit(0)


@app.callback()
def main(
    ctx: typer.Context,
    config: str = typer.Option(
        None,
        "--config",
        "-c",
        help="brainops.toml to use (default: $BRAINOPS_CONFIG, else ./brainops.toml if present). A path given "
        "here or in $BRAINOPS_CONFIG must exist.",
    ),
    debug: bool = typer.Option(False, "--debug", help="On an error, show the full traceback, not one line."),
    _version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the installed version and exit."
    ),
) -> None:
    """Every command reads its settings from this file plus BRAINOPS_* environment overrides."""
    _Invocation.debug = debug
    _Invocation.command = ctx.invoked_subcommand
    if config:
        import os
        from pathlib import Path

        if not Path(config).is_file():
            raise typer.BadParameter(f"no config file at {config}", param_hint="--config")
        os.environ["BRAINOPS_CONFIG"] = str(Path(config).resolve())  # workers may start in another directory


def _resume_answered(settings: Settings, approval: Approval) -> Outcome | None:
    """CLI approve/deny: resume the waiting approval graph so the action runs (once) right away."""
    from agent.service.agent import Agent
    from agent.slack.backend import cli_notifier

    agent = Agent(settings)
    notifier = cli_notifier(agent)
    if notifier is not None:
        agent.notifiers.append(notifier)  # the Slack prompt loses its buttons and says who decided
    return agent.resume_answered(approval)


def _slack_backend(settings: object) -> object:
    from agent.service.agent import Agent
    from agent.slack.backend import AgentSlackBackend

    return AgentSlackBackend(Agent(settings))  # type: ignore[arg-type]


def _register() -> None:
    from agent.cli import brain as cli_brain
    from agent.cli import eval as cli_eval
    from agent.cli import hosts as cli_hosts
    from agent.cli import ops as cli_ops
    from agent.cli import run as cli_agent
    from agent.cli import slack as cli_slack
    from agent.cli import state as cli_state
    from agent.cli import worker as cli_worker
    from core.kinds import WORKER_KINDS

    cli_agent.register(app)
    cli_state.register(app, on_answered=_resume_answered)
    app.add_typer(cli_brain.app, name="brain", help="Seed, inspect and compact the brain store.")
    app.add_typer(cli_worker.app, name="worker", help=f"Run one worker process ({', '.join(WORKER_KINDS)}).")
    cli_brain.register_top_level(app)
    cli_slack.register(app, backend_factory=_slack_backend)  # type: ignore[arg-type]
    cli_hosts.register(app)
    cli_eval.register(app)
    cli_ops.register(app)
    __import__("agent.cli.workers", fromlist=["register"]).register(app)  # `brainops workers stop [--all]`
    __import__("agent.cli.mcp", fromlist=["register"]).register(app)  # `brainops mcp [--http]`


_register()
