"""Hosts that run worker processes: the `Host` protocol, its value types, and `LocalHost`.

A worker command line is made in exactly one place, `worker_argv`, from validated fields; nothing a
model or a user types is ever spliced into a command. LocalHost and RemoteHost (workers/remote.py)
both use it, so a spec that is safe here is safe over SSH.

Files a host keeps per worker in its run dir (the probe reads them back):
  <id>.pid          JSON {"pid", "create_time", "kind", "started_at"}: create_time guards against pid reuse
  <id>.status.json  written by the worker itself (workers/runtime.py): state, processed, exit_code
  <id>.log          stdout + stderr
  <id>.stop         JSON {"kill_after"}: a drain was asked; SIGKILL once the deadline passes
  <id>.exit         exit code, when the host reaped the process itself
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agent.domain import HostMetrics, WorkerInfo

WORKER_KINDS: tuple[str, ...] = ("embed", "extract", "dedup", "recluster", "wisdom")
EMBED_TABLES: tuple[str, ...] = ("records", "entities")
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
class HostSnapshot:
    """Metrics plus the state of every worker the host's run dir knows, taken in one round trip."""

    metrics: HostMetrics
    workers: tuple[WorkerInfo, ...] = ()

    def worker(self, worker_id: str) -> WorkerInfo | None:
        return next((w for w in self.workers if w.id == worker_id), None)


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
    """Command a remote host runs to get its snapshot as JSON (`python -m workers.probe`)."""
    if not _WORKER_ID.match(host_name):
        raise InvalidWorkerSpec(f"host name must match {_WORKER_ID.pattern}, got {host_name!r}")
    if not run_dir or run_dir.startswith("-") or any(c in run_dir for c in "\0\n\r"):
        raise InvalidWorkerSpec(f"bad run dir {run_dir!r}")
    return [python, "-m", "workers.probe", "--run-dir", run_dir, "--host", host_name, "--json"]


def snapshot_to_json(snapshot: HostSnapshot) -> str:
    import json

    return json.dumps(
        {
            "metrics": snapshot.metrics.model_dump(mode="json"),
            "workers": [w.model_dump(mode="json") for w in snapshot.workers],
        }
    )


def snapshot_from_json(text: str) -> HostSnapshot:
    """Parse probe output; raises ValueError (pydantic.ValidationError included) on malformed input."""
    import json

    data = json.loads(text)
    if not isinstance(data, dict) or "metrics" not in data:
        raise ValueError("probe output must be a JSON object with 'metrics' and 'workers'")
    return HostSnapshot(
        metrics=HostMetrics.model_validate(data["metrics"]),
        workers=tuple(WorkerInfo.model_validate(w) for w in data.get("workers", [])),
    )
