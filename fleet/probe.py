"""One-call snapshot of this machine: metrics plus the state of every worker in a run dir.

LocalHost calls `take_snapshot` in process; RemoteHost runs `python -m workers.probe --run-dir D --host H
--json` over SSH and parses the output with `fleet.hosts.snapshot_from_json`. A snapshot also enforces
drain deadlines: a worker still alive after its `<id>.stop` deadline gets SIGKILL (one round trip does both).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from core.domain import WorkerInfo, WorkerState
from fleet.hosts import HostSnapshot, snapshot_to_json

# psutil derives create_time from boot time + start ticks; the same process always gives the same value,
# a reused pid almost never does within this tolerance.
CREATE_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class RunFiles:
    """Paths of one worker's files in a run dir."""

    run_dir: Path
    worker_id: str

    def _path(self, suffix: str) -> Path:
        return self.run_dir / f"{self.worker_id}{suffix}"

    @property
    def pid(self) -> Path:
        return self._path(".pid")

    @property
    def status(self) -> Path:
        return self._path(".status.json")

    @property
    def log(self) -> Path:
        return self._path(".log")

    @property
    def stop(self) -> Path:
        return self._path(".stop")

    @property
    def exit(self) -> Path:
        return self._path(".exit")

    def clear_previous_run(self) -> None:
        for path in (self.pid, self.status, self.stop, self.exit):
            path.unlink(missing_ok=True)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from path, or None when missing or torn (writers replace atomically, but be safe)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def our_process(pid: int | None, create_time: float | None) -> psutil.Process | None:
    """The live process with this pid AND this create_time; None if gone, a zombie, or a reused pid."""
    if not pid or create_time is None:
        return None
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > CREATE_TIME_TOLERANCE_S:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return proc


def worker_ids(run_dir: Path) -> list[str]:
    if not run_dir.is_dir():
        return []
    return sorted(p.name.removesuffix(".pid") for p in run_dir.glob("*.pid"))


def worker_info(run_dir: Path, worker_id: str, host: str) -> WorkerInfo | None:
    files = RunFiles(run_dir, worker_id)
    meta = read_json(files.pid)
    if meta is None:
        return None
    pid = meta.get("pid")
    proc = our_process(pid, meta.get("create_time"))
    status = read_json(files.status)
    state: WorkerState
    cpu, rss, last_exit = 0.0, 0.0, None
    if proc is not None:
        draining = files.stop.exists() or (status or {}).get("state") == "draining"
        state = "draining" if draining else ("running" if status else "starting")
        cpu, rss = _usage(proc)
    else:
        status_exit = (status or {}).get("exit_code")
        reaped = read_json(files.exit)
        last_exit = status_exit if status_exit is not None else (reaped or {}).get("code")
        state = "stopped" if status_exit == 0 else "crashed"
    return WorkerInfo(
        id=worker_id,
        kind=str(meta.get("kind", "?")),
        host=host,
        pid=pid,
        state=state,
        started_at=meta.get("started_at"),
        last_exit=last_exit,
        cpu_percent=cpu,
        rss_mb=rss,
    )


def _usage(proc: psutil.Process) -> tuple[float, float]:
    """Average CPU % since start (no sampling wait) and resident memory in MB."""
    try:
        with proc.oneshot():
            times = proc.cpu_times()
            age = max(time.time() - proc.create_time(), 1e-3)
            rss = proc.memory_info().rss / 2**20
        return 100.0 * (times.user + times.system) / age, rss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0, 0.0


def kill_overdue_drains(run_dir: Path, now: float) -> list[str]:
    """SIGKILL (whole session) every draining worker whose grace deadline has passed. Returns their ids."""
    killed = []
    for worker_id in worker_ids(run_dir):
        files = RunFiles(run_dir, worker_id)
        stop = read_json(files.stop)
        if stop is None or float(stop.get("kill_after", float("inf"))) > now:
            continue
        meta = read_json(files.pid) or {}
        proc = our_process(meta.get("pid"), meta.get("create_time"))
        if proc is not None:
            kill_session(proc.pid)
            killed.append(worker_id)
    return killed


def kill_session(pid: int) -> None:
    # Workers start in their own session (pgid == pid), so this also takes any children they spawned.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def take_snapshot(
    run_dir: Path, host: str = "local", *, cpu_interval_s: float = 0.1, enforce_deadlines: bool = True
) -> HostSnapshot:
    from fleet.host_metrics import host_metrics

    if enforce_deadlines:
        kill_overdue_drains(run_dir, time.time())
    metrics = host_metrics(host, cpu_interval_s=cpu_interval_s)
    infos = (worker_info(run_dir, wid, host) for wid in worker_ids(run_dir))
    return HostSnapshot(metrics=metrics, workers=tuple(i for i in infos if i is not None))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--host", default="local")
    parser.add_argument("--json", action="store_true", help="print the snapshot as one JSON object")
    parser.add_argument("--cpu-interval", type=float, default=0.1)
    parser.add_argument("--no-enforce", action="store_true", help="do not SIGKILL overdue drains")
    args = parser.parse_args(argv)
    snap = take_snapshot(
        args.run_dir, args.host, cpu_interval_s=args.cpu_interval, enforce_deadlines=not args.no_enforce
    )
    if args.json:
        print(snapshot_to_json(snap))
        return 0
    m = snap.metrics
    print(
        f"{m.host}: cpu {m.cpu_percent:.0f}% mem {m.mem_percent:.0f}% disk {m.disk_percent:.0f}% "
        f"load {m.load1:.2f} cores {m.cpu_count} gpus {len(m.gpus)}"
    )
    for w in snap.workers:
        print(f"  {w.id:<32} {w.kind:<10} {w.state:<9} pid={w.pid} exit={w.last_exit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
