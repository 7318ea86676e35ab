"""RemoteHost against real OpenSSH servers on 127.0.0.2 / 127.0.0.3 (tests/sshd.py)."""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import wait_for
from support.sshd import SshFleet, sshd_unavailable_reason

from core.domain import WorkerInfo
from fleet.commands import CommandKind, RemoteCommand, UnsafeCommandError, start_command, stop_command
from fleet.hosts import HostSnapshot, InvalidWorkerSpec, StartResult, StopResult, WorkerOptions, WorkerSpec
from fleet.remote import HostKeyRejectedError, RemoteHost, observe_hosts

pytestmark = pytest.mark.ssh

_skip_reason = sshd_unavailable_reason()
needs_sshd = pytest.mark.skipif(_skip_reason is not None, reason=f"sshd unavailable: {_skip_reason}")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshFleet]:
    if _skip_reason:
        pytest.skip(f"sshd unavailable: {_skip_reason}")
    with SshFleet(tmp_path_factory.mktemp("fleet"), 2) as running:
        yield running


@pytest.fixture
def own_fleet(tmp_path: Path) -> Iterator[SshFleet]:
    """A fleet a test may kill or freeze without disturbing the others."""
    if _skip_reason:
        pytest.skip(f"sshd unavailable: {_skip_reason}")
    with SshFleet(tmp_path / "own", 2, first_octet=4) as running:
        yield running


@pytest.fixture
def remote_hosts(fleet: SshFleet) -> Iterator[list[RemoteHost]]:
    hosts = [RemoteHost(config) for config in fleet.configs()]
    yield hosts
    for host in hosts:
        host.close()


def state_of(host: RemoteHost, worker_id: str) -> str | None:
    info = host.snapshot(10.0).worker(worker_id)
    return info.state if info else None


def by_name(snaps: list[HostSnapshot]) -> dict[str, HostSnapshot]:
    return {s.metrics.host: s for s in snaps}


@pytest.mark.slow
@needs_sshd
def test_metrics_read_from_both_hosts(remote_hosts: list[RemoteHost]) -> None:
    snaps = by_name(observe_hosts(remote_hosts, timeout_s=10.0))
    assert set(snaps) == {"h2", "h3"}
    for snap in snaps.values():
        m = snap.metrics
        assert m.reachable, m.error
        assert m.cpu_count == psutil.cpu_count()
        assert 0 < m.mem_percent <= 100
        assert m.observed_in_ms > 0
        assert snap.workers == ()


@needs_sshd
@pytest.mark.slow
def test_worker_started_seen_running_drained_and_stopped(fleet: SshFleet, remote_hosts: list[RemoteHost]) -> None:
    from brain.store import BrainStore

    host = remote_hosts[0]
    brain = fleet.hosts[0].root / "brain"
    text = "Ada Lovelace met {} at Acme Corp."
    records = [{"id": f"rec-{i}", "text": text.format(f"Person{i}"), "bucket": 0, "extracted": False} for i in range(5)]
    BrainStore(str(brain)).open_or_create().add("records", records)
    spec = WorkerSpec("extract-remote-1", "extract", str(brain), WorkerOptions(loop=True, batch_size=8))

    started = host.start_worker(spec)
    assert started.ok, started.error
    assert started.pid and psutil.pid_exists(started.pid)
    assert os.getsid(started.pid) == started.pid, "worker must run in its own session (detached)"
    assert (fleet.hosts[0].workdir / "run" / "extract-remote-1.pid").exists()

    wait_for(lambda: state_of(host, spec.worker_id) == "running", "the remote worker to report running", timeout_s=60)
    again = host.start_worker(spec)
    assert not again.ok and again.error == "already running"

    # Its own counters cross the SSH probe: the five records done, then a batch that found nothing to do.
    def idle() -> WorkerInfo | None:
        info = host.snapshot(10.0).worker(spec.worker_id)
        return info if info is not None and info.idle else None

    seen = wait_for(idle, "the remote worker to report idle", timeout_s=60)
    assert seen.processed == 5 and seen.state == "running"

    drained = host.drain(spec.worker_id, timeout_s=30.0)
    assert drained.ok, drained.error
    assert drained.state == "stopped"
    assert not psutil.pid_exists(started.pid) or psutil.Process(started.pid).status() == psutil.STATUS_ZOMBIE
    info = host.snapshot(10.0).worker(spec.worker_id)
    assert info is not None and info.state == "stopped" and info.last_exit == 0

    assert host.stop_worker(spec.worker_id).state == "not_running"


@needs_sshd
@pytest.mark.slow
def test_stop_without_drain_waits_until_gone(fleet: SshFleet, remote_hosts: list[RemoteHost]) -> None:
    from brain.store import BrainStore

    host = remote_hosts[1]
    brain = fleet.hosts[1].root / "brain"
    BrainStore(str(brain)).open_or_create()
    spec = WorkerSpec("extract-remote-2", "extract", str(brain), WorkerOptions(loop=True))
    started = host.start_worker(spec)
    assert started.ok, started.error
    wait_for(lambda: state_of(host, spec.worker_id) == "running", "the remote worker to report running", timeout_s=60)
    stopped = host.stop_worker(spec.worker_id, drain=False, grace_s=20.0)
    assert stopped.ok and stopped.state == "stopped", stopped
    assert started.pid is not None
    assert not psutil.pid_exists(started.pid) or psutil.Process(started.pid).status() == psutil.STATUS_ZOMBIE


class SignalsStart:
    """A Host wrapper that tells the test when its snapshot has begun (so a kill lands mid-observation)."""

    def __init__(self, host: RemoteHost) -> None:
        self.host = host
        self.name = host.name
        self.began = threading.Event()

    def snapshot(self, timeout_s: float) -> HostSnapshot:
        self.began.set()
        return self.host.snapshot(timeout_s)

    def start_worker(self, spec: WorkerSpec) -> StartResult:
        return self.host.start_worker(spec)

    def stop_worker(self, worker_id: str, drain: bool = True, grace_s: float = 30.0) -> StopResult:
        return self.host.stop_worker(worker_id, drain, grace_s)


@needs_sshd
@pytest.mark.slow
def test_host_killed_mid_observation_is_reported_down_within_timeout(own_fleet: SshFleet) -> None:
    good, bad = (RemoteHost(c) for c in own_fleet.configs())
    assert all(s.metrics.reachable for s in observe_hosts([good, bad], 10.0))  # connections now open

    own_fleet.hosts[1].freeze()  # the host hangs: TCP stays up, nothing answers
    timeout_s = 6.0  # generous: a loaded 2-core CI box can take seconds to start a probe
    started = time.monotonic()
    snaps = by_name(observe_hosts([good, bad], timeout_s))
    elapsed = time.monotonic() - started
    assert elapsed < timeout_s + 1.0, f"frozen host held the call for {elapsed:.1f}s"
    assert snaps["h4"].metrics.reachable
    assert not snaps["h5"].metrics.reachable and snaps["h5"].metrics.error

    watched = SignalsStart(bad)
    result: list[list[HostSnapshot]] = []
    call = threading.Thread(target=lambda: result.append(observe_hosts([good, watched], timeout_s)))
    started = time.monotonic()
    call.start()
    assert watched.began.wait(5.0)
    own_fleet.hosts[1].kill()  # sshd and its session processes die while the snapshot is in flight
    call.join(timeout_s + 2.0)
    elapsed = time.monotonic() - started
    assert not call.is_alive() and elapsed < timeout_s + 1.0
    snaps = by_name(result[0])
    assert snaps["h4"].metrics.reachable and not snaps["h5"].metrics.reachable

    started = time.monotonic()  # dead host: refused at once, the other host unaffected
    snaps = by_name(observe_hosts([good, bad], timeout_s))
    assert time.monotonic() - started < timeout_s
    assert snaps["h4"].metrics.reachable
    assert not snaps["h5"].metrics.reachable
    assert "HostUnreachableError" in (snaps["h5"].metrics.error or "")


@needs_sshd
def test_unknown_host_key_refused_and_never_added(fleet: SshFleet, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = RemoteHost(fleet.hosts[0].config(), known_hosts=empty)
    with pytest.raises(HostKeyRejectedError, match="unknown host key"):
        host.check()
    snap = host.snapshot(5.0)
    assert not snap.metrics.reachable and "HostKeyRejectedError" in (snap.metrics.error or "")
    assert empty.read_text() == ""

    h2, h3 = fleet.hosts
    swapped = tmp_path / "swapped"  # h2's address listed with h3's key: a changed key is refused too
    swapped.write_text(f"[{h2.address}]:{h2.port} {h3.host_public_key}\n")
    with pytest.raises(HostKeyRejectedError, match="CHANGED"):
        RemoteHost(h2.config(), known_hosts=swapped).check()

    with pytest.raises(HostKeyRejectedError, match="does not exist"):
        RemoteHost(h2.config(), known_hosts=tmp_path / "missing").check()


@needs_sshd
def test_shell_metacharacters_rejected_before_any_ssh_call(fleet: SshFleet) -> None:
    host = RemoteHost(fleet.configs()[0])
    for bad_id in ("w1; rm -rf /", "w1$(reboot)", "w1`id`", "w1|cat", "w1 && true", "W1\n", "../w1"):
        result = host.stop_worker(bad_id)
        assert not result.ok and (result.error or "").startswith("UnsafeCommandError"), bad_id
    assert host._conn is None, "a rejected command must not open an SSH connection"

    for field, value in (
        ("name", "h2;id"),
        ("workdir", "/tmp/$(id)"),
        ("python", "python3 -c x"),
        ("workdir", "~root/x"),
        ("workdir", "/tmp/../etc"),
    ):
        with pytest.raises(UnsafeCommandError):
            RemoteHost(fleet.hosts[0].config(**{field: value}, known_hosts=str(fleet.known_hosts)))

    config = fleet.configs()[0]
    for grace in (-1.0, float("nan"), 1e9, True):
        with pytest.raises(UnsafeCommandError):
            stop_command(config, "w1", drain=True, grace_s=grace)
    with pytest.raises(InvalidWorkerSpec):
        WorkerSpec("w1;id", "extract", "/tmp/brain")
    spec = WorkerSpec("w1", "extract", "/tmp/brain")
    object.__setattr__(spec, "worker_id", "w1;id")  # a spec tampered with after validation
    with pytest.raises(UnsafeCommandError):
        start_command(config, spec)
    with pytest.raises(UnsafeCommandError):
        host.run("id", 5.0)  # type: ignore[arg-type]


@needs_sshd
@pytest.mark.slow
def test_quoted_free_text_arguments_never_reach_a_shell(fleet: SshFleet, remote_hosts: list[RemoteHost]) -> None:
    marker = fleet.base / "pwned"
    brain = f"{fleet.base}/nobrain $(touch {marker}) `touch {marker}`;touch {marker}"
    result = remote_hosts[0].start_worker(WorkerSpec("quoting-1", "extract", brain))
    assert result.ok  # the worker starts, then fails to find that (literal) brain path
    wait_for(lambda: state_of(remote_hosts[0], "quoting-1") == "crashed", "the worker to fail", timeout_s=60)
    assert not marker.exists()


@settings(deadline=None, max_examples=200)
@given(st.lists(st.text(min_size=0, max_size=30).filter(lambda s: "\0" not in s), min_size=1, max_size=8))
def test_shell_line_splits_back_to_the_same_argv(argv: list[str]) -> None:
    assert shlex.split(RemoteCommand(CommandKind.START, tuple(argv)).shell_line()) == argv
