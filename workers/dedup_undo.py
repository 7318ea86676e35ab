"""Undo merges from their merge_log payloads: entity rows and relationship endpoints go back exactly.

Any number of merges is undone in one pass: newest first, each checked and applied against an in-memory
copy of the rows it touches, then every change is written in one commit per table. The result is the same
as undoing them one at a time in that order, without a LanceDB commit per merge.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from brain.lance_ops import sql_list
from brain.store import META_REWIRED_SINCE_RECLUSTER, BrainStore

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
    return undo_merges(store, [merge_id])[0]


def undo_merges(store: BrainStore, merge_ids: Sequence[str]) -> list[UndoResult]:
    """Undo several merges newest first (a later merge on top of an earlier one in the list goes first).

    Returns one result per id, in the order given; a merge that conflicts is skipped and the rest go on.
    """
    logs = {r["merge_id"]: r for r in _rows_by_id(store, "merge_log", list(dict.fromkeys(merge_ids)), key="merge_id")}
    results: dict[str, UndoResult] = {}
    todo = []
    for merge_id in dict.fromkeys(merge_ids):
        row = logs.get(merge_id)
        if row is None:
            results[merge_id] = UndoResult(merge_id, "not_found", f"no merge {merge_id!r} in merge_log")
        elif row["undone_at"] is not None:
            results[merge_id] = UndoResult(merge_id, "already_undone", f"undone at {row['undone_at']:.0f}")
        else:
            todo.append((row, json.loads(row["payload"])))
    todo.sort(key=lambda item: (-item[0]["created_at"], item[0]["merge_id"]))
    state = _State.load(store, [payload for _, payload in todo], [row["kept_id"] for row, _ in todo])
    for row, payload in todo:
        results[row["merge_id"]] = state.undo(row["merge_id"], row["kept_id"], payload)
    state.write(store, [r.merge_id for r in results.values() if r.ok])
    return [results[m] for m in merge_ids]


RUN_META_PREFIX = "dedup_run."  # + a live run's plan hash: the created_at its merge_log rows share


def record_run(store: BrainStore, plan: str, created_at: float) -> None:
    """Name a live run by the plan it merged (its id: known to the action before it runs)."""
    store.meta_set(RUN_META_PREFIX + plan, repr(created_at))


def run_merge_ids(store: BrainStore, plan: str) -> list[str] | None:
    """The merges of the live run that merged `plan`, undone or not; None when no run merged it."""
    stamp = store.meta_float(RUN_META_PREFIX + plan)
    if stamp is None:
        return None
    table = store.fresh("merge_log").search().select(["merge_id", "created_at"]).limit(None).to_arrow()
    return [r["merge_id"] for r in table.to_pylist() if r["created_at"] == stamp]


def undo_run(store: BrainStore, plan: str) -> str:
    """Undo every merge of that run still live (the `undo_dedup` action); raises when there is no such run or a
    merge of it conflicts with later changes."""
    ids = run_merge_ids(store, plan)
    if ids is None:
        raise ValueError(f"no live dedup run merged plan {plan[:12]}")
    results = undo_merges(store, ids)
    done = sum(r.ok for r in results)
    gone = sum(r.status == "already_undone" for r in results)
    bad = [f"{r.merge_id}: {r.status}: {r.detail}" for r in results if r.status in ("conflict", "not_found")]
    if bad:
        raise RuntimeError(f"undid {done} of {len(ids)} merges of run {plan[:12]}; " + "; ".join(bad[:3]))
    return f"undid {done} merges of dedup run {plan[:12]}" + (f" ({gone} were undone before)" if gone else "")


def last_run_merge_ids(store: BrainStore) -> list[str]:
    """The merges of the newest dedup run that are not undone yet (one run writes one created_at)."""
    live = store.fresh("merge_log").search().where("undone_at IS NULL").select(["merge_id", "created_at"])
    table = live.limit(None).to_arrow()
    if table.num_rows == 0:
        return []
    newest = max(table.column("created_at").to_pylist())
    return [r["merge_id"] for r in table.to_pylist() if r["created_at"] == newest]


class _State:
    """The entity and relationship rows the merges touch, changed in memory until `write`."""

    def __init__(self, into: dict[str, str | None], rels: dict[str, dict[str, Any]]) -> None:
        self.into = into  # entity id -> merged_into; a missing id is a deleted row
        self.rels = rels
        self.dirty_entities: set[str] = set()
        self.dirty_rels: set[str] = set()

    @classmethod
    def load(cls, store: BrainStore, payloads: list[dict], kept_ids: list[str]) -> _State:
        entity_ids = sorted(set(kept_ids) | {e["id"] for p in payloads for e in p["entities"]})
        rel_ids = sorted({c["id"] for p in payloads for c in p["relationships"]})
        into = {r["id"]: r["merged_into"] for r in _rows_by_id(store, "entities", entity_ids, ["id", "merged_into"])}
        rels = {r["id"]: r for r in _rows_by_id(store, "relationships", rel_ids, ["id", "src", "dst"])}
        return cls(into, rels)

    def undo(self, merge_id: str, kept: str, payload: dict) -> UndoResult:
        conflict = self._conflict(kept, payload["entities"])
        if conflict:
            return UndoResult(merge_id, "conflict", conflict)
        restored_rels = 0
        for change in payload["relationships"]:
            rel = self.rels.get(change["id"])
            if rel is not None and rel[change["end"]] == change["new"]:
                rel[change["end"]] = change["old"]
                self.dirty_rels.add(change["id"])
                restored_rels += 1
        for entity in payload["entities"]:
            self.into[entity["id"]] = entity["merged_into"]
            self.dirty_entities.add(entity["id"])
        entities = len(payload["entities"])
        return UndoResult(merge_id, "undone", f"restored {entities} entities", entities, restored_rels)

    def _conflict(self, kept: str, prior: list[dict]) -> str | None:
        if kept not in self.into:
            return f"survivor {kept} no longer exists"
        if self.into[kept] is not None:
            return f"survivor {kept} was merged into {self.into[kept]} since: undo that merge first"
        for entity in prior:
            now_into = self.into.get(entity["id"])
            if now_into != kept:
                return f"entity {entity['id']} now points to {now_into!r}, not {kept}"
        return None

    def write(self, store: BrainStore, undone: list[str]) -> None:
        if not undone:
            return
        rels = [self.rels[i] for i in sorted(self.dirty_rels)]
        if rels:
            columns = {c: [r[c] for r in rels] for c in ("id", "src", "dst")}
            store.update_columns("relationships", pa.table(columns))
        ids = sorted(self.dirty_entities)
        merged_into = pa.array([self.into[i] for i in ids], pa.string())
        store.update_columns("entities", pa.table({"id": ids, "merged_into": merged_into}))
        stamps = pa.array([time.time()] * len(undone), pa.float64())
        store.update_columns("merge_log", pa.table({"merge_id": undone, "undone_at": stamps}), on="merge_id")
        rewired = int(store.meta_float(META_REWIRED_SINCE_RECLUSTER) or 0)
        store.meta_set(META_REWIRED_SINCE_RECLUSTER, rewired + len(rels))


def _rows_by_id(
    store: BrainStore, table: str, ids: list[str], columns: list[str] | None = None, key: str = "id"
) -> list[dict]:
    out: list[dict] = []
    for start in range(0, len(ids), 500):  # keep the IN list of one query bounded
        query = store.fresh(table).search().where(f"{key} IN ({sql_list(ids[start : start + 500])})")
        if columns is not None:
            query = query.select(columns)
        out.extend(query.limit(None).to_arrow().to_pylist())
    return out
