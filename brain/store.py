"""`BrainStore`: the brain's LanceDB tables, batched writes with conflict retry, compaction, fast stats.

lancedb is imported lazily (1.2 s import), so modules that only name the store stay cheap to import.

Meta keys other workers read or write (all values are strings in the `meta` table):
- ``META_LAST_RECLUSTER_AT``: unix time of the last recluster run (recluster writes it).
- ``META_REWIRED_SINCE_RECLUSTER``: relationships rewritten by merges since then (dedup adds, recluster resets).
- ``META_DEDUP_CANDIDATES`` / ``META_DEDUP_AT``: candidate count of the last dedup dry run and its time.
- ``META_DEDUP_PLAN`` / ``META_DEDUP_PLAN_SUMMARY``: the last dry run's merge plan (workers/dedup_plan.py owns
  both) and its small summary, which `stats` reports as `BrainStats.dedup_plan`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from brain.insight_stats import with_insight_stats
from brain.lance_ops import add_missing_columns, declare_primary_key, drop_repeated_keys, sql_list, with_conflict_retry
from brain.schema import KEYS, TABLES
from core.domain import BrainStats, DedupPlanSummary

if TYPE_CHECKING:
    from lancedb.db import DBConnection
    from lancedb.table import Table

META_LAST_RECLUSTER_AT = "last_recluster_at"
META_REWIRED_SINCE_RECLUSTER = "relationships_rewired_since_recluster"
META_DEDUP_CANDIDATES = "dedup_candidates"
META_DEDUP_AT = "dedup_dry_run_at"
META_DEDUP_PLAN = "dedup_plan"  # JSON, can be large: stats never reads it
META_DEDUP_PLAN_SUMMARY = "dedup_plan_summary"  # JSON of core.domain.DedupPlanSummary

# Rows whose vector is missing or was made from older text. Works on both records and entities.
EMBED_PENDING = "embedded_hash IS NULL OR embedded_hash != content_hash"
LIVE_ENTITY = "merged_into IS NULL"

# Scalar indexes that keep the stats filters off full scans once tables are big.
SCALAR_INDEXES: dict[str, tuple[tuple[str, str], ...]] = {
    "records": (("id", "BTREE"), ("extracted", "BITMAP"), ("bucket", "BITMAP")),
    "entities": (("id", "BTREE"), ("bucket", "BITMAP")),
    "relationships": (("created_at", "BTREE"),),
}


class StoreError(RuntimeError):
    """A store operation failed for a reason the caller should see (unknown table, bad rows, ...)."""


@dataclass(frozen=True)
class CompactReport:
    tables: tuple[str, ...]
    versions_removed: int
    seconds: float
    duplicate_rows_removed: int = 0


def last_row_per_key(rows: pa.Table, on: str) -> pa.Table:
    """One row per key (the last one), the key column typed non-null as a declared key must be."""
    keys = rows.column(on)
    if keys.null_count:
        raise StoreError(f"{keys.null_count} row(s) have no {on!r}")
    index = rows.schema.get_field_index(on)
    rows = rows.cast(rows.schema.set(index, rows.schema.field(index).with_nullable(False)))
    values = keys.to_pylist()
    if len(set(values)) == len(values):
        return rows
    last = {k: i for i, k in enumerate(values)}
    return rows.take(sorted(last.values()))


def dedup_plan_summary(meta: Mapping[str, str], entities_version: int) -> DedupPlanSummary | None:
    """The stored dedup plan's summary, stale when the entities table moved past the version it was made on."""
    raw = meta.get(META_DEDUP_PLAN_SUMMARY)
    if not raw:
        return None
    try:
        summary = DedupPlanSummary.model_validate_json(raw)
    except ValueError:  # a summary from another version of brainops: as if there were no plan
        return None
    return summary.model_copy(update={"stale": summary.entities_version != entities_version})


def normalize_name(name: str) -> str:
    """Case, spacing and punctuation folded away: 'Open-AI ' and 'openai' collide."""
    return re.sub(r"[^0-9a-z]+", "", name.lower())


class BrainStore:
    """One brain: a LanceDB database at `uri` (local path or object-store URI) holding the TABLES."""

    def __init__(self, uri: str) -> None:
        if not uri:
            raise StoreError("brain uri is empty")
        self.uri = str(uri)
        self._db: DBConnection | None = None
        self._tables: dict[str, Table] = {}

    # ------------------------------------------------------------ tables

    @property
    def db(self) -> DBConnection:
        if self._db is None:
            import lancedb

            self._db = lancedb.connect(self.uri)
        return self._db

    def open_or_create(self) -> BrainStore:
        """Create every missing table with its schema; existing tables are left untouched."""
        existing = set(self.table_names())
        for name, schema in TABLES.items():
            if name not in existing:
                self._tables[name] = self.db.create_table(name, schema=schema, exist_ok=True)
        return self

    def table_names(self) -> list[str]:
        return list(self.db.list_tables().tables)

    def exists(self) -> bool:
        """True when the brain has its tables; never creates anything (connect would mkdir a path)."""
        if "://" not in self.uri and not Path(self.uri).exists():
            return False
        return "records" in self.table_names()

    def table(self, name: str) -> Table:
        if name not in TABLES:
            raise StoreError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
        if name not in self._tables:
            try:
                table = self.db.open_table(name)
            except (FileNotFoundError, ValueError) as exc:
                raise StoreError(f"table {name!r} missing in {self.uri}: run `brainops brain seed`") from exc
            except (RuntimeError, OSError) as exc:  # lance's IO errors: a damaged manifest or data file
                first = str(exc).splitlines()[0][:200]
                raise StoreError(f"table {name!r} in {self.uri} cannot be read (corrupt?): {first}") from exc
            declare_primary_key(table, KEYS.get(name, "id"))
            add_missing_columns(table, TABLES[name])
            self._tables[name] = table
        return self._tables[name]

    def fresh(self, name: str) -> Table:
        """The table at its latest version (other processes may have committed since we opened it)."""
        tbl = self.table(name)
        tbl.checkout_latest()
        return tbl

    # ------------------------------------------------------------ writes

    def _as_arrow(self, name: str, rows: pa.Table | Iterable[Mapping[str, Any]]) -> pa.Table:
        if isinstance(rows, pa.Table):
            return rows
        try:
            return pa.Table.from_pylist(list(rows), schema=TABLES[name])
        except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
            raise StoreError(f"rows do not fit table {name!r}: {exc}") from exc

    def add(self, name: str, rows: pa.Table | Iterable[Mapping[str, Any]]) -> int:
        """Append rows in one commit (callers batch: many small appends pile up fragments)."""
        data = self._as_arrow(name, rows)
        if data.num_rows == 0:
            return 0
        tbl = self.table(name)
        with_conflict_retry(lambda: tbl.add(data))
        return data.num_rows

    def upsert(self, name: str, rows: pa.Table | Iterable[Mapping[str, Any]], on: str = "id") -> int:
        """Insert new rows, update matching ones (by `on`), in one merge_insert commit."""
        data = last_row_per_key(self._as_arrow(name, rows), on)
        if data.num_rows == 0:
            return 0
        tbl = self.table(name)

        def merge() -> None:
            tbl.checkout_latest()
            tbl.merge_insert(on).when_matched_update_all().when_not_matched_insert_all().execute(data)

        with_conflict_retry(merge)
        return data.num_rows

    def update_columns(self, name: str, rows: pa.Table, on: str = "id") -> int:
        """Update only the columns present in `rows` for existing keys; never inserts.

        A key given twice keeps its last row: Lance refuses a merge where two source rows hit one target.
        """
        rows = last_row_per_key(rows, on)
        if rows.num_rows == 0:
            return 0
        tbl = self.table(name)

        def merge() -> None:
            tbl.checkout_latest()
            tbl.merge_insert(on).when_matched_update_all().execute(rows)

        with_conflict_retry(merge)
        return rows.num_rows

    # ------------------------------------------------------------ meta

    def meta_get(self, key: str) -> str | None:
        tbl = self.fresh("meta")
        hit = tbl.search().where(f"key = {sql_list([key])}").select(["value"]).limit(1).to_arrow()
        return None if hit.num_rows == 0 else hit.column("value")[0].as_py()

    def meta_all(self, skip: Collection[str] = ()) -> dict[str, str]:
        """Every meta key and value, but those in `skip` (large values a caller does not need)."""
        where = f"key NOT IN ({sql_list(skip)})" if skip else None
        data = self.fresh("meta").to_lance().to_table(columns=["key", "value"], filter=where)
        return dict(zip(data.column("key").to_pylist(), data.column("value").to_pylist(), strict=True))

    def meta_set(self, key: str, value: object) -> None:
        self.meta_set_many({key: value})

    def meta_set_many(self, values: Mapping[str, object]) -> None:
        now = time.time()
        rows = [{"key": k, "value": str(v), "updated_at": now} for k, v in values.items()]
        self.upsert("meta", rows, on="key")

    def meta_float(self, key: str, meta: Mapping[str, str] | None = None) -> float | None:
        raw = meta.get(key) if meta is not None else self.meta_get(key)
        try:
            return None if raw is None else float(raw)
        except ValueError:
            return None

    # ------------------------------------------------------------ maintenance

    def ensure_indexes(self) -> list[str]:
        """Build the scalar indexes that stats and shard filters use; cheap when they exist."""
        from lancedb.index import Bitmap, BTree

        built: list[str] = []
        for name, specs in SCALAR_INDEXES.items():
            tbl = self.fresh(name)
            if tbl.count_rows() == 0:
                continue
            have = {tuple(ix.columns) for ix in tbl.list_indices()}
            for column, kind in specs:
                if (column,) not in have:
                    tbl.create_index(column, config=BTree() if kind == "BTREE" else Bitmap())
                    built.append(f"{name}.{column}")
        return built

    def compact(self, keep_versions_for: timedelta = timedelta(minutes=10)) -> CompactReport:
        """Merge small fragments, refresh indexes, drop versions older than `keep_versions_for`.

        Run off the hot path. Versions younger than the window stay, so concurrent readers keep working.
        """
        started = time.perf_counter()
        removed = duplicates = 0
        for name in TABLES:
            duplicates += self.drop_duplicate_keys(name)
            tbl = self.fresh(name)
            before = len(tbl.list_versions())

            def optimize(t: Table = tbl) -> None:
                t.optimize(cleanup_older_than=keep_versions_for)

            with_conflict_retry(optimize)
            tbl.checkout_latest()
            removed += max(0, before - len(tbl.list_versions()))
        self.ensure_indexes()
        return CompactReport(tuple(TABLES), removed, time.perf_counter() - started, duplicates)

    def drop_duplicate_keys(self, name: str) -> int:
        """Delete rows that repeat an earlier row's key (see brain.lance_ops); returns how many."""
        return drop_repeated_keys(self.table(name), KEYS.get(name, "id"))

    # ------------------------------------------------------------ stats

    def stats(self, now: float | None = None) -> BrainStats:
        """Counts, per-stage backlog and graph health, from filtered counts and meta: no big scans.

        The independent counts run on a small thread pool: lance releases the GIL while it scans.
        """
        from concurrent.futures import ThreadPoolExecutor

        now = time.time() if now is None else now
        tables = {name: self.fresh(name) for name in ("records", "entities", "relationships", "communities")}
        jobs: dict[str, Callable[[], int]] = {
            "records_embed": lambda: tables["records"].count_rows(EMBED_PENDING),
            "entities_embed": lambda: tables["entities"].count_rows(EMBED_PENDING),
            "extract": lambda: tables["records"].count_rows("extracted = false OR extracted IS NULL"),
            "collisions": self._name_collisions,
            "live": lambda: tables["entities"].count_rows(LIVE_ENTITY),
            "communities": lambda: len(self._leaf_community_ids()),
            "covered": self._communities_with_wisdom,
            "wisdom": lambda: self.fresh("wisdom").count_rows(),
        }
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = {name: pool.submit(job) for name, job in jobs.items()}
            meta = self.meta_all(skip=(META_DEDUP_PLAN,))
            last_recluster = self.meta_float(META_LAST_RECLUSTER_AT, meta)
            n_rels = tables["relationships"].count_rows()
            rels_changed = self._relationships_changed(last_recluster, n_rels, meta)
            got = {name: f.result() for name, f in futures.items()}
        base = self._assemble_stats(tables, got, meta, n_rels, rels_changed, last_recluster, now)
        return with_insight_stats(self, base, now)

    def _assemble_stats(
        self,
        tables: Mapping[str, Table],
        got: Mapping[str, int],
        meta: Mapping[str, str],
        n_rels: int,
        rels_changed: int,
        last_recluster: float | None,
        now: float,
    ) -> BrainStats:
        # communities = leaf communities (the finest partition); coarser levels are not counted
        n_live, n_comms, covered = got["live"], got["communities"], got["covered"]
        plan = dedup_plan_summary(meta, tables["entities"].version)
        if plan is not None and not plan.stale:
            candidates = plan.absorbed  # what a dry run on these very entities found
        else:  # an estimate: name collisions, or what the last dry run found if that was more
            candidates = max(got["collisions"], int(self.meta_float(META_DEDUP_CANDIDATES, meta) or 0))
        return BrainStats(
            records=tables["records"].count_rows(),
            entities=tables["entities"].count_rows(),
            relationships=n_rels,
            communities=n_comms,
            wisdom=got["wisdom"],
            pending={
                "embed": got["records_embed"] + got["entities_embed"],
                "embed_records": got["records_embed"],  # the split tells which table an embedding job should take
                "embed_entities": got["entities_embed"],
                "extract": got["extract"],
                "dedup": candidates,
                "recluster": rels_changed,
                "wisdom": max(0, n_comms - covered),
            },
            duplicate_estimate=round(candidates / n_live, 6) if n_live else 0.0,
            duplicate_candidates=candidates,
            relationships_changed_since_recluster=rels_changed,
            community_age_s=None if last_recluster is None else max(0.0, now - last_recluster),
            wisdom_coverage=round(covered / n_comms, 6) if n_comms else 0.0,
            relationship_density=round(n_rels / n_live, 6) if n_live else 0.0,
            live_entities=n_live,
            dedup_plan=plan,
        )

    def _relationships_changed(self, last_recluster: float | None, total: int, meta: Mapping[str, str]) -> int:
        if last_recluster is None:
            return total
        created = self.fresh("relationships").count_rows(f"created_at > {last_recluster!r}")
        rewired = int(self.meta_float(META_REWIRED_SINCE_RECLUSTER, meta) or 0)
        return min(total, created + rewired)

    def _communities_with_wisdom(self) -> int:
        """Current leaf communities that have wisdom (a recluster can retire communities that had some)."""
        ids = self.fresh("wisdom").to_lance().to_table(columns=["community_id"])
        covered = pc.unique(ids.column("community_id").drop_null())
        current = self._leaf_community_ids()
        return int(pc.sum(pc.is_in(current, value_set=covered)).as_py() or 0)

    # ------------------------------------------------------------ communities

    def _leaf_community_ids(self) -> pa.Array:
        """Ids of the communities no other community has as parent (ids and parents only: no members read)."""
        data = self.fresh("communities").to_lance().to_table(columns=["id", "parent"])
        ids = data.column("id").combine_chunks()
        parents = pc.unique(data.column("parent").drop_null())
        return ids.filter(pc.invert(pc.is_in(ids, value_set=parents)))

    def leaf_communities(self) -> list[tuple[str, list[str]]]:
        """(id, members) of the finest level, sorted by id: the leaf communities, those no other community has
        as parent. Together they are the partition (an entity is in at most one) that wisdom summarises, that
        `stats` counts, and that an entity's community label should come from. Coarser levels (level 0 is the
        coarsest; `parent` links a community to the one it splits) are in the same table for who wants them.
        """
        data = self.fresh("communities").to_lance().to_table(columns=["id", "members", "parent"])
        rows = zip(data.column("id").to_pylist(), data.column("members").to_pylist(), strict=True)
        parents = set(data.column("parent").drop_null().to_pylist())
        return sorted((cid, list(members or ())) for cid, members in rows if cid not in parents)

    def _name_collisions(self) -> int:
        """Live entities whose (type, normalized name) another live entity already has (vectorized)."""
        cols = self.fresh("entities").to_lance().to_table(columns=["name", "type"], filter=LIVE_ENTITY)
        if cols.num_rows == 0:
            return 0
        keys = pc.replace_substring_regex(pc.utf8_lower(cols.column("name")), r"[^0-9a-z]+", "")
        table = pa.table({"type": cols.column("type"), "key": keys}).filter(pc.not_equal(keys, ""))
        groups = table.group_by(["type", "key"]).aggregate([]).num_rows
        return table.num_rows - groups
