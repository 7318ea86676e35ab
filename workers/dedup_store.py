"""Dedup store side: load live entities, embed missing names, plan merges, apply them reversibly.

A run loads the live entities (merged_into null), embeds the names that have no current vector,
matches candidates (workers.dedup_match), groups them without transitive chains, picks a survivor per
group, and applies all merges in three batched commits: merge_log rows first (so a crash midway can
still be undone), then the repointed relationships, then the absorbed entities' merged_into.
Absorbed rows are kept, never deleted; `workers.dedup_undo.undo_merge` restores them exactly.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from brain.schema import EMBED_DIM, MERGE_LOG, VECTOR
from brain.store import (
    LIVE_ENTITY,
    META_DEDUP_AT,
    META_DEDUP_CANDIDATES,
    META_REWIRED_SINCE_RECLUSTER,
    BrainStore,
)
from workers.dedup_match import Adjudicator, MatchConfig, MatchResult, Pair, choose_survivor, group_pairs, match
from workers.er_compare import ERTable, build_table

ProgressHook = Callable[[int, int], None]  # (done, total) while embedding


class Encoder(Protocol):
    """Unit vectors for texts; reports (done, total) to `progress` as it goes when given one."""

    def __call__(self, texts: list[str], progress: ProgressHook | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class LiveEntities:
    """Column arrays of the live entities; row i of each belongs to ids[i]."""

    ids: list[str]
    names: list[str]
    types: list[str]
    descriptions: list[str | None]
    attributes: list[str | None]
    created_at: np.ndarray
    content_hash: list[str | None]
    truth: list[str | None]
    vectors: np.ndarray  # (n, 384) float32, zero rows where missing
    has_vector: np.ndarray  # bool mask
    absorbed: list[Absorbed] = field(default_factory=list)  # merged earlier, each with its live survivor


@dataclass(frozen=True)
class Absorbed:
    """An entity an earlier pass merged: a new candidate for its survivor must match it too."""

    id: str
    survivor: str
    name: str
    type: str
    description: str | None
    attributes: str | None


@dataclass(frozen=True)
class PlannedMerge:
    kept_id: str
    kept_name: str
    absorbed_ids: tuple[str, ...]
    absorbed_names: tuple[str, ...]
    score: float  # weakest pair in the group (match probability)
    reason: str  # distinct pair reasons, e.g. "exact+typo"
    evidence: tuple[dict[str, Any], ...] = ()  # per matched pair: names, probability, levels, adjudication


@dataclass(frozen=True)
class Quality:
    precision: float
    recall: float
    true_merges: int  # absorbed rows whose truth_cluster equals the survivor's
    false_merges: int
    expected_merges: int  # sum over truth clusters of (live size - 1)


@dataclass(frozen=True)
class DedupReport:
    live_entities: int
    embedded: int
    candidate_pairs: int
    merges: tuple[PlannedMerge, ...]
    merge_ids: tuple[str, ...]  # empty on a dry run
    relationships_repointed: int
    dry_run: bool
    quality: Quality | None  # against truth_cluster, when the brain has ground truth
    timings: dict[str, float] = field(default_factory=dict)
    model: dict[str, list[float]] = field(default_factory=dict)  # log2(m/u) per comparison level, as fitted
    adjudications: tuple[dict[str, Any], ...] = ()

    @property
    def absorbed(self) -> int:
        return sum(len(m.absorbed_ids) for m in self.merges)


# ---------------------------------------------------------------- loading and embedding


ENTITY_TEXT = ["id", "name", "type", "description", "attributes"]


def load_live_entities(store: BrainStore) -> LiveEntities:
    cols = [*ENTITY_TEXT, "created_at", "content_hash", "embedded_hash", "truth_cluster", "vector"]
    data = store.fresh("entities").search().where(LIVE_ENTITY).select(cols).limit(None).to_arrow()
    data = data.sort_by("id")  # stable row order -> deterministic plans
    content = data.column("content_hash").to_pylist()
    has_vector = np.array(
        [
            v is not None and e is not None and e == c
            for v, e, c in zip(
                data.column("vector").is_valid().to_pylist(),
                data.column("embedded_hash").to_pylist(),
                content,
                strict=True,
            )
        ],
        dtype=bool,
    )
    return LiveEntities(
        ids=data.column("id").to_pylist(),
        names=[n or "" for n in data.column("name").to_pylist()],
        types=[t or "" for t in data.column("type").to_pylist()],
        descriptions=data.column("description").to_pylist(),
        attributes=data.column("attributes").to_pylist(),
        created_at=np.nan_to_num(np.asarray(data.column("created_at").to_numpy(zero_copy_only=False), float)),
        content_hash=content,
        truth=data.column("truth_cluster").to_pylist(),
        vectors=_vector_matrix(data.column("vector")),
        has_vector=has_vector,
        absorbed=_absorbed(store, set(data.column("id").to_pylist())),
    )


def _absorbed(store: BrainStore, live: set[str]) -> list[Absorbed]:
    """Merged entities (not undone) with the live entity their merged_into chain ends at."""
    data = store.fresh("entities").search().where("merged_into IS NOT NULL")
    rows = data.select([*ENTITY_TEXT, "merged_into"]).limit(None).to_arrow().sort_by("id").to_pylist()
    parent = {r["id"]: r["merged_into"] for r in rows}
    out = []
    for r in rows:
        node, seen = r["merged_into"], {r["id"]}
        while node in parent and node not in seen:
            seen.add(node)
            node = parent[node]
        if node in live:
            out.append(Absorbed(r["id"], node, r["name"] or "", r["type"] or "", r["description"], r["attributes"]))
    return out


def _vector_matrix(column: pa.ChunkedArray) -> np.ndarray:
    out = np.zeros((len(column), EMBED_DIM), dtype=np.float32)
    arr = column.combine_chunks()
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if valid.any():
        flat = arr.filter(pa.array(valid)).flatten().to_numpy(zero_copy_only=False)
        out[valid] = np.asarray(flat, dtype=np.float32).reshape(-1, EMBED_DIM)
    return out


def default_encoder() -> Encoder:
    """The shared embedder (brain.embedder): CUDA when present, CPU here."""
    from brain.embedder import load_embedder

    embedder = load_embedder(device="auto", dtype="auto")

    def encode(texts: list[str], progress: ProgressHook | None = None) -> np.ndarray:
        return np.asarray(embedder.encode(texts, batch_size=512, progress=progress), dtype=np.float32)

    return encode


def embed_missing(entities: LiveEntities, encoder: Encoder, progress: ProgressHook | None = None) -> np.ndarray:
    """Fill the vectors of rows without a current one (in place); returns the row indexes embedded.

    Identical names are embedded once, and all in one call, so the encoder can batch them by length.
    """
    missing = np.flatnonzero(~entities.has_vector)
    unique = sorted({entities.names[i] for i in missing})
    vec_of = dict(zip(unique, encoder(unique, progress), strict=True))
    for i in missing:
        entities.vectors[i] = vec_of[entities.names[i]]
    entities.has_vector[missing] = True
    return missing


def store_vectors(store: BrainStore, entities: LiveEntities, rows: np.ndarray) -> int:
    """Write freshly made vectors back (one commit), marked with the content hash they came from."""
    if len(rows) == 0:
        return 0
    flat = pa.array(entities.vectors[rows].reshape(-1), pa.float32())
    table = pa.table(
        {
            "id": [entities.ids[i] for i in rows],
            "vector": pa.FixedSizeListArray.from_arrays(flat, EMBED_DIM).cast(VECTOR),
            "embedded_hash": [entities.content_hash[i] for i in rows],
        }
    )
    return store.update_columns("entities", table)


# ---------------------------------------------------------------- planning


def relationship_graph(store: BrainStore) -> tuple[Counter[str], dict[str, frozenset[str]]]:
    """One read of the relationships: each entity's degree (relationship rows, which picks survivors) and
    its neighbour set (the other endpoints, which matching compares)."""
    rels = store.fresh("relationships").search().select(["src", "dst"]).limit(None).to_arrow()
    srcs, dsts = rels.column("src").to_pylist(), rels.column("dst").to_pylist()
    neighbours: dict[str, set[str]] = {}
    for src, dst in zip(srcs, dsts, strict=True):
        if src and dst and src != dst:
            neighbours.setdefault(src, set()).add(dst)
            neighbours.setdefault(dst, set()).add(src)
    return Counter(srcs + dsts), {k: frozenset(v) for k, v in neighbours.items()}


def community_labels(store: BrainStore, ids: Sequence[str]) -> list[str | None]:
    """The finest-level community (from the last recluster) each entity belongs to, or None."""
    label = {m: cid for cid, members in store.leaf_communities() for m in members}
    return [label.get(i) for i in ids]


def resolution_table(
    entities: LiveEntities,
    neighbours: dict[str, frozenset[str]],
    context: Sequence[str | None] | None,
    config: MatchConfig,
) -> tuple[ERTable, dict[int, list[int]]]:
    """Rows for matching: the live entities, then the absorbed ones (with their survivor's neighbourhood)."""
    row_of = {e: i for i, e in enumerate(entities.ids)}
    labels = list(context) if context is not None else [None] * len(entities.ids)
    absorbed: dict[int, list[int]] = {}
    for k, a in enumerate(entities.absorbed):
        absorbed.setdefault(row_of[a.survivor], []).append(len(entities.ids) + k)
    survivors = [row_of[a.survivor] for a in entities.absorbed]
    table = build_table(
        names=[*entities.names, *(a.name for a in entities.absorbed)],
        types=[*entities.types, *(a.type for a in entities.absorbed)],
        descriptions=[*entities.descriptions, *(a.description for a in entities.absorbed)],
        attributes=[*entities.attributes, *(a.attributes for a in entities.absorbed)],
        neighbours=[neighbours.get(e, frozenset()) for e in [*entities.ids, *(entities.ids[s] for s in survivors)]],
        communities=[*labels, *(labels[s] for s in survivors)],
        type_aliases=config.aliases,
        context_keys=config.context_keys,
    )
    return table, absorbed


def plan_merges(
    entities: LiveEntities,
    degree: Counter[str],
    config: MatchConfig,
    context: Sequence[str | None] | None = None,
    neighbours: dict[str, frozenset[str]] | None = None,
    adjudicate: Adjudicator | None = None,
) -> tuple[list[PlannedMerge], MatchResult]:
    """Groups -> merges with a deterministic survivor, and the match result they came from."""
    table, absorbed = resolution_table(entities, neighbours or {}, context, config)
    vectors = entities.vectors if entities.has_vector.all() else None
    result = match(table, len(entities.ids), absorbed, vectors, config, adjudicate)
    by_pair = {(p.a, p.b): p for p in result.pairs}
    rel_counts = np.array([degree.get(i, 0) for i in entities.ids])
    merges = []
    for group in group_pairs(result.pairs, len(entities.ids)):
        kept = choose_survivor(group, rel_counts, entities.created_at, entities.ids)
        absorbed_rows = [m for m in group if m != kept]
        inner = [by_pair[(min(x, y), max(x, y))] for i, x in enumerate(group) for y in group[i + 1 :]]
        merges.append(_planned(entities, kept, absorbed_rows, inner))
    return merges, result


def _planned(entities: LiveEntities, kept: int, absorbed: Sequence[int], inner: Sequence[Pair]) -> PlannedMerge:
    return PlannedMerge(
        kept_id=entities.ids[kept],
        kept_name=entities.names[kept],
        absorbed_ids=tuple(entities.ids[m] for m in absorbed),
        absorbed_names=tuple(entities.names[m] for m in absorbed),
        score=min(p.score for p in inner),
        reason="+".join(sorted({p.reason for p in inner})),
        evidence=tuple(dict(p.evidence) for p in inner),
    )


def score_against_truth(entities: LiveEntities, merges: Sequence[PlannedMerge]) -> Quality | None:
    """Precision/recall of the absorbed rows against `truth_cluster` (None when the brain has no truth)."""
    if any(t is None for t in entities.truth):
        return None
    truth = dict(zip(entities.ids, entities.truth, strict=True))
    good = sum(truth[a] == truth[m.kept_id] for m in merges for a in m.absorbed_ids)
    made = sum(len(m.absorbed_ids) for m in merges)
    expected = sum(c - 1 for c in Counter(entities.truth).values())
    return Quality(
        precision=good / made if made else 1.0,
        recall=good / expected if expected else 1.0,
        true_merges=good,
        false_merges=made - good,
        expected_merges=expected,
    )


# ---------------------------------------------------------------- applying


def apply_merges(store: BrainStore, merges: Sequence[PlannedMerge], now: float | None = None) -> tuple[list[str], int]:
    """Write every merge in three batched commits; returns (merge ids, relationships repointed)."""
    if not merges:
        return [], 0
    now = time.time() if now is None else now
    survivor = {a: m.kept_id for m in merges for a in m.absorbed_ids}
    rels = store.fresh("relationships").search().select(["id", "src", "dst"]).limit(None).to_arrow()
    changes: dict[str, list[dict[str, str]]] = {m.kept_id: [] for m in merges}
    rows: dict[str, tuple[str, str]] = {}  # id -> (src, dst); a brain from before declared keys may repeat an id
    for rid, src, dst in zip(*(rels.column(c).to_pylist() for c in ("id", "src", "dst")), strict=True):
        new_src, new_dst = survivor.get(src, src), survivor.get(dst, dst)
        if (new_src, new_dst) == (src, dst) or rid in rows:
            continue
        rows[rid] = (new_src, new_dst)
        # One entry per changed endpoint, filed under the merge that changed it (src and dst may differ).
        for end, old, new in (("src", src, new_src), ("dst", dst, new_dst)):
            if old != new:
                changes[new].append({"id": rid, "end": end, "old": old, "new": new})
    merge_ids = [f"merge-{uuid.uuid4().hex[:12]}" for _ in merges]
    log = [_log_row(mid, m, changes[m.kept_id], now) for mid, m in zip(merge_ids, merges, strict=True)]
    store.add("merge_log", pa.Table.from_pylist(log, schema=MERGE_LOG))
    if rows:
        srcs, dsts = (list(c) for c in zip(*rows.values(), strict=True))
        store.update_columns("relationships", pa.table({"id": list(rows), "src": srcs, "dst": dsts}))
    absorbed = list(survivor)
    store.update_columns("entities", pa.table({"id": absorbed, "merged_into": [survivor[a] for a in absorbed]}))
    return merge_ids, len(rows)


def _log_row(merge_id: str, merge: PlannedMerge, rel_changes: list[dict[str, str]], now: float) -> dict[str, object]:
    payload = {
        # Prior values of exactly the columns a merge changes; undo writes them back.
        "entities": [{"id": a, "merged_into": None} for a in merge.absorbed_ids],
        "relationships": rel_changes,
    }
    return {
        "merge_id": merge_id,
        "created_at": now,
        "kept_id": merge.kept_id,
        "absorbed_ids": list(merge.absorbed_ids),
        "score": merge.score,
        "reason": merge.reason,
        "payload": json.dumps(payload, separators=(",", ":")),
        "evidence": json.dumps(list(merge.evidence), separators=(",", ":"), default=str),
        "undone_at": None,
    }


def record_run_meta(store: BrainStore, report: DedupReport) -> None:
    values: dict[str, object] = {META_DEDUP_AT: time.time(), META_DEDUP_CANDIDATES: report.absorbed}
    if not report.dry_run:
        values[META_DEDUP_CANDIDATES] = 0  # everything found was merged
        rewired = store.meta_float(META_REWIRED_SINCE_RECLUSTER) or 0
        values[META_REWIRED_SINCE_RECLUSTER] = int(rewired) + report.relationships_repointed
    store.meta_set_many(values)
