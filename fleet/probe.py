"""One-call snapshot of this machine: metrics plus the state of every worker in a run dir.

LocalHost calls `take_snapshot` in process; RemoteHost runs `python -m fleet.probe --run-dir D --host H
--json` over SSH and parses the output with `fleet.snapshot.snapshot_from_json`. A snapshot also enforces
drain deadlines: a worker still alive after its `<id>.stop` deadline gets SIGKILL (one round trip does both).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psutil

from core.domain import WorkerInfo, WorkerState
from fleet.run_files import RunFiles, kill_session, our_process, read_json
from fleet.snapshot import HostSnapshot, snapshot_to_json


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
    counters = status or {}
    if proc is not None:
        draining = files.stop.exists() or counters.get("state") == "draining"
        state = "draining" if draining else ("running" if status else "starting")
        cpu, rss = _usage(proc)
    else:
        status_exit = counters.get("exit_code")
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
        processed=_count(counters.get("processed")),
        idle=state == "running" and _count(counters.get("last_batch")) == 0,
        busy_s=_seconds(counters.get("busy_s")),
    )


def _count(value: object) -> int | None:
    """A counter from the worker's status file (it is the worker's own JSON: anything else is unknown)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _seconds(value: object) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return float(value) if ok else None  # type: ignore[arg-type]


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
    parser = argparse.ArgumentParser(prog="python -m fleet.probe", description=__doc__.splitlines()[0])
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
