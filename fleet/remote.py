"""`RemoteHost`: the Host protocol over SSH (fabric/paramiko), plus `observe_hosts` for the whole fleet.

Host keys are verified against an explicit known_hosts file and unknown keys are refused
(`HostKeyRejectedError`); nothing is ever auto-added. Adding a host is an operator decision made with
`brainops hosts trust NAME`. Every remote command comes from the allowlist in fleet/commands.py.
Every step (connect, banner, auth, channel open, command) is bounded by a deadline, so a dead or
frozen host costs at most its timeout and is reported as `reachable=False`, never as a hang. A host that
runs another brainops version (no `fleet.probe` module, or another `REMOTE_PROTOCOL`) is reported the same
way, with a one-line `RemoteVersionMismatch` reason instead of the remote traceback.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.domain import HostMetrics, WorkerInfo
from core.settings import HostConfig
from fleet.commands import (
    RemoteCommand,
    UnsafeCommandError,
    check_identifier,
    probe_command,
    start_command,
    stop_command,
)
from fleet.host_keys import host_key_fingerprint, known_hosts_path
from fleet.hosts import DEFAULT_GRACE_S, Host, HostSnapshot, StartResult, StopResult, WorkerSpec
from fleet.snapshot import REMOTE_PROTOCOL, ProtocolMismatch, snapshot_from_json

if TYPE_CHECKING:
    from fabric import Connection
    from paramiko import Transport

# Seconds past the caller's timeout that observe_hosts waits for a host's own timeouts to fire first.
OBSERVE_SLACK_S = 0.5
_READ_CHUNK = 65536


class RemoteError(Exception):
    """Base of every expected failure talking to a remote host."""


class HostKeyRejectedError(RemoteError):
    """The host's key is not in the known_hosts file, or differs from the one there."""


class HostUnreachableError(RemoteError):
    """Connection refused or reset, name/route failure, or authentication failure."""


class RemoteTimeoutError(RemoteError):
    """A connect or command step did not finish before its deadline."""


class RemoteCommandError(RemoteError):
    """The command ran but failed or printed something that is not the expected JSON."""


class RemoteVersionMismatch(RemoteError):
    """The host runs another brainops version: it lacks our entry module or speaks another remote protocol."""


_NO_MODULE = re.compile(r"No module named '?([A-Za-z0-9_.]+)'?")


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str
    elapsed_s: float


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RemoteTimeoutError("deadline passed")
    return left


def _reject_unknown_policy() -> Any:
    import paramiko

    class RejectUnknownHost(paramiko.RejectPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            try:
                super().missing_host_key(client, hostname, key)
            except paramiko.SSHException as exc:
                raise HostKeyRejectedError(
                    f"unknown host key for {hostname} ({key.get_name()} {host_key_fingerprint(key)}); "
                    "an operator must run `brainops hosts trust` first"
                ) from exc

    return RejectUnknownHost()


class RemoteHost:
    """One machine of the fleet reached over SSH. Thread-safe; keeps one SSH connection and reuses it."""

    def __init__(self, config: HostConfig, known_hosts: str | Path | None = None) -> None:
        if config.is_local:
            raise ValueError(f"host {config.name!r} is local; use workers.hosts.LocalHost")
        self.config = config
        self.name = check_identifier("host name", config.name)
        probe_command(config)  # validates workdir / python now, not at the first tick
        self.known_hosts = Path(known_hosts).expanduser() if known_hosts else known_hosts_path(config)
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- Host protocol

    def snapshot(self, timeout_s: float) -> HostSnapshot:
        """Metrics + worker states in one remote command. Never raises: a failure is reachable=False."""
        started = time.monotonic()
        try:
            result = self.run(probe_command(self.config), min(timeout_s, self.config.command_timeout_s))
            snap = _parse_snapshot(result, self.name)
        except (RemoteError, UnsafeCommandError) as exc:
            return self._down(exc, started)
        elapsed_ms = (time.monotonic() - started) * 1000
        metrics = snap.metrics.model_copy(update={"host": self.name, "observed_in_ms": elapsed_ms})
        return HostSnapshot(metrics=metrics, workers=snap.workers)

    def start_worker(self, spec: WorkerSpec) -> StartResult:
        try:
            command = start_command(self.config, spec)
            payload = _json_result(self.run(command, self.config.command_timeout_s))
        except (RemoteError, UnsafeCommandError) as exc:
            return StartResult(ok=False, worker_id=str(spec.worker_id), error=_describe(exc))
        return StartResult(
            ok=bool(payload.get("ok")),
            worker_id=spec.worker_id,
            pid=payload.get("pid"),
            started_at=payload.get("started_at"),
            error=payload.get("error"),
        )

    def stop_worker(self, worker_id: str, drain: bool = True, grace_s: float = DEFAULT_GRACE_S) -> StopResult:
        """drain=True returns once SIGTERM is sent (the probe SIGKILLs after grace_s); else waits it out."""
        try:
            command = stop_command(self.config, worker_id, drain=drain, grace_s=grace_s)
            budget = self.config.command_timeout_s + (0.0 if drain else grace_s + 10.0)
            payload = _json_result(self.run(command, budget))
        except (RemoteError, UnsafeCommandError) as exc:
            return StopResult(ok=False, worker_id=str(worker_id), state="unknown", error=_describe(exc))
        return StopResult(
            ok=bool(payload.get("ok")),
            worker_id=worker_id,
            state=str(payload.get("state", "unknown")),
            error=payload.get("error"),
        )

    # ---------------------------------------------------------------- beyond the protocol

    def list_workers(self, timeout_s: float | None = None) -> tuple[WorkerInfo, ...]:
        """Worker states from one probe; raises RemoteError when the host cannot be read."""
        snap = self.snapshot(timeout_s or self.config.command_timeout_s)
        if not snap.metrics.reachable:
            raise HostUnreachableError(snap.metrics.error or "unreachable")
        return snap.workers

    def drain(self, worker_id: str, timeout_s: float = DEFAULT_GRACE_S, poll_s: float = 0.2) -> StopResult:
        """SIGTERM, then poll the status file until the worker exits; ok only for exit code 0."""
        sent = self.stop_worker(worker_id, drain=True, grace_s=timeout_s)
        if not sent.ok or sent.state == "not_running":
            return sent
        deadline = time.monotonic() + timeout_s
        last_seen = "draining"
        while time.monotonic() < deadline:
            snap = self.snapshot(max(0.5, min(self.config.command_timeout_s, deadline - time.monotonic())))
            info = snap.worker(worker_id)
            if info is not None and info.state in ("stopped", "crashed"):
                ok = info.state == "stopped" and info.last_exit == 0
                error = None if ok else f"exited {info.last_exit} ({info.state})"
                return StopResult(ok=ok, worker_id=worker_id, state=info.state, error=error)
            last_seen = info.state if info else ("gone" if snap.metrics.reachable else "unreachable")
            time.sleep(poll_s)
        return StopResult(
            ok=False, worker_id=worker_id, state="draining", error=f"still {last_seen} after {timeout_s}s"
        )

    def check(self, timeout_s: float | None = None) -> float:
        """Open a fresh connection (verifying the host key); returns the seconds it took, raises RemoteError."""
        started = time.monotonic()
        with self._lock:
            self._close_locked()
        self._connection(time.monotonic() + (timeout_s or self.config.connect_timeout_s))
        return time.monotonic() - started

    def run(self, command: RemoteCommand, timeout_s: float) -> CommandResult:
        """Run one allowlisted command; raises a RemoteError subclass on any failure to get a result."""
        if not isinstance(command, RemoteCommand):
            raise UnsafeCommandError("only RemoteCommand values from workers.commands can run remotely")
        deadline = time.monotonic() + timeout_s
        conn = self._connection(deadline)
        try:
            result = _exec(conn.transport, command.shell_line(), deadline)
        except RemoteError:
            self._drop(conn)
            raise
        except (OSError, EOFError, _ssh_exception()) as exc:
            self._drop(conn)
            raise HostUnreachableError(f"{type(exc).__name__}: {exc}") from exc
        _check_entry_module(self.name, command, result)
        return result

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    # ---------------------------------------------------------------- connection

    def _connection(self, deadline: float) -> Connection:
        if not self._lock.acquire(timeout=_remaining(deadline)):
            raise RemoteTimeoutError(f"{self.name}: another call held the connection past the deadline")
        try:
            conn = self._conn
            if conn is not None and conn.transport is not None and conn.transport.is_active():
                return conn
            self._close_locked()
            self._conn = self._open(deadline)
            return self._conn
        finally:
            self._lock.release()

    def _open(self, deadline: float) -> Connection:

        import paramiko
        from fabric import Config, Connection

        step_s = min(self.config.connect_timeout_s, _remaining(deadline))
        key_file = str(Path(self.config.key_file).expanduser()) if self.config.key_file else None
        conn = Connection(
            host=self.config.address,
            user=self.config.user,
            port=self.config.port,
            config=Config(ssh_config=paramiko.SSHConfig()),  # no ~/.ssh/config surprises
            connect_kwargs={
                "key_filename": [key_file] if key_file else [],
                "look_for_keys": key_file is None,
                "allow_agent": False,
                "timeout": step_s,
                "banner_timeout": step_s,
                "auth_timeout": step_s,
                "channel_timeout": step_s,
            },
        )
        conn.client.set_missing_host_key_policy(_reject_unknown_policy())
        self._load_known_hosts(conn.client.get_host_keys())
        try:
            conn.open()
        except RemoteError:
            conn.close()
            raise
        except paramiko.BadHostKeyException as exc:
            conn.close()
            raise HostKeyRejectedError(f"host key of {self.name} CHANGED: {exc}") from exc
        except TimeoutError as exc:
            conn.close()
            raise RemoteTimeoutError(f"connect to {self.config.address}:{self.config.port}: timed out") from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            conn.close()
            raise HostUnreachableError(
                f"connect to {self.config.address}:{self.config.port}: {type(exc).__name__}: {exc}"
            ) from exc
        return conn

    def _load_known_hosts(self, host_keys: Any) -> None:
        # HostKeys.load, not SSHClient.load_host_keys: the latter would make paramiko write the file back.
        if not self.known_hosts.is_file():
            raise HostKeyRejectedError(f"known_hosts file {self.known_hosts} does not exist")
        host_keys.load(str(self.known_hosts))

    def _drop(self, conn: Connection) -> None:
        with self._lock:
            if self._conn is conn:
                self._close_locked()

    def _close_locked(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def _down(self, exc: Exception, started: float) -> HostSnapshot:
        elapsed_ms = (time.monotonic() - started) * 1000
        metrics = HostMetrics(host=self.name, reachable=False, error=_describe(exc), observed_in_ms=elapsed_ms)
        return HostSnapshot(metrics=metrics)


def _ssh_exception() -> type[Exception]:
    import paramiko

    return paramiko.SSHException


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _exec(transport: Transport | None, line: str, deadline: float) -> CommandResult:
    """Run line on a new channel; every wait is bounded by deadline (paramiko's defaults are an hour)."""
    if transport is None:
        raise HostUnreachableError("not connected")
    started = time.monotonic()
    channel = transport.open_session(timeout=_remaining(deadline))
    try:
        channel.exec_command(line)
        channel.shutdown_write()
        stdout = _read_stream(channel.recv, channel, deadline)
        stderr = _read_stream(channel.recv_stderr, channel, deadline)
        if not channel.status_event.wait(_remaining(deadline)):
            raise RemoteTimeoutError("no exit status before the deadline")
        status = channel.exit_status
    except TimeoutError as exc:
        raise RemoteTimeoutError(f"command did not finish in time: {line[:120]}") from exc
    finally:
        channel.close()
    return CommandResult(
        status, stdout.decode(errors="replace"), stderr.decode(errors="replace"), time.monotonic() - started
    )


def _read_stream(recv: Any, channel: Any, deadline: float) -> bytes:
    chunks: list[bytes] = []
    while True:
        channel.settimeout(_remaining(deadline))
        chunk = recv(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _json_result(result: CommandResult) -> dict[str, Any]:
    """The JSON object a remote_cli command prints (also on refusal, with exit status 2 or 3)."""
    try:
        payload = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise RemoteCommandError(
            f"exit {result.exit_status}, no JSON result; stderr: {result.stderr.strip()[-500:]}"
        ) from exc
    if not isinstance(payload, dict):
        raise RemoteCommandError(f"expected a JSON object, got {type(payload).__name__}")
    return payload


def _parse_snapshot(result: CommandResult, host: str) -> HostSnapshot:
    if result.exit_status != 0:
        raise RemoteCommandError(f"probe exited {result.exit_status}: {result.stderr.strip()[-500:]}")
    try:
        return snapshot_from_json(result.stdout)
    except ProtocolMismatch as exc:
        raise RemoteVersionMismatch(_protocol_mismatch_message(host, exc.found)) from exc
    except ValueError as exc:
        raise RemoteCommandError(f"probe printed malformed JSON: {exc}") from exc


_UPGRADE_HOST = f"upgrade it to protocol {REMOTE_PROTOCOL} (same version as this agent)"


def _check_entry_module(host: str, command: RemoteCommand, result: CommandResult) -> None:
    """Raise RemoteVersionMismatch when the remote python has no brainops entry module for this command
    (an older brainops answers `No module named ...` instead of running it)."""
    argv = command.argv
    if result.exit_status == 0 or len(argv) < 3 or argv[1] != "-m":
        return
    entry = argv[2]  # e.g. fleet.probe; a missing parent package ('fleet') means the same
    parts = entry.split(".")
    ours = {".".join(parts[: i + 1]) for i in range(len(parts))}
    if any(name in ours for name in _NO_MODULE.findall(result.stderr)):
        raise RemoteVersionMismatch(f"host {host} runs an older brainops (no {entry} module): {_UPGRADE_HOST}")


def _protocol_mismatch_message(host: str, found: object) -> str:
    if found is None:
        return f"host {host} runs an older brainops (its probe reports no remote protocol): {_UPGRADE_HOST}"
    if isinstance(found, int) and not isinstance(found, bool) and found > REMOTE_PROTOCOL:
        return (
            f"host {host} runs a newer brainops (remote protocol {found}): upgrade this agent to the same "
            f"version (it speaks protocol {REMOTE_PROTOCOL})"
        )
    return f"host {host} runs an older brainops (remote protocol {found!r}): {_UPGRADE_HOST}"


# ---------------------------------------------------------------- the fleet


def observe_hosts(hosts: Sequence[Host], timeout_s: float, *, parallel: bool = True) -> list[HostSnapshot]:
    """Snapshot every host, in the given order. In parallel the call returns within ~timeout_s even when
    a host hangs: a host without an answer by then is reported unreachable."""
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    if not parallel:
        return [host.snapshot(timeout_s) for host in hosts]
    if not hosts:
        return []
    pool = ThreadPoolExecutor(max_workers=min(64, len(hosts)), thread_name_prefix="observe")
    try:
        futures = [pool.submit(host.snapshot, timeout_s) for host in hosts]
        wait_futures(futures, timeout=timeout_s + OBSERVE_SLACK_S)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return [_answer_or_down(host, future, timeout_s) for host, future in zip(hosts, futures, strict=True)]


def _answer_or_down(host: Host, future: Any, timeout_s: float) -> HostSnapshot:
    if future.done() and not future.cancelled() and future.exception() is None:
        snap: HostSnapshot = future.result()
        return snap
    error = f"no answer within {timeout_s}s"
    if future.done() and not future.cancelled():
        error = _describe(future.exception())
    metrics = HostMetrics(host=host.name, reachable=False, error=error, observed_in_ms=timeout_s * 1000)
    return HostSnapshot(metrics=metrics)
