"""BrainStore on real LanceDB: tables, writes, meta, compaction, and stats that follow the work done."""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from brain.lance_ops import with_conflict_retry
from brain.schema import EMBED_DIM, TABLES, VECTOR
from brain.seed import plan_entities, seed_brain
from brain.store import (
    META_DEDUP_CANDIDATES,
    META_LAST_RECLUSTER_AT,
    META_REWIRED_SINCE_RECLUSTER,
    BrainStore,
    StoreError,
)


@pytest.fixture()
def brain(tmp_path: Path) -> BrainStore:
    uri = str(tmp_path / "brain")
    seed_brain(uri, "small", seed=11, show_progress=False)
    return BrainStore(uri)


def _vectors(ids: list[str], hashes: list[str]) -> pa.Table:
    flat = pa.array(np.full(len(ids) * EMBED_DIM, 1 / np.sqrt(EMBED_DIM), dtype=np.float32))
    return pa.table(
        {
            "id": ids,
            "vector": pa.FixedSizeListArray.from_arrays(flat, EMBED_DIM).cast(VECTOR),
            "embedded_hash": hashes,
        }
    )


def test_open_or_create_makes_every_table_once(tmp_path: Path) -> None:
    store = BrainStore(str(tmp_path / "b")).open_or_create()
    assert set(store.table_names()) == set(TABLES)
    for name, schema in TABLES.items():
        assert store.table(name).schema.equals(schema)
    store.add("meta", [{"key": "k", "value": "v", "updated_at": 1.0}])
    BrainStore(str(tmp_path / "b")).open_or_create()  # idempotent: keeps data
    assert BrainStore(str(tmp_path / "b")).meta_get("k") == "v"


def test_bad_input_gets_a_clear_error(tmp_path: Path) -> None:
    store = BrainStore(str(tmp_path / "b")).open_or_create()
    with pytest.raises(StoreError, match="unknown table 'nope'"):
        store.table("nope")
    with pytest.raises(StoreError, match="do not fit table 'relationships'"):
        store.add("relationships", [{"id": "r", "weight": "heavy"}])
    with pytest.raises(StoreError, match="empty"):
        BrainStore("")


def test_meta_set_get_overwrite(tmp_path: Path) -> None:
    store = BrainStore(str(tmp_path / "b")).open_or_create()
    assert store.meta_get("x") is None
    store.meta_set("x", 1.5)
    store.meta_set_many({"x": 2.5, "it's": "quoted"})
    assert store.meta_get("x") == "2.5"
    assert store.meta_float("x") == 2.5
    assert store.meta_get("it's") == "quoted"
    assert store.table("meta").count_rows() == 2


def test_upsert_inserts_and_updates_by_key(tmp_path: Path) -> None:
    store = BrainStore(str(tmp_path / "b")).open_or_create()
    row = {"id": "r1", "src": "a", "dst": "b", "type": "uses", "weight": 0.5, "created_at": 1.0}
    store.upsert("relationships", [row, {**row, "id": "r2"}])
    store.upsert("relationships", [{**row, "weight": 0.9}])
    table = store.table("relationships").to_arrow().sort_by("id").to_pylist()
    assert [r["id"] for r in table] == ["r1", "r2"]
    assert table[0]["weight"] == pytest.approx(0.9)


def test_update_columns_touches_only_given_columns(brain: BrainStore) -> None:
    first = brain.table("entities").search().limit(1).to_arrow().to_pylist()[0]
    brain.update_columns("entities", _vectors([first["id"]], [first["content_hash"]]))
    after = brain.fresh("entities").search().where(f"id = '{first['id']}'").to_arrow().to_pylist()[0]
    assert after["name"] == first["name"] and after["truth_cluster"] == first["truth_cluster"]
    assert after["embedded_hash"] == first["content_hash"]
    assert brain.fresh("entities").count_rows() == 300  # no insert


def test_stats_match_the_seeded_truth(brain: BrainStore) -> None:
    stats = brain.stats()
    plan = plan_entities("small", seed=11)
    records = brain.table("records")
    stale = records.count_rows("embedded_hash IS NOT NULL AND embedded_hash != content_hash")
    assert (stats.records, stats.entities, stats.relationships, stats.communities) == (2000, 300, 330, 60)
    assert stats.pending["embed"] == 1000 + stale + 300  # unprocessed + stale records + all entities
    assert stats.pending["extract"] == 1000
    # case and spacing variants fold to their original's normalized name; nothing else collides
    folding = sum(1 for d in plan.duplicates if d.kind in ("case", "spacing"))
    assert stats.duplicate_candidates == stats.pending["dedup"] == folding
    assert stats.duplicate_estimate == pytest.approx(folding / 300, abs=1e-6)
    assert stats.pending["wisdom"] == 60 - stats.wisdom
    assert stats.wisdom_coverage == pytest.approx(stats.wisdom / 60, abs=1e-6)
    assert stats.relationship_density == pytest.approx(330 / 300, abs=1e-6)
    assert stats.community_age_s == pytest.approx(6 * 3600, abs=120)
    assert 0 < stats.relationships_changed_since_recluster < 330


def test_pending_counts_follow_the_work_done(brain: BrainStore) -> None:
    before = brain.stats()
    # extract 100 records
    brain.table("records").update(where="id < 'rec-0001100' AND extracted = false", values={"extracted": True})
    # embed every entity
    ents = brain.table("entities").to_arrow()
    brain.update_columns("entities", _vectors(ents.column("id").to_pylist(), ents.column("content_hash").to_pylist()))
    # wisdom for one uncovered community
    covered = set(brain.table("wisdom").to_arrow().column("community_id").to_pylist())
    missing = next(c for c in brain.table("communities").to_arrow().column("id").to_pylist() if c not in covered)
    brain.add("wisdom", [{"id": "w-new", "community_id": missing, "text": "t", "created_at": time.time()}])
    # a recluster just ran, then one new relationship and two rewired ones
    brain.meta_set_many({META_LAST_RECLUSTER_AT: time.time(), META_REWIRED_SINCE_RECLUSTER: 2})
    brain.add("relationships", [{"id": "r-new", "src": "a", "dst": "b", "created_at": time.time() + 1}])
    # a dedup dry run found more than the name collisions show
    brain.meta_set(META_DEDUP_CANDIDATES, 40)

    after = brain.stats()
    assert after.pending["extract"] == before.pending["extract"] - 100
    assert after.pending["embed"] == before.pending["embed"] - 300
    assert after.pending["wisdom"] == before.pending["wisdom"] - 1
    assert after.pending["recluster"] == after.relationships_changed_since_recluster == 3
    assert after.community_age_s is not None and after.community_age_s < 60
    assert after.duplicate_candidates == after.pending["dedup"] == 40


def test_merged_entities_leave_the_duplicate_estimate(brain: BrainStore) -> None:
    plan = plan_entities("small", seed=11)
    folding = [d for d in plan.duplicates if d.kind in ("case", "spacing")]
    for dup in folding:
        brain.table("entities").update(where=f"id = '{dup.duplicate_id}'", values={"merged_into": dup.original_id})
    stats = brain.stats()
    assert stats.duplicate_candidates == 0
    assert stats.relationship_density == pytest.approx(330 / (300 - len(folding)), abs=1e-6)


def test_empty_brain_stats_are_zero(tmp_path: Path) -> None:
    stats = BrainStore(str(tmp_path / "b")).open_or_create().stats()
    assert stats.records == 0 and stats.pending["embed"] == 0 and stats.community_age_s is None
    assert stats.duplicate_estimate == 0.0 and stats.wisdom_coverage == 0.0


@pytest.mark.filterwarnings(r"ignore:optimize\(cleanup_older_than=0\)")
def test_compact_merges_fragments_and_keeps_data(tmp_path: Path) -> None:
    store = BrainStore(str(tmp_path / "b")).open_or_create()
    for i in range(12):
        store.add("relationships", [{"id": f"r{i}", "src": "a", "dst": "b", "created_at": float(i)}])
    fragments_before = len(store.fresh("relationships").to_lance().get_fragments())
    report = store.compact(keep_versions_for=timedelta(0))
    table = store.fresh("relationships")
    assert fragments_before == 12
    assert len(table.to_lance().get_fragments()) == 1
    assert report.versions_removed >= 12
    assert table.count_rows() == 12


def _write_disjoint(uri: str, start: int) -> None:
    store = BrainStore(uri)
    for i in range(start, start + 10):
        store.upsert("relationships", [{"id": f"r{i:03d}", "src": "a", "dst": "b", "created_at": float(i)}])


@pytest.mark.slow
def test_concurrent_writers_in_two_processes_lose_nothing(tmp_path: Path) -> None:
    uri = str(tmp_path / "b")
    BrainStore(uri).open_or_create()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_disjoint, args=(uri, start)) for start in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    ids = BrainStore(uri).table("relationships").to_arrow().column("id").to_pylist()
    assert sorted(ids) == [f"r{i:03d}" for i in [*range(10), *range(100, 110)]]


def test_stats_is_fast_on_the_small_brain(brain: BrainStore) -> None:
    brain.stats()
    took = []
    for _ in range(5):
        started = time.perf_counter()
        brain.stats()
        took.append(time.perf_counter() - started)
    assert sorted(took)[2] < 0.5  # generous: CI machines are shared; bench/bench_stats.py measures


def _insert_same_new_keys(uri: str, ready: object, go: object) -> None:
    store = BrainStore(uri)
    table = store.table("relationships")
    rows = [{"id": f"rel-{i:03d}", "src": "a", "dst": "b", "created_at": 1.0} for i in range(40)]
    data = store._as_arrow("relationships", rows)
    ready.set()  # type: ignore[attr-defined]
    go.wait(60)  # type: ignore[attr-defined]

    def insert_missing() -> None:  # what the extract workers do with the relationships they find
        table.checkout_latest()
        table.merge_insert("id").when_not_matched_insert_all().execute(data)

    with_conflict_retry(insert_missing)


@pytest.mark.slow
def test_writers_racing_to_insert_the_same_new_keys_store_each_once(tmp_path: Path) -> None:
    uri = str(tmp_path / "b")
    BrainStore(uri).open_or_create()
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    ready = [ctx.Event() for _ in range(3)]
    procs = [ctx.Process(target=_insert_same_new_keys, args=(uri, r, go)) for r in ready]
    for p in procs:
        p.start()
    assert all(r.wait(120) for r in ready)
    go.set()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    ids = BrainStore(uri).fresh("relationships").to_arrow().column("id").to_pylist()
    assert sorted(ids) == [f"rel-{i:03d}" for i in range(40)]  # without a declared key: 120 rows


def _old_brain(uri: str) -> None:
    """Every table as brains before declared keys were made: same columns, no key metadata."""
    import lancedb

    db = lancedb.connect(uri)
    for name, schema in TABLES.items():
        db.create_table(name, schema=pa.schema([f.remove_metadata() for f in schema]))


def test_a_brain_from_before_declared_keys_gets_them_on_open(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from concurrent.futures import ThreadPoolExecutor

    uri = str(tmp_path / "old")
    _old_brain(uri)
    assert BrainStore(uri).stats().records == 0  # its worker threads open tables at the same moment
    with ThreadPoolExecutor(4) as pool:  # four handles race to declare the same key
        tables = list(pool.map(lambda _: BrainStore(uri).table("relationships"), range(4)))
    for table in (*tables, BrainStore(uri).table("meta")):
        key = "key" if table.name == "meta" else "id"
        table.checkout_latest()
        assert table.schema.field(key).metadata == {b"lance-schema:unenforced-primary-key": b"true"}
    assert "could not declare" not in caplog.text  # a lost race re-checks instead of retrying blindly


def test_an_update_naming_a_key_twice_keeps_the_last_row(tmp_path: Path) -> None:
    store = BrainStore(str(tmp_path / "b")).open_or_create()
    store.add("relationships", [{"id": "r1", "src": "a", "dst": "b"}, {"id": "r2", "src": "c", "dst": "d"}])
    store.update_columns("relationships", pa.table({"id": ["r1", "r2", "r1"], "dst": ["x", "y", "z"]}))
    rows = {r["id"]: r["dst"] for r in store.fresh("relationships").to_arrow().to_pylist()}
    assert rows == {"r1": "z", "r2": "y"}


def test_compact_removes_rows_that_repeat_a_key_and_keeps_one(tmp_path: Path) -> None:
    store = BrainStore(str(tmp_path / "b")).open_or_create()
    store.add("relationships", [{"id": "r1", "src": "a", "dst": "b"}, {"id": "r2", "src": "c", "dst": "d"}])
    store.add("relationships", [{"id": "r1", "src": "a", "dst": "b"}] * 2)  # as racing inserts once left them
    report = store.compact()
    assert report.duplicate_rows_removed == 2
    rows = sorted((r["id"], r["src"], r["dst"]) for r in store.fresh("relationships").to_arrow().to_pylist())
    assert rows == [("r1", "a", "b"), ("r2", "c", "d")]
    assert store.drop_duplicate_keys("relationships") == 0
