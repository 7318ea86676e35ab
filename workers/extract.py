"""The extract worker: pull entities and relationships out of records that have not been extracted yet.

Extraction is deterministic (no LLM): capitalized n-grams of a record's text are its entities, entities
in the same record are related. `--item-ms` stands in for the per-item LLM latency a real extractor has,
so that adding workers visibly speeds the stage up. Every write is idempotent (entity and relationship
ids are content hashes, entities are insert-only), so a batch redone after a crash adds nothing twice.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

from workers.runtime import WorkerRun, bucket_of, shard_filter
from workers.store import BrainStore, StoreError, normalize_name, with_conflict_retry

if TYPE_CHECKING:
    import pyarrow as pa

PENDING = "(extracted = false OR extracted IS NULL)"
EXTRACTED_TYPE = "concept"
RELATION_TYPE = "co_occurs"
MAX_ENTITIES_PER_RECORD = 12

# A run of capitalized words ("Ada Lovelace", "Acme Corp"), allowing digits and inner hyphens.
_NGRAM = re.compile(r"\b[A-Z][\w-]*(?:\s+[A-Z][\w-]*){0,3}\b")
# Capitalized only because they start a sentence; dropped when they lead a match.
_STOP_WORDS = (
    "A An And As At But By For From He Her His How I If In Is It Its Of On Or She So That The Their "
    "There These They This To We What When Where Which Who Why With You"
)
_STOP = frozenset(_STOP_WORDS.split())


@dataclass(frozen=True)
class ExtractConfig:
    brain: str
    shard: tuple[int, int] = (0, 1)
    batch_size: int = 64
    loop: bool = False
    item_ms: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.item_ms < 0:
            raise ValueError(f"item_ms must be >= 0, got {self.item_ms}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")


@dataclass(frozen=True)
class Extraction:
    """What one record yields: entity names, and the ids of its entities and relationships."""

    record_id: str
    names: tuple[str, ...]

    @property
    def entity_ids(self) -> tuple[str, ...]:
        return tuple(entity_id(n) for n in self.names)

    def pairs(self) -> Iterable[tuple[str, str]]:
        return combinations(sorted(set(self.entity_ids)), 2)


def entity_names(text: str) -> tuple[str, ...]:
    """Distinct capitalized n-grams in first-seen order, leading stop words trimmed."""
    seen: dict[str, str] = {}
    for match in _NGRAM.finditer(text or ""):
        words = match.group(0).split()
        while words and words[0] in _STOP:
            words = words[1:]
        name = " ".join(words)
        key = normalize_name(name)
        if len(key) >= 2 and key not in seen:
            seen[key] = name
    return tuple(seen.values())[:MAX_ENTITIES_PER_RECORD]


def entity_id(name: str) -> str:
    return "ent-x-" + hashlib.sha1(f"{EXTRACTED_TYPE}:{normalize_name(name)}".encode()).hexdigest()[:16]


def relationship_id(record_id: str, src: str, dst: str) -> str:
    return "rel-x-" + hashlib.sha1(f"{record_id}|{src}|{dst}".encode()).hexdigest()[:16]


class ExtractWorker:
    """One `step()` = one batch: read pending records of this shard, write entities + relationships, mark."""

    def __init__(self, config: ExtractConfig, store: BrainStore) -> None:
        self.config = config
        self.store = store
        self.done = 0

    def step(self) -> int:
        want = self._batch_limit()
        if want == 0:
            return 0
        batch = self._pending(want)
        if not batch:
            return 0
        extractions = []
        for record_id, text in batch:
            if self.config.item_ms:
                time.sleep(self.config.item_ms / 1000.0)  # stands in for one LLM call per record
            extractions.append(Extraction(record_id, entity_names(text)))
        self._write(extractions)
        self.done += len(batch)
        return len(batch)

    def _batch_limit(self) -> int:
        if self.config.limit is None:
            return self.config.batch_size
        return max(0, min(self.config.batch_size, self.config.limit - self.done))

    def _pending(self, n: int) -> list[tuple[str, str]]:
        where = PENDING
        shard = shard_filter(self.config.shard)
        if shard:
            where = f"{where} AND {shard}"
        rows = self.store.fresh("records").search().where(where).select(["id", "text"]).limit(n).to_arrow()
        return list(zip(rows.column("id").to_pylist(), rows.column("text").to_pylist(), strict=True))

    def _write(self, extractions: list[Extraction]) -> None:
        import pyarrow as pa

        now = time.time()
        names = {eid: name for ex in extractions for eid, name in zip(ex.entity_ids, ex.names, strict=True)}
        survivors = self._survivors(list(names))
        self._insert_new_entities(names, now)
        rels = [
            {
                "id": relationship_id(ex.record_id, src, dst),
                "src": survivors.get(src, src),
                "dst": survivors.get(dst, dst),
                "type": RELATION_TYPE,
                "weight": 1.0,
                "created_at": now,
            }
            for ex in extractions
            for src, dst in ex.pairs()
        ]
        self.store.upsert("relationships", rels)
        ids = [ex.record_id for ex in extractions]
        marks = pa.table({"id": pa.array(ids, pa.string()), "extracted": pa.array([True] * len(ids))})
        self.store.update_columns("records", marks)

    def _survivors(self, ids: list[str]) -> dict[str, str]:
        """Entities dedup already merged away: point new relationships at the survivor instead."""
        if not ids:
            return {}
        quoted = ", ".join(f"'{i}'" for i in ids)  # ids are our own hex hashes: nothing to escape
        rows = (
            self.store.fresh("entities")
            .search()
            .where(f"id IN ({quoted}) AND merged_into IS NOT NULL")
            .select(["id", "merged_into"])
            .limit(None)
            .to_arrow()
        )
        return dict(zip(rows.column("id").to_pylist(), rows.column("merged_into").to_pylist(), strict=True))

    def _insert_new_entities(self, names: dict[str, str], now: float) -> None:
        if not names:
            return
        data = _entity_rows(names, now)
        table = self.store.table("entities")

        def insert_missing() -> None:
            table.checkout_latest()
            # Null vectors (not embedded yet) trip lancedb's vector check unless told they are fine.
            table.merge_insert("id").when_not_matched_insert_all().execute(data, on_bad_vectors="null")

        with_conflict_retry(insert_missing)


def _entity_rows(names: dict[str, str], now: float) -> pa.Table:
    import pyarrow as pa

    from workers.schema import ENTITIES

    rows = [
        {
            "id": eid,
            "name": name,
            "type": EXTRACTED_TYPE,
            "description": f"{name} (extracted)",
            "bucket": bucket_of(eid),
            "content_hash": hashlib.sha1(name.encode()).hexdigest(),
            "created_at": now,
        }
        for eid, name in sorted(names.items())
    ]
    return pa.Table.from_pylist(rows, schema=ENTITIES)


def open_brain(uri: str) -> BrainStore:
    """The existing brain at uri; a missing brain is an error (a worker never creates one)."""
    # A local brain keeps each table in <uri>/<table>.lance: fail before paying for the lancedb import
    # (and before lancedb.connect creates an empty directory at a mistyped path).
    if "://" not in uri and not (Path(uri) / "records.lance").is_dir():
        raise StoreError(f"no brain at {uri!r}: run `brainops brain seed` first")
    store = BrainStore(uri)
    if not store.exists():
        raise StoreError(f"no brain at {uri!r} (no records table): run `brainops brain seed` first")
    return store


def run_extract(config: ExtractConfig, run: WorkerRun) -> int:
    """Process the worker's lifetime; returns the exit code."""
    try:
        worker = ExtractWorker(config, open_brain(config.brain))
    except StoreError:
        run.state = "crashed"
        run.write_status(exit_code=1)
        raise
    run.install_signal_handlers()
    return run.loop(worker.step, forever=config.loop, idle_s=1.0)
