"""The fixed allowlist of commands brainops runs on a remote host over SSH.

A remote command line is only ever made here: a `CommandKind` plus validated fields, turned into an
argv and each element `shlex.quote`d. Identifier and number fields with anything outside their pattern
(shell metacharacters, spaces, newlines) raise `UnsafeCommandError` before any SSH connection is made.
Nothing a model or a chat message supplies is ever passed as a shell string.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from enum import StrEnum

from core.kinds import WORKER_KINDS
from core.settings import HostConfig
from fleet.hosts import InvalidWorkerSpec, WorkerSpec, probe_argv

_IDENTIFIER = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
# Operator-configured paths: plain path characters only, so a typo'd or hostile config cannot inject.
_PATH = re.compile(r"^[A-Za-z0-9_./+@-][A-Za-z0-9_./+@=-]{0,1023}$")
_MAX_GRACE_S = 3600.0
REMOTE_ENTRY = "fleet.remote_cli"


class UnsafeCommandError(ValueError):
    """A field of a remote command failed its allowlist rule; nothing was sent to the host."""


class CommandKind(StrEnum):
    PROBE = "probe"  # metrics + worker states as JSON (fleet.probe)
    START = "start"  # start one worker detached (fleet.remote_cli start)
    STOP = "stop"  # SIGTERM (drain) or stop-and-wait one worker (fleet.remote_cli stop)


@dataclass(frozen=True)
class RemoteCommand:
    kind: CommandKind
    argv: tuple[str, ...]

    def shell_line(self) -> str:
        """The line sshd hands to the login shell: every element quoted, so each stays one word."""
        return " ".join(shlex.quote(part) for part in self.argv)


def check_identifier(field: str, value: object) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise UnsafeCommandError(f"{field} must match {_IDENTIFIER.pattern}, got {value!r}")
    return value


def check_path(field: str, value: object) -> str:
    if not isinstance(value, str) or not _PATH.match(value) or ".." in value.split("/"):
        raise UnsafeCommandError(f"{field} must be a plain path ({_PATH.pattern}, no '..'), got {value!r}")
    return value


def check_seconds(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnsafeCommandError(f"{field} must be a number, got {value!r}")
    if not 0 <= float(value) <= _MAX_GRACE_S:
        raise UnsafeCommandError(f"{field} must be in [0, {_MAX_GRACE_S}], got {value!r}")
    return float(value)


def remote_workdir(config: HostConfig) -> str:
    """The host workdir as the remote side sees it. sshd runs commands in the login user's home, so
    '~/x' becomes the relative 'x' (quoting would stop the shell from expanding '~')."""
    workdir = config.workdir
    if workdir == "~":
        return "."
    if workdir.startswith("~/"):
        workdir = workdir[2:] or "."
    elif workdir.startswith("~"):
        raise UnsafeCommandError(f"workdir may use '~/' only, not another user's home: {config.workdir!r}")
    return check_path("workdir", workdir.rstrip("/") or "/")


def remote_run_dir(config: HostConfig) -> str:
    return f"{remote_workdir(config)}/run"


def _python(config: HostConfig) -> str:
    return check_path("python", config.python)


def probe_command(config: HostConfig) -> RemoteCommand:
    name = check_identifier("host name", config.name)
    try:
        argv = probe_argv(python=_python(config), run_dir=remote_run_dir(config), host_name=name)
    except InvalidWorkerSpec as exc:
        raise UnsafeCommandError(str(exc)) from exc
    return RemoteCommand(CommandKind.PROBE, tuple(argv))


def start_command(config: HostConfig, spec: WorkerSpec) -> RemoteCommand:
    """Start `spec` on the host. The spec is re-validated on the remote side (WorkerSpec again)."""
    if not isinstance(spec, WorkerSpec):
        raise UnsafeCommandError(f"spec must be a WorkerSpec, got {type(spec).__name__}")
    worker_id = check_identifier("worker_id", spec.worker_id)
    if spec.kind not in WORKER_KINDS:
        raise UnsafeCommandError(f"kind must be one of {WORKER_KINDS}, got {spec.kind!r}")
    options = json.dumps(spec.options.to_json(), sort_keys=True, separators=(",", ":"))
    argv = (
        *_entry(config, "start"),
        "--id",
        worker_id,
        "--kind",
        spec.kind,
        "--brain",
        spec.brain,
        "--options",
        options,
    )
    return RemoteCommand(CommandKind.START, argv)


def stop_command(config: HostConfig, worker_id: str, *, drain: bool, grace_s: float) -> RemoteCommand:
    if not isinstance(drain, bool):
        raise UnsafeCommandError(f"drain must be a bool, got {drain!r}")
    argv = (
        *_entry(config, "stop"),
        "--id",
        check_identifier("worker_id", worker_id),
        "--grace",
        repr(check_seconds("grace_s", grace_s)),
        "--drain" if drain else "--no-drain",
    )
    return RemoteCommand(CommandKind.STOP, argv)


def _entry(config: HostConfig, action: str) -> tuple[str, ...]:
    return (
        _python(config),
        "-m",
        REMOTE_ENTRY,
        action,
        "--run-dir",
        remote_run_dir(config),
        "--host",
        check_identifier("host name", config.name),
    )
