"""The extract worker: pull entities and relationships out of records that have not been extracted yet.

Extraction is deterministic (no LLM, see workers/extract_text.py): records link to the entities whose
names they contain, or yield capitalized n-grams as new entities; entities in one record are related.
`--item-ms` stands in for the per-item LLM latency a real extractor has, so that adding workers visibly
speeds the stage up. Every write is idempotent (new ids are content hashes, entities and relationships
are insert-only), so a batch redone after a crash adds nothing twice.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from brain.lance_ops import sql_list, with_conflict_retry
from brain.store import BrainStore, StoreError
from workers.extract_text import EXTRACTED_TYPE, Gazetteer, Mention, co_occurrences, mentions, relationship_id
from workers.runtime import WorkerRun, bucket_of, shard_filter

if TYPE_CHECKING:
    import pyarrow as pa

PENDING = "(extracted = false OR extracted IS NULL)"
LANES = 16  # bucket lanes unsharded workers spread over
RELATION_TYPE = "co_occurs"
# Co-mention is weak evidence: below the seed's planted edges (0.2..1.0), so clustering still follows those.
RELATION_WEIGHT = 0.1


@dataclass(frozen=True)
class ExtractConfig:
    brain: str
    shard: tuple[int, int] = (0, 1)
    batch_size: int = 64
    loop: bool = False
    item_ms: int = 0
    limit: int | None = None
    lane: int = 0  # unsharded: the bucket lane this worker reads first (the dispatcher's worker number)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.item_ms < 0:
            raise ValueError(f"item_ms must be >= 0, got {self.item_ms}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")


class ExtractWorker:
    """One `step()` = one batch: read pending records of this shard, write entities + relationships, mark."""

    def __init__(self, config: ExtractConfig, store: BrainStore) -> None:
        self.config = config
        self.store = store
        self.done = 0
        self.gazetteer = self._load_gazetteer()
        # Consecutive worker numbers land 5 lanes apart (5 is coprime to 16: every lane gets used).
        self.lane = (config.lane * 5) % LANES
        self.random = random.Random(config.lane)

    def _load_gazetteer(self) -> Gazetteer:
        rows = self.store.fresh("entities").search().select(["id", "name"]).limit(None).to_arrow()
        return Gazetteer.build(rows.column("name").to_pylist(), rows.column("id").to_pylist())

    def step(self) -> int:
        want = self._batch_limit()
        batch = self._pending(want) if want else []
        if not batch:
            return 0
        found: list[tuple[str, tuple[Mention, ...]]] = []
        for record_id, text in batch:
            if self.config.item_ms:
                time.sleep(self.config.item_ms / 1000.0)  # stands in for one LLM call per record
            found.append((record_id, mentions(text, self.gazetteer)))
        self._write(found)
        self.done += len(batch)
        return len(batch)

    def _batch_limit(self) -> int:
        if self.config.limit is None:
            return self.config.batch_size
        return max(0, min(self.config.batch_size, self.config.limit - self.done))

    def _pending(self, n: int) -> list[tuple[str, str]]:
        """A sharded worker reads its shard. Scaled workers share no shard (their number changes), so each reads
        its own lane of buckets first, then the lanes after it: workers do not all take the same rows."""
        shard = shard_filter(self.config.shard)
        if shard:
            return [(i, t) for i, t, _ in self._read(f"{PENDING} AND {shard}", n)]
        own = self._read(f"{PENDING} AND bucket % {LANES} = {self.lane}", n)
        if len(own) < n:  # the lane runs dry: move to a lane picked at random among those with work left
            seen = {row[0] for row in own}
            by_lane: dict[int, list[tuple[str, str, int]]] = {}
            for row in self._read(PENDING, n * 4):
                if row[0] not in seen:
                    by_lane.setdefault(row[2] % LANES, []).append(row)
            lanes = list(by_lane)
            self.random.shuffle(lanes)
            for lane in lanes:
                own += by_lane[lane][: n - len(own)]
            self.lane = lanes[0] if lanes else self.lane
        return [(i, t) for i, t, _ in own]

    def _read(self, where: str, n: int) -> list[tuple[str, str, int]]:
        rows = self.store.fresh("records").search().where(where).select(["id", "text", "bucket"]).limit(n).to_arrow()
        buckets = [b or 0 for b in rows.column("bucket").to_pylist()]
        return list(zip(rows.column("id").to_pylist(), rows.column("text").to_pylist(), buckets, strict=True))

    def _write(self, found: list[tuple[str, tuple[Mention, ...]]]) -> None:
        import pyarrow as pa

        now = time.time()
        new = {m.entity_id: m.name for _, ms in found for m in ms if not m.known}
        self._insert_missing("entities", _entity_rows(new, now))
        survivors = self._survivors(sorted({m.entity_id for _, ms in found for m in ms}))
        pairs = {
            pair for _, ms in found for pair in co_occurrences(survivors.get(m.entity_id, m.entity_id) for m in ms)
        }
        self._insert_missing("relationships", _relationship_rows(sorted(pairs), now))
        ids = [record_id for record_id, _ in found]
        marks = pa.table({"id": pa.array(ids, pa.string()), "extracted": pa.array([True] * len(ids))})
        self.store.update_columns("records", marks)

    def _survivors(self, ids: list[str]) -> dict[str, str]:
        """Entities dedup already merged away: point new relationships at the survivor instead."""
        if not ids:
            return {}
        rows = (
            self.store.fresh("entities")
            .search()
            .where(f"id IN ({sql_list(ids)}) AND merged_into IS NOT NULL")
            .select(["id", "merged_into"])
            .limit(None)
            .to_arrow()
        )
        return dict(zip(rows.column("id").to_pylist(), rows.column("merged_into").to_pylist(), strict=True))

    def _insert_missing(self, name: str, data: pa.Table) -> None:
        """Insert rows whose id is new; existing rows (maybe embedded or merged since) stay untouched."""
        if data.num_rows == 0:
            return
        table = self.store.table(name)

        def merge() -> None:
            table.checkout_latest()
            # Null vectors (not embedded yet) trip lancedb's vector check unless told they are fine.
            table.merge_insert("id").when_not_matched_insert_all().execute(data, on_bad_vectors="null")

        with_conflict_retry(merge)


def _entity_rows(names: dict[str, str], now: float) -> pa.Table:
    import pyarrow as pa

    from brain.schema import ENTITIES

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


def _relationship_rows(pairs: list[tuple[str, str]], now: float) -> pa.Table:
    import pyarrow as pa

    from brain.schema import RELATIONSHIPS

    rows = [
        {
            "id": relationship_id(src, dst),
            "src": src,
            "dst": dst,
            "type": RELATION_TYPE,
            "weight": RELATION_WEIGHT,
            "created_at": now,
        }
        for src, dst in pairs
    ]
    return pa.Table.from_pylist(rows, schema=RELATIONSHIPS)


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
