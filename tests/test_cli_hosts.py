"""`brainops hosts trust|check` against real OpenSSH servers (tests/sshd.py)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.sshd import SshFleet, sshd_unavailable_reason
from typer.testing import CliRunner

from agent.cli.main import app

pytestmark = pytest.mark.ssh

_skip_reason = sshd_unavailable_reason()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshFleet]:
    if _skip_reason:
        pytest.skip(f"sshd unavailable: {_skip_reason}")
    with SshFleet(tmp_path_factory.mktemp("trustfleet"), 2, first_octet=8) as running:
        yield running


@pytest.fixture
def config_file(fleet: SshFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A brainops.toml listing the fleet with a fresh, empty-to-start known_hosts."""
    known_hosts = tmp_path / "ssh" / "known_hosts"
    blocks = [f'home = "{tmp_path / "home"}"']
    for host in fleet.hosts:
        cfg = host.config(known_hosts=str(known_hosts))
        blocks.append(
            "[[hosts]]\n"
            + "".join(
                f"{key} = {json.dumps(value)}\n"
                for key, value in cfg.model_dump().items()
                if value is not None
                and key in ("name", "address", "port", "user", "key_file", "known_hosts", "workdir", "python")
            )
        )
    path = tmp_path / "brainops.toml"
    path.write_text("\n".join(blocks))
    monkeypatch.setenv("BRAINOPS_CONFIG", str(path))  # load_settings sets it; monkeypatch restores it
    return path


def known_hosts_of(config_file: Path) -> Path:
    return config_file.parent / "ssh" / "known_hosts"


def ssh_keygen_fingerprint(public_key_file: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key_file)], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_trust_needs_confirmation_then_records_the_verified_key(fleet: SshFleet, config_file: Path) -> None:
    h8 = fleet.hosts[0]
    expected = ssh_keygen_fingerprint(h8.root / "host_ed25519.pub")

    code, out = cli("hosts", "trust", "h8", "-c", str(config_file))  # no terminal, no --yes: a usage error
    assert code == 2 and expected in out and "pass --yes" in out
    assert not known_hosts_of(config_file).exists()

    code, out = cli("hosts", "trust", "h8", "--yes", "-c", str(config_file))
    assert code == 0, out
    assert expected in out and "trusted" in out
    lines = known_hosts_of(config_file).read_text().splitlines()
    assert lines == [f"[{h8.address}]:{h8.port} {' '.join(h8.host_public_key.split()[:2])}"]

    code, out = cli("hosts", "trust", "h8", "--yes", "-c", str(config_file))
    assert code == 0 and "already trusted" in out
    assert known_hosts_of(config_file).read_text().splitlines() == lines


@pytest.mark.slow
def test_check_reports_untrusted_host_as_down_until_trusted(fleet: SshFleet, config_file: Path) -> None:
    assert cli("hosts", "trust", "h8", "--yes", "-c", str(config_file))[0] == 0

    code, out = cli("hosts", "check", "--json", "-c", str(config_file))
    rows = {r["host"]: r for r in map(json.loads, out.splitlines())}
    assert code == 1
    assert rows["h8"]["reachable"] is True
    assert rows["h9"]["reachable"] is False and "HostKeyRejectedError" in rows["h9"]["error"]

    assert cli("hosts", "trust", "h9", "--yes", "-c", str(config_file))[0] == 0
    code, out = cli("hosts", "check", "--json", "-c", str(config_file))
    assert code == 0, out
    assert all(json.loads(line)["reachable"] for line in out.splitlines())


def test_changed_host_key_is_refused(fleet: SshFleet, config_file: Path) -> None:
    h8, h9 = fleet.hosts
    known = known_hosts_of(config_file)
    known.parent.mkdir(parents=True)
    known.write_text(f"[{h8.address}]:{h8.port} {h9.host_public_key}\n")  # someone else's key under h8
    before = known.read_text()

    code, out = cli("hosts", "trust", "h8", "--yes", "-c", str(config_file))
    assert code == 1 and "REFUSED" in out and "DIFFERENT" in out  # refused: exit 1, as every refusal
    assert known.read_text() == before


def test_trust_rejects_an_unknown_host_name(config_file: Path) -> None:
    code, out = cli("hosts", "trust", "nosuch", "--yes", "-c", str(config_file))
    assert code == 2 and "unknown host 'nosuch'" in out and "h8" in out
