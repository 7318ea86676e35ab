"""The synthetic brain: counts, planted duplicates of every kind, decoys, near misses, recoverable communities."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from brain.seed import SCALES, plan_entities, plan_relationships, seed_brain, spec_for
from brain.seed_names import acronym
from brain.store import BrainStore, StoreError, normalize_name


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _is_transposition(a: str, b: str) -> bool:
    diff = [i for i in range(len(a)) if len(a) == len(b) and a[i] != b[i]]
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


@pytest.fixture(scope="module")
def small_brain(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object]:
    uri = str(tmp_path_factory.mktemp("brain") / "small")
    return uri, seed_brain(uri, "small", seed=3, show_progress=False)


def test_small_seed_counts_match_the_scale(small_brain: tuple[str, object]) -> None:
    uri, report = small_brain
    store = BrainStore(uri)
    spec = SCALES["small"]
    assert store.table("records").count_rows() == spec.records == 2_000
    assert store.table("entities").count_rows() == spec.entities == 300
    assert store.table("relationships").count_rows() == spec.relationships
    assert store.table("communities").count_rows() == spec.communities
    # half the records wait for every stage: no vector, not extracted
    assert store.table("records").count_rows("extracted = false") == 1_000
    assert store.table("records").count_rows("embedded_hash IS NULL") == 1_000
    assert report.seconds < 10  # type: ignore[attr-defined]


def test_every_duplicate_kind_is_planted_and_shares_its_originals_truth_cluster(
    small_brain: tuple[str, object],
) -> None:
    uri, _ = small_brain
    plan = plan_entities("small", seed=3)
    rows = BrainStore(uri).table("entities").to_arrow().to_pylist()
    truth = {r["id"]: r["truth_cluster"] for r in rows}
    name = {r["id"]: r["name"] for r in rows}
    kinds = Counter(d.kind for d in plan.duplicates)
    assert set(kinds) == {"case", "spacing", "abbreviation", "typo"}
    assert min(kinds.values()) >= 4
    for dup in plan.duplicates:
        assert truth[dup.duplicate_id] == truth[dup.original_id]
        assert name[dup.duplicate_id] == dup.duplicate_name != dup.original_name == name[dup.original_id]
        if dup.kind == "case":
            assert dup.duplicate_name.lower() == dup.original_name.lower()
        elif dup.kind == "spacing":
            assert normalize_name(dup.duplicate_name) == normalize_name(dup.original_name)
        elif dup.kind == "abbreviation":
            assert dup.duplicate_name == acronym(dup.original_name)
        else:
            one_edit = _edit_distance(dup.duplicate_name, dup.original_name) == 1
            assert one_edit or _is_transposition(dup.duplicate_name, dup.original_name)
    # the textbook abbreviations are there
    pairs = {(d.original_name, d.duplicate_name) for d in plan.duplicates}
    assert ("International Business Machines", "IBM") in pairs
    assert ("Natural Language Processing", "NLP") in pairs


def test_truth_clusters_are_consistent(small_brain: tuple[str, object]) -> None:
    uri, _ = small_brain
    rows = BrainStore(uri).table("entities").to_arrow().to_pylist()
    sizes = Counter(r["truth_cluster"] for r in rows)
    plan = plan_entities("small", seed=3)
    assert len(sizes) == len(rows) - len(plan.duplicates)
    assert max(sizes.values()) == 2
    assert sum(1 for s in sizes.values() if s == 2) == len(plan.duplicates)
    # duplicate rows are not recognisable by their id order
    dup_positions = sorted(plan.ids.index(d.duplicate_id) for d in plan.duplicates)
    assert dup_positions[0] < len(rows) - len(plan.duplicates)


def test_decoys_and_near_misses_are_distinct_entities() -> None:
    plan = plan_entities("small", seed=3)
    by_id = {i: (n, t, c) for i, n, t, c in zip(plan.ids, plan.names, plan.types, plan.truth, strict=True)}
    assert len(plan.decoys) >= 5 and len(plan.near_misses) >= 5
    decoy_names = set()
    for a, b in plan.decoys:
        (name_a, type_a, truth_a), (name_b, type_b, truth_b) = by_id[a], by_id[b]
        assert name_a == name_b and type_a != type_b and truth_a != truth_b
        decoy_names.add(name_a)
    assert "Apollo" in decoy_names
    for a, b in plan.near_misses:
        (name_a, type_a, truth_a), (name_b, type_b, truth_b) = by_id[a], by_id[b]
        assert type_a == type_b and truth_a != truth_b
        assert normalize_name(name_a) != normalize_name(name_b)


def test_names_look_real_and_plain_names_never_collide() -> None:
    plan = plan_entities("small", seed=3)
    types = Counter(plan.types)
    assert {"person", "organization", "technology", "concept", "place", "product"} <= set(types)
    dup_ids = {d.duplicate_id for d in plan.duplicates}
    decoys = {i for pair in plan.decoys for i in pair}
    plain = [n for i, n in zip(plan.ids, plan.names, strict=True) if i not in dup_ids | decoys]
    assert len({normalize_name(n) for n in plain}) == len(plain)
    assert all(n[0].isupper() for n in plain)


def test_plan_is_deterministic_per_seed() -> None:
    assert plan_entities("small", seed=5) == plan_entities("small", seed=5)
    assert plan_entities("small", seed=5).names != plan_entities("small", seed=6).names


def test_processed_records_have_unit_vectors_and_some_are_stale(small_brain: tuple[str, object]) -> None:
    uri, report = small_brain
    done = BrainStore(uri).table("records").search().where("extracted = true").limit(None).to_arrow()
    vectors = np.array(done.column("vector").to_pylist(), dtype=np.float32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    stale = sum(
        1
        for e, c in zip(done.column("embedded_hash").to_pylist(), done.column("content_hash").to_pylist(), strict=True)
        if e != c
    )
    assert stale >= 1
    assert report.records_pending_embed == 1_000 + stale  # type: ignore[attr-defined]


def test_planted_communities_are_connected_and_mostly_closed() -> None:
    import igraph as ig

    plan = plan_entities("small", seed=3)
    rels = plan_relationships(plan, spec_for("small"), 3, time.time())
    index = {e: i for i, e in enumerate(plan.ids)}
    src, dst = rels.column("src").to_pylist(), rels.column("dst").to_pylist()
    cross = sum(plan.community[index[a]] != plan.community[index[b]] for a, b in zip(src, dst, strict=True))
    assert 0 < cross <= 0.05 * rels.num_rows
    graph = ig.Graph(n=len(plan.ids), edges=[(index[a], index[b]) for a, b in zip(src, dst, strict=True)])
    graph.es["weight"] = rels.column("weight").to_pylist()
    for members in plan.communities():
        assert graph.subgraph([index[m] for m in members]).is_connected()
    found = graph.community_leiden(objective_function="CPM", weights="weight", resolution=0.02, n_iterations=-1)
    assert ig.compare_communities(found.membership, list(plan.community), method="adjusted_rand") > 0.9


@pytest.mark.slow
def test_seed_scale_plan_has_the_target_shape() -> None:
    spec = spec_for("seed")
    plan = plan_entities("seed", seed=0)
    assert len(plan.ids) == 21_138
    assert len(plan.duplicates) == round(21_138 * 0.009)
    assert plan.n_communities == 4_231
    assert len(set(plan.community)) == 4_231
    rels = plan_relationships(plan, spec, 0, time.time())
    assert abs(rels.num_rows - 21_008) <= 50


def test_seed_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    uri = str(tmp_path / "brain")
    seed_brain(uri, "small", seed=1, show_progress=False)
    with pytest.raises(StoreError, match="already has records"):
        seed_brain(uri, "small", seed=2, show_progress=False)
    seed_brain(uri, "small", seed=2, force=True, show_progress=False)
    names = set(BrainStore(uri).table("entities").to_arrow().column("name").to_pylist())
    assert names == set(plan_entities("small", seed=2).names)


def test_unknown_scale_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        seed_brain(str(tmp_path / "b"), "huge", show_progress=False)
