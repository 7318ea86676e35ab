"""Disk pressure: what observing reclaimable space adds to a tick, and what each reclaim frees.

Run: `.venv/bin/python -m bench.bench_storage` (writes bench/out/bench_storage.json). On a seeded small brain
with `versions` extra commits (many small writes, as workers make them): the storage observation's wall time
beside the brain stats the tick already reads (the baseline), the brain's bytes before and after
`prune_versions`, and archiving a decision log of `records` records (time, live rows left, verify time).
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from agent.service.storage import observe_storage
from agent.state.decision_archive import archive
from agent.state.decisions import DecisionLog
from brain.lance_space import prune_versions, version_space
from brain.schema import TABLES
from brain.seed import seed_brain
from brain.store import BrainStore
from core.domain import Outcome
from core.settings import HostConfig, Settings
from policies.model import Storage

KEY = b"bench-storage-key-0123456789abcdef"


def _median_s(fn: Any, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return round(statistics.median(runs), 4)


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(
    out_dir: Path, versions: int = 200, records: int = 20_000, repeats: int = 5, quick: bool = False
) -> dict[str, Any]:
    if quick:
        versions, records, repeats = 50, 5_000, 3
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        root = Path(tmp)
        brain = root / "brain"
        seed_brain(str(brain), "small", seed=3, show_progress=False)
        store = BrainStore(str(brain))
        for i in range(versions):
            store.meta_set(f"bench_{i % 10}", i)  # one commit each: versions pile up
        settings = Settings(home=root / "home", brain_uri=str(brain), hosts=[HostConfig(name="local", role="brain")])
        settings.ensure_dirs()
        observe_s = _median_s(lambda: observe_storage(settings, "local", Storage(), time.time()), repeats)
        stats_s = _median_s(lambda: BrainStore(str(brain)).stats(), repeats)
        space = version_space(store, tuple(TABLES))
        before = _dir_bytes(brain)
        pruned = prune_versions(store, tuple(TABLES), timedelta(0))
        after = _dir_bytes(brain)
        log = DecisionLog(settings.state_db, key=KEY)
        for i in range(records):
            log.append(
                tick_id=f"t{i}",
                action="noop",
                rationale="all stages within targets",
                outcome=Outcome(status="noop"),
                now=1.0e6 + i,
            )
        archive_s = _median_s(lambda: archive(log.path, root / "archive", 1.0e6 + records, KEY, now=2.0e6), 1)
        verify_s = _median_s(log.verify, 1)
        segment_bytes = sum(p.stat().st_size for p in (root / "archive").glob("*.gz"))
        live_left = log.count()
        shutil.rmtree(brain, ignore_errors=True)
    result = {
        "bench": "storage",
        "versions": versions,
        "records": records,
        "observe_storage_s": observe_s,
        "brain_stats_s": stats_s,
        "reclaimable_estimate_bytes": space.bytes,
        "brain_bytes_before": before,
        "brain_bytes_after": after,
        "prune_bytes_removed": pruned.bytes_removed,
        "archive_s": archive_s,
        "verify_after_archive_s": verify_s,
        "segment_bytes": segment_bytes,
        "live_records_left": live_left,
        "comparisons": [
            {
                "title": "Tick observation: storage vs the brain stats it already reads",
                "unit": "s",
                "values": {"brain stats (baseline)": stats_s, "storage observation": observe_s},
                "baseline": "brain stats (baseline)",
                "better": "lower",
            },
            {
                "title": f"Brain on disk after {versions} small commits: before and after prune_versions",
                "unit": "MiB",
                "values": {"before (baseline)": round(before / 2**20, 2), "after prune": round(after / 2**20, 2)},
                "baseline": "before (baseline)",
                "better": "lower",
            },
        ],
    }
    (out_dir / "bench_storage.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(run(Path(__file__).resolve().parent / "out"), indent=2))
