"""`brainops slack`: serve the Slack app (chat commands and approval buttons) over HTTP or Socket Mode."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from agent.cli.console import EXIT_USAGE
from agent.slack.wiring import BackendFactory, SlackConfigError, build_slack_app, secret, slack_mode

if TYPE_CHECKING:
    from slack_bolt import App

    from core.settings import SlackConfig


def register(app: typer.Typer, backend_factory: BackendFactory | None = None) -> None:
    """Add `brainops slack` to the root app. `backend_factory(settings)` builds the agent-side backend
    (the lead's services facade); without one the command says so instead of serving a dead app."""

    def slack(
        mode: str = typer.Option("", "--mode", help="http or socket (default: settings slack.mode)."),
        bind: str = typer.Option("", "--bind", help="HTTP mode: address to listen on (default: slack.bind)."),
        port: int = typer.Option(0, "--port", min=0, max=65535, help="HTTP mode: port (default: slack.port)."),
        check: bool = typer.Option(False, "--check", help="Validate config and the bot token, then exit."),
    ) -> None:
        from core.settings import load_settings

        settings = load_settings()
        try:
            chosen = slack_mode(settings.slack, mode)
            bolt_app = build_slack_app(settings, backend_factory, chosen)
        except SlackConfigError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(EXIT_USAGE) from err
        if check:
            typer.echo(f"ok: Slack app built ({chosen} mode), bot token accepted")
            return
        _serve(bolt_app, settings.slack, chosen, bind or settings.slack.bind, port or settings.slack.port)

    # no square brackets in help text: Typer renders it as Rich markup, where "[slack]" is a tag and vanishes
    app.command("slack", help="Serve Slack chat commands and approval buttons (settings: the slack table).")(slack)


def _serve(bolt_app: App, cfg: SlackConfig, mode: str, bind: str, port: int) -> None:
    from agent.slack.app import SlackHttpServer, run_socket_mode

    if mode == "socket":
        typer.echo("serving Slack over Socket Mode (Ctrl-C to stop)")
        run_socket_mode(bolt_app, secret(cfg.app_token, "app_token"))
        return
    server = SlackHttpServer(bolt_app, host=bind, port=port)
    typer.echo(f"serving Slack events at {server.url} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        server.close()
