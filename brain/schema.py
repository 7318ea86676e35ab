"""The brain's table schemas. This module is the single owner of column names and types."""

from __future__ import annotations

import pyarrow as pa

EMBED_DIM = 384  # all-MiniLM-L6-v2
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
}
