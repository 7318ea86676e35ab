"""Undo one merge from its merge_log payload: entity rows and relationship endpoints go back exactly."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from workers.store import META_REWIRED_SINCE_RECLUSTER, BrainStore

UndoStatus = Literal["undone", "not_found", "already_undone", "conflict"]


@dataclass(frozen=True)
class UndoResult:
    merge_id: str
    status: UndoStatus
    detail: str = ""
    entities_restored: int = 0
    relationships_restored: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "undone"


def undo_merge(store: BrainStore, merge_id: str) -> UndoResult:
    """Restore the absorbed rows' merged_into and every endpoint the merge repointed, then mark it undone.

    Refuses (status "conflict", nothing written) when later changes sit on top of the merge: the survivor
    was itself merged since, or an absorbed row now points elsewhere. Undo the later merge first.
    """
    log = store.fresh("merge_log").search().where(f"merge_id = '{_quote(merge_id)}'").limit(1).to_arrow()
    if log.num_rows == 0:
        return UndoResult(merge_id, "not_found", f"no merge {merge_id!r} in merge_log")
    row = log.to_pylist()[0]
    if row["undone_at"] is not None:
        return UndoResult(merge_id, "already_undone", f"undone at {row['undone_at']:.0f}")
    payload = json.loads(row["payload"])
    kept = row["kept_id"]
    conflict = _conflict(store, kept, payload)
    if conflict:
        return UndoResult(merge_id, "conflict", conflict)
    restored_rels = _restore_relationships(store, payload["relationships"])
    prior = payload["entities"]
    store.update_columns(
        "entities",
        pa.table(
            {"id": [e["id"] for e in prior], "merged_into": pa.array([e["merged_into"] for e in prior], pa.string())}
        ),
    )
    store.update_columns("merge_log", pa.table({"merge_id": [merge_id], "undone_at": [time.time()]}), on="merge_id")
    rewired = int(store.meta_float(META_REWIRED_SINCE_RECLUSTER) or 0)
    store.meta_set(META_REWIRED_SINCE_RECLUSTER, rewired + restored_rels)
    return UndoResult(merge_id, "undone", f"restored {len(prior)} entities", len(prior), restored_rels)


def _conflict(store: BrainStore, kept: str, payload: dict) -> str | None:
    ids = [kept] + [e["id"] for e in payload["entities"]]
    rows = _rows_by_id(store, "entities", ids, ["id", "merged_into"])
    if kept not in rows:
        return f"survivor {kept} no longer exists"
    if rows[kept]["merged_into"] is not None:
        return f"survivor {kept} was merged into {rows[kept]['merged_into']} since: undo that merge first"
    for e in payload["entities"]:
        now_into = rows.get(e["id"], {}).get("merged_into")
        if now_into != kept:
            return f"entity {e['id']} now points to {now_into!r}, not {kept}"
    return None


def _restore_relationships(store: BrainStore, changes: list[dict[str, str]]) -> int:
    """Put back each endpoint that still holds the value the merge wrote; returns rows written."""
    if not changes:
        return 0
    current = _rows_by_id(store, "relationships", sorted({c["id"] for c in changes}), ["id", "src", "dst"])
    for c in changes:
        rel = current.get(c["id"])
        if rel is not None and rel[c["end"]] == c["new"]:
            rel[c["end"]] = c["old"]
    rows = list(current.values())
    store.update_columns(
        "relationships",
        pa.table({"id": [r["id"] for r in rows], "src": [r["src"] for r in rows], "dst": [r["dst"] for r in rows]}),
    )
    return len(rows)


def _rows_by_id(store: BrainStore, table: str, ids: list[str], columns: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for start in range(0, len(ids), 500):  # keep the IN list of one query bounded
        chunk = ", ".join(f"'{_quote(i)}'" for i in ids[start : start + 500])
        data = store.fresh(table).search().where(f"id IN ({chunk})").select(columns).limit(None).to_arrow()
        out.update({r["id"]: r for r in data.to_pylist()})
    return out


def _quote(value: str) -> str:
    return value.replace("'", "''")
