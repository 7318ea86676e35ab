"""Where the state is: found from the config, never from the working directory (core/locations.py).

`cd elsewhere && brainops ...` used to read and create `./.brainops` of whatever directory it ran in; now a
relative path in brainops.toml is relative to the file, the config is searched in a fixed order, the default home
is $XDG_STATE_HOME/brainops, and a command that only reads the state creates none where there is none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.agent_rig import DEFAULT_POLICY, NO_CPU_CEILING, copy_brain, write_policy

from core.config_errors import ConfigError
from core.settings import load_settings


@pytest.fixture(autouse=True)
def _no_config_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("BRAINOPS_")]:
        monkeypatch.delenv(name)


def brainops(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real CLI from `cwd`, stdout piped, no BRAINOPS_* variable but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRAINOPS_")}
    clean.update(LITELLM_LOCAL_MODEL_COST_MAP="True", **env)
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, env=clean, cwd=cwd, timeout=180
    )


def dirs(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "elsewhere"
    a.mkdir()
    b.mkdir()
    return a, b


def test_relative_paths_in_the_config_file_are_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = dirs(tmp_path)
    (a / "brainops.toml").write_text('home = "state"\nbrain_uri = "data/brain"\npolicy_file = "policy.yaml"\n')
    monkeypatch.chdir(b)
    settings = load_settings(str(a / "brainops.toml"))
    assert settings.home == a / "state" and settings.state_db == a / "state" / "state.db"
    assert settings.brain_path == str(a / "data" / "brain") and settings.policy_path == a / "policy.yaml"
    assert settings.where("home") == f"{a / 'brainops.toml'}:1"  # where it was written stays reported


def test_relative_paths_from_the_environment_or_a_flag_are_relative_to_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = dirs(tmp_path)
    (a / "brainops.toml").write_text('home = "state"\n')
    monkeypatch.chdir(b)
    monkeypatch.setenv("BRAINOPS_HOME", "mine")
    settings = load_settings(str(a / "brainops.toml"), brain_uri="here/brain")  # a --brain flag
    assert settings.home == b / "mine" and settings.brain_path == str(b / "here" / "brain")
    monkeypatch.setenv("BRAINOPS_HOME", "~/somewhere")
    assert load_settings().home == Path.home() / "somewhere"
    assert load_settings(brain_uri="s3://bucket/brain").brain_path == "s3://bucket/brain"


def test_without_a_config_file_the_default_home_is_the_same_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = dirs(tmp_path)
    homes = []
    for cwd in (a, b):
        monkeypatch.chdir(cwd)
        settings = load_settings()
        assert settings.config_file is None
        homes.append(settings.home)
    assert homes[0] == homes[1] == Path(os.environ["XDG_STATE_HOME"]) / "brainops"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")  # the XDG spec: a relative value is ignored
    assert load_settings().home == Path.home() / ".local" / "state" / "brainops"


def test_the_config_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = dirs(tmp_path)
    user = Path(os.environ["XDG_CONFIG_HOME"]) / "brainops" / "brainops.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text(f'home = "{tmp_path / "user-home"}"\n')
    (a / "brainops.toml").write_text('home = "local-home"\n')
    try:
        monkeypatch.chdir(b)
        assert load_settings().config_file == user and load_settings().home == tmp_path / "user-home"
        monkeypatch.chdir(a)  # ./brainops.toml comes first
        assert load_settings().config_file == a / "brainops.toml" and load_settings().home == a / "local-home"
    finally:
        user.unlink()


def test_a_read_only_load_creates_no_state_and_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        load_settings(existing_state=True)
    home = Path(os.environ["XDG_STATE_HOME"]) / "brainops"
    (message,) = raised.value.problems
    assert f"no brainops state at {home / 'state.db'}" in message and "no config file found" in message
    assert "brainops.toml" in message and not home.exists()
    config = tmp_path / "brainops.toml"
    config.write_text('home = "state"\n')
    with pytest.raises(ConfigError, match=rf"home from {config}:1"):
        load_settings(existing_state=True)
    assert not (tmp_path / "state").exists()


@pytest.mark.slow
def test_cd_elsewhere_finds_the_same_state(tmp_path: Path, small_brain: str) -> None:
    """One tick from the config's directory; the decision log is found from elsewhere, by BRAINOPS_CONFIG and
    by the user config; a command run from elsewhere writes nothing there."""
    a, b = dirs(tmp_path)
    brain = copy_brain(small_brain, tmp_path)
    policy = write_policy(tmp_path / "policy.yaml", dry_run=True, **NO_CPU_CEILING)  # records, starts nothing
    config = a / "brainops.toml"
    config.write_text(f'home = "state"\nbrain_uri = "{brain}"\npolicy_file = "{policy}"\ndemo_seed = false\n')
    ticked = brainops(a, "tick")
    assert ticked.returncode == 0, ticked.stderr
    assert (a / "state" / "state.db").is_file()

    def records(cwd: Path, **env: str) -> list[dict]:
        done = brainops(cwd, "decisions", "--json", "--last", "50", **env)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    here = records(a)
    assert here and {r["tick_id"] for r in here} == {here[0]["tick_id"]}
    assert records(b, BRAINOPS_CONFIG=str(config)) == here
    user = Path(os.environ["XDG_CONFIG_HOME"]) / "brainops" / "brainops.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text(config.read_text().replace('home = "state"', f'home = "{a / "state"}"'))
    try:
        assert records(b) == here  # no --config, no BRAINOPS_CONFIG: the user config, from any directory
    finally:
        user.unlink()
    assert list(b.iterdir()) == []


@pytest.mark.slow
def test_commands_take_the_brain_from_the_config(tmp_path: Path, small_brain: str) -> None:
    a, b = dirs(tmp_path)
    brain = copy_brain(small_brain, tmp_path)
    (a / "brainops.toml").write_text(f'home = "state"\nbrain_uri = "../brain"\npolicy_file = "{DEFAULT_POLICY}"\n')
    env = {"BRAINOPS_CONFIG": str(a / "brainops.toml")}
    stats = brainops(b, "brain", "stats", "--json", **env)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["entities"] == 300
    planned = brainops(b, "dedup", "--dry-run", "--json", "--llm-calls", "0", **env)
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["dry_run"] is True
    from brain.store import BrainStore
    from workers.dedup_plan import load_plan

    plan = load_plan(BrainStore(brain))
    assert plan is not None and plan.absorbed == 24  # stored on the config's brain
    assert list(b.iterdir()) == [] and not (a / "state").exists()  # read-only on the state: none created
    for command in (["brain", "stats"], ["brain", "compact"], ["dedup"], ["dedup", "undo"], ["worker", "embed"]):
        shown = brainops(b, *command, "--help", COLUMNS="200")
        assert "default: brain_uri from the config" in shown.stdout, (command, shown.stdout)
