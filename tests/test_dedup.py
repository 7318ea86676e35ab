"""Dedup on real LanceDB brains: matching rules, no transitive chains, exact undo, dry run, worker process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from support.brain_rig import add_entities, read_status, start_worker, worker_env
from typer.testing import CliRunner

from agent.cli.main import app
from brain.schema import EMBED_DIM, ENTITIES
from brain.seed import content_hash, seed_brain
from brain.store import META_DEDUP_CANDIDATES, BrainStore
from workers.dedup import run_dedup
from workers.dedup_match import MatchConfig, Pair, group_pairs, match
from workers.dedup_undo import last_run_merge_ids, undo_merge, undo_merges
from workers.er_compare import build_table, compare, explain

pytestmark = pytest.mark.timeout(180)
CONFIG = MatchConfig()


@pytest.fixture(scope="module")
def embedded_small(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The small seed brain with every entity name embedded by the real model (dry run, vectors stored)."""
    from brain.embedder import load_embedder
    from workers.dedup_store import embed_missing, load_live_entities, store_vectors

    uri = str(tmp_path_factory.mktemp("dedup") / "brain")
    seed_brain(uri, "small", seed=7, show_progress=False)
    store = BrainStore(uri)
    entities = load_live_entities(store)
    embedder = load_embedder("cpu", "bf16")
    rows = embed_missing(entities, lambda texts, progress=None: embedder.encode(texts, batch_size=128))
    store_vectors(store, entities, rows)
    return uri


@pytest.fixture()
def brain(embedded_small: str, tmp_path: Path) -> str:
    shutil.copytree(embedded_small, tmp_path / "brain")
    return str(tmp_path / "brain")


def snapshot(store: BrainStore, table: str) -> list[dict]:
    return store.fresh(table).to_arrow().sort_by("id").to_pylist()


def tiny_brain(tmp_path: Path, rows: list[tuple[str, str, str]], edges: list[tuple[str, str]]) -> BrainStore:
    """Entities (id, name, type) with deterministic unit vectors, so no model is needed."""
    return add_entities(BrainStore(str(tmp_path / "tiny")).open_or_create(), rows, edges)


# ---------------------------------------------------------------- matching rules (pure)


def pure_pairs(names: list[str], types: list[str], communities: list[str | None] | None = None) -> set[tuple[int, int]]:
    """Matched row pairs of names alone (no vectors, no neighbours; optional community labels)."""
    n = len(names)
    table = build_table(
        names, types, [None] * n, [None] * n, [frozenset()] * n, communities or [None] * n, CONFIG.aliases
    )
    return {(p.a, p.b) for p in match(table, n, {}, None, CONFIG).pairs}


def name_level(a: str, b: str) -> str:
    table = build_table([a, b], ["x", "x"], [None] * 2, [None] * 2, [frozenset()] * 2, [None] * 2, {})
    return explain(table, compare(table, [(0, 1)])[0])["name"]


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("Open-AI Labs", "openai labs", "exact"),
        ("Amber_Lee", "Amber Lee", "exact"),
        ("Łódź", "Lodz", "exact"),  # transliterated, not dropped
        ("Zapotec, Yareni", "Yareni Zapotec", "same_words"),
        ("IBM", "International Business Machines", "alias"),
        ("Massachusetts Institute of Technology", "MIT", "alias"),
        ("Republic of Albania", "Albania", "alias"),
        ("Bogota Analytics", "Bogota Anlaytics", "typo"),
        ("Orion Pro 3", "Orion Pro 4", "different"),  # version near miss
        ("Atlas Platform II", "Atlas Platform III", "different"),
        ("Pyu (Myanmar)", "Pyu (Papua New Guinea)", "different"),
        ("Lac", "Lisburn and Castlereagh", "different"),  # not upper-case: a word, not an acronym
    ],
)
def test_name_levels(a: str, b: str, want: str) -> None:
    assert name_level(a, b) == want


def test_names_alone_merge_only_on_the_same_name_never_one_edit_apart() -> None:
    names = ["Distributed Ledger", "Distributed Ledgre", "Acme Systems", "Acme Labs", "openai labs", "Open-AI Labs"]
    assert pure_pairs(names, ["technology"] * 2 + ["organization"] * 4) == {(4, 5)}


def test_an_ambiguous_acronym_merges_only_when_its_community_picks_one_expansion() -> None:
    names = ["CAA", "Carbon Accounting Audit", "Climate Adaptation Audit"]
    types = ["concept"] * 3
    assert pure_pairs(names, types) == set()
    assert pure_pairs(names, types, ["com-1", "com-2", "com-1"]) == {(0, 2)}
    assert pure_pairs(names, types, ["com-1", "com-1", "com-1"]) == set()


def test_groups_never_chain_transitively() -> None:
    pairs = [Pair(0, 1, 0.9, "typo"), Pair(1, 2, 0.8, "typo")]  # 0~1, 1~2, but not 0~2
    assert group_pairs(pairs, 3) == [[0, 1]]
    pairs.append(Pair(0, 2, 0.7, "typo"))  # now all three are linked
    assert group_pairs(pairs, 3) == [[0, 1, 2]]


# ---------------------------------------------------------------- on a real store


def test_same_name_different_type_is_never_merged_and_chains_are_not_followed(tmp_path: Path) -> None:
    rows = [
        ("e1", "Apollo", "person"),
        ("e2", "Apollo", "project"),
        ("e3", "Distributed Ledger", "technology"),
        ("e4", "Distributed Ledgre", "technology"),  # 1 edit from e3
        ("e5", "Distributed Ledre", "technology"),  # 1 edit from e4, 2 from e3, nothing else in common
        ("e6", "Ledger Team", "organization"),
    ]
    # e3 and e4 share a neighbour (evidence beyond the name); e5 has none: one edit alone is not enough.
    store = tiny_brain(tmp_path, rows, [("e1", "e3"), ("e4", "e2"), ("e3", "e6"), ("e4", "e6")])
    report = run_dedup(store, encoder=_no_model)
    live = {r["id"] for r in snapshot(store, "entities") if r["merged_into"] is None}
    assert {"e1", "e2"} <= live
    assert len({"e3", "e4", "e5"} & live) == 2  # exactly one pair merged, never all three
    assert [len(m.absorbed_ids) for m in report.merges] == [1]


@pytest.mark.slow
def test_merge_then_undo_restores_entities_and_relationships_exactly(brain: str) -> None:
    store = BrainStore(brain)
    before = {t: snapshot(store, t) for t in ("entities", "relationships")}
    report = run_dedup(store, encoder=_no_model)
    assert report.quality is not None and report.quality.precision == 1.0 and report.quality.recall == 1.0
    assert report.relationships_repointed > 0
    after = {r["id"]: r for r in snapshot(store, "entities")}
    for merge in report.merges:
        assert all(after[a]["merged_into"] == merge.kept_id for a in merge.absorbed_ids)
    absorbed = {a for m in report.merges for a in m.absorbed_ids}
    rels = snapshot(store, "relationships")
    assert not [r for r in rels if r["src"] in absorbed or r["dst"] in absorbed]
    assert len(rels) == len(before["relationships"])  # rows repointed, none deleted

    for merge_id in reversed(report.merge_ids):
        result = undo_merge(store, merge_id)
        assert result.ok, result
    assert {t: snapshot(store, t) for t in before} == before
    assert undo_merge(store, report.merge_ids[0]).status == "already_undone"
    assert undo_merge(store, "merge-nope").status == "not_found"


def test_undo_refuses_when_a_later_merge_sits_on_top(tmp_path: Path) -> None:
    store = tiny_brain(tmp_path, [("a", "Kubernetes", "technology"), ("b", "kubernetes", "technology")], [])
    first = run_dedup(store, encoder=_no_model)
    kept = first.merges[0].kept_id
    # An older entity appears and absorbs the survivor in a second run (oldest wins a tie).
    store.add("entities", pa.Table.from_pylist([_row("c", "KUBERNETES", created_at=1.0)], schema=ENTITIES))
    second = run_dedup(store, encoder=_no_model)
    assert second.merges[0].absorbed_ids == (kept,)
    result = undo_merge(store, first.merge_ids[0])
    assert result.status == "conflict" and "undo that merge first" in result.detail
    assert undo_merge(store, second.merge_ids[0]).ok and undo_merge(store, first.merge_ids[0]).ok
    assert all(r["merged_into"] is None for r in snapshot(store, "entities"))


@pytest.mark.slow
def test_one_batch_undoes_a_whole_run_in_one_commit_per_table(brain: str) -> None:
    store = BrainStore(brain)
    before = {t: snapshot(store, t) for t in ("entities", "relationships")}
    report = run_dedup(store, encoder=_no_model)
    assert sorted(last_run_merge_ids(store)) == sorted(report.merge_ids)
    versions = {t: store.fresh(t).version for t in ("entities", "relationships", "merge_log")}
    results = undo_merges(store, [*report.merge_ids, "merge-nope"])
    assert [r.status for r in results] == ["undone"] * len(report.merge_ids) + ["not_found"]
    assert {t: snapshot(store, t) for t in before} == before
    assert {t: store.fresh(t).version - v for t, v in versions.items()} == {
        "entities": 1,
        "relationships": 1,
        "merge_log": 1,
    }
    assert last_run_merge_ids(store) == []


def test_a_batch_undoes_stacked_merges_newest_first_whatever_order_it_is_given(tmp_path: Path) -> None:
    store = tiny_brain(tmp_path, [("a", "Kubernetes", "technology"), ("b", "kubernetes", "technology")], [])
    first = run_dedup(store, encoder=_no_model)
    store.add("entities", pa.Table.from_pylist([_row("c", "KUBERNETES", created_at=1.0)], schema=ENTITIES))
    second = run_dedup(store, encoder=_no_model)  # absorbs the first run's survivor
    assert last_run_merge_ids(store) == list(second.merge_ids)
    results = undo_merges(store, [first.merge_ids[0], second.merge_ids[0]])
    assert all(r.ok for r in results), results
    assert all(r["merged_into"] is None for r in snapshot(store, "entities"))


def test_a_relationship_stored_twice_is_repointed_and_restored(tmp_path: Path) -> None:
    # Brains written before keys were declared can hold a relationship twice (two extract workers raced).
    store = tiny_brain(tmp_path, [("a", "Kubernetes", "technology"), ("b", "kubernetes", "technology")], [])
    store.add("relationships", [{"id": "r-dup", "src": "a", "dst": "x", "weight": 1.0}] * 2)
    store.add("relationships", [{"id": "r-b", "src": "b", "dst": "y", "weight": 1.0}] * 3)  # b survives
    before = snapshot(store, "relationships")
    report = run_dedup(store, encoder=_no_model)
    assert report.merges[0].kept_id == "b" and report.relationships_repointed == 1
    assert {r["src"] for r in snapshot(store, "relationships")} == {"b"}
    assert undo_merges(store, list(report.merge_ids))[0].ok
    assert snapshot(store, "relationships") == before


@pytest.mark.slow
def test_dry_run_writes_nothing_but_the_candidate_count(brain: str) -> None:
    store = BrainStore(brain)
    tables = ("entities", "relationships", "merge_log", "communities")
    versions = {t: store.fresh(t).version for t in tables}
    report = run_dedup(store, dry_run=True, encoder=_no_model)
    assert report.absorbed > 0 and not report.merge_ids
    assert {t: store.fresh(t).version for t in tables} == versions
    assert store.meta_get(META_DEDUP_CANDIDATES) == str(report.absorbed)
    assert store.stats().duplicate_candidates >= report.absorbed


@pytest.mark.slow
def test_missing_vectors_are_embedded_with_the_real_model_and_stored(embedded_small: str) -> None:
    entities = snapshot(BrainStore(embedded_small), "entities")
    assert all(r["embedded_hash"] == r["content_hash"] and r["vector"] is not None for r in entities)
    by_name = {r["name"]: np.asarray(r["vector"]) for r in entities}
    assert abs(float(np.linalg.norm(next(iter(by_name.values())))) - 1.0) < 1e-3


# ---------------------------------------------------------------- processes and CLI


@pytest.mark.slow
def test_worker_runs_once_as_a_real_process(brain: str, tmp_path: Path) -> None:
    status = tmp_path / "dedup.status.json"
    proc = start_worker(["dedup", "--brain", brain, "--status-file", str(status)], tmp_path / "log", worker_env())
    assert proc.wait(timeout=120) == 0, (tmp_path / "log").read_text()
    final = read_status(status)
    assert final is not None and final["state"] == "stopped" and final["exit_code"] == 0
    assert final["processed"] == 24
    assert BrainStore(brain).fresh("merge_log").count_rows() == 24


@pytest.mark.slow
def test_cli_dry_run_then_merge_then_undo(brain: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--brain names another brain than the config's; the live run still goes through the policy (one that asks no
    approval here: tests/test_cli_dedup.py has the one that does) and a dedup job worker."""
    from support.agent_rig import NO_CPU_CEILING, kill_workers, write_policy

    policy = write_policy(tmp_path / "policy.yaml", actions={"run_dedup": {"approval_when": []}}, **NO_CPU_CEILING)
    monkeypatch.setenv("BRAINOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BRAINOPS_POLICY_FILE", str(policy))
    runner = CliRunner()
    dry = runner.invoke(app, ["dedup", "--dry-run", "--brain", brain, "--json"])
    assert dry.exit_code == 0, dry.output
    assert BrainStore(brain).fresh("merge_log").count_rows() == 0
    try:
        done = runner.invoke(app, ["dedup", "--brain", brain, "--json"])
    finally:
        kill_workers(tmp_path / "home" / "run")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["job"]["merged"] == 24
    merge_id = BrainStore(brain).fresh("merge_log").to_arrow().column("merge_id")[0].as_py()
    undone = runner.invoke(app, ["dedup", "undo", merge_id, "--brain", brain])
    assert undone.exit_code == 0 and "undid" in undone.output
    again = runner.invoke(app, ["dedup", "undo", merge_id, "--brain", brain])
    assert again.exit_code == 1
    rest = runner.invoke(app, ["dedup", "undo", "--last-run", "--brain", brain])
    assert rest.exit_code == 0 and rest.output.count("undid") == 23, rest.output
    assert "no merges left" in runner.invoke(app, ["dedup", "undo", "--last-run", "--brain", brain]).output
    neither = runner.invoke(app, ["dedup", "undo", "--brain", brain])
    assert neither.exit_code == 2 and "--last-run" in neither.output


def test_missing_brain_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["worker", "dedup", "--brain", str(tmp_path / "none")])
    assert result.exit_code == 1 and "missing" in result.output


def _no_model(texts: list[str], progress: object = None) -> np.ndarray:
    raise AssertionError(f"vectors were stored; nothing should be embedded (asked for {len(texts)})")


def _row(ent_id: str, name: str, created_at: float) -> dict:
    vec = np.full(EMBED_DIM, 1 / np.sqrt(EMBED_DIM), dtype=np.float32)
    return {
        "id": ent_id,
        "name": name,
        "type": "technology",
        "content_hash": content_hash(name),
        "embedded_hash": content_hash(name),
        "vector": vec.tolist(),
        "created_at": created_at,
    }
