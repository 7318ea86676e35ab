"""LanceDB write helpers: commit-conflict retry, declared primary keys, repeated-key cleanup.

Declared keys matter because Lance treats two concurrent merge_inserts of the same new key as a conflict
only when the key is declared (lance-format/lance#4585); before that, racing extract workers could store
one relationship twice, and a later update naming it twice is refused as ambiguous.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from brain.schema import PRIMARY_KEY

if TYPE_CHECKING:
    from lancedb.table import Table

T = TypeVar("T")
log = logging.getLogger(__name__)


def _is_conflict(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "conflict" in text or "retryable" in text


def with_conflict_retry(op: Callable[[], T], attempts: int = 8, base_s: float = 0.05) -> T:
    """Run a write; on a commit conflict with a concurrent writer, back off (jittered) and retry."""
    for attempt in range(attempts):
        try:
            return op()
        except Exception as exc:
            if not _is_conflict(exc) or attempt == attempts - 1:
                raise
            time.sleep(base_s * (2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def add_missing_columns(table: Table, schema: pa.Schema) -> list[str]:
    """Brains made before a nullable column joined brain.schema get it on first open, all null.

    Same best-effort rules as declare_primary_key: a handle that may not write still reads.
    """

    def missing() -> list[pa.Field]:
        have = set(table.schema.names)
        return [f for f in schema if f.name not in have and f.nullable]

    def add() -> None:
        table.checkout_latest()
        if fields := missing():
            table.add_columns(fields)

    added = [f.name for f in missing()]
    if not added:
        return []
    try:
        with_conflict_retry(add)
    except Exception as exc:  # reading must not depend on this upgrade succeeding
        log.warning("could not add columns %s to %s: %s", added, table.name, exc)
        return []
    return added


def declare_primary_key(table: Table, key: str) -> None:
    """Brains made before the key was declared in brain.schema get it on first open (one metadata commit).

    Best effort: several handles may race to declare it (each re-checks after a conflict), and a handle
    that may not write (read-only credentials) still reads; only the guard against racing inserts waits.
    """

    def declared() -> bool:
        found = table.schema.field(key).metadata or {}
        return all(found.get(k.encode()) == v.encode() for k, v in PRIMARY_KEY.items())

    def declare() -> None:
        table.checkout_latest()
        if not declared():
            table.update_field_metadata({"path": key, "metadata": PRIMARY_KEY})

    if declared():
        return
    try:
        with_conflict_retry(declare)
    except Exception as exc:  # reading must not depend on this upgrade succeeding
        log.warning("could not declare %s as the key of %s: %s", key, table.name, exc)


def sql_list(values: Iterable[str]) -> str:
    """Strings as a SQL list for lance filters (`id IN (...)`), each quoted with its quotes doubled."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def drop_repeated_keys(tbl: Table, key: str) -> int:
    """Delete rows that repeat an earlier row's key (the lowest row id stays); returns how many.

    Brains written before keys were declared (brain.schema.PRIMARY_KEY) can hold a key twice.
    Rows go by _rowid: an id names both copies. A row id from before a concurrent compaction names no
    row afterwards (fragment ids are never reused), so a stale one deletes nothing.
    """

    def drop() -> int:
        tbl.checkout_latest()
        keys = tbl.search().select([key]).limit(None).to_arrow().column(key)
        counts = pc.value_counts(keys)
        repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
        if len(repeated) == 0:
            return 0
        query = tbl.search().where(f"{key} IN ({sql_list(repeated.to_pylist())})").select([key])
        rows = query.with_row_id(True).limit(None).to_arrow().sort_by("_rowid").to_pylist()
        first = {r[key]: r["_rowid"] for r in reversed(rows)}  # the lowest row id of each key stays
        extra = [r["_rowid"] for r in rows if first[r[key]] != r["_rowid"]]
        for start in range(0, len(extra), 1000):
            tbl.delete(f"_rowid IN ({', '.join(map(str, extra[start : start + 1000]))})")
        return len(extra)

    return with_conflict_retry(drop)
