"""Shared set-up for whole-tick tests: a real small brain, real settings, a policy file, cleanup of workers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from core.settings import HostConfig, Settings

from . import REPO

DEFAULT_POLICY = REPO / "policies" / "default.yaml"


def write_policy(path: Path, **changes: Any) -> Path:
    """The shipped default policy with top-level keys replaced or deep-merged from `changes`."""
    policy = yaml.safe_load(DEFAULT_POLICY.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(policy.get(key), dict):
            policy[key] = _merge(policy[key], value)
        else:
            policy[key] = value
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# CPU ceilings are off in these tests: a loaded CI machine must not turn a scale-up test into a denial test.
NO_CPU_CEILING = {"hosts": {"*": {"max_workers": 8, "cpu_ceiling_percent": 100, "mem_ceiling_percent": 99}}}


def make_settings(tmp: Path, brain: str, policy: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": tmp / "home",
        "brain_uri": brain,
        "policy_file": policy,
        "demo_seed": False,
        "hosts": [HostConfig(name="local", role="brain")],
        "worker_defaults": {"extract": {"item_ms": 2, "batch_size": 50}},
    }
    values.update(overrides)
    settings = Settings(**values)
    settings.ensure_dirs()
    return settings


def write_toml(settings: Settings, path: Path) -> Path:
    """The same settings as a brainops.toml, for CLI subprocesses."""
    lines = [
        f'home = "{settings.home}"',
        f'brain_uri = "{settings.brain_path}"',
        f'policy_file = "{settings.policy_path}"',
        "demo_seed = false",
        "[[hosts]]",
        'name = "local"',
        'role = "brain"',
        "[worker_defaults.extract]",
        "item_ms = 2",
        "batch_size = 50",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def copy_brain(source: str, tmp: Path) -> str:
    target = tmp / "brain"
    shutil.copytree(source, target)
    return str(target)


def cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BRAINOPS_CONFIG": str(config), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO
    )


def kill_workers(run_dir: Path) -> None:
    """Test teardown: SIGKILL every worker a test left behind (their pid files are in the run dir)."""
    import json

    for pid_file in run_dir.glob("*.pid"):
        try:
            pid = int(json.loads(pid_file.read_text())["pid"])
            os.killpg(pid, signal.SIGKILL)
        except (ValueError, KeyError, OSError):
            continue
