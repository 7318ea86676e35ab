"""Entities per hour through extract + embed + dedup: workers as Ray actors on a local Ray cluster (fleet/ray_host.py)
against the same workers as local processes (fleet.hosts.LocalHost), on copies of one brain, in the same run.

Run: `python -m bench.bench_ray [--quick]` (writes bench/out/bench_ray.json). The brain is the small seed with
every record pending extraction and every entity without a vector; the pipeline is the dispatcher's own: two
extract jobs (shards 0/2 and 1/2), then one embed job on the entities, then one dedup dry run. Entities per hour =
live entities after the pass / the pipeline's wall time. The Ray side pays for its actors' start (one Python
process per actor, as a process pays its own), not for starting the cluster, which a fleet keeps running.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STAGES: tuple[tuple[str, tuple[dict[str, Any], ...]], ...] = (
    ("extract", ({"shard": "0/2", "batch_size": 200}, {"shard": "1/2", "batch_size": 200})),
    ("embed", ({"table": "entities", "batch_size": 256},)),
    ("dedup", ({"dry_run": True},)),
)


def prepare_brain(path: Path, records: int | None) -> int:
    """The small seed, all records pending (or only `records` of them), no entity vectors. Returns live entities."""
    import pyarrow as pa

    from brain.seed import seed_brain
    from brain.store import BrainStore

    seed_brain(str(path), "small", seed=7, show_progress=False)
    store = BrainStore(str(path))
    ids = store.fresh("records").search().select(["id"]).limit(None).to_arrow().column("id").to_pylist()
    pending = ids if records is None else ids[:records]
    store.update_columns("records", pa.table({"id": ids, "extracted": [i not in set(pending) for i in ids]}))
    ents = store.fresh("entities").search().select(["id"]).limit(None).to_arrow().column("id")
    store.update_columns("entities", pa.table({"id": ents, "embedded_hash": pa.nulls(len(ents), pa.string())}))
    return int(store.fresh("entities").count_rows("merged_into IS NULL"))


def run_pipeline(hosts: dict[str, Any], brain: str, state: Path) -> dict[str, float]:
    """Each stage's jobs through the dispatcher, waited for: wall seconds per stage and in all, and the seconds the
    workers spent in batches (their own `busy_s`), which leaves out starting, loading and placement."""
    from fleet.dispatcher import Dispatcher
    from fleet.hosts import WorkerOptions

    state.mkdir(parents=True, exist_ok=True)
    dispatcher = Dispatcher(hosts, state / "dispatcher.db", brain_uri=brain)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    busy = 0.0
    for kind, jobs in STAGES:
        t0 = time.perf_counter()
        ids = []
        for options in jobs:
            result = dispatcher.run_once(kind, "bench", WorkerOptions(**options))
            if not result.ok:
                raise RuntimeError(f"{kind} did not start: {result.error}")
            ids.append(result.worker_id)
        deadline = time.monotonic() + 1800
        while dispatcher.registry.live():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not finish in 30 min")
            dispatcher.reconcile()
            time.sleep(0.2)
        failed = [r.id for r in dispatcher.registry.recent_ended(len(jobs)) if r.state != "done"]
        if failed:
            raise RuntimeError(f"{kind} jobs failed: {failed}")
        seconds[kind] = time.perf_counter() - t0
        snap = dispatcher.last_snapshots["bench"]
        busy += sum((w.busy_s or 0.0) for w in snap.workers if w.id in ids)
    seconds["total"] = time.perf_counter() - started
    seconds["busy_s"] = busy
    return seconds


def _mean(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(sum(r[k] for r in runs) / len(runs), 2) for k in runs[0]}


def run(out_dir: Path | None = None, quick: bool = False) -> dict[str, Any]:
    import ray

    from agent.service.effects import worker_env
    from fleet.hosts import LocalHost
    from fleet.ray_host import RayCluster, RayHost
    from workers.ray_actor import KindActor

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
    os.environ.setdefault("BRAINOPS_EMBED_THREADS", str(max(1, (os.cpu_count() or 2) // 2)))
    records = 400 if quick else None
    orders = [("local", "ray")] if quick else [("local", "ray"), ("ray", "local")]  # neither side always first
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    cpus = os.cpu_count() or 2
    ray.init(  # up for the whole run, as a fleet's cluster is: its daemons share the CPUs with both sides
        num_cpus=cpus,
        resources={"host:bench": 1000.0},
        object_store_memory=78_643_200,
        include_dashboard=False,
        namespace="bench",
        log_to_driver=False,
        logging_level="warning",
        _node_ip_address="127.0.0.1",
    )
    try:
        source = work / "source"
        entities = prepare_brain(source, records)
        hosts = {
            "local": {"bench": LocalHost(work / "local-run", "bench", env=worker_env())},
            "ray": {"bench": RayHost("bench", RayCluster(namespace="bench"), KindActor, cpus_per_worker=cpus / 2)},
        }
        runs: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
        for round_no, order in enumerate(orders):
            for side in order:
                brain = work / f"{side}-{round_no}"
                shutil.copytree(source, brain)
                runs[side].append(run_pipeline(hosts[side], str(brain), work / f"{side}-state-{round_no}"))
        results: dict[str, Any] = {"entities": entities, "records_pending": records or "all (small seed)"}
        results["local_processes"], results["ray_actors"] = _mean(runs["local"]), _mean(runs["ray"])
        for side in ("local_processes", "ray_actors"):
            results[side]["entities_per_hour"] = round(entities / results[side]["total"] * 3600)
        results["ray_vs_local_wall"] = round(results["ray_actors"]["total"] / results["local_processes"]["total"], 3)
        results["ray_vs_local_busy"] = round(results["ray_actors"]["busy_s"] / results["local_processes"]["busy_s"], 3)
        results["cpus"] = cpus
        results["rounds"] = len(orders)
        results["comparisons"] = [
            {
                "title": "Entities per hour, extract + embed + dedup (same brain, same run)",
                "unit": "entities/h",
                "values": {
                    "local processes": results["local_processes"]["entities_per_hour"],
                    "Ray actors": results["ray_actors"]["entities_per_hour"],
                },
                "baseline": "local processes",
                "better": "higher",
            }
        ]
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "bench_ray.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    print(json.dumps(run(Path(__file__).resolve().parent / "out", quick="--quick" in sys.argv), indent=2))
