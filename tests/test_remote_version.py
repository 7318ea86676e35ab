"""A host running another brainops version is reported down with one clear sentence, not a traceback.

Real OpenSSH server (tests/support/sshd.py); the host's `python` is a wrapper that runs the real interpreter on an
"installed" tree of another version: the previous layout (only `workers.probe` / `workers.remote_cli`, no
`fleet` package), or a `fleet.probe` that answers with no or another remote protocol.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.sshd import SshFleet, sshd_unavailable_reason

from fleet.commands import probe_command
from fleet.hosts import WorkerSpec
from fleet.remote import RemoteHost, RemoteVersionMismatch, observe_hosts
from fleet.snapshot import REMOTE_PROTOCOL

pytestmark = pytest.mark.ssh

_skip_reason = sshd_unavailable_reason()
needs_sshd = pytest.mark.skipif(_skip_reason is not None, reason=f"sshd unavailable: {_skip_reason}")

OLD_PROBE = 'import json\nprint(json.dumps({"metrics": {"host": "old"}, "workers": []}))\n'


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshFleet]:
    if _skip_reason:
        pytest.skip(f"sshd unavailable: {_skip_reason}")
    with SshFleet(tmp_path_factory.mktemp("versionfleet"), 1, first_octet=41) as running:
        yield running


def installed_python(root: Path, files: dict[str, str]) -> str:
    """A `python` for the host config that runs the real interpreter on `files` only: no site-packages
    (so not this checkout's editable install) and no PYTHONPATH (sshd sets it to this repo)."""
    tree = root / "tree"
    for rel, text in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    wrapper = root / "python"
    wrapper.write_text(f"#!/bin/sh\ncd '{tree}' || exit 1\nunset PYTHONPATH\nexec '{sys.executable}' -S \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)


def host_with(fleet: SshFleet, python: str) -> RemoteHost:
    return RemoteHost(fleet.configs(python=python)[0])


def previous_layout(root: Path) -> str:
    return installed_python(
        root,
        {
            "workers/__init__.py": "",
            "workers/probe.py": OLD_PROBE,
            "workers/remote_cli.py": "print('{}')\n",
        },
    )


@needs_sshd
def test_host_on_the_previous_layout_is_down_with_an_upgrade_sentence(fleet: SshFleet, tmp_path: Path) -> None:
    host = host_with(fleet, previous_layout(tmp_path))
    name = fleet.hosts[0].name
    try:
        (snap,) = observe_hosts([host], timeout_s=10.0)
        assert not snap.metrics.reachable
        assert snap.metrics.error == (
            f"RemoteVersionMismatch: host {name} runs an older brainops (no fleet.probe module): "
            f"upgrade it to protocol {REMOTE_PROTOCOL} (same version as this agent)"
        )
        with pytest.raises(RemoteVersionMismatch, match=r"no fleet\.probe module"):
            host.run(probe_command(host.config), 10.0)

        started = host.start_worker(WorkerSpec("extract-old-1", "extract", str(tmp_path / "brain")))
        assert not started.ok
        assert f"host {name} runs an older brainops (no fleet.remote_cli module)" in (started.error or "")
        stopped = host.stop_worker("extract-old-1")
        assert not stopped.ok and "no fleet.remote_cli module" in (stopped.error or "")
        for error in (snap.metrics.error, started.error, stopped.error):
            assert "Traceback" not in (error or "") and "ModuleNotFoundError" not in (error or "")
    finally:
        host.close()


@needs_sshd
def test_doctor_shows_the_upgrade_sentence(fleet: SshFleet, tmp_path: Path) -> None:
    from agent.cli.doctor import check_remote_host

    config = fleet.configs(python=previous_layout(tmp_path))[0]
    check = check_remote_host(config, 10.0)
    assert check.status == "FAIL"
    assert f"host {config.name} runs an older brainops (no fleet.probe module): upgrade it to protocol" in check.detail
    assert "Traceback" not in check.detail


@needs_sshd
@pytest.mark.parametrize(
    ("protocol_field", "expected"),
    [
        ("", "runs an older brainops (its probe reports no remote protocol): upgrade it to protocol"),
        ('"protocol": 1, ', "runs an older brainops (remote protocol 1): upgrade it to protocol"),
        ('"protocol": 99, ', "runs a newer brainops (remote protocol 99): upgrade this agent"),
    ],
)
def test_probe_speaking_another_protocol_is_a_version_mismatch(
    fleet: SshFleet, tmp_path: Path, protocol_field: str, expected: str
) -> None:
    probe = f'print(\'{{{protocol_field}"metrics": {{"host": "x"}}, "workers": []}}\')\n'
    host = host_with(fleet, installed_python(tmp_path, {"fleet/__init__.py": "", "fleet/probe.py": probe}))
    try:
        snap = host.snapshot(10.0)
    finally:
        host.close()
    assert not snap.metrics.reachable
    assert snap.metrics.error is not None
    assert snap.metrics.error.startswith(f"RemoteVersionMismatch: host {fleet.hosts[0].name} ")
    assert expected in snap.metrics.error


@needs_sshd
def test_a_missing_third_party_module_is_not_called_a_version_mismatch(fleet: SshFleet, tmp_path: Path) -> None:
    probe = "import no_such_dependency_xyz\n"  # same version, broken install: the real error stays visible
    host = host_with(fleet, installed_python(tmp_path, {"fleet/__init__.py": "", "fleet/probe.py": probe}))
    try:
        snap = host.snapshot(10.0)
    finally:
        host.close()
    assert not snap.metrics.reachable
    assert (snap.metrics.error or "").startswith("RemoteCommandError: probe exited 1")
    assert "no_such_dependency_xyz" in (snap.metrics.error or "")
