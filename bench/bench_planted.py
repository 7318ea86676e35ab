"""Recluster on planted-partition graphs (10,000 nodes: 222 communities of 45, average degree 16, mixing 0.1 to
0.5): NMI vs the planted partition, communities found and seconds of brainops' hierarchical partition (its leaf
communities, through the same pure function the worker uses), the fixed-resolution Leiden it replaced, igraph
Infomap and networkx Louvain.

Graphs: networkx `planted_partition_graph(222, 45, p_in, p_out, seed)` with p_in = 16 (1 - mu) / 44 and
p_out = 16 mu / (9990 - 45), so a node has 16 edges on average, a share mu of them leaving its community.
Fixed seeds (graph seed 1 + index, clustering seed 42). --quick: 44 communities of 45 (1,980 nodes), mixing
0.2 and 0.4.

Run: `.venv/bin/python -m bench.bench_planted` (writes bench/out/bench_planted.json).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZE = 45
DEGREE = 16.0
SEED = 42
CANDIDATE = "brainops hierarchical (leaves)"
OLD = "fixed-resolution Leiden (old)"
INFOMAP = "igraph Infomap"
LOUVAIN = "networkx Louvain"


def planted(communities: int, mixing: float, seed: int) -> tuple[Any, list[int], float, float]:
    """The graph (built like the worker's: build_graph over entity names), planted labels, p_in, p_out."""
    import networkx as nx

    from workers.recluster import build_graph

    n = communities * SIZE
    p_in, p_out = DEGREE * (1 - mixing) / (SIZE - 1), DEGREE * mixing / (n - SIZE)
    g = nx.planted_partition_graph(communities, SIZE, p_in, p_out, seed=seed)
    names = [f"e{i:05d}" for i in range(n)]
    graph = build_graph(names, [(names[a], names[b], 1.0) for a, b in g.edges()], {})
    return graph, [i // SIZE for i in range(n)], p_in, p_out


def _hierarchical(graph: Any) -> list[int]:
    from workers.recluster import ReclusterConfig, communities_of

    return communities_of(graph, ReclusterConfig("bench", seed=SEED)).leaf_membership(graph.vcount())


def _old(graph: Any) -> list[int]:
    from workers.recluster import leiden

    return leiden(graph, SEED)[0]


def _infomap(graph: Any) -> list[int]:
    import igraph

    igraph.set_random_number_generator(random.Random(SEED))
    try:
        return list(graph.community_infomap(edge_weights="weight").membership)
    finally:
        igraph.set_random_number_generator(random)


def _louvain(graph: Any) -> list[int]:
    import networkx as nx

    nxg = nx.Graph()
    nxg.add_nodes_from(range(graph.vcount()))
    nxg.add_weighted_edges_from((e.source, e.target, w) for e, w in zip(graph.es, graph.es["weight"], strict=True))
    out = [0] * graph.vcount()
    for label, members in enumerate(nx.community.louvain_communities(nxg, weight="weight", seed=SEED)):
        for v in members:
            out[v] = label
    return out


METHODS: dict[str, Callable[[Any], list[int]]] = {
    CANDIDATE: _hierarchical,
    OLD: _old,
    INFOMAP: _infomap,
    LOUVAIN: _louvain,
}


def _measure(graph: Any, truth: list[int]) -> dict[str, dict[str, float]]:
    import igraph

    out = {}
    for label, method in METHODS.items():
        started = time.perf_counter()
        membership = method(graph)
        seconds = time.perf_counter() - started
        out[label] = {
            "nmi": round(float(igraph.compare_communities(membership, truth, method="nmi")), 4),
            "communities": len(set(membership)),
            "seconds": round(seconds, 3),
        }
    return out


def _comparisons(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in runs:
        where = f"planted {r['nodes']:,} nodes, mixing {r['mixing']}"
        res = r["methods"]
        out.append(
            {
                "title": f"{where}: NMI",
                "unit": "NMI",
                "values": {k: v["nmi"] for k, v in res.items()},
                "baseline": OLD,
                "better": "higher",
            }
        )
        out.append(
            {
                "title": f"{where}: communities found",
                "unit": "communities",
                "values": {**{k: v["communities"] for k, v in res.items()}, "planted": r["planted_communities"]},
                "baseline": None,  # closer to planted is better; no direction to rank by
            }
        )
        out.append(
            {
                "title": f"{where}: seconds",
                "unit": "s",
                "values": {k: v["seconds"] for k, v in res.items()},
                "baseline": OLD,
                "better": "lower",
            }
        )
    return out


def run(out_dir: Path, quick: bool = False) -> dict[str, Any]:
    communities, mixings = (44, (0.2, 0.4)) if quick else (222, (0.1, 0.2, 0.3, 0.4, 0.5))
    runs = []
    for index, mixing in enumerate(mixings):
        graph, truth, p_in, p_out = planted(communities, mixing, seed=1 + index)
        runs.append(
            {
                "mixing": mixing,
                "nodes": graph.vcount(),
                "edges": graph.ecount(),
                "mean_degree": round(2 * graph.ecount() / graph.vcount(), 2),
                "p_in": round(p_in, 6),
                "p_out": round(p_out, 8),
                "planted_communities": communities,
                "methods": _measure(graph, truth),
            }
        )
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    candidate_nmi = [r["methods"][CANDIDATE]["nmi"] for r in runs if r["mixing"] <= 0.4]
    result = {
        "bench": "planted",
        "quick": quick,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "community_size": SIZE,
        "mean_degree_target": DEGREE,
        "target": "NMI >= 0.95 for mixing <= 0.4 (the leaf communities)",
        "target_met": bool(candidate_nmi) and min(candidate_nmi) >= 0.95,
        "runs": runs,
        "comparisons": _comparisons(runs),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_planted.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(run(Path(__file__).resolve().parent / "out", quick="--quick" in sys.argv[1:]), indent=2))
