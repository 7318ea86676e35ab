"""Records vector search before and after the agent's own optimize_index action: p50/p95 latency and recall@10.

Run: `python -m bench.bench_index [--quick] [--rows N]` (writes bench/out/bench_index.json).

A brain's records table is filled with N topic-clustered unit vectors of dim 384 (brain/seed_vectors.py; the
seed's uniform random vectors are a case no ANN index can search, and unlike model embeddings), appended in
small batches as embed jobs do, so fragments pile up. The baseline is search on that unindexed table (flat,
exact). Then the real agent runs: a tick with the shipped policy observes (the probe), the rule planner proposes
optimize_index, the policy allows it, the job runs as a real worker process; the next tick records its effect.
The same held-out queries (records outside the probe's sample) are timed and scored against exact search again.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from brain.index_probe import K, SearchSettings, search_records, vector_index
from brain.seed_vectors import write_vector_records
from brain.store import BrainStore
from brain.vector_index import last_run

FULL_ROWS = 200_000  # a seed-scale-ish table that runs in a few minutes on 2 cores (the seed has 485,848 rows)
QUICK_ROWS = 30_000
APPEND_ROWS = 2_000  # rows per append: what an embed job's batches leave behind
QUERIES = 50


def _measure(store: BrainStore, queries: dict[str, np.ndarray], search: SearchSettings, exact: bool) -> dict[str, Any]:
    tbl = store.fresh("records")
    times, answers = [], {}
    for qid, vec in queries.items():
        t0 = time.perf_counter()
        hits = search_records(tbl, vec, K + 1, search, exact=exact).to_arrow().column("id").to_pylist()
        times.append((time.perf_counter() - t0) * 1000)
        answers[qid] = [h for h in hits if h != qid][:K]
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[max(0, int(np.ceil(0.95 * len(ordered))) - 1)], 2),
        "answers": answers,
    }


def _recall(got: dict[str, list[str]], truth: dict[str, list[str]]) -> float:
    return round(float(np.mean([len(set(got[q]) & set(truth[q])) / K for q in truth])), 4)


def _queries(store: BrainStore, probe_ids: set[str], n: int) -> dict[str, np.ndarray]:
    """Held-out queries: records spread over the table, none of them in the probe's sample."""
    data = store.fresh("records").search().select(["id", "vector"]).limit(None).to_arrow()
    ids, vectors = data.column("id").to_pylist(), data.column("vector")
    picks = [i for i in np.linspace(0, len(ids) - 1, n * 2, dtype=int) if ids[i] not in probe_ids][:n]
    return {ids[i]: np.asarray(vectors[int(i)].as_py(), dtype=np.float32) for i in picks}


def _agent(tmp: Path, brain: str) -> Any:
    from agent.service.agent import Agent
    from tests.support.agent_rig import make_settings, write_policy, write_toml

    settings = make_settings(tmp, brain, write_policy(tmp / "policy.yaml"))  # the shipped policy
    os.environ["BRAINOPS_CONFIG"] = str(write_toml(settings, tmp / "brainops.toml"))  # the job reads it too
    return Agent(settings)


def _agent_optimizes(agent: Any, store: BrainStore, timeout_s: float) -> dict[str, Any]:
    """Tick, wait for the job the tick started, tick again; what the decision log says happened."""
    from tests.support.agent_rig import kill_workers

    started = time.perf_counter()
    try:
        first = agent.tick()
        asked = [(p, o) for p, o in zip(first.proposals, first.outcomes, strict=True) if p.action == "optimize_index"]
        if not asked:
            raise RuntimeError(f"the agent proposed no optimize_index: {[p.rationale for p in first.proposals]}")
        deadline = time.monotonic() + timeout_s
        while (run := last_run(store)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the index job did not finish within {timeout_s:.0f} s")
            time.sleep(1.0)
        agent.tick()
        effect = agent.decisions.by_key(f"index-effect:{run.run_id}")
    finally:
        kill_workers(agent.settings.run_dir)
    return {
        "proposal": asked[0][0].args["reason"],
        "verdict_outcome": asked[0][1].status,
        "job_s": round(run.finished_at - run.started_at, 1),
        "agent_s": round(time.perf_counter() - started, 1),
        "steps": list(run.steps),
        "recorded_effect": effect[0].outcome.detail if effect else None,
    }


def run(out_dir: Path | None = None, quick: bool = False, rows: int | None = None) -> dict[str, Any]:
    rows = rows or (QUICK_ROWS if quick else FULL_ROWS)
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp_name:
        tmp = Path(tmp_name)
        store = BrainStore(str(tmp / "brain")).open_or_create()
        t0 = time.perf_counter()
        write_vector_records(store, rows, seed=7, batch_rows=APPEND_ROWS)
        write_s = time.perf_counter() - t0
        agent = _agent(tmp, store.uri)
        search = agent.policy.index.search_settings()
        agent.observe()  # the probe picks its sample; the bench's queries stay outside it
        probe_ids = set(json.loads(store.meta_get("index_probe") or '{"ids": []}')["ids"])
        queries = _queries(store, probe_ids, QUERIES)
        fragments_before = store.fresh("records").stats()["fragment_stats"]["num_fragments"]
        flat = _measure(store, queries, search, exact=True)
        action = _agent_optimizes(agent, store, timeout_s=3600)
        tbl = store.fresh("records")
        ann = _measure(store, queries, search, exact=not vector_index(tbl))
        fragments_after = tbl.stats()["fragment_stats"]["num_fragments"]
        policy = {"p95_ms_max": agent.policy.index.p95_ms_max, "recall_min": agent.policy.index.recall_min}
    recall = _recall(ann["answers"], flat["answers"])
    result = {
        "rows": rows,
        "dim": 384,
        "queries": len(queries),
        "write_s": round(write_s, 1),
        "search": {"nprobes": search.nprobes, "refine_factor": search.refine_factor},
        "unindexed": {"p50_ms": flat["p50_ms"], "p95_ms": flat["p95_ms"], "recall_at_10": 1.0},
        "after_agent": {"p50_ms": ann["p50_ms"], "p95_ms": ann["p95_ms"], "recall_at_10": recall},
        "fragments": {"before": fragments_before, "after": fragments_after},
        "agent": action,
        "target": {**policy, "met": ann["p95_ms"] < policy["p95_ms_max"] and recall >= policy["recall_min"]},
        "comparisons": [
            {
                "title": f"records search p95 ({rows:,} x 384, {len(queries)} queries)",
                "unit": "ms",
                "values": {"after optimize_index": ann["p95_ms"], "unindexed": flat["p95_ms"]},
                "baseline": "unindexed",
            },
            {
                "title": "records search p50",
                "unit": "ms",
                "values": {"after optimize_index": ann["p50_ms"], "unindexed": flat["p50_ms"]},
                "baseline": "unindexed",
            },
            {
                "title": "recall@10 vs exact search",
                "unit": "",
                "values": {"after optimize_index": recall, "unindexed": 1.0},
                "baseline": "unindexed",
                "better": "higher",
            },
        ],
    }
    out = out_dir or Path(__file__).resolve().parent / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_index.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    args = sys.argv[1:]
    size = int(args[args.index("--rows") + 1]) if "--rows" in args else None
    print(json.dumps(run(quick="--quick" in args, rows=size), indent=2))
