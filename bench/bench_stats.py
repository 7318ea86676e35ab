"""`brain stats` latency on the seed-scale brain (485,848 records), plus how long seeding it takes.

Run: `.venv/bin/python -m bench.bench_stats [--path P]` (writes bench/out/bench_stats.json).
Without --path the brain is seeded into a temporary directory and removed afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.progress import Progress

REPEATS = 40


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_stats(uri: str, repeats: int = REPEATS) -> dict[str, Any]:
    from brain.store import BrainStore

    store = BrainStore(uri)
    store.stats()  # first call opens tables and warms the file cache
    took_ms: list[float] = []
    with Progress(transient=True) as progress:
        task = progress.add_task("brain stats", total=repeats)
        for _ in range(repeats):
            started = time.perf_counter()
            stats = store.stats()
            took_ms.append((time.perf_counter() - started) * 1000)
            progress.advance(task)
    return {
        "repeats": repeats,
        "p50_ms": round(statistics.median(took_ms), 1),
        "p95_ms": round(_percentile(took_ms, 0.95), 1),
        "min_ms": round(min(took_ms), 1),
        "max_ms": round(max(took_ms), 1),
        "stats": stats.model_dump(mode="json"),
    }


def run(out_dir: Path, path: str | None = None, repeats: int = REPEATS) -> dict[str, Any]:
    from brain.seed import seed_brain

    tmp = None if path else tempfile.mkdtemp(prefix="bench-stats-")
    uri = path or str(Path(tmp or ".") / "brain")
    try:
        seed_report = None
        if tmp is not None:
            report = seed_brain(uri, "seed", seed=0, show_progress=True)
            seed_report = {"seconds": report.seconds, "timings": report.timings, "records": report.records}
        result = {
            "bench": "stats",
            "uri": uri if path else "<tmp>",
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "cpu_count": os.cpu_count(),
            "seed": seed_report,
            "stats_latency": measure_stats(uri, repeats),
        }
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_stats.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    arg_path = sys.argv[sys.argv.index("--path") + 1] if "--path" in sys.argv else None
    summary = run(Path(__file__).resolve().parent / "out", arg_path)
    print(json.dumps({k: v for k, v in summary.items() if k != "stats_latency"}, indent=2))
    print(json.dumps({k: v for k, v in summary["stats_latency"].items() if k != "stats"}, indent=2))
