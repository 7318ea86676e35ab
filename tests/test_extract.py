"""The extract worker on a real seeded LanceDB brain, plus the pure mention finder."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from brain.store import BrainStore, StoreError
from workers.extract import PENDING, ExtractConfig, ExtractWorker, open_brain
from workers.extract_text import Gazetteer, capitalized_ngrams, mentions, new_entity_id


def test_known_names_match_longest_first_across_punctuation_and_line_breaks() -> None:
    gaz = Gazetteer.build(
        ["Acme", "Acme Cloud", "Unified Disaster\nRecovery Benchmark", "spica migration", "Mercury", "Mercury"],
        ["e1", "e2", "e3", "e4", "e6", "e5"],
    )
    text = "Acme Cloud shipped; Unified Disaster Recovery Benchmark, spica migration and Mercury."
    assert [m.entity_id for m in mentions(text, gaz)] == ["e2", "e3", "e4", "e5"]  # decoy name -> smaller id
    assert all(m.known for m in mentions(text, gaz))


def test_unknown_text_falls_back_to_capitalized_ngrams() -> None:
    text = "The team met Ada Lovelace at Acme Corp. Then Ada Lovelace left."
    assert capitalized_ngrams(text) == ["Ada Lovelace", "Acme Corp", "Then Ada Lovelace"]
    found = mentions("Ada Lovelace met Ada Lovelace at Acme Corp", Gazetteer.build([], []))
    assert [m.name for m in found] == ["Ada Lovelace", "Acme Corp"]
    assert found[0].entity_id == new_entity_id("ada  lovelace") and not found[0].known


@pytest.fixture
def seeded(tmp_path: Path) -> BrainStore:
    from brain.seed import seed_brain

    uri = str(tmp_path / "brain")
    seed_brain(uri, "small", show_progress=False)
    return BrainStore(uri)


def test_two_shards_extract_every_pending_record_once_and_idempotently(seeded: BrainStore) -> None:
    pending = seeded.table("records").count_rows(PENDING)
    entities_before = seeded.table("entities").count_rows()
    known_ids = set(seeded.table("entities").to_arrow().column("id").to_pylist())
    workers = [ExtractWorker(ExtractConfig(seeded.uri, (i, 2), batch_size=300), seeded) for i in (0, 1)]
    for worker in workers:
        while worker.step():
            pass
    assert pending > 0 and sum(w.done for w in workers) == pending  # shards neither overlap nor miss
    assert seeded.fresh("records").count_rows(PENDING) == 0
    assert seeded.fresh("entities").count_rows() == entities_before  # seed text names only seed entities
    rels = seeded.fresh("relationships").search().where("type = 'co_occurs'").limit(None).to_arrow()
    assert rels.num_rows > 0
    assert set(rels.column("src").to_pylist()) | set(rels.column("dst").to_pylist()) <= known_ids

    # Redo the same records (as after a crash between write and mark): nothing is added twice.
    reset = pa.table({"id": pa.array(["rec-0001999"]), "extracted": pa.array([False])})
    seeded.update_columns("records", reset)
    total = seeded.fresh("relationships").count_rows()
    again = ExtractWorker(ExtractConfig(seeded.uri), seeded)
    assert again.step() == 1 and again.step() == 0
    assert seeded.fresh("relationships").count_rows() == total


def test_unsharded_workers_read_their_own_lanes_first_and_still_drain_everything(seeded: BrainStore) -> None:
    # Scaled workers have no shard (their count changes): on the old code every one read the same first rows,
    # so four workers did one worker's work four times over.
    pending = seeded.table("records").count_rows(PENDING)
    workers = [ExtractWorker(ExtractConfig(seeded.uri, batch_size=20, lane=n), seeded) for n in (1, 2, 3)]
    first = [{rid for rid, _ in w._pending(20)} for w in workers]
    assert all(len(ids) == 20 for ids in first)
    assert not (first[0] & first[1]) and not (first[1] & first[2]) and not (first[0] & first[2])
    while any([w.step() for w in workers]):
        pass
    assert seeded.fresh("records").count_rows(PENDING) == 0
    assert sum(w.done for w in workers) == pending  # lanes in turn, then anything left: no row done twice


def test_limit_and_merged_entities(tmp_path: Path) -> None:
    store = BrainStore(str(tmp_path / "b")).open_or_create()
    store.add(
        "records",
        [{"id": f"r{i}", "text": "Grace Hopper joined Acme Corp.", "bucket": i, "extracted": False} for i in range(5)],
    )
    store.add("entities", [{"id": "ent-keep", "name": "Acme Corporation"}, {"id": "ent-gh", "name": "Grace Hopper"}])
    store.add("entities", [{"id": new_entity_id("Acme Corp"), "name": "Acme Corp", "merged_into": "ent-keep"}])
    worker = ExtractWorker(ExtractConfig(store.uri, batch_size=2, limit=3), store)
    assert [worker.step() for _ in range(3)] == [2, 1, 0]  # --limit 3 stops after three records
    rels = store.fresh("relationships").to_arrow().to_pylist()
    assert {(r["src"], r["dst"]) for r in rels} == {("ent-gh", "ent-keep")}  # not to the merged-away row
    merged = store.fresh("entities").search().where("name = 'Acme Corp'").to_arrow().to_pylist()
    assert merged[0]["merged_into"] == "ent-keep"  # insert-only: the merge was not overwritten


def test_missing_brain_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no brain"):
        open_brain(str(tmp_path / "nope"))
    assert not (tmp_path / "nope").exists()
    with pytest.raises(ValueError, match="batch_size"):
        ExtractConfig("x", batch_size=0)
