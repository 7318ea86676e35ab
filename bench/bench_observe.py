"""Fleet observation wall time over real SSH: 1, 2 and 20 sshd hosts on loopback, parallel vs serial.

Run: `.venv/bin/python -m bench.bench_observe` (root, openssh-server; writes bench/out/bench_observe.json).
Each observation is one probe command per host (`python -m workers.probe`), so on a 2-core machine the
20-host case is bound by starting 20 Python probes, not by SSH round trips.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.progress import Progress

from fleet.remote import RemoteHost, observe_hosts
from tests.support.sshd import SshFleet, sshd_unavailable_reason

SIZES = (1, 2, 20)
TIMEOUT_S = 20.0
HUNG_TIMEOUT_S = 3.0


def _timed(hosts: list[RemoteHost], *, parallel: bool, timeout_s: float = TIMEOUT_S) -> tuple[float, int]:
    started = time.perf_counter()
    snaps = observe_hosts(hosts, timeout_s, parallel=parallel)
    return time.perf_counter() - started, sum(s.metrics.reachable for s in snaps)


def _median_s(hosts: list[RemoteHost], *, parallel: bool, repeats: int) -> dict[str, Any]:
    runs = [_timed(hosts, parallel=parallel) for _ in range(repeats)]
    return {
        "median_s": round(statistics.median(t for t, _ in runs), 3),
        "runs_s": [round(t, 3) for t, _ in runs],
        "reachable": min(ok for _, ok in runs),
    }


def _measure_size(hosts: list[RemoteHost], repeats: int) -> dict[str, Any]:
    for host in hosts:
        host.close()
    cold_s, cold_ok = _timed(hosts, parallel=True)  # includes TCP + key exchange + auth per host
    parallel = _median_s(hosts, parallel=True, repeats=repeats)
    serial = _median_s(hosts, parallel=False, repeats=repeats)
    return {
        "hosts": len(hosts),
        "cold_parallel_s": round(cold_s, 3),
        "cold_reachable": cold_ok,
        "parallel": parallel,
        "serial": serial,
        "speedup": round(serial["median_s"] / max(parallel["median_s"], 1e-9), 2),
    }


def _measure_hung_host(fleet: SshFleet, hosts: list[RemoteHost]) -> dict[str, Any]:
    """One of two hosts frozen (SIGSTOP): the observation must still end near its timeout."""
    fleet.hosts[-1].freeze()
    try:
        elapsed, ok = _timed(hosts[-2:], parallel=True, timeout_s=HUNG_TIMEOUT_S)
    finally:
        fleet.hosts[-1].thaw()
    return {"hosts": 2, "frozen": 1, "timeout_s": HUNG_TIMEOUT_S, "wall_s": round(elapsed, 3), "reachable": ok}


def run(out_dir: Path, repeats: int = 3) -> dict[str, Any]:
    reason = sshd_unavailable_reason()
    if reason:
        return {"skipped": reason}
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"bench": "observe", "sizes": {}, "repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="bench-observe-") as tmp, Progress() as progress:
        task = progress.add_task("starting 20 sshd hosts", total=len(SIZES) + 2)
        with SshFleet(Path(tmp), max(SIZES)) as fleet:
            hosts = [RemoteHost(config) for config in fleet.configs()]
            progress.advance(task)
            for size in SIZES:
                progress.update(task, description=f"observing {size} host(s)")
                result["sizes"][str(size)] = _measure_size(hosts[:size], repeats)
                progress.advance(task)
            progress.update(task, description="one host frozen")
            result["hung_host"] = _measure_hung_host(fleet, hosts)
            progress.advance(task)
            for host in hosts:
                host.close()
    (out_dir / "bench_observe.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "out"
    print(json.dumps(run(out), indent=2))
