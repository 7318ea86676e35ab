"""The vector search probe: how fast and how right search over the records is, measured on the brain itself.

A fixed sample of records (chosen once, kept in the meta table under ``META_INDEX_PROBE``) is searched with
their own vectors through the serving path (`search_records`: the ANN index when there is one, with the
configured nprobes and refine factor), timed, and compared with exact search (`bypass_vector_index`).

Exact search costs ~1 s per query on 485K x 384 rows, so exact answers are kept with the probe state and
recomputed only once the table has grown by `truth_drift` since (a few per probe, within its time budget).
Without an index the serving path *is* exact, so its answers are the truth for free. The query record itself
is left out of both answers (it is always its own nearest neighbour).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from brain.lance_ops import sql_list
from core.domain import IndexHealth

if TYPE_CHECKING:
    from lancedb.table import Table

    from brain.store import BrainStore

META_INDEX_PROBE = "index_probe"  # JSON: the sample ids and their exact answers (ProbeState)
VECTOR_COLUMN = "vector"
METRIC: Literal["cosine"] = "cosine"  # the embedder writes unit vectors (brain/embedder.py)
K = 10


@dataclass(frozen=True)
class SearchSettings:
    """How the serving path searches an IVF index: partitions probed, and candidates re-ranked exactly."""

    nprobes: int = 20
    refine_factor: int = 10


@dataclass(frozen=True)
class ProbeSettings:
    queries: int = 32  # size of the fixed sample
    budget_s: float = 2.0  # wall time one probe may take (it stops early and says how many it timed)
    min_rows: int = 5_000  # below this the table is too small for an index to matter: no probe
    truth_drift: float = 0.01  # exact answers are redone once the table grew by this share since


@dataclass
class ProbeState:
    ids: list[str]
    truth: dict[str, list[str]]  # query id -> exact top K (query excluded)
    truth_rows: dict[str, int]  # query id -> table rows when its exact answer was computed

    @classmethod
    def parse(cls, raw: str | None) -> ProbeState | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(list(data["ids"]), dict(data["truth"]), {k: int(v) for k, v in data["truth_rows"].items()})
        except (ValueError, KeyError, TypeError):
            return None  # a state from another version of brainops: pick the sample again

    def dump(self) -> str:
        return json.dumps({"ids": self.ids, "truth": self.truth, "truth_rows": self.truth_rows})


def vector_index(tbl: Table) -> Any | None:
    """The index on records.vector (lancedb IndexConfig), or None."""
    return next((ix for ix in tbl.list_indices() if list(ix.columns) == [VECTOR_COLUMN]), None)


def search_records(
    tbl: Table, vector: Sequence[float] | np.ndarray, k: int, search: SearchSettings, exact: bool = False
) -> Any:
    """The serving path's query builder: cosine top-k, through the index unless `exact`."""
    query: Any = tbl.search(list(vector), vector_column_name=VECTOR_COLUMN)
    query = query.distance_type(METRIC).limit(k)
    query = query.select(["id", "_distance"])
    if exact:
        return query.bypass_vector_index()
    return query.nprobes(search.nprobes).refine_factor(search.refine_factor)


def table_figures(tbl: Table) -> dict[str, Any]:
    """Rows, fragments, versions and the vector index's coverage: metadata only, no scan."""
    stats: Any = tbl.stats()  # a TypedDict-like dict in lancedb 0.40
    frags = stats["fragment_stats"]
    ix = vector_index(tbl)
    figures: dict[str, Any] = {
        "rows": int(stats["num_rows"]),
        "fragments": int(frags["num_fragments"]),
        "small_fragments": int(frags["num_small_fragments"]),
        "versions": len(tbl.list_versions()),
        "indexed": ix is not None,
    }
    if ix is not None:
        ix_stats = tbl.index_stats(ix.name)
        figures["index_type"] = str(ix.index_type)
        if ix_stats is not None:
            figures["indexed_rows"] = int(ix_stats.num_indexed_rows)
            figures["unindexed_rows"] = int(ix_stats.num_unindexed_rows)
    return figures


def probe(
    store: BrainStore, settings: ProbeSettings, search: SearchSettings, now_rows: int | None = None
) -> IndexHealth:
    """One bounded measurement of the records' vector search (see the module docstring)."""
    started = time.perf_counter()
    deadline = started + settings.budget_s
    tbl = store.fresh("records")
    figures = table_figures(tbl)
    rows = figures["rows"]
    if rows < settings.min_rows:
        why = f"{rows:,} records is under the probe's minimum of {settings.min_rows:,}: exact search is fast enough"
        return IndexHealth(skipped=why, **figures)
    state = _state(store, tbl, settings)
    if state is None or not state.ids:
        return IndexHealth(skipped="no embedded records to search with", **figures)
    vectors = _vectors(tbl, state.ids)
    timings: list[float] = []
    answers: dict[str, list[str]] = {}
    changed = False
    for qid in state.ids:
        if time.perf_counter() >= deadline and timings:
            break
        if qid not in vectors:
            continue
        took, got = _timed(tbl, qid, vectors[qid], search, exact=not figures["indexed"])
        timings.append(took)
        answers[qid] = got
        if not figures["indexed"] and not _current(state, qid, rows, settings):  # flat search is exact
            state.truth[qid], state.truth_rows[qid] = got, rows
            changed = True
    changed = _refresh_truth(tbl, state, vectors, rows, settings, deadline, search) or changed
    if changed:  # written only when an exact answer was redone: a probe does not pile up meta versions
        store.meta_set(META_INDEX_PROBE, state.dump())
    current = [q for q in answers if _current(state, q, rows, settings)]
    recall = [len(set(answers[q]) & set(state.truth[q])) / max(1, len(state.truth[q])) for q in current]
    return IndexHealth(
        **figures,
        queries=len(timings),
        p50_ms=round(_percentile(timings, 50), 2) if timings else None,
        p95_ms=round(_percentile(timings, 95), 2) if timings else None,
        recall_at_10=round(sum(recall) / len(recall), 4) if recall else None,
        recall_queries=len(recall),
        probe_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def _state(store: BrainStore, tbl: Table, settings: ProbeSettings) -> ProbeState | None:
    """The persisted sample, or a new one: records with vectors spread over the id space, chosen once."""
    state = ProbeState.parse(store.meta_get(META_INDEX_PROBE))
    if state is not None and len(state.ids) >= settings.queries:
        state.ids = state.ids[: settings.queries]
        return state
    pool = tbl.search().where(f"{VECTOR_COLUMN} IS NOT NULL").select(["id"]).limit(settings.queries * 50)
    ids = sorted(pool.to_arrow().column("id").to_pylist())
    if not ids:
        return None
    step = max(1, len(ids) // settings.queries)
    picked = ids[::step][: settings.queries]
    state = ProbeState(picked, {}, {})
    store.meta_set(META_INDEX_PROBE, state.dump())
    return state


def _vectors(tbl: Table, ids: list[str]) -> dict[str, np.ndarray]:
    data = tbl.search().where(f"id IN ({sql_list(ids)})").select(["id", VECTOR_COLUMN]).limit(len(ids)).to_arrow()
    out = {}
    for qid, vec in zip(data.column("id").to_pylist(), data.column(VECTOR_COLUMN).to_pylist(), strict=True):
        if vec is not None:
            out[qid] = np.asarray(vec, dtype=np.float32)
    return out


def _timed(tbl: Table, qid: str, vector: np.ndarray, search: SearchSettings, exact: bool) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    hits = search_records(tbl, vector, K + 1, search, exact=exact).to_arrow()
    took = (time.perf_counter() - t0) * 1000
    return took, [i for i in hits.column("id").to_pylist() if i != qid][:K]


def _current(state: ProbeState, qid: str, rows: int, settings: ProbeSettings) -> bool:
    at = state.truth_rows.get(qid)
    return qid in state.truth and at is not None and abs(rows - at) <= settings.truth_drift * max(rows, 1)


def _refresh_truth(
    tbl: Table,
    state: ProbeState,
    vectors: dict[str, np.ndarray],
    rows: int,
    settings: ProbeSettings,
    deadline: float,
    search: SearchSettings,
) -> bool:
    """Exact answers for sample queries that have none or an outgrown one, while the budget lasts."""
    changed = False
    for qid in state.ids:
        if qid not in vectors or _current(state, qid, rows, settings):
            continue
        if time.perf_counter() >= deadline:
            break
        _, state.truth[qid] = _timed(tbl, qid, vectors[qid], search, exact=True)
        state.truth_rows[qid] = rows
        changed = True
    return changed


def _percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: with few samples, p95 is the slowest one, never an interpolation below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]
