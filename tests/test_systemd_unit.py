"""deploy/*.service: `systemd-analyze verify` accepts them without a warning and `systemd-analyze security`
rates them 4.0 or better, with the sandbox still giving the agent what it needs.

systemd-analyze comes with the Debian package `systemd`; both commands work on a unit file in a container
(`security --offline=true` reads the file alone, no running systemd). Without the tool the tests skip.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from core.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = ("brainops.service", "brainops-compact.service")
SHIPPED_BINARY = "/opt/brainops/.venv/bin/brainops"
MAX_EXPOSURE = 4.0
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (Debian package: systemd)")


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=120, check=False)


def unit(name: str) -> configparser.ConfigParser:
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parsed.read(DEPLOY / name)
    return parsed


@needs_analyze
def test_units_verify_without_a_single_warning(tmp_path: Path) -> None:
    """verify also checks that each Exec binary exists: copies point those at a binary this machine has;
    every other directive is the shipped one."""
    names = [*UNITS, "brainops-compact.timer"]
    copies = []
    for name in names:
        text = (DEPLOY / name).read_text()
        copy = tmp_path / name
        copy.write_text(text.replace(SHIPPED_BINARY, "/bin/true"))
        assert copy.read_text().replace("/bin/true", SHIPPED_BINARY) == text  # only the binary differs
        copies.append(str(copy))
    done = analyze("verify", *copies)
    ours = [line for line in (done.stdout + done.stderr).splitlines() if any(n in line for n in names)]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr


@needs_analyze
@pytest.mark.parametrize("name", UNITS)
def test_security_exposure_is_at_most_4(name: str) -> None:
    if "--offline" not in analyze("security", "--help").stdout:
        pytest.skip("this systemd-analyze predates `security --offline` (systemd 250); Debian 12 has 252")
    done = analyze("security", "--offline=true", "--no-pager", str(DEPLOY / name))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    found = re.search(rf"Overall exposure level for {re.escape(name)}: (\d+(?:\.\d+)?) (\w+)", output)
    assert found, output
    assert float(found.group(1)) <= MAX_EXPOSURE, output
    assert "Unknown key" not in output and "ignoring" not in output, output


def test_start_limit_is_in_the_unit_section() -> None:
    """StartLimitIntervalSec= and StartLimitBurst= in [Service] are ignored: the restart limit would not apply."""
    service = unit("brainops.service")
    assert service["Unit"]["StartLimitIntervalSec"] and service["Unit"]["StartLimitBurst"]
    assert "StartLimitIntervalSec" not in service["Service"] and "StartLimitBurst" not in service["Service"]


def test_sandbox_keeps_what_the_agent_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hardened, yet: sockets for SSH, model APIs and /metrics; its home and the brain writable; the GPU
    nodes open to embed workers; no JIT ban (torch's oneDNN); the workers it starts outlive a restart."""
    service = unit("brainops.service")["Service"]
    assert service["NoNewPrivileges"] == "true" and service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "true" and service["PrivateTmp"] == "true" and service["UMask"] == "0027"
    assert service["CapabilityBoundingSet"] == ""  # no capability at all: a port >= 1024 needs none
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert service.get("PrivateNetwork", "false") == "false"
    assert service.get("PrivateDevices", "false") == "false" and "char-nvidia*" in service["DeviceAllow"]
    assert service.get("MemoryDenyWriteExecute", "false") == "false"
    assert service.get("ProcSubset", "all") == "all"  # host metrics read /proc/stat, /proc/meminfo
    assert service["KillMode"] == "process" and service.get("RemoveIPC", "false") == "false"

    monkeypatch.setenv("BRAINOPS_CONFIG", str(DEPLOY / "brainops.toml.example"))
    settings = Settings()
    assert settings.home == Path("/var/lib") / service["StateDirectory"]  # writable under ProtectSystem=strict
    writable = [p.lstrip("-") for p in service["ReadWritePaths"].split()]
    assert settings.brain_uri and any(Path(settings.brain_uri).is_relative_to(p) for p in writable)
    assert settings.llm.cache_dir and Path(settings.llm.cache_dir).is_relative_to(settings.home)
    for host in settings.hosts:
        for key_path in (host.key_file, host.known_hosts):
            assert key_path is None or Path(key_path).is_relative_to(settings.home)


def test_the_agent_unit_runs_the_agent_on_the_example_config_paths() -> None:
    parsed = unit("brainops.service")
    service = parsed["Service"]
    assert service["ExecStart"] == f"{SHIPPED_BINARY} run --config /etc/brainops/brainops.toml"
    assert service["ExecStartPre"] == f"-{SHIPPED_BINARY} doctor --config /etc/brainops/brainops.toml"
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "process"  # workers outlive restarts
    assert service["User"] == "brainops" and service["StateDirectory"] == "brainops"
    assert parsed["Install"]["WantedBy"] == "multi-user.target"


def test_compaction_timer_compacts_the_example_configs_brain(monkeypatch: pytest.MonkeyPatch) -> None:
    import shlex

    from typer.testing import CliRunner

    from agent.cli.main import app

    service = unit("brainops-compact.service")["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == SHIPPED_BINARY and argv[1:3] == ["brain", "compact"]
    monkeypatch.setenv("BRAINOPS_CONFIG", str(DEPLOY / "brainops.toml.example"))
    brain_uri = Settings().brain_uri
    assert brain_uri is not None and argv[argv.index("--path") + 1] == brain_uri
    assert service["ReadWritePaths"] == "/srv/brain" and brain_uri.startswith("/srv/brain/")
    monkeypatch.delenv("BRAINOPS_CONFIG")
    # the arguments are ones the CLI accepts: a missing brain is the only complaint
    result = CliRunner().invoke(app, [*argv[1:3], "--path", "/nonexistent/brain", *argv[argv.index("--path") + 2 :]])
    assert result.exit_code == 2 and "no brain at /nonexistent/brain" in result.output
    timer = unit("brainops-compact.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"
