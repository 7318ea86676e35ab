"""Recluster on a real LanceDB brain: community levels over the live graph, stable ids per level, leaves as the
partition consumers read, meta for staleness, worker process."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from support.brain_rig import read_status, start_worker, worker_env

from brain.seed import plan_entities, seed_brain
from brain.store import META_LAST_RECLUSTER_AT, BrainStore
from workers.communities import hierarchical_communities, split_gain
from workers.recluster import (
    META_RECLUSTER_LEVELS,
    META_RECLUSTER_RELATIONSHIPS,
    OldCommunity,
    ReclusterConfig,
    assign_ids,
    assign_level_ids,
    build_graph,
    communities_of,
    leiden,
    run_recluster,
    survivor_map,
)
from workers.wisdom import WisdomConfig, WisdomWorker

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def brain(tmp_path: Path) -> str:
    uri = str(tmp_path / "brain")
    seed_brain(uri, "small", seed=3, show_progress=False)
    return uri


def communities(store: BrainStore) -> dict[str, dict]:
    return {r["id"]: r for r in store.fresh("communities").to_arrow().to_pylist()}


# ---------------------------------------------------------------- pure parts


def test_survivor_map_follows_chains_and_survives_cycles() -> None:
    got = survivor_map(["a", "b", "c", "x", "y"], [None, "a", "b", "y", "x"])
    assert got["c"] == "a" and got["b"] == "a" and got["a"] == "a"
    assert got["x"] in ("x", "y")  # a corrupt cycle must not hang the worker


def test_graph_collapses_merged_entities_and_drops_self_loops() -> None:
    survivor = {"b": "a"}
    edges = [("a", "b", 1.0), ("b", "c", 0.5), ("a", "c", 0.25), ("c", "gone", 1.0)]
    graph = build_graph(["a", "c"], edges, survivor)
    assert graph.vcount() == 2 and graph.ecount() == 1
    assert graph.es["weight"] == [0.75]


def test_leiden_is_deterministic_for_a_seed() -> None:
    live = [f"n{i}" for i in range(40)]
    edges = [(f"n{i}", f"n{j}", 1.0) for i in range(40) for j in range(i + 1, 40) if i // 10 == j // 10]
    edges += [("n0", "n10", 0.1), ("n20", "n30", 0.1)]
    graph = build_graph(live, edges, {})
    first, modularity = leiden(graph, seed=1)
    assert leiden(graph, seed=1)[0] == first
    assert len(set(first)) == 4 and modularity > 0.7


def test_ids_carry_over_on_jaccard_and_each_old_id_is_used_once() -> None:
    old = [OldCommunity("com-a", frozenset("abcd"), 10.0), OldCommunity("com-b", frozenset("wxyz"), 20.0)]
    new = [frozenset("abce"), frozenset("ab"), frozenset("pqrs")]
    ids = assign_ids(new, old, 0.5, now=99.0)
    assert ids[0] == ("com-a", 10.0)  # Jaccard 3/5
    assert ids[1][0] not in ("com-a", "com-b") and ids[1][1] == 99.0  # com-a already taken
    assert ids[2][1] == 99.0


# ---------------------------------------------------------------- on a real store


def test_recluster_recovers_planted_communities_and_ids_are_stable(brain: str) -> None:
    store = BrainStore(brain)
    config = ReclusterConfig(brain, seed=42)
    first = run_recluster(store, config, now=1000.0)
    assert first.modularity > 0.6 and first.communities > 0
    after_first = communities(store)
    assert {r["run_id"] for r in after_first.values()} == {first.run_id}
    plan = plan_entities("small", 3)
    community_of = {m: cid for cid, r in after_first.items() for m in r["members"]}
    planted = [g for g in plan.communities() if len(g) >= 3]
    together = sum(len({community_of.get(m) for m in g}) == 1 for g in planted)
    assert together / len(planted) > 0.7

    second = run_recluster(store, config, now=2000.0)
    after_second = communities(store)
    assert second.new_ids == 0 and set(after_second) == set(after_first)
    for cid, row in after_second.items():
        assert row["created_at"] == after_first[cid]["created_at"] and row["updated_at"] == 2000.0
        assert row["run_id"] == second.run_id


@pytest.mark.slow
def test_ids_survive_a_dedup_and_meta_makes_stats_fresh(brain: str) -> None:
    from brain.embedder import load_embedder
    from workers.dedup import run_dedup

    store = BrainStore(brain)
    config = ReclusterConfig(brain)
    before = run_recluster(store, config)
    old_ids = set(communities(store))
    embedder = load_embedder("cpu", "bf16")
    merged = run_dedup(store, encoder=lambda texts, progress=None: embedder.encode(texts, batch_size=128))
    assert merged.relationships_repointed > 0
    assert store.stats().relationships_changed_since_recluster >= merged.relationships_repointed
    after = run_recluster(store, config)
    absorbed = {a for m in merged.merges for a in m.absorbed_ids}
    members = {m for r in communities(store).values() for m in r["members"]}
    assert not members & absorbed  # merged rows are collapsed onto their survivors
    assert len(set(communities(store)) & old_ids) >= 0.8 * before.communities
    meta = store.meta_all()
    assert float(meta[META_LAST_RECLUSTER_AT]) > 0
    assert int(meta[META_RECLUSTER_RELATIONSHIPS]) == after.relationships
    stats = store.stats()
    assert stats.relationships_changed_since_recluster == 0 and stats.community_age_s is not None


def test_empty_graph_clears_communities(tmp_path: Path) -> None:
    store = BrainStore(str(tmp_path / "empty")).open_or_create()
    old = [{"id": "com-x", "run_id": "r", "members": ["a", "b"], "size": 2, "created_at": 1.0, "updated_at": 1.0}]
    store.add("communities", pa.Table.from_pylist(old, schema=store.table("communities").schema))
    report = run_recluster(store, ReclusterConfig(str(tmp_path / "empty")))
    assert report.communities == 0 and store.fresh("communities").count_rows() == 0


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="min_jaccard"):
        ReclusterConfig("x", min_jaccard=0)
    with pytest.raises(ValueError, match="resolution"):
        ReclusterConfig("x", resolution=-1)
    with pytest.raises(ValueError, match="max_size"):
        ReclusterConfig("x", max_size=3)  # cannot split into two communities of min_size 2
    with pytest.raises(ValueError, match="method"):
        ReclusterConfig("x", method="louvain")  # type: ignore[arg-type]
    assert ReclusterConfig("x", max_size=None).max_size is None


@pytest.mark.slow
def test_worker_runs_once_as_a_real_process(brain: str, tmp_path: Path) -> None:
    status = tmp_path / "recluster.status.json"
    args = ["recluster", "--brain", brain, "--status-file", str(status)]
    proc = start_worker(args, tmp_path / "log", worker_env())
    assert proc.wait(timeout=60) == 0, (tmp_path / "log").read_text()
    final = read_status(status)
    assert final is not None and final["state"] == "stopped" and final["exit_code"] == 0
    assert final["processed"] == len(BrainStore(brain).leaf_communities()) > 0


# ---------------------------------------------------------------- levels


def planted_graph(communities: int = 60, size: int = 20, mixing: float = 0.3, degree: float = 10.0, seed: int = 1):
    """A planted-partition graph (networkx), its entity names, edges and the planted community per entity."""
    import networkx as nx

    n = communities * size
    p_in, p_out = degree * (1 - mixing) / (size - 1), degree * mixing / (n - size)
    g = nx.planted_partition_graph(communities, size, p_in, p_out, seed=seed)
    live = [f"e{i:05d}" for i in range(n)]
    edges = [(live[a], live[b], 1.0) for a, b in g.edges()]
    return live, edges, [i // size for i in range(n)]


def nmi(a: list[int], b: list[int]) -> float:
    import igraph

    return float(igraph.compare_communities(a, b, method="nmi"))


def planted_brain(path: Path) -> tuple[str, list[int]]:
    live, edges, planted = planted_graph()
    uri = str(path)
    store = BrainStore(uri).open_or_create()
    store.add("entities", [{"id": e, "name": e, "type": "topic"} for e in live])
    rels = [{"id": f"r{k}", "src": a, "dst": b, "type": "related", "weight": w} for k, (a, b, w) in enumerate(edges)]
    store.add("relationships", rels)
    return uri, planted


def test_hierarchy_recovers_planted_communities_that_fixed_resolution_leiden_fuses() -> None:
    live, edges, planted = planted_graph()
    graph = build_graph(live, edges, {})
    flat, _ = leiden(graph, seed=42)  # the one fixed-resolution pass of earlier versions
    levels = communities_of(graph, ReclusterConfig("x"))
    leaves = levels.leaf_membership(graph.vcount())
    assert len(set(flat)) < 50 and nmi(flat, planted) < 0.96  # 60 planted communities fused (resolution limit)
    assert len(levels.level_counts()) >= 2 and levels.splits_kept > 0
    assert nmi(leaves, planted) >= 0.98 > nmi(flat, planted) + 0.02
    assert 57 <= len(levels.leaves()) <= 63


def test_a_split_must_pay_for_itself() -> None:
    import random

    import igraph

    igraph.set_random_number_generator(random.Random(7))
    try:
        random_graph = igraph.Graph.Erdos_Renyi(n=45, p=10 / 44)
        noise = igraph.Graph.Erdos_Renyi(n=45, p=10 / 44) + igraph.Graph.Erdos_Renyi(n=45, p=10 / 44)
    finally:
        igraph.set_random_number_generator(random)
    proposal, _ = leiden(random_graph, seed=1)
    assert len(set(proposal)) > 1 and split_gain(random_graph, proposal) < 0  # Leiden splits noise; MDL refuses
    two_cliques = igraph.Graph.Full(8) + igraph.Graph.Full(8)
    two_cliques.add_edge(0, 8)
    assert split_gain(two_cliques, [0] * 8 + [1] * 8) > 0
    # level 0 is Leiden's (not judged); below it, nothing in a random graph is worth a level
    levels = hierarchical_communities(noise, 1)
    assert len(levels.level_counts()) == 1 and levels.splits_tested > 0 and levels.splits_kept == 0


@pytest.mark.timeout(10)
def test_leiden_returns_on_the_subgraph_where_unbounded_iterations_cycle() -> None:
    # A 5-node component of the seed brain: igraph's n_iterations=-1 with a seeded Python RNG never returns.
    live = [f"n{i}" for i in range(5)]
    pairs = [(0, 1, 0.7162), (1, 2, 0.9505), (1, 3, 0.7698), (1, 4, 0.9550), (2, 4, 0.8494)]
    graph = build_graph(live, [(live[a], live[b], w) for a, b, w in pairs], {})
    membership, _ = leiden(graph, seed=42)
    assert len(membership) == 5


def test_levels_and_parents_are_written_consistently(tmp_path: Path) -> None:
    uri, _ = planted_brain(tmp_path / "planted")
    store = BrainStore(uri)
    report = run_recluster(store, ReclusterConfig(uri), now=1000.0)
    rows = communities(store)
    by_level: dict[int, int] = {}
    for row in rows.values():
        by_level[row["level"]] = by_level.get(row["level"], 0) + 1
        if row["level"] == 0:
            assert row["parent"] is None
        else:
            parent = rows[row["parent"]]
            assert parent["level"] == row["level"] - 1
            assert set(row["members"]) <= set(parent["members"])
        assert row["size"] == len(row["members"])
    assert tuple(by_level[k] for k in sorted(by_level)) == report.levels and len(report.levels) >= 2
    assert store.meta_get(META_RECLUSTER_LEVELS) == ",".join(map(str, report.levels))
    leaves = store.leaf_communities()
    assert len(leaves) == report.communities < len(rows)
    members = [m for _, ms in leaves for m in ms]
    assert len(members) == len(set(members))  # the leaves are a partition: each entity at most once
    for level in range(len(report.levels)):  # every level is a partition of (some of) the entities too
        at = [m for r in rows.values() if r["level"] == level for m in r["members"]]
        assert len(at) == len(set(at))


def test_ids_are_stable_at_every_level_across_runs(tmp_path: Path) -> None:
    uri, _ = planted_brain(tmp_path / "planted")
    store = BrainStore(uri)
    config = ReclusterConfig(uri)
    run_recluster(store, config, now=1000.0)
    first = communities(store)
    second_report = run_recluster(store, config, now=2000.0)
    second = communities(store)
    assert second_report.new_ids == 0 and set(first) == set(second)
    for cid, row in second.items():
        before = first[cid]
        assert (row["level"], row["parent"], row["members"]) == (before["level"], before["parent"], before["members"])
        assert row["created_at"] == 1000.0 and row["updated_at"] == 2000.0


def test_a_child_keeps_its_id_when_its_parent_changes() -> None:
    old = [
        OldCommunity("com-top", frozenset("abcdefgh"), 1.0, 0),
        OldCommunity("com-left", frozenset("abcd"), 2.0, 1),
        OldCommunity("com-right", frozenset("efgh"), 3.0, 1),
    ]
    # the parent grew past Jaccard 0.5 (new id), its children did not change: they keep theirs
    groups = [frozenset("abcdefghijklmnopq"), frozenset("abcd"), frozenset("efgh"), frozenset("ijklmnopq")]
    ids = assign_level_ids(groups, [0, 1, 1, 1], old, 0.5, now=9.0)
    assert ids[0][0] != "com-top" and ids[1] == ("com-left", 2.0) and ids[2] == ("com-right", 3.0)
    assert ids[3][1] == 9.0
    # a level-1 community never takes a level-0 id
    assert assign_level_ids([frozenset("abcdefgh")], [1], old[:1], 0.5, now=9.0)[0][0] != "com-top"


def test_max_size_is_honoured() -> None:
    live, edges, _ = planted_graph()
    graph = build_graph(live, edges, {})
    levels = communities_of(graph, ReclusterConfig("x", max_size=8))
    sizes = [len(levels.communities[i].members) for i in levels.leaves()]
    assert max(sizes) <= 8 and levels.splits_forced > 0
    assert len(communities_of(graph, ReclusterConfig("x", method="flat")).level_counts()) == 1


def test_stats_and_wisdom_count_leaf_communities_once(tmp_path: Path) -> None:
    uri, _ = planted_brain(tmp_path / "planted")
    store = BrainStore(uri)
    report = run_recluster(store, ReclusterConfig(uri))
    rows = store.fresh("communities").count_rows()
    stats = store.stats()
    assert stats.communities == report.communities == len(store.leaf_communities()) < rows
    assert stats.pending["wisdom"] == report.communities and stats.wisdom_coverage == 0.0
    worker = WisdomWorker(WisdomConfig(uri, batch_size=1000), store)
    while worker.step():
        pass
    written = store.fresh("wisdom").to_arrow().column("community_id").to_pylist()
    assert sorted(written) == [cid for cid, _ in store.leaf_communities()]  # leaves only, each once
    after = store.stats()
    assert after.wisdom == report.communities and after.pending["wisdom"] == 0 and after.wisdom_coverage == 1.0
