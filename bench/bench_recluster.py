"""Recluster on the seed-scale graph (21,138 entities, 21,008 relationships): the worker's seconds incl.
I/O and its community levels, and igraph Leiden vs networkx Louvain on the same graph (seconds, modularity, NMI
vs the planted plan); "partitions" sets the worker's hierarchical leaves beside the flat (one-pass) Leiden.

Run: `.venv/bin/python -m bench.bench_recluster` (writes bench/out/bench_recluster.json).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_dedup import graph_only_brain


def _nmi(membership: list[int], planted: list[int]) -> float:
    import igraph

    return round(float(igraph.compare_communities(membership, planted, method="nmi")), 4)


def _levels(hierarchy: Any, graph: Any, planted: list[int], seconds: float) -> dict[str, Any]:
    sizes = sorted(len(hierarchy.communities[i].members) for i in hierarchy.leaves()) or [0]
    mean = round(sum(sizes) / len(sizes), 2)
    return {
        "seconds": round(seconds, 3),
        "levels": list(hierarchy.level_counts()),
        "leaves": len(hierarchy.leaves()),
        "leaf_size_min_median_mean_max": [sizes[0], sizes[len(sizes) // 2], mean, sizes[-1]],
        "splits": {"tested": hierarchy.splits_tested, "kept": hierarchy.splits_kept, "forced": hierarchy.splits_forced},
        "nmi_vs_planted": _nmi(hierarchy.leaf_membership(graph.vcount()), planted),
    }


def _partitions(graph: Any, planted: list[int], seed: int) -> dict[str, Any]:
    """The worker's pure partitioning with its default config, hierarchical vs flat, on the same graph."""
    from workers.recluster import ReclusterConfig, communities_of

    out = {}
    for method in ("hierarchical", "flat"):
        started = time.perf_counter()
        hierarchy = communities_of(graph, ReclusterConfig("bench", seed=seed, method=method))
        out[method] = _levels(hierarchy, graph, planted, time.perf_counter() - started)
    return out


def _leiden_vs_louvain(store: Any, planted_of: dict[str, int], seed: int) -> dict[str, Any]:
    import networkx as nx

    from workers.recluster import build_graph, leiden, read_graph_inputs

    live, survivor, edges = read_graph_inputs(store)
    graph = build_graph(live, edges, survivor)
    planted = [planted_of[v] for v in live]

    started = time.perf_counter()
    membership, q_leiden = leiden(graph, seed)
    leiden_s = time.perf_counter() - started

    nxg = nx.Graph()
    nxg.add_nodes_from(range(graph.vcount()))
    nxg.add_weighted_edges_from((e.source, e.target, w) for e, w in zip(graph.es, graph.es["weight"], strict=True))
    started = time.perf_counter()
    parts = nx.community.louvain_communities(nxg, weight="weight", seed=seed)
    louvain_s = time.perf_counter() - started
    louvain = [0] * graph.vcount()
    for label, members in enumerate(parts):
        for v in members:
            louvain[v] = label
    q_louvain = float(graph.modularity(louvain, weights="weight"))
    q_planted = float(graph.modularity(planted, weights="weight"))
    return {
        "nodes": graph.vcount(),
        "edges": graph.ecount(),
        "igraph_leiden": {
            "seconds": round(leiden_s, 3),
            "modularity": round(q_leiden, 4),
            "communities": len(set(membership)),
            "nmi_vs_planted": _nmi(membership, planted),
        },
        "networkx_louvain": {
            "seconds": round(louvain_s, 3),
            "modularity": round(q_louvain, 4),
            "communities": len(parts),
            "nmi_vs_planted": _nmi(louvain, planted),
        },
        "planted_modularity": round(q_planted, 4),
        "planted_communities": len(set(planted)),
        "partitions": _partitions(graph, planted, seed),
    }


def run(out_dir: Path, quick: bool = False) -> dict[str, Any]:
    from brain.store import BrainStore
    from workers.recluster import ReclusterConfig, run_recluster

    scale = "small" if quick else "seed"
    with tempfile.TemporaryDirectory(prefix="bench-recluster-") as tmp:
        uri = f"{tmp}/brain"
        plan = graph_only_brain(uri, scale)
        store = BrainStore(uri)
        config = ReclusterConfig(uri)
        started = time.perf_counter()
        first = run_recluster(BrainStore(uri), config)  # fresh handle: table opening is part of the cost
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        second = run_recluster(store, config)
        second_s = time.perf_counter() - started
        compare = _leiden_vs_louvain(store, dict(zip(plan.ids, plan.community, strict=True)), config.seed)
    result = {
        "bench": "recluster",
        "scale": scale,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "worker_first_run": {
            "seconds": round(first_s, 2),
            "communities": first.communities,
            "levels": list(first.levels),
            "leaf_sizes_min_median_max": list(first.leaf_sizes),
            "new_ids": first.new_ids,
            "modularity": round(first.modularity, 4),
            **{k: round(v, 3) for k, v in first.timings.items()},
        },
        "worker_second_run": {
            "seconds": round(second_s, 2),
            "communities": second.communities,
            "levels": list(second.levels),
            "kept_ids": second.kept_ids,
            "new_ids": second.new_ids,
        },
        **compare,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_recluster.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(run(Path(__file__).resolve().parent / "out"), indent=2))
