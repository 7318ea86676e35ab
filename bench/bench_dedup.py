"""Dedup on the seed-scale entities (21,138): seconds incl. embedding the names, precision and recall vs
ground truth, against plain exact-name baselines; plus undo of every merge.

"cold" is a brain whose entities have no vectors, on a host where `make install` has prepared the embedder
(`brainops brain prepare-embedder`); "first_run_on_a_new_host" repeats it with an empty embedder cache, so
it also pays the bf16 calibration and the compile of the embedder, once per host.

Run: `.venv/bin/python -m bench.bench_dedup` (writes bench/out/bench_dedup.json). Only entities and
relationships are written (records do not matter to dedup), so the brain builds in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any


def graph_only_brain(uri: str, scale: str, seed: int = 0) -> Any:
    """A brain with the seed's entities (no vectors), relationships and previous communities, no records.

    Returns the EntityPlan (ground truth)."""
    from brain.seed import community_tables, entity_table, plan_entities, plan_relationships, spec_for
    from brain.store import BrainStore

    now = time.time()
    plan = plan_entities(scale, seed)
    store = BrainStore(uri).open_or_create()
    store.add("entities", entity_table(plan, seed, now))
    store.add("relationships", plan_relationships(plan, spec_for(scale), seed, now))
    store.add("communities", community_tables(plan, seed, now)[0])
    return plan


def exact_name_baseline(names: list[str], types: list[str], truth: list[str], same_type: bool) -> dict[str, Any]:
    """GraphRAG/LightRAG style: merge rows whose name string is identical (optionally also the type)."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (n, t) in enumerate(zip(names, types, strict=True)):
        groups[(n, t if same_type else "")].append(i)
    good = made = 0
    for members in groups.values():
        for m in members[1:]:
            made += 1
            good += truth[m] == truth[members[0]]
    expected = sum(c - 1 for c in Counter(truth).values())
    return {
        "merges": made,
        "precision": round(good / made, 4) if made else 1.0,
        "recall": round(good / expected, 4) if expected else 1.0,
    }


def _quality(report: Any) -> dict[str, Any]:
    q = report.quality
    return {
        "merges": report.absorbed,
        "precision": round(q.precision, 4),
        "recall": round(q.recall, 4),
        "false_merges": q.false_merges,
        "expected_merges": q.expected_merges,
        "reasons": dict(Counter(m.reason for m in report.merges)),
    }


def _false_merges(report: Any, plan: Any) -> list[str]:
    truth = dict(zip(plan.ids, plan.truth, strict=True))
    name = dict(zip(plan.ids, plan.names, strict=True))
    return [
        f"{name[m.kept_id]!r} <- {name[a]!r}"
        for m in report.merges
        for a in m.absorbed_ids
        if truth[a] != truth[m.kept_id]
    ]


def run(out_dir: Path, quick: bool = False) -> dict[str, Any]:
    from brain.store import BrainStore
    from workers.dedup import run_dedup
    from workers.dedup_undo import undo_merges

    scale = "small" if quick else "seed"
    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        plan = graph_only_brain(f"{tmp}/brain", scale)
        store = BrainStore(f"{tmp}/brain")
        names, types, truth = list(plan.names), list(plan.types), list(plan.truth)
        baselines = {
            "exact_name_any_type": exact_name_baseline(names, types, truth, same_type=False),
            "exact_name_same_type": exact_name_baseline(names, types, truth, same_type=True),
        }
        started = time.perf_counter()
        cold = run_dedup(store)  # loads the model, embeds every name, stores vectors, merges
        cold_s = time.perf_counter() - started
        first = _first_run_on_a_new_host(f"{tmp}/fresh", scale, f"{tmp}/empty-cache")

        started = time.perf_counter()
        undone = undo_merges(store, list(cold.merge_ids))  # `brainops dedup undo --last-run`
        undo_s = time.perf_counter() - started

        started = time.perf_counter()
        warm = run_dedup(store)  # vectors now stored: what a run after the embed worker costs
        warm_s = time.perf_counter() - started
    result = {
        "bench": "dedup",
        "scale": scale,
        "entities": len(names),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "cold": {"seconds": round(cold_s, 2), "embedded": cold.embedded, **_rounded(cold.timings), **_quality(cold)},
        "first_run_on_a_new_host": first,
        "warm": {"seconds": round(warm_s, 2), "embedded": warm.embedded, **_rounded(warm.timings), **_quality(warm)},
        "undo_all": {"merges": len(undone), "ok": sum(u.ok for u in undone), "seconds": round(undo_s, 2)},
        "false_merges": _false_merges(cold, plan),
        "baselines": baselines,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_dedup.json").write_text(json.dumps(result, indent=2))
    return result


def _first_run_on_a_new_host(uri: str, scale: str, cache_dir: str) -> dict[str, Any]:
    """A cold dedup in a new process with an empty embedder cache (so nothing is imported or compiled yet)."""
    graph_only_brain(uri, scale)
    code = (
        "import json, time; from workers.dedup import run_dedup; from brain.store import BrainStore; "
        f"t = time.perf_counter(); r = run_dedup(BrainStore({uri!r})); s = time.perf_counter() - t; "
        "q = r.quality; print(json.dumps({'seconds': s, **r.timings, 'precision': q.precision, 'recall': q.recall}))"
    )
    env = {**os.environ, "BRAINOPS_CACHE_DIR": cache_dir}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return {k: round(v, 4 if k in ("precision", "recall") else 2) for k, v in json.loads(done.stdout).items()}


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in timings.items()}


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(json.dumps(run(Path(__file__).resolve().parent / "out"), indent=2))
