"""analyze_queries: a one-shot job that turns the unanalyzed queries into topics and the poorly answered topics
into priorities the wisdom and reasoning workers take first.

1. Embed the unanalyzed queries (brain/embedder.py) and link each to its k nearest neighbours above a cosine
   floor: a similarity graph, partitioned with the same Leiden the communities use (workers/communities.py).
2. A topic is poorly answered when its queries' mean best score is under `poor_score` and no wisdom entry lies
   within `covered_similarity` of its centroid.
3. Each poorly answered topic is written to `priorities` with the leaf communities nearest its centroid (a
   community read as the names of its members); every analyzed query gets its topic id.
Priorities from earlier runs that wisdom now covers are dropped, so "topics without coverage" falls as the
workers answer them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from brain.lance_ops import sql_list, with_conflict_retry
from workers.runtime import WorkerRun

if TYPE_CHECKING:
    from brain.embedder import Embedder
    from brain.store import BrainStore

NAMES_PER_COMMUNITY = 12


@dataclass(frozen=True)
class QueryAnalysisConfig:
    brain: str
    neighbours: int = 5  # k of the kNN similarity graph
    min_similarity: float = 0.55  # a kNN link needs at least this cosine
    poor_score: float = 0.5  # a topic whose mean best score is under this is poorly answered
    covered_similarity: float = 0.6  # ... unless a wisdom entry is this close to its centroid
    communities_per_topic: int = 3
    seed: int = 42


@dataclass(frozen=True)
class Topic:
    id: str
    query_ids: tuple[str, ...]
    centroid: np.ndarray
    sample: str
    best_score: float


@dataclass(frozen=True)
class QueryAnalysisReport:
    queries: int
    topics: int
    priorities: int  # poorly answered topics written this run
    dropped: int  # earlier priorities that wisdom now covers


def knn_graph(vectors: np.ndarray, k: int, min_similarity: float) -> Any:
    """An undirected igraph graph: each vector linked to its k most similar others above the floor."""
    import igraph

    n = len(vectors)
    graph = igraph.Graph(n=n)
    if n < 2:
        graph.es["weight"] = []
        return graph
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1.0)
    edges: dict[tuple[int, int], float] = {}
    for i in range(n):
        for j in np.argsort(-sims[i])[:k]:
            if sims[i, j] >= min_similarity:
                edges[(min(i, int(j)), max(i, int(j)))] = float(sims[i, j])
    graph.add_edges(list(edges))
    graph.es["weight"] = list(edges.values())
    return graph


def topics_of(
    ids: Sequence[str], texts: Sequence[str], scores: Sequence[float], vectors: np.ndarray, cfg: QueryAnalysisConfig
) -> list[Topic]:
    from workers.communities import leiden

    membership, _ = leiden(knn_graph(vectors, cfg.neighbours, cfg.min_similarity), cfg.seed)
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(membership):
        groups.setdefault(label, []).append(index)
    topics = []
    for members in groups.values():
        centroid = vectors[members].mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        nearest = members[int(np.argmax(vectors[members] @ centroid))]
        query_ids = tuple(sorted(ids[i] for i in members))
        topic_id = "topic-" + hashlib.sha1("\x00".join(query_ids).encode()).hexdigest()[:16]
        mean_score = float(np.mean([scores[i] for i in members]))
        topics.append(Topic(topic_id, query_ids, centroid, texts[nearest], mean_score))
    return sorted(topics, key=lambda t: t.id)


class QueryAnalysis:
    def __init__(self, config: QueryAnalysisConfig, store: BrainStore, embedder: Embedder) -> None:
        self.config = config
        self.store = store
        self.embedder = embedder

    def run(self, now: float | None = None) -> QueryAnalysisReport:
        now = time.time() if now is None else now
        wisdom_texts = self.store.fresh("wisdom").to_lance().to_table(columns=["text"]).column(0).to_pylist()
        earlier = self.store.fresh("priorities").to_lance().to_table(columns=["id", "sample"]).to_pylist()
        queries = (
            self.store.fresh("queries")
            .to_lance()
            .to_table(columns=["id", "text", "best_score"], filter="topic_id IS NULL")
        )
        ids, texts = queries.column("id").to_pylist(), queries.column("text").to_pylist()
        community_ids, community_texts = self._community_texts() if ids else ([], [])
        # one encode for everything this run compares: the model is fastest on few large calls
        parts = [[t or "" for t in wisdom_texts], [r["sample"] or "" for r in earlier], texts, community_texts]
        wisdom, samples, vectors, communities = _split(self.embedder.encode([t for p in parts for t in p]), parts)
        dropped = self._drop_covered(earlier, samples, wisdom)
        if not ids:
            return QueryAnalysisReport(0, 0, 0, dropped)
        scores = [float(s or 0.0) for s in queries.column("best_score").to_pylist()]
        topics = topics_of(ids, texts, scores, vectors, self.config)
        poor = [t for t in topics if t.best_score < self.config.poor_score and not self._covered(t.centroid, wisdom)]
        self._write_priorities(poor, community_ids, communities, now)
        topic_of = {qid: t.id for t in topics for qid in t.query_ids}
        update = pa.table(
            {
                "id": pa.array(ids, pa.string()),
                "topic_id": pa.array([topic_of[q] for q in ids], pa.string()),
                "analyzed_at": pa.array([now] * len(ids), pa.float64()),
            }
        )
        self.store.update_columns("queries", update)
        return QueryAnalysisReport(len(ids), len(topics), len(poor), dropped)

    def _covered(self, centroid: np.ndarray, wisdom: np.ndarray) -> bool:
        return len(wisdom) > 0 and float(np.max(wisdom @ centroid)) >= self.config.covered_similarity

    def _drop_covered(self, earlier: list[dict[str, Any]], samples: np.ndarray, wisdom: np.ndarray) -> int:
        """Delete earlier priorities whose sample query now has wisdom near it."""
        covered = [r["id"] for r, v in zip(earlier, samples, strict=True) if self._covered(v, wisdom)]
        if covered:
            table = self.store.table("priorities")
            with_conflict_retry(lambda: table.delete(f"id IN ({sql_list(covered)})"))
        return len(covered)

    def _write_priorities(self, topics: list[Topic], community_ids: list[str], vectors: np.ndarray, now: float) -> None:
        rows = []
        for t in topics:
            near = np.argsort(-(vectors @ t.centroid))[: self.config.communities_per_topic] if len(vectors) else ()
            rows.append(
                {
                    "id": t.id,
                    "sample": t.sample,
                    "queries": len(t.query_ids),
                    "best_score": t.best_score,
                    "community_ids": [community_ids[int(i)] for i in near],
                    "created_at": now,
                }
            )
        self.store.upsert("priorities", rows)

    def _community_texts(self) -> tuple[list[str], list[str]]:
        """Each leaf community as the names of its members (the text its vector is made from)."""
        leaves = self.store.leaf_communities()
        entities = self.store.fresh("entities").to_lance().to_table(columns=["id", "name"])
        names = dict(zip(entities.column("id").to_pylist(), entities.column("name").to_pylist(), strict=True))
        texts = [", ".join(str(names.get(m, "")) for m in members[:NAMES_PER_COMMUNITY]) for _, members in leaves]
        return [cid for cid, _ in leaves], texts


def _split(vectors: np.ndarray, parts: Sequence[Sequence[str]]) -> list[np.ndarray]:
    out, start = [], 0
    for part in parts:
        out.append(vectors[start : start + len(part)])
        start += len(part)
    return out


def run_analyze_queries(config: QueryAnalysisConfig, run: WorkerRun) -> tuple[int, QueryAnalysisReport | None]:
    """The job's lifetime: one analysis; returns the exit code and the report."""
    from brain.embedder import load_embedder
    from workers.extract import open_brain

    reports: list[QueryAnalysisReport] = []
    try:
        store = open_brain(config.brain).open_or_create()
        analysis = QueryAnalysis(config, store, load_embedder())
    except Exception:
        run.state = "crashed"
        run.write_status(exit_code=1)
        raise
    run.install_signal_handlers()

    def step() -> int:
        if reports:
            return 0
        reports.append(analysis.run())
        return reports[-1].queries

    code = run.loop(step, forever=False, idle_s=1.0)
    return code, reports[-1] if reports else None
