"""A realistic synthetic brain WITH GROUND TRUTH, for tests, benchmarks and the demo.

`plan_entities(scale, seed)` is pure and deterministic: it rebuilds the ground truth (planted duplicates and
their kinds, decoys, near misses, planted communities) without touching a store. `seed_brain` writes it
(planning lives in `brain.seed_plan`, writing in `brain.seed_write`; this module is the public entry point):

- entities: realistic names from vocab lists; duplicates (case, spacing/punctuation, abbreviation, one-letter
  typo) share their original's `truth_cluster`; decoys share a name across types; near misses differ by a
  version or a sibling word. Entity vectors are left null (the embed worker makes real ones), unless
  `embed_entities=True` embeds the names with the real model.
- relationships: a spanning tree per planted community plus extra intra edges, ~3% cross-community edges,
  and each duplicate tied into its original's community, so Leiden can recover the plan.
- records: template sentences naming entities. The oldest half is processed (extracted, with a vector):
  those vectors are random unit vectors, not model output, because embedding 243K texts on a CPU takes
  minutes; a few of them have edited text (stale vector). The newest half is unprocessed.
- communities + wisdom + meta: the state a previous recluster left 6 h ago (85% of communities have
  wisdom; 4% of relationships were created after that run).
"""

from __future__ import annotations

from brain.seed_plan import (
    DAY,
    SCALES,
    EntityPlan,
    PlantedDuplicate,
    Scale,
    ScaleSpec,
    SeedReport,
    community_tables,
    content_hash,
    entity_table,
    plan_entities,
    plan_relationships,
    record_batches,
    spec_for,
)
from brain.store import META_LAST_RECLUSTER_AT, BrainStore, StoreError


def seed_brain(
    uri: str,
    scale: Scale | str = "small",
    seed: int = 0,
    *,
    force: bool = False,
    embed_entities: bool = False,
    show_progress: bool = True,
) -> SeedReport:
    """Write the synthetic brain to `uri`. Refuses a brain that already has records unless force=True."""
    from brain.seed_write import write_brain

    spec = spec_for(scale)
    store = BrainStore(uri)
    if store.exists() and not force and store.table("records").count_rows() > 0:
        raise StoreError(f"brain at {uri} already has records; pass force=True (--force) to replace it")
    return write_brain(store, spec, str(scale), seed, embed_entities=embed_entities, show_progress=show_progress)


__all__ = [
    "DAY",
    "META_LAST_RECLUSTER_AT",
    "SCALES",
    "EntityPlan",
    "PlantedDuplicate",
    "Scale",
    "ScaleSpec",
    "SeedReport",
    "community_tables",
    "content_hash",
    "entity_table",
    "plan_entities",
    "plan_relationships",
    "record_batches",
    "seed_brain",
    "spec_for",
]
