"""Pure, deterministic planning of the synthetic brain (`brain.seed` is the public entry point).

Everything here builds ground truth and Arrow tables without touching a store; `brain.seed_write` writes
them and `brain.seed.seed_brain` ties the two together.
"""

from __future__ import annotations

import hashlib
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa

from brain import schema
from brain import seed_vocab as V
from brain.seed_names import NamedEntity, canonical_entities, plant_duplicates

Scale = Literal["small", "seed"]
DAY = 86_400.0


@dataclass(frozen=True)
class ScaleSpec:
    records: int
    entities: int  # including duplicates and decoys
    relationships: int
    communities: int
    duplicate_rate: float
    decoy_pairs: int
    near_miss_pairs: int
    known_abbreviations: int
    batch_rows: int = 50_000


SCALES: dict[str, ScaleSpec] = {
    "small": ScaleSpec(2_000, 300, 330, 60, 0.08, 8, 8, 6, batch_rows=2_000),
    "seed": ScaleSpec(485_848, 21_138, 21_008, 4_231, 0.009, 60, 120, 16),
}
CROSS_EDGE_SHARE = 0.03
STALE_SHARE = 0.005  # processed records whose text changed after embedding
WISDOM_SHARE = 0.85
NEW_EDGE_SHARE = 0.04  # relationships created after the last recluster
RECLUSTER_AGE_S = 6 * 3600.0


@dataclass(frozen=True)
class PlantedDuplicate:
    duplicate_id: str
    original_id: str
    kind: str
    duplicate_name: str
    original_name: str


@dataclass(frozen=True)
class EntityPlan:
    """Ground truth: every entity row, plus the pairs a dedup must (and must not) merge."""

    ids: tuple[str, ...]
    names: tuple[str, ...]
    types: tuple[str, ...]
    truth: tuple[str, ...]
    community: tuple[int, ...]  # planted community index per entity
    duplicates: tuple[PlantedDuplicate, ...]
    decoys: tuple[tuple[str, str], ...]
    near_misses: tuple[tuple[str, str], ...]
    n_communities: int

    def communities(self) -> list[list[str]]:
        groups: list[list[str]] = [[] for _ in range(self.n_communities)]
        for ent_id, com in zip(self.ids, self.community, strict=True):
            groups[com].append(ent_id)
        return groups


@dataclass(frozen=True)
class SeedReport:
    uri: str
    scale: str
    seed: int
    records: int
    entities: int
    relationships: int
    communities: int
    wisdom: int
    duplicates: int
    duplicate_kinds: dict[str, int]
    decoy_pairs: int
    near_miss_pairs: int
    records_pending_embed: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def content_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def spec_for(scale: str) -> ScaleSpec:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    return SCALES[scale]


def plan_entities(scale: str, seed: int = 0) -> EntityPlan:
    spec = spec_for(scale)
    rng = random.Random(seed)
    n_dups = round(spec.entities * spec.duplicate_rate)
    canon, maker = canonical_entities(
        rng, spec.entities - n_dups, spec.decoy_pairs, spec.near_miss_pairs, spec.known_abbreviations
    )
    dups = plant_duplicates(rng, canon, maker, n_dups)
    canon_community = _assign_communities(rng, len(canon), spec.communities)
    rows: list[tuple[NamedEntity, int]] = [(e, canon_community[i]) for i, e in enumerate(canon)]
    rows += [(d, canon_community[d.original or 0]) for d in dups]
    order = list(range(len(rows)))
    rng.shuffle(order)  # ids must not reveal which rows are duplicates
    id_of_row = {row: f"ent-{pos:06d}" for pos, row in enumerate(order)}
    ordered = [rows[r] for r in order]
    canon_id = {i: id_of_row[i] for i in range(len(canon))}
    return EntityPlan(
        ids=tuple(id_of_row[r] for r in order),
        names=tuple(e.name for e, _ in ordered),
        types=tuple(e.type for e, _ in ordered),
        truth=tuple(f"tc-{e.truth:06d}" for e, _ in ordered),
        community=tuple(c for _, c in ordered),
        duplicates=tuple(
            PlantedDuplicate(
                id_of_row[len(canon) + j],
                canon_id[d.original or 0],
                d.kind or "",
                d.name,
                canon[d.original or 0].name,
            )
            for j, d in enumerate(dups)
        ),
        decoys=_pairs(canon, canon_id, "decoy"),
        near_misses=_pairs(canon, canon_id, "near_miss"),
        n_communities=spec.communities,
    )


def _pairs(canon: list[NamedEntity], canon_id: dict[int, str], role: str) -> tuple[tuple[str, str], ...]:
    positions = [i for i, e in enumerate(canon) if e.role == role]
    return tuple((canon_id[a], canon_id[b]) for a, b in zip(positions[::2], positions[1::2], strict=True))


def _assign_communities(rng: random.Random, n: int, k: int) -> list[int]:
    """Community index per canonical entity: every community gets >= 2 members, sizes vary."""
    if n < 2 * k:
        raise ValueError(f"{n} entities cannot fill {k} communities of at least 2")
    np_rng = np.random.default_rng(rng.randrange(2**32))
    extra = np_rng.multinomial(n - 2 * k, np_rng.dirichlet(np.full(k, 4.0)))
    labels = np.repeat(np.arange(k), 2 + extra).tolist()
    rng.shuffle(labels)
    return labels


# ---------------------------------------------------------------- relationships

REL_TYPES = {
    ("person", "organization"): "works_at",
    ("person", "project"): "leads",
    ("person", "technology"): "uses",
    ("organization", "product"): "develops",
    ("organization", "place"): "located_in",
    ("product", "technology"): "built_on",
    ("project", "technology"): "uses",
}


def plan_relationships(plan: EntityPlan, spec: ScaleSpec, seed: int, now: float) -> pa.Table:
    rng = random.Random(seed + 1)
    members = plan.communities()
    dup_ids = {d.duplicate_id for d in plan.duplicates}
    edges: set[tuple[int, int]] = set()
    index = {ent_id: i for i, ent_id in enumerate(plan.ids)}
    for group in members:
        canon = [index[m] for m in group if m not in dup_ids]
        for j in range(1, len(canon)):
            edges.add((canon[j], canon[rng.randrange(j)]))
    for dup in plan.duplicates:
        peers = [index[m] for m in members[plan.community[index[dup.duplicate_id]]] if m not in dup_ids]
        others = [p for p in peers if p != index[dup.original_id]] or peers
        edges.add((index[dup.duplicate_id], rng.choice(others)))
    n_cross = round(spec.relationships * CROSS_EDGE_SHARE)
    _add_random_edges(rng, edges, members, index, spec.relationships - n_cross, intra=True)
    _add_random_edges(rng, edges, members, index, spec.relationships, intra=False)
    return _relationship_table(rng, plan, sorted(edges), now)


def _add_random_edges(
    rng: random.Random,
    edges: set[tuple[int, int]],
    members: list[list[str]],
    index: dict[str, int],
    target: int,
    intra: bool,
) -> None:
    big = [g for g in members if len(g) >= 3]
    # Bigger communities get more extra edges: a sparse tree is what Leiden splits wrongly.
    big_weights = [len(g) for g in big]
    for _ in range(20 * max(0, target - len(edges))):
        if len(edges) >= target:
            return
        if intra:
            a, b = rng.sample(rng.choices(big, weights=big_weights)[0], 2)
        else:
            ga, gb = rng.sample(members, 2)
            a, b = rng.choice(ga), rng.choice(gb)
        pair = (index[a], index[b])
        if (pair[1], pair[0]) not in edges:
            edges.add(pair)


def _relationship_table(rng: random.Random, plan: EntityPlan, edges: list[tuple[int, int]], now: float) -> pa.Table:
    last_recluster = now - RECLUSTER_AGE_S
    rows = []
    for n, (a, b) in enumerate(edges):
        same = plan.community[a] == plan.community[b]
        fresh = rng.random() < NEW_EDGE_SHARE
        created = rng.uniform(last_recluster, now) if fresh else rng.uniform(now - 60 * DAY, last_recluster)
        rows.append(
            {
                "id": f"rel-{n:06d}",
                "src": plan.ids[a],
                "dst": plan.ids[b],
                "type": REL_TYPES.get((plan.types[a], plan.types[b]), "related_to"),
                "weight": rng.uniform(0.6, 1.0) if same else rng.uniform(0.2, 0.5),
                "created_at": created,
            }
        )
    return pa.Table.from_pylist(rows, schema=schema.RELATIONSHIPS)


# ---------------------------------------------------------------- entities, communities, wisdom


def entity_table(plan: EntityPlan, seed: int, now: float, vectors: np.ndarray | None = None) -> pa.Table:
    rng = random.Random(seed + 2)
    hashes = [content_hash(n) for n in plan.names]
    return pa.table(
        {
            "id": plan.ids,
            "name": plan.names,
            "type": plan.types,
            "description": [
                f"{n} ({t}) as mentioned in team notes." for n, t in zip(plan.names, plan.types, strict=True)
            ],
            "attributes": pa.nulls(len(plan.ids), pa.string()),
            "bucket": pa.array([zlib.crc32(i.encode()) % schema.BUCKETS for i in plan.ids], pa.int32()),
            "content_hash": hashes,
            "vector": _vector_array(vectors) if vectors is not None else pa.nulls(len(plan.ids), schema.VECTOR),
            "embedded_hash": hashes if vectors is not None else pa.nulls(len(plan.ids), pa.string()),
            "merged_into": pa.nulls(len(plan.ids), pa.string()),
            "truth_cluster": plan.truth,
            "created_at": [now - rng.uniform(1, 90) * DAY for _ in plan.ids],
        },
        schema=schema.ENTITIES,
    )


def community_tables(plan: EntityPlan, seed: int, now: float) -> tuple[pa.Table, pa.Table]:
    rng = random.Random(seed + 3)
    last = now - RECLUSTER_AGE_S
    name_of = dict(zip(plan.ids, plan.names, strict=True))
    coms, wisdom = [], []
    for k, group in enumerate(plan.communities()):
        com_id = f"com-{k:05d}"
        coms.append(
            {
                "id": com_id,
                "run_id": "seed-previous",
                "members": group,
                "size": len(group),
                "level": 0,  # one level: the planted communities, each its own leaf
                "parent": None,
                "created_at": last - rng.uniform(1, 30) * DAY,
                "updated_at": last,
            }
        )
        if rng.random() < WISDOM_SHARE:
            names = ", ".join(name_of[m] for m in group[:4])
            text = f"{names} keep coming up together; decisions about one usually involve the others."
            wisdom.append({"id": f"wis-{k:05d}", "community_id": com_id, "text": text, "created_at": last})
    return (
        pa.Table.from_pylist(coms, schema=schema.COMMUNITIES),
        pa.Table.from_pylist(wisdom, schema=schema.WISDOM),
    )


# ---------------------------------------------------------------- records


def record_batches(plan: EntityPlan, spec: ScaleSpec, seed: int, now: float) -> Iterator[tuple[pa.Table, int]]:
    """Record tables of up to batch_rows rows, oldest first; yields (table, rows still pending embed)."""
    rng = random.Random(seed + 4)
    np_rng = np.random.default_rng(seed + 4)
    n, processed_upto = spec.records, spec.records // 2
    start = 0
    while start < n:
        # Batches never straddle the processed/unprocessed boundary, so each is all-vector or all-null.
        stop = min(n, start + spec.batch_rows, processed_upto if start < processed_upto else n)
        yield _record_batch(rng, np_rng, plan, start, stop, processed_upto, now, n)
        start = stop


def _record_batch(
    rng: random.Random,
    np_rng: np.random.Generator,
    plan: EntityPlan,
    start: int,
    stop: int,
    processed_upto: int,
    now: float,
    n: int,
) -> tuple[pa.Table, int]:
    names, m = plan.names, stop - start
    ids = [f"rec-{i:07d}" for i in range(start, stop)]
    texts = [
        rng.choice(V.RECORD_TEMPLATES).format(a=rng.choice(names), b=rng.choice(names), c=rng.choice(names))
        for _ in range(m)
    ]
    hashes = [content_hash(t) for t in texts]
    processed = start < processed_upto
    if processed:
        stale = rng.sample(range(m), k=round(m * STALE_SHARE))
        embedded: list[str | None] = list(hashes)
        for j in stale:
            embedded[j] = content_hash("before edit: " + texts[j])
        vectors = _vector_array(_unit_vectors(np_rng, m))
        pending = len(stale)
    else:
        embedded, vectors, pending = [None] * m, pa.nulls(m, schema.VECTOR), m
    table = pa.table(
        {
            "id": ids,
            "text": texts,
            "source": [rng.choice(V.SOURCES) for _ in range(m)],
            "attributes": pa.nulls(len(plan.ids), pa.string()),
            "bucket": pa.array([zlib.crc32(i.encode()) % schema.BUCKETS for i in ids], pa.int32()),
            "content_hash": hashes,
            "vector": vectors,
            "embedded_hash": pa.array(embedded, pa.string()),
            "extracted": pa.array([processed] * m, pa.bool_()),
            "created_at": np.linspace(now - 90 * DAY, now - 60.0, n)[start:stop],
        },
        schema=schema.RECORDS,
    )
    return table, pending


def _unit_vectors(np_rng: np.random.Generator, m: int) -> np.ndarray:
    vec = np_rng.standard_normal((m, schema.EMBED_DIM), dtype=np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    return vec


def _vector_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, schema.EMBED_DIM)
