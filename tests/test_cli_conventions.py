"""CLI conventions, checked through a pipe: --version, shell completion, exit codes, help text that says what it
means, and the two commands that must stay instant."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO
from test_cli_output import brainops, plain_env, write_config

BRAINOPS = Path(sys.executable).parent / "brainops"  # the installed script: completion keys on its name
# what `--help` and `status` must never import (DESIGN.md: litellm 2.6 s, sentence_transformers 4.3 s, ...)
HEAVY = ("litellm", "sentence_transformers", "torch", "lancedb", "langgraph", "paramiko", "ray", "slack_bolt")


def test_version_is_the_installed_one(tmp_path: Path) -> None:
    from importlib.metadata import version

    done = brainops(write_config(tmp_path), "--version")
    assert done.returncode == 0 and done.stdout == f"brainops {version('brainops')}\n"


@pytest.mark.skipif(not BRAINOPS.exists(), reason="brainops script not installed next to this python")
def test_shell_completion_is_offered_and_completes_commands() -> None:
    helped = subprocess.run([BRAINOPS, "--help"], capture_output=True, text=True, env=plain_env(), timeout=60)
    assert "--install-completion" in helped.stdout and "--show-completion" in helped.stdout
    env = plain_env(_BRAINOPS_COMPLETE="complete_bash", COMP_WORDS="brainops sta", COMP_CWORD="1")
    done = subprocess.run([BRAINOPS], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and "status" in done.stdout.split()


def test_exit_codes(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert brainops(config, "status").returncode == 0
    usage = brainops(config, "status", "--bogus")
    assert usage.returncode == 2 and "No such option" in usage.stderr
    assert brainops(config, "--config", str(tmp_path / "missing.toml"), "status").returncode == 2
    broken = tmp_path / "broken.toml"
    broken.write_text("home = \n")
    done = brainops(broken, "status")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"{broken}:1: TOML syntax error: Invalid value (column 8)"]
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_error_boundary_maps_errors_to_codes() -> None:
    from agent.cli.main import exit_code, expected_error
    from core.config_errors import ConfigError
    from fleet.remote import HostKeyRejectedError

    refused = HostKeyRejectedError("known_hosts lists a different key for h8")
    assert exit_code(refused, "tick") == 1 and expected_error(refused) == f"error: {refused}"
    config = ConfigError(["brainops.toml:3: hosts.0.port: not an integer"])
    assert exit_code(config, "status") == 2 and expected_error(config) == str(config)
    assert exit_code(config, "worker") == 1  # the dispatcher reads a worker's 1 as "failed"
    assert expected_error(RuntimeError("a bug")) is None  # its traceback is kept


def test_help_text_keeps_its_words(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    slack = brainops(config, "slack", "--help").stdout
    assert "(settings: )" not in slack and "settings: the slack table" in slack
    trust = brainops(config, "hosts", "trust", "--help").stdout
    assert "brainops.toml []" not in trust and "hosts entry of brainops.toml" in trust


def _cpu_seconds(*args: str, env: dict[str, str]) -> float:
    """CPU time (user + sys) of one run: steadier than wall time on a loaded CI machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, env=env, cwd=REPO)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_help_and_status_stay_instant(tmp_path: Path) -> None:
    env = plain_env(BRAINOPS_CONFIG=str(write_config(tmp_path)))
    probe = (
        "import sys\nfrom agent.cli.main import app\ntry:\n    app(['status'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=REPO)
    assert loaded.stderr.strip().splitlines()[-1] == "[]", loaded.stderr
    # under half a second on a quiet machine (measured ~0.2 s and ~0.4 s); the bound leaves room for a busy one
    assert min(_cpu_seconds("--help", env=env) for _ in range(3)) < 0.5
    assert min(_cpu_seconds("status", env=env) for _ in range(3)) < 0.75
