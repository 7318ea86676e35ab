"""Records with topic-clustered unit vectors, for the vector index's tests and benchmark.

The seed's processed records carry uniform random unit vectors (brain/seed_plan.py): on those no nearest
neighbour is much nearer than any other, which no ANN index can search well and real embeddings never look
like. Model embeddings of texts cluster by topic; these vectors do too: each is a random topic centre plus
noise (`spread`; at 1.0 a record's cosine to its topic centre is ~0.7, to another record of its topic ~0.5),
normalised. Written in batches of `batch_rows` through `BrainStore.add`, one commit (one fragment) each.
"""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa

from brain import schema
from brain.store import BrainStore


def topic_vectors(n: int, seed: int = 0, topics: int | None = None, spread: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics or max(1, n // 200), schema.EMBED_DIM), dtype=np.float32)
    vectors = centres[rng.integers(0, len(centres), n)]
    vectors += rng.standard_normal((n, schema.EMBED_DIM), dtype=np.float32) * np.float32(spread)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def record_rows(start: int, vectors: np.ndarray, now: float = 0.0) -> pa.Table:
    ids = [f"vrec-{i:07d}" for i in range(start, start + len(vectors))]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    return pa.table(
        {
            "id": ids,
            "text": [f"record {i}" for i in ids],
            "source": ["bench"] * len(ids),
            "bucket": pa.array([zlib.crc32(i.encode()) % schema.BUCKETS for i in ids], pa.int32()),
            "content_hash": ids,
            "vector": pa.FixedSizeListArray.from_arrays(flat, schema.EMBED_DIM),
            "embedded_hash": ids,
            "extracted": [True] * len(ids),
            "created_at": [now] * len(ids),
        },
        schema=schema.RECORDS,
    )


def write_vector_records(store: BrainStore, n: int, seed: int = 0, batch_rows: int = 50_000, start: int = 0) -> int:
    """Append n records with topic-clustered vectors (ids vrec-START...), in batches; returns rows written."""
    vectors = topic_vectors(n, seed)
    for at in range(0, n, batch_rows):
        store.add("records", record_rows(start + at, vectors[at : at + batch_rows]))
    return n
