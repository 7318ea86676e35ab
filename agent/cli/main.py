"""The `brainops` command. Heavy libraries are imported inside commands, so --help and status stay instant.

Calling `app` (the `brainops` script, `python -m agent.cli`) is the one error boundary: an error the user can
fix (config, policy, brain store, unreachable host) prints `file:line: reason` or one sentence to stderr and
exits 2 (a worker process exits 1, as the dispatcher expects of a failed worker); `--debug` shows the traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from agent.state.approvals import Approval
    from core.domain import Outcome
    from core.settings import Settings

EXIT_USAGE = 2  # what click gives a bad option; a bad config, policy or brain path is the same kind of mistake
EXIT_WORKER_FAILED = 1

# (module, exception class) of the errors a user can fix; looked up in sys.modules, so none is imported here.
EXPECTED_ERRORS = (
    ("core.config_errors", "ConfigError"),
    ("policies.loader", "PolicyError"),
    ("brain.store", "StoreError"),
    ("fleet.remote", "RemoteError"),
    ("fleet.host_keys", "HostKeyFetchError"),
    ("tomllib", "TOMLDecodeError"),
)


class _Invocation:
    debug = False
    command: str | None = None


def expected_error(exc: BaseException) -> str | None:
    """What to print for an error the user can fix; None for anything else (a bug: keep its traceback)."""
    for module, name in EXPECTED_ERRORS:
        kind = getattr(sys.modules.get(module), name, None)
        if isinstance(kind, type) and isinstance(exc, kind):
            text = str(exc).strip() or type(exc).__name__
            return text if module in ("core.config_errors", "policies.loader") else f"error: {text}"
    return None


class BrainopsApp(typer.Typer):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            message = expected_error(exc)
            if message is None or _Invocation.debug:
                raise
            print(message, file=sys.stderr)
            sys.exit(EXIT_WORKER_FAILED if _Invocation.command == "worker" else EXIT_USAGE)


app = BrainopsApp(
    no_args_is_help=True, add_completion=False, help="Autonomous operations agent for a self-hosted LLM brain."
)


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


_register()
