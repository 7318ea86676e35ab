"""Recluster on a real LanceDB brain: Leiden over the live graph, stable ids, meta for staleness, worker process."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from support.brain_rig import read_status, start_worker, worker_env

from brain.seed import plan_entities, seed_brain
from brain.store import META_LAST_RECLUSTER_AT, BrainStore
from workers.recluster import (
    META_RECLUSTER_RELATIONSHIPS,
    OldCommunity,
    ReclusterConfig,
    assign_ids,
    build_graph,
    leiden,
    run_recluster,
    survivor_map,
)

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


@pytest.mark.slow
def test_worker_runs_once_as_a_real_process(brain: str, tmp_path: Path) -> None:
    status = tmp_path / "recluster.status.json"
    args = ["recluster", "--brain", brain, "--status-file", str(status)]
    proc = start_worker(args, tmp_path / "log", worker_env())
    assert proc.wait(timeout=60) == 0, (tmp_path / "log").read_text()
    final = read_status(status)
    assert final is not None and final["state"] == "stopped" and final["exit_code"] == 0
    assert final["processed"] == BrainStore(brain).fresh("communities").count_rows() > 0
