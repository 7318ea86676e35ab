"""`[ray]` and `brain_storage_options` in brainops.toml: checked at load with file:line, credentials refused in the
file, options exported to the workers' environment, and Ray never imported before a host is used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

from core.config_errors import ConfigError
from core.settings import load_settings

BASE = 'demo_seed = false\nbrain_uri = "s3://acme-brain/lancedb"\n[[hosts]]\nname = "brain"\nrole = "brain"\n'


@pytest.fixture(autouse=True)
def _config_env_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings(path) exports BRAINOPS_CONFIG for later loads: undone after each test, not left to the next."""
    monkeypatch.setenv("BRAINOPS_CONFIG", "unset")
    monkeypatch.delenv("BRAINOPS_CONFIG")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "brainops.toml"
    path.write_text(f'home = "{tmp_path / "home"}"\n' + text)
    return path


def test_a_credential_under_brain_storage_options_is_refused_with_its_line(tmp_path: Path) -> None:
    config = write(tmp_path, BASE + '[brain_storage_options]\naws_region = "eu-west-1"\naws_secret_access_key = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config))
    (problem,) = caught.value.problems
    assert problem.startswith(f"{config}:9: brain_storage_options: aws_secret_access_key is a credential")
    assert "AWS_SECRET_ACCESS_KEY" in problem and '"x"' not in problem


def test_storage_options_reach_the_environment_the_workers_inherit_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ALLOW_HTTP", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-2")  # set by the operator: wins over the file
    config = write(tmp_path, BASE + '[brain_storage_options]\naws_region = "eu-west-1"\naws_allow_http = "true"\n')
    settings = load_settings(str(config))
    assert settings.brain_storage_options == {"aws_region": "eu-west-1", "aws_allow_http": "true"}
    assert os.environ["AWS_ALLOW_HTTP"] == "true" and os.environ["AWS_REGION"] == "us-east-2"
    monkeypatch.delenv("AWS_ALLOW_HTTP")


def test_ray_hosts_must_name_configured_hosts(tmp_path: Path) -> None:
    config = write(tmp_path, BASE + '[ray]\naddress = "10.0.0.20:6379"\nhosts = ["brain", "cloud"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config))
    assert caught.value.problems == (f"{config}:9: ray.hosts names no host of [[hosts]]: cloud",)


def test_ray_hosts_are_built_without_importing_ray(tmp_path: Path) -> None:
    """Building the fleet (every `brainops` command that acts) must not pay Ray's import until a host is used."""
    config = write(tmp_path, BASE.replace("s3://acme-brain/lancedb", str(tmp_path / "b")) + "[ray]\nmax_nodes = 3\n")
    code = (
        "import json, sys\n"
        "from core.settings import load_settings\n"
        "from agent.service.effects import build_hosts\n"
        f"hosts = build_hosts(load_settings({str(config)!r}))\n"
        "print(json.dumps({n: type(h).__name__ for n, h in hosts.items()} | {'ray': 'ray' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"brain": "RayHost", "ray": False}
