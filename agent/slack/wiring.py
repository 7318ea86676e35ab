"""The Slack app built from settings: one place, shared by `brainops slack` and `brainops run`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slack_bolt import App

    from agent.slack.app import SlackBackend
    from core.settings import Settings, SlackConfig

BackendFactory = Callable[["Settings"], "SlackBackend"]


class SlackConfigError(ValueError):
    pass


def slack_mode(cfg: SlackConfig, override: str) -> str:
    mode = override or cfg.mode
    if mode not in ("http", "socket"):
        raise SlackConfigError(f'Slack mode is {mode!r}: set slack.mode = "http" or "socket" (or --mode)')
    return mode


def secret(value: object, name: str) -> str:
    raw = value.get_secret_value() if value is not None and hasattr(value, "get_secret_value") else ""
    if not raw:
        raise SlackConfigError(f"missing slack.{name} (brainops.toml [slack] or BRAINOPS_SLACK__{name.upper()})")
    return str(raw)


def build_slack_app(settings: Settings, backend_factory: BackendFactory | None, mode: str) -> App:
    from agent.slack.app import build_app

    cfg = settings.slack
    token = secret(cfg.bot_token, "bot_token")
    # Socket Mode never sees signed HTTP requests, but bolt still wants a secret; HTTP mode needs the real one.
    signing = secret(cfg.signing_secret, "signing_secret") if mode == "http" else _optional(cfg)
    if backend_factory is None:
        raise SlackConfigError("no Slack backend wired into this build (agent services facade missing)")
    return build_app(
        backend_factory(settings), signing, token, cfg.api_url, cfg.channel, default_host=_brain_host(settings)
    )


def _optional(cfg: SlackConfig) -> str:
    return cfg.signing_secret.get_secret_value() if cfg.signing_secret else "socket-mode-unused"


def _brain_host(settings: Settings) -> str:
    """Where `/brainops scale KIND N` goes without a HOST: the brain host of the inventory."""
    return next((h.name for h in settings.hosts if h.role == "brain"), settings.hosts[0].name)
