"""Helpers for tests that need a real brain: seeded LanceDB on a tmp path, worker subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import REPO


def worker_env(cache_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", LITELLM_LOCAL_MODEL_COST_MAP="True")
    # tests run several workers on 2 cores: one torch thread each beats oversubscription
    env.setdefault("BRAINOPS_EMBED_THREADS", "1")
    if cache_dir is not None:
        env["BRAINOPS_CACHE_DIR"] = str(cache_dir)
    return env


def start_worker(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`python -m agent.cli worker ...` as a real OS process, output to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "worker", *args],
            cwd=REPO,
            env=env or worker_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def add_entities(
    store: Any,
    rows: list[tuple[str, str, str]],
    edges: Sequence[tuple[str, str]] = (),
    vectors: Any = None,
    first_created_at: float = 1000.0,
) -> Any:
    """Entities (id, name, type) with unit name vectors already stored (`vectors`, or seeded random ones, so no
    model is needed) and relationships `edges` (src, dst), added to a real brain; returns the store."""
    import numpy as np
    import pyarrow as pa

    from brain.schema import EMBED_DIM, ENTITIES
    from brain.seed import content_hash

    if vectors is None:
        vectors = np.random.default_rng(0).standard_normal((len(rows), EMBED_DIM))
    vectors = np.asarray(vectors, dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    entities = [
        {
            "id": i,
            "name": n,
            "type": t,
            "content_hash": content_hash(n),
            "embedded_hash": content_hash(n),
            "vector": v.tolist(),
            "created_at": first_created_at + k,
        }
        for k, ((i, n, t), v) in enumerate(zip(rows, vectors, strict=True))
    ]
    store.add("entities", pa.Table.from_pylist(entities, schema=ENTITIES))
    rels = [{"id": f"r-{a}-{b}-{k}", "src": a, "dst": b, "weight": 1.0} for k, (a, b) in enumerate(edges)]
    if rels:
        store.add("relationships", rels)
    return store


def pending_records(prefix: str, texts: Sequence[str], source: str, created_at: float) -> list[dict[str, Any]]:
    """Record rows not extracted yet, shaped as the brain stores them (bucket, content hash)."""
    from brain.seed_plan import content_hash
    from workers.runtime import bucket_of

    rows = []
    for i, text in enumerate(texts):
        rid = f"{prefix}-{i:05d}"
        row = {"id": rid, "text": text, "source": source, "bucket": bucket_of(rid), "content_hash": content_hash(text)}
        rows.append({**row, "extracted": False, "created_at": created_at})
    return rows
