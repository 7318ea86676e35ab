"""`brainops slack`: serve the Slack app (chat commands and approval buttons) over HTTP or Socket Mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from slack_bolt import App

    from agent.settings import Settings, SlackConfig
    from agent.slack_app import SlackBackend

BackendFactory = Callable[["Settings"], "SlackBackend"]


class SlackConfigError(ValueError):
    pass


def register(app: typer.Typer, backend_factory: BackendFactory | None = None) -> None:
    """Add `brainops slack` to the root app. `backend_factory(settings)` builds the agent-side backend
    (the lead's services facade); without one the command says so instead of serving a dead app."""

    def slack(
        mode: str = typer.Option("", "--mode", help="http or socket (default: settings slack.mode)."),
        bind: str = typer.Option("", "--bind", help="HTTP mode: address to listen on (default: slack.bind)."),
        port: int = typer.Option(0, "--port", min=0, max=65535, help="HTTP mode: port (default: slack.port)."),
        check: bool = typer.Option(False, "--check", help="Validate config and the bot token, then exit."),
    ) -> None:
        from agent.settings import load_settings

        settings = load_settings()
        try:
            chosen = slack_mode(settings.slack, mode)
            bolt_app = build_slack_app(settings, backend_factory, chosen)
        except SlackConfigError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from err
        if check:
            typer.echo(f"ok: Slack app built ({chosen} mode), bot token accepted")
            return
        _serve(bolt_app, settings.slack, chosen, bind or settings.slack.bind, port or settings.slack.port)

    app.command("slack", help="Serve Slack chat commands and approval buttons (settings: [slack]).")(slack)


def slack_mode(cfg: SlackConfig, override: str) -> str:
    mode = override or cfg.mode
    if mode not in ("http", "socket"):
        raise SlackConfigError(f'Slack mode is {mode!r}: set slack.mode = "http" or "socket" (or --mode)')
    return mode


def _secret(value: object, name: str) -> str:
    raw = value.get_secret_value() if value is not None and hasattr(value, "get_secret_value") else ""
    if not raw:
        raise SlackConfigError(f"missing slack.{name} (brainops.toml [slack] or BRAINOPS_SLACK__{name.upper()})")
    return str(raw)


def build_slack_app(settings: Settings, backend_factory: BackendFactory | None, mode: str) -> App:
    from agent.slack_app import build_app

    cfg = settings.slack
    token = _secret(cfg.bot_token, "bot_token")
    # Socket Mode never sees signed HTTP requests, but bolt still wants a secret; HTTP mode needs the real one.
    signing = _secret(cfg.signing_secret, "signing_secret") if mode == "http" else _optional(cfg)
    if backend_factory is None:
        raise SlackConfigError("no Slack backend wired into this build (agent services facade missing)")
    return build_app(
        backend_factory(settings), signing, token, cfg.api_url, cfg.channel, default_host=_brain_host(settings)
    )


def _optional(cfg: SlackConfig) -> str:
    return cfg.signing_secret.get_secret_value() if cfg.signing_secret else "socket-mode-unused"


def _serve(bolt_app: App, cfg: SlackConfig, mode: str, bind: str, port: int) -> None:
    from agent.slack_app import SlackHttpServer, run_socket_mode

    if mode == "socket":
        typer.echo("serving Slack over Socket Mode (Ctrl-C to stop)")
        run_socket_mode(bolt_app, _secret(cfg.app_token, "app_token"))
        return
    server = SlackHttpServer(bolt_app, host=bind, port=port)
    typer.echo(f"serving Slack events at {server.url} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        server.close()


def _brain_host(settings: Settings) -> str:
    """Where `/brainops scale KIND N` goes without a HOST: the brain host of the inventory."""
    return next((h.name for h in settings.hosts if h.role == "brain"), settings.hosts[0].name)
