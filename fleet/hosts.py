"""Hosts that run worker processes: the `Host` protocol, its value types, and `LocalHost`.

A worker command line is made in exactly one place, `worker_argv`, from validated fields; nothing a
model or a user types is ever spliced into a command. LocalHost and RemoteHost (fleet/remote.py)
both use it, so a spec that is safe here is safe over SSH.

Files a host keeps per worker in its run dir (the probe reads them back):
  <id>.pid          JSON {"pid", "create_time", "kind", "started_at"}: create_time guards against pid reuse
  <id>.status.json  written by the worker itself (workers/runtime.py): state, processed, exit_code
  <id>.log          stdout + stderr
  <id>.stop         JSON {"kill_after"}: a drain was asked; SIGKILL once the deadline passes
  <id>.exit         exit code, when the host reaped the process itself
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import psutil

from core import telemetry
from core.domain import HostMetrics, is_plan_hash
from core.kinds import EMBED_TABLES, WORKER_KINDS
from core.kinds import kind as kind_spec
from fleet.probe import kill_overdue_drains, take_snapshot
from fleet.run_files import RunFiles, kill_session, our_process, read_json
from fleet.snapshot import HostSnapshot
from fleet.snapshot import snapshot_from_json as snapshot_from_json  # re-exported: the wire format lived here
from fleet.snapshot import snapshot_to_json as snapshot_to_json

DEFAULT_GRACE_S = 30.0

_WORKER_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
_SHARD = re.compile(r"^\d+/\d+$")
_MAX_INT_OPTION = 10_000_000


class InvalidWorkerSpec(ValueError):
    """A worker spec field failed validation; the message names the field and the rule."""


def _check_int(name: str, value: int | None, *, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidWorkerSpec(f"{name} must be an int, got {type(value).__name__}")
    if not minimum <= value <= _MAX_INT_OPTION:
        raise InvalidWorkerSpec(f"{name} must be in [{minimum}, {_MAX_INT_OPTION}], got {value}")


@dataclass(frozen=True)
class WorkerOptions:
    """Kind options a worker accepts. Each maps to one fixed flag; None / False means "not passed"."""

    shard: str | None = None  # "i/n"
    batch_size: int | None = None
    loop: bool = False
    item_ms: int | None = None  # simulated per-item latency (extract)
    limit: int | None = None
    table: str | None = None  # embed: "records" | "entities"
    dry_run: bool = False  # dedup
    plan: str | None = None  # dedup: the approved plan's hash (workers/dedup_plan.py)
    max_merges: int | None = None  # dedup: stop, merging nothing, above this many

    def __post_init__(self) -> None:
        if self.shard is not None:
            if not isinstance(self.shard, str) or not _SHARD.match(self.shard):
                raise InvalidWorkerSpec(f"shard must match ^\\d+/\\d+$, got {self.shard!r}")
            i, n = (int(p) for p in self.shard.split("/"))
            if n < 1 or not 0 <= i < n:
                raise InvalidWorkerSpec(f"shard {self.shard!r} out of range: need 0 <= i < n")
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("item_ms", self.item_ms, minimum=0)
        _check_int("limit", self.limit, minimum=1)
        _check_int("max_merges", self.max_merges, minimum=0)
        if self.plan is not None and not is_plan_hash(self.plan):
            raise InvalidWorkerSpec(f"plan must be 64 lowercase hex digits, got {self.plan!r}")
        if self.table is not None and self.table not in EMBED_TABLES:
            raise InvalidWorkerSpec(f"table must be one of {EMBED_TABLES}, got {self.table!r}")
        for flag in ("loop", "dry_run"):
            if not isinstance(getattr(self, flag), bool):
                raise InvalidWorkerSpec(f"{flag} must be a bool")

    def flags(self) -> tuple[str, ...]:
        out: list[str] = []
        if self.shard is not None:
            out += ["--shard", self.shard]
        if self.batch_size is not None:
            out += ["--batch-size", str(self.batch_size)]
        if self.item_ms is not None:
            out += ["--item-ms", str(self.item_ms)]
        if self.limit is not None:
            out += ["--limit", str(self.limit)]
        if self.table is not None:
            out += ["--table", self.table]
        if self.loop:
            out.append("--loop")
        if self.dry_run:
            out.append("--dry-run")
        if self.plan is not None:
            out += ["--plan", self.plan]
        if self.max_merges is not None:
            out += ["--max-merges", str(self.max_merges)]
        return tuple(out)

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v is not False}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> WorkerOptions:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidWorkerSpec(f"unknown worker options: {sorted(unknown)}")
        return cls(**data)  # type: ignore[arg-type]


@dataclass(frozen=True)
class WorkerSpec:
    """One worker to start. Validated on construction; `worker_argv` turns it into a command line."""

    worker_id: str
    kind: str
    brain: str
    options: WorkerOptions = WorkerOptions()

    def __post_init__(self) -> None:
        if not isinstance(self.worker_id, str) or not _WORKER_ID.match(self.worker_id):
            raise InvalidWorkerSpec(
                f"worker_id must match {_WORKER_ID.pattern} (used in file names), got {self.worker_id!r}"
            )
        if self.kind not in WORKER_KINDS:
            raise InvalidWorkerSpec(f"kind must be one of {WORKER_KINDS}, got {self.kind!r}")
        if not isinstance(self.brain, str) or not self.brain or len(self.brain) > 1024:
            raise InvalidWorkerSpec("brain must be a non-empty URI of at most 1024 characters")
        if self.brain.startswith("-") or any(c in self.brain for c in "\0\n\r"):
            raise InvalidWorkerSpec(f"brain URI may not start with '-' or hold control chars: {self.brain!r}")
        if not isinstance(self.options, WorkerOptions):
            raise InvalidWorkerSpec("options must be a WorkerOptions")
        foreign = set(self.options.to_json()) - kind_spec(self.kind).options
        if foreign:
            raise InvalidWorkerSpec(f"{self.kind} workers take no {', '.join(sorted(foreign))}")

    @property
    def args(self) -> tuple[str, ...]:
        """Everything after `worker KIND` except the status file (which depends on the host's run dir)."""
        return ("--brain", self.brain, *self.options.flags())


def worker_argv(spec: WorkerSpec, *, python: str, status_file: str) -> list[str]:
    """The only way a worker command line is made: `python -m agent.cli worker KIND --brain URI ...`."""
    if not python or any(c in python for c in "\0\n\r"):
        raise InvalidWorkerSpec(f"bad interpreter path {python!r}")
    if not status_file or status_file.startswith("-") or any(c in status_file for c in "\0\n\r"):
        raise InvalidWorkerSpec(f"bad status file path {status_file!r}")
    return [python, "-m", "agent.cli", "worker", spec.kind, *spec.args, "--status-file", status_file]


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class StartResult:
    ok: bool
    worker_id: str
    pid: int | None = None
    started_at: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class StopResult:
    ok: bool
    worker_id: str
    state: str = "draining"  # draining | stopped | killed | not_running
    error: str | None = None


@runtime_checkable
class Host(Protocol):
    name: str

    def snapshot(self, timeout_s: float) -> HostSnapshot:
        """Metrics + worker states. Never raises for an unreachable host: metrics.reachable=False."""
        ...

    def start_worker(self, spec: WorkerSpec) -> StartResult:
        """Start the worker detached (own session), with log, pid and status files in the run dir."""
        ...

    def stop_worker(self, worker_id: str, drain: bool = True, grace_s: float = DEFAULT_GRACE_S) -> StopResult:
        """drain=True: SIGTERM now, SIGKILL once grace_s passes (enforced by later snapshots).
        drain=False: SIGTERM, wait up to grace_s, then SIGKILL; returns when the process is gone."""
        ...


# ---------------------------------------------------------------- wire format (probe output over SSH)


def probe_argv(*, python: str, run_dir: str, host_name: str) -> list[str]:
    """Command a remote host runs to get its snapshot as JSON (`python -m fleet.probe`)."""
    if not _WORKER_ID.match(host_name):
        raise InvalidWorkerSpec(f"host name must match {_WORKER_ID.pattern}, got {host_name!r}")
    if not run_dir or run_dir.startswith("-") or any(c in run_dir for c in "\0\n\r"):
        raise InvalidWorkerSpec(f"bad run dir {run_dir!r}")
    return [python, "-m", "fleet.probe", "--run-dir", run_dir, "--host", host_name, "--json"]


# ---------------------------------------------------------------- local processes


class LocalHost:
    """Runs workers as detached child processes of this machine, bookkept in `run_dir`."""

    def __init__(
        self,
        run_dir: Path,
        name: str = "local",
        *,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        cpu_interval_s: float = 0.1,
    ) -> None:
        self.name = name
        self.run_dir = Path(run_dir)
        self.python = python
        self.env = dict(env) if env is not None else None
        self.cpu_interval_s = cpu_interval_s
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def snapshot(self, timeout_s: float = 5.0) -> HostSnapshot:
        try:
            for worker_id in kill_overdue_drains(self.run_dir, time.time()):
                self._wait_child(worker_id, 2.0)  # so the snapshot below already has its exit code
            self.reap()
            interval = max(0.0, min(self.cpu_interval_s, timeout_s / 2))
            return take_snapshot(self.run_dir, self.name, cpu_interval_s=interval, enforce_deadlines=False)
        except Exception as exc:  # a broken probe must not take the control loop down
            return HostSnapshot(metrics=HostMetrics(host=self.name, reachable=False, error=repr(exc)))

    def start_worker(self, spec: WorkerSpec) -> StartResult:
        self.reap()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        files = RunFiles(self.run_dir, spec.worker_id)
        meta = read_json(files.pid) or {}
        if our_process(meta.get("pid"), meta.get("create_time")) is not None:
            return StartResult(ok=False, worker_id=spec.worker_id, error="already running")
        files.clear_previous_run()
        argv = worker_argv(spec, python=self.python, status_file=str(files.status))
        try:
            with files.log.open("ab") as log:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=telemetry.child_env(self.env),  # TRACEPARENT: its batches join this trace
                )
        except OSError as exc:
            return StartResult(ok=False, worker_id=spec.worker_id, error=f"spawn failed: {exc}")
        self._children[spec.worker_id] = proc
        started_at = time.time()
        create_time = psutil.Process(proc.pid).create_time()  # a zombie still has one: never raises here
        _write_json(
            files.pid, {"pid": proc.pid, "create_time": create_time, "kind": spec.kind, "started_at": started_at}
        )
        return StartResult(ok=True, worker_id=spec.worker_id, pid=proc.pid, started_at=started_at)

    def stop_worker(self, worker_id: str, drain: bool = True, grace_s: float = DEFAULT_GRACE_S) -> StopResult:
        self.reap()
        files = RunFiles(self.run_dir, worker_id)
        meta = read_json(files.pid) or {}
        proc = our_process(meta.get("pid"), meta.get("create_time"))
        if proc is None:
            return StopResult(ok=True, worker_id=worker_id, state="not_running")
        _write_json(files.stop, {"requested_at": time.time(), "kill_after": time.time() + grace_s})
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        if drain:
            return StopResult(ok=True, worker_id=worker_id, state="draining")
        if self._wait_gone(worker_id, proc, grace_s):
            return StopResult(ok=True, worker_id=worker_id, state="stopped")
        kill_session(proc.pid)
        if self._wait_gone(worker_id, proc, 5.0):
            return StopResult(ok=True, worker_id=worker_id, state="killed")
        return StopResult(ok=False, worker_id=worker_id, state="draining", error="survived SIGKILL")

    def _wait_gone(self, worker_id: str, proc: psutil.Process, timeout_s: float) -> bool:
        child = self._children.get(worker_id)
        try:
            if child is not None:
                child.wait(timeout=timeout_s)
            else:
                proc.wait(timeout=timeout_s)
        except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
            return False
        finally:
            self.reap()
        return True

    def _wait_child(self, worker_id: str, timeout_s: float) -> None:
        child = self._children.get(worker_id)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=timeout_s)

    def reap(self) -> None:
        """Collect exit codes of children that ended (no zombies) into <id>.exit (negative = signal)."""
        for worker_id, proc in list(self._children.items()):
            code = proc.poll()
            if code is None:
                continue
            _write_json(RunFiles(self.run_dir, worker_id).exit, {"code": code, "reaped_at": time.time()})
            del self._children[worker_id]


def _write_json(path: Path, payload: dict[str, object]) -> None:
    import json

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)
