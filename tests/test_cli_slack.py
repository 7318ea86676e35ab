"""`brainops slack`: configuration errors are clear, and --check builds the app against the (stand-in) API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.slack_rig import SECRET, CountingBackend, Rig, rig

__all__ = ["rig"]  # the fixture


def _cli(backend: CountingBackend | None) -> Any:
    import typer

    from agent.cli import slack as cli_slack

    root = typer.Typer()
    root.command("noop")(lambda: None)  # typer flattens a single command; keep `slack` a subcommand
    cli_slack.register(root, (lambda _settings: backend) if backend else None)
    return root


def test_cli_check_builds_the_app_against_the_api(rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    (tmp_path / "empty.toml").write_text("")  # a config path must exist
    monkeypatch.setenv("BRAINOPS_CONFIG", str(tmp_path / "empty.toml"))
    monkeypatch.setenv("BRAINOPS_HOME", str(tmp_path / "home"))
    for key, value in {"MODE": "http", "BOT_TOKEN": "xoxb-cli", "SIGNING_SECRET": SECRET}.items():
        monkeypatch.setenv(f"BRAINOPS_SLACK__{key}", value)
    monkeypatch.setenv("BRAINOPS_SLACK__API_URL", rig.slack.api_url)
    before = len(rig.slack.of("auth.test"))
    result = CliRunner().invoke(_cli(rig.backend), ["slack", "--check"])
    assert result.exit_code == 0, result.output
    assert "ok: Slack app built (http mode)" in result.output
    assert len(rig.slack.of("auth.test")) == before + 1  # the bot token was checked against the API


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"MODE": "off"}, "Slack mode is 'off'"),
        ({"MODE": "http", "BOT_TOKEN": "xoxb-1"}, "missing slack.signing_secret"),
        ({"MODE": "http", "SIGNING_SECRET": "s"}, "missing slack.bot_token"),
    ],
)
def test_cli_config_errors_are_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needle: str
) -> None:
    from typer.testing import CliRunner

    (tmp_path / "empty.toml").write_text("")  # a config path must exist
    monkeypatch.setenv("BRAINOPS_CONFIG", str(tmp_path / "empty.toml"))
    for key, value in env.items():
        monkeypatch.setenv(f"BRAINOPS_SLACK__{key}", value)
    result = CliRunner().invoke(_cli(None), ["slack", "--check"])
    assert result.exit_code == 2
    assert needle in result.output
