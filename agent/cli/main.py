"""The `brainops` command. Heavy libraries are imported inside commands, so --help and status stay instant."""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Autonomous operations agent for a self-hosted LLM brain."
)


@app.callback()
def main(
    config: str = typer.Option(
        None, "--config", "-c", help="brainops.toml to use (default: $BRAINOPS_CONFIG, else ./brainops.toml)."
    ),
) -> None:
    """Every command reads its settings from this file plus BRAINOPS_* environment overrides."""
    if config:
        import os
        from pathlib import Path

        if not Path(config).is_file():
            raise typer.BadParameter(f"no config file at {config}", param_hint="--config")
        os.environ["BRAINOPS_CONFIG"] = config


def _resume_answered(settings: object, approval: object) -> None:
    """CLI approve/deny: resume the waiting approval graph so the action runs (once) right away."""
    from agent.service.agent import Agent
    from agent.slack.backend import cli_notifier

    agent = Agent(settings)  # type: ignore[arg-type]
    notifier = cli_notifier(agent)
    if notifier is not None:
        agent.notifiers.append(notifier)  # the Slack prompt loses its buttons and says who decided
    agent.resume_answered(approval)  # type: ignore[arg-type]


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

    cli_agent.register(app)
    cli_state.register(app, on_answered=_resume_answered)
    app.add_typer(cli_brain.app, name="brain", help="Seed, inspect and compact the brain store.")
    app.add_typer(
        cli_worker.app, name="worker", help="Run one worker process (embed, dedup, recluster, extract, wisdom)."
    )
    cli_brain.register_top_level(app)
    cli_slack.register(app, backend_factory=_slack_backend)  # type: ignore[arg-type]
    cli_hosts.register(app)
    cli_eval.register(app)
    cli_ops.register(app)


_register()
