"""Recluster worker: community levels over the live-entity graph, with ids that stay stable across runs.

Merged entities are collapsed onto their survivors (following merged_into chains), self-loops dropped,
parallel edges summed. workers/communities.py builds the levels (Leiden, modularity, fixed seed, then
sub-partitions kept only when they pay for themselves in description length, or when a community is larger
than `max_size`; its docstring says why). Every level's communities of at least `min_size` members are
written back in ONE commit (merge_insert that also deletes the old rows), each with its `level` (0 = coarsest)
and `parent` (the id of the level-(k-1) community it splits; null at level 0). The leaves (communities no
other one has as parent: `BrainStore.leaf_communities`) are the finest partition, the one consumers use.

Ids are matched level by level: a new level-k community whose best Jaccard match among the old level-k ones
is >= `min_jaccard` keeps that old id and created_at, so wisdom written for it stays attached; a parent that
changes id does not change its children's (their `parent` column just follows).

Meta keys written: last_recluster_at (brain.store.META_LAST_RECLUSTER_AT), relationships_rewired_since_recluster
(reset to 0), and the ones below.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from brain.lance_ops import with_conflict_retry
from brain.schema import COMMUNITIES
from brain.store import META_LAST_RECLUSTER_AT, META_REWIRED_SINCE_RECLUSTER, BrainStore
from workers.communities import METHODS, Hierarchy, Method, hierarchical_communities
from workers.communities import leiden as leiden  # re-exported: the one fixed-resolution pass ("flat")
from workers.runtime import WorkerRun, single_pass

if TYPE_CHECKING:
    import igraph

META_RECLUSTER_RELATIONSHIPS = "last_recluster_relationships"  # relationship rows when the run read them
META_RECLUSTER_RUN_ID = "last_recluster_run_id"
META_RECLUSTER_MODULARITY = "last_recluster_modularity"  # of level 0
META_RECLUSTER_LEVELS = "last_recluster_levels"  # communities per level, coarsest first: "210,24"


@dataclass(frozen=True)
class ReclusterConfig:
    brain: str
    seed: int = 42
    resolution: float = 1.0  # modularity resolution of every Leiden pass (level 0 and each split proposal)
    min_size: int = 2  # singletons are not communities worth summarising
    min_jaccard: float = 0.5
    max_size: int | None = 100  # larger communities are split even when the split does not pay; None: no cap
    method: Method = "hierarchical"  # "flat": level 0 only (one Leiden pass at `resolution`, as before)
    loop: bool = False

    def __post_init__(self) -> None:
        if not self.brain:
            raise ValueError("--brain is required")
        if self.resolution <= 0:
            raise ValueError(f"resolution must be > 0, got {self.resolution}")
        if not 0 < self.min_jaccard <= 1:
            raise ValueError(f"min_jaccard must be in (0, 1], got {self.min_jaccard}")
        if self.min_size < 1:
            raise ValueError(f"min_size must be >= 1, got {self.min_size}")
        if self.max_size is not None and self.max_size < 2 * self.min_size:
            raise ValueError(f"max_size must be >= 2 * min_size ({2 * self.min_size}) or None, got {self.max_size}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")


@dataclass(frozen=True)
class OldCommunity:
    id: str
    members: frozenset[str]
    created_at: float
    level: int = 0


@dataclass(frozen=True)
class ReclusterReport:
    run_id: str
    nodes: int
    edges: int
    communities: int  # leaf communities: the finest partition
    kept_ids: int  # communities (of any level) that matched an old one and kept its id
    new_ids: int
    modularity: float  # of level 0
    relationships: int
    levels: tuple[int, ...] = ()  # communities per level, coarsest first
    leaf_modularity: float = 0.0  # of the leaf partition on the whole graph
    leaf_sizes: tuple[int, ...] = ()  # smallest, median, largest leaf
    splits: dict[str, int] = field(default_factory=dict)  # tested / kept / forced
    timings: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------- pure parts


def survivor_map(ids: Sequence[str], merged_into: Sequence[str | None]) -> dict[str, str]:
    """Every entity id -> the live entity it resolves to (chains followed; a cycle resolves to itself)."""
    parent = {i: m for i, m in zip(ids, merged_into, strict=True) if m}
    out: dict[str, str] = {}
    for start in ids:
        node, seen = start, {start}
        while node in parent and parent[node] not in seen:
            node = parent[node]
            seen.add(node)
        out[start] = node
    return out


def build_graph(live: Sequence[str], edges: Sequence[tuple[str, str, float]], survivor: dict[str, str]) -> igraph.Graph:
    """Undirected weighted graph over the live entities; vertex attribute `name` holds the entity id."""
    import igraph

    index = {ent: i for i, ent in enumerate(live)}
    pairs: defaultdict[tuple[int, int], float] = defaultdict(float)
    for src, dst, weight in edges:
        a, b = index.get(survivor.get(src, src)), index.get(survivor.get(dst, dst))
        if a is None or b is None or a == b:
            continue
        pairs[(min(a, b), max(a, b))] += weight
    graph = igraph.Graph(n=len(live), edges=list(pairs), directed=False)
    graph.vs["name"] = list(live)
    graph.es["weight"] = list(pairs.values())
    return graph


def assign_ids(
    new: Sequence[frozenset[str]], old: Sequence[OldCommunity], min_jaccard: float, now: float
) -> list[tuple[str, float]]:
    """(id, created_at) per new community: best old match at Jaccard >= min_jaccard keeps its id, once."""
    owner = {m: k for k, c in enumerate(old) for m in c.members}
    scored: list[tuple[float, int, int]] = []
    for n, members in enumerate(new):
        overlap = Counter(owner[m] for m in members if m in owner)
        for k, shared in overlap.items():
            jaccard = shared / (len(members) + len(old[k].members) - shared)
            if jaccard >= min_jaccard:
                scored.append((jaccard, n, k))
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    out: list[tuple[str, float] | None] = [None] * len(new)
    taken: set[int] = set()
    for _, n, k in scored:
        if out[n] is None and k not in taken:
            out[n] = (old[k].id, old[k].created_at)
            taken.add(k)
    return [o if o is not None else (f"com-{uuid.uuid4().hex[:12]}", now) for o in out]


def assign_level_ids(
    groups: Sequence[frozenset[str]], levels: Sequence[int], old: Sequence[OldCommunity], min_jaccard: float, now: float
) -> list[tuple[str, float]]:
    """`assign_ids` level by level: a level-k community only takes the id of an old level-k one."""
    out: list[tuple[str, float] | None] = [None] * len(groups)
    for level in sorted(set(levels)):
        mine = [i for i, lv in enumerate(levels) if lv == level]
        ids = assign_ids([groups[i] for i in mine], [c for c in old if c.level == level], min_jaccard, now)
        for i, got in zip(mine, ids, strict=True):
            out[i] = got
    return [o for o in out if o is not None]


# ---------------------------------------------------------------- store side


def read_graph_inputs(store: BrainStore) -> tuple[list[str], dict[str, str], list[tuple[str, str, float]]]:
    ents = store.fresh("entities").search().select(["id", "merged_into"]).limit(None).to_arrow()
    ids, merged = ents.column("id").to_pylist(), ents.column("merged_into").to_pylist()
    live = sorted(i for i, m in zip(ids, merged, strict=True) if m is None)
    rels = store.fresh("relationships").search().select(["src", "dst", "weight"]).limit(None).to_arrow()
    weights = [1.0 if w is None else float(w) for w in rels.column("weight").to_pylist()]
    edges = list(zip(rels.column("src").to_pylist(), rels.column("dst").to_pylist(), weights, strict=True))
    return live, survivor_map(ids, merged), edges


def _old_communities(store: BrainStore) -> list[OldCommunity]:
    columns = ["id", "members", "created_at", "level"]
    data = store.fresh("communities").search().select(columns).limit(None).to_arrow()
    return [
        OldCommunity(r["id"], frozenset(r["members"] or ()), r["created_at"] or 0.0, r["level"] or 0)
        for r in data.to_pylist()
    ]


def run_recluster(store: BrainStore, config: ReclusterConfig, now: float | None = None) -> ReclusterReport:
    now = time.time() if now is None else now
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    live, survivor, edges = read_graph_inputs(store)
    old = _old_communities(store)
    timings["read_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    graph = build_graph(live, edges, survivor)
    hierarchy = communities_of(graph, config)
    groups = [frozenset(live[v] for v in c.members) for c in hierarchy.communities]
    levels = [c.level for c in hierarchy.communities]
    ids = assign_level_ids(groups, levels, old, config.min_jaccard, now)
    timings["cluster_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    rows = [
        {
            "id": cid,
            "run_id": run_id,
            "members": sorted(members),
            "size": len(members),
            "level": c.level,
            "parent": None if c.parent is None else ids[c.parent][0],
            "created_at": created,
            "updated_at": now,
        }
        for c, members, (cid, created) in zip(hierarchy.communities, groups, ids, strict=True)
    ]
    _write_communities(store, rows)
    counts = hierarchy.level_counts()
    store.meta_set_many(
        {
            META_LAST_RECLUSTER_AT: now,
            META_REWIRED_SINCE_RECLUSTER: 0,
            META_RECLUSTER_RELATIONSHIPS: len(edges),
            META_RECLUSTER_RUN_ID: run_id,
            META_RECLUSTER_MODULARITY: round(hierarchy.modularity, 6),
            META_RECLUSTER_LEVELS: ",".join(map(str, counts)),
        }
    )
    timings["write_s"] = time.perf_counter() - t0
    old_ids = {c.id for c in old}
    kept = sum(1 for i, _ in ids if i in old_ids)
    leaves = hierarchy.leaves()
    sizes = sorted(len(hierarchy.communities[i].members) for i in leaves)
    leaf_q = float(graph.modularity(hierarchy.leaf_membership(graph.vcount()), weights="weight")) if leaves else 0.0
    return ReclusterReport(
        run_id,
        graph.vcount(),
        graph.ecount(),
        len(leaves),
        kept,
        len(ids) - kept,
        hierarchy.modularity,
        len(edges),
        levels=counts,
        leaf_modularity=leaf_q,
        leaf_sizes=(sizes[0], sizes[len(sizes) // 2], sizes[-1]) if sizes else (),
        splits={"tested": hierarchy.splits_tested, "kept": hierarchy.splits_kept, "forced": hierarchy.splits_forced},
        timings=timings,
    )


def communities_of(graph: igraph.Graph, config: ReclusterConfig) -> Hierarchy:
    """The levels the worker writes for `graph` (pure: the benchmarks call exactly this)."""
    return hierarchical_communities(
        graph,
        config.seed,
        resolution=config.resolution,
        max_size=config.max_size,
        min_size=config.min_size,
        method=config.method,
    )


def _write_communities(store: BrainStore, rows: Sequence[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(list(rows), schema=COMMUNITIES)
    tbl = store.table("communities")
    if table.num_rows == 0:
        with_conflict_retry(lambda: tbl.delete("true"))
        return

    def replace() -> None:
        # One commit for every level: readers see either the old set or the new one, never a half-written table.
        tbl.checkout_latest()
        (
            tbl.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete()
            .execute(table)
        )

    with_conflict_retry(replace)


# ---------------------------------------------------------------- worker


class ReclusterWorker:
    """`step()` = one run; in --loop mode a new run starts only once relationships or entities changed."""

    def __init__(self, config: ReclusterConfig, store: BrainStore) -> None:
        self.config = config
        self.store = store
        self.reports: list[ReclusterReport] = []
        self._seen: tuple[int, int] | None = None

    def step(self) -> int:
        """One run if the graph changed; returns the leaf communities written (0 when nothing changed)."""
        versions = (self.store.fresh("relationships").version, self.store.fresh("entities").version)
        if versions == self._seen:
            return 0
        report = run_recluster(self.store, self.config)
        self.reports.append(report)
        self._seen = versions
        return report.communities


def run_recluster_worker(config: ReclusterConfig, run: WorkerRun) -> tuple[int, ReclusterWorker]:
    store = BrainStore(config.brain)
    store.table("relationships")  # fail fast with a clear StoreError when the brain is missing
    worker = ReclusterWorker(config, store)
    run.install_signal_handlers()
    step = worker.step if config.loop else single_pass(worker.step)
    return run.loop(step, forever=config.loop), worker
