"""The brain's table schemas. This module is the single owner of column names and types."""

from __future__ import annotations

import pyarrow as pa

from core.domain import EMBED_DIM

__all__ = ["EMBED_DIM"]  # re-exported: the vector columns' size, declared once in core/domain.py
BUCKETS = 1024

VECTOR = pa.list_(pa.float32(), EMBED_DIM)

# Declaring the key makes Lance treat two concurrent merge_inserts of the same new key as a commit conflict
# (one retries and finds the row); without it both commit and the table holds the key twice.
PRIMARY_KEY = {"lance-schema:unenforced-primary-key": "true"}


def key_field(name: str) -> pa.Field:
    return pa.field(name, pa.string(), nullable=False, metadata=PRIMARY_KEY)


RECORDS = pa.schema(
    [
        key_field("id"),
        pa.field("text", pa.string()),
        pa.field("source", pa.string()),
        pa.field("bucket", pa.int32()),  # crc32(id) % 1024: lets `--shard i/n` filter in SQL
        pa.field("content_hash", pa.string()),  # sha1 of text; embed redoes rows whose hash changed
        pa.field("vector", VECTOR),  # null until embedded
        pa.field("embedded_hash", pa.string()),  # content_hash the vector was made from
        pa.field("extracted", pa.bool_()),  # entities/relationships pulled out of this record
        pa.field("created_at", pa.float64()),
    ]
)

ENTITIES = pa.schema(
    [
        key_field("id"),
        pa.field("name", pa.string()),
        pa.field("type", pa.string()),
        pa.field("description", pa.string()),
        # JSON object of what the extractor knows besides the name ({"birth_date": "1980-02-01", ...});
        # dedup compares it key by key: disagreement on an identifying attribute keeps two entities apart.
        pa.field("attributes", pa.string()),
        pa.field("bucket", pa.int32()),
        pa.field("content_hash", pa.string()),
        pa.field("vector", VECTOR),
        pa.field("embedded_hash", pa.string()),
        pa.field("merged_into", pa.string()),  # null while live; id of the survivor once absorbed
        pa.field("truth_cluster", pa.string()),  # seed ground truth: rows sharing it are one entity
        pa.field("created_at", pa.float64()),
    ]
)

RELATIONSHIPS = pa.schema(
    [
        key_field("id"),
        pa.field("src", pa.string()),
        pa.field("dst", pa.string()),
        pa.field("type", pa.string()),
        pa.field("weight", pa.float32()),
        pa.field("created_at", pa.float64()),
    ]
)

COMMUNITIES = pa.schema(
    [
        key_field("id"),
        pa.field("run_id", pa.string()),
        pa.field("members", pa.list_(pa.string())),  # entity ids
        pa.field("size", pa.int32()),
        pa.field("level", pa.int32()),  # 0 = the coarsest partition; level k+1 splits communities of level k
        pa.field("parent", pa.string()),  # id of the level-(k-1) community this one splits; null at level 0
        pa.field("created_at", pa.float64()),  # when this community (with these members) first appeared
        pa.field("updated_at", pa.float64()),  # run that last confirmed it
    ]
)

WISDOM = pa.schema(
    [
        key_field("id"),
        pa.field("community_id", pa.string()),
        pa.field("text", pa.string()),
        pa.field("created_at", pa.float64()),
    ]
)

# Reasoning (workers/reasoning.py): one attempt per model answer for a wisdom entry, valid or not, so the yield
# per tier is valid / attempts; a valid answer becomes a chain and, when it has one, a runbook.
REASONING_ATTEMPTS = pa.schema(
    [
        key_field("id"),
        pa.field("wisdom_id", pa.string()),
        pa.field("community_id", pa.string()),
        pa.field("tier", pa.string()),  # the tier that answered ("" when the model was not reached)
        pa.field("valid", pa.bool_()),
        pa.field("reason", pa.string()),  # why the validator refused it; "" when valid
        pa.field("cost", pa.float64()),  # dollars the ledger settled for the call (0 when served from the cache)
        pa.field("created_at", pa.float64()),
    ]
)


def _reasoning_output(extra: list[pa.Field]) -> pa.Schema:
    return pa.schema(
        [
            key_field("id"),
            pa.field("wisdom_id", pa.string()),
            pa.field("community_id", pa.string()),
            *extra,
            pa.field("steps", pa.list_(pa.string())),
            pa.field("cited", pa.list_(pa.string())),  # entity ids the steps cite: each exists in the brain
            pa.field("tier", pa.string()),
            pa.field("attempt_id", pa.string()),
            pa.field("created_at", pa.float64()),
        ]
    )


REASONING_CHAINS = _reasoning_output([pa.field("conclusion", pa.string())])
RUNBOOKS = _reasoning_output([pa.field("title", pa.string())])

# What the brain was asked (brainops brain import-queries): analyze_queries clusters the unanalyzed ones.
QUERIES = pa.schema(
    [
        key_field("id"),  # sha1 of text and time: importing the same log twice adds nothing
        pa.field("text", pa.string()),
        pa.field("time", pa.float64()),
        pa.field("hits", pa.int32()),
        pa.field("best_score", pa.float32()),
        pa.field("topic_id", pa.string()),  # null until analyze_queries put it in a topic
        pa.field("analyzed_at", pa.float64()),
    ]
)

# Topics of poorly answered queries (low best score, no wisdom near them): the wisdom and reasoning workers
# take the communities named here first.
PRIORITIES = pa.schema(
    [
        key_field("id"),  # the topic id
        pa.field("sample", pa.string()),  # the query nearest the topic's centroid
        pa.field("queries", pa.int32()),
        pa.field("best_score", pa.float32()),  # mean best score of the topic's queries
        pa.field("community_ids", pa.list_(pa.string())),  # leaf communities nearest the topic
        pa.field("created_at", pa.float64()),
    ]
)

MERGE_LOG = pa.schema(
    [
        key_field("merge_id"),
        pa.field("created_at", pa.float64()),
        pa.field("kept_id", pa.string()),
        pa.field("absorbed_ids", pa.list_(pa.string())),
        pa.field("score", pa.float32()),
        pa.field("reason", pa.string()),
        pa.field("payload", pa.string()),  # JSON: the rows and relationship endpoints before the merge
        # JSON: why the pairs matched (match probability, the comparison levels, any model adjudication)
        pa.field("evidence", pa.string()),
        pa.field("undone_at", pa.float64()),
    ]
)

# Small key/value table: counters and run markers that make `brain stats` cheap.
META = pa.schema(
    [
        key_field("key"),
        pa.field("value", pa.string()),
        pa.field("updated_at", pa.float64()),
    ]
)

KEYS: dict[str, str] = {"merge_log": "merge_id", "meta": "key"}  # every other table: "id"

TABLES: dict[str, pa.Schema] = {
    "records": RECORDS,
    "entities": ENTITIES,
    "relationships": RELATIONSHIPS,
    "communities": COMMUNITIES,
    "wisdom": WISDOM,
    "merge_log": MERGE_LOG,
    "meta": META,
    "reasoning_attempts": REASONING_ATTEMPTS,
    "reasoning_chains": REASONING_CHAINS,
    "runbooks": RUNBOOKS,
    "queries": QUERIES,
    "priorities": PRIORITIES,
}
