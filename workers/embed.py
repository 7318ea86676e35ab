"""The embed worker: vectors for rows that have none, or whose text changed since they were embedded.

Each `step()` reads one batch of this shard's pending rows, embeds them and writes id + vector +
embedded_hash in one merge_insert commit. A killed worker loses at most the batch in hand: a rerun's
filter (`brain.store.EMBED_PENDING`) finds exactly what is left. Records embed their `text`, entities
their `name` only (dedup blocks by type separately). The hash written is the `content_hash` that was read,
so text edited while a batch was in flight stays pending.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from brain.store import EMBED_PENDING, BrainStore
from workers.runtime import WorkerRun, shard_filter

if TYPE_CHECKING:
    import pyarrow as pa

    from brain.embedder import Embedder

EmbedTable = Literal["records", "entities"]
TEXT_COLUMN: dict[str, str] = {"records": "text", "entities": "name"}


@dataclass(frozen=True)
class EmbedConfig:
    brain: str
    table: str = "records"
    shard: tuple[int, int] = (0, 1)
    batch_size: int = 256
    device: str = "auto"
    dtype: str = "auto"
    loop: bool = False
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.table not in TEXT_COLUMN:
            raise ValueError(f"table must be one of {', '.join(TEXT_COLUMN)}, got {self.table!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.dtype not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"dtype must be auto, fp32, bf16 or fp16, got {self.dtype!r}")

    @property
    def where(self) -> str:
        shard = shard_filter(self.shard)
        return f"({EMBED_PENDING})" if shard is None else f"({EMBED_PENDING}) AND {shard}"


@dataclass(frozen=True)
class EmbedBatch:
    ids: list[str]
    texts: list[str]
    hashes: list[str | None]


class EmbedWorker:
    """One `step()` = one batch of this shard's pending rows, embedded and written in one commit."""

    def __init__(self, config: EmbedConfig, store: BrainStore, embedder: Embedder) -> None:
        self.config = config
        self.store = store
        self.embedder = embedder
        self.done = 0
        self.seconds_encoding = 0.0

    def pending(self) -> int:
        return self.store.fresh(self.config.table).count_rows(self.config.where)

    def step(self) -> int:
        want = self._batch_limit()
        if want == 0:
            return 0
        batch = self._read(want)
        if not batch.ids:
            return 0
        started = time.perf_counter()
        vectors = self.embedder.encode(batch.texts, batch_size=min(want, 128))
        self.seconds_encoding += time.perf_counter() - started
        self.store.update_columns(self.config.table, _vector_rows(batch, vectors))
        self.done += len(batch.ids)
        return len(batch.ids)

    def _batch_limit(self) -> int:
        if self.config.limit is None:
            return self.config.batch_size
        return max(0, min(self.config.batch_size, self.config.limit - self.done))

    def _read(self, n: int) -> EmbedBatch:
        column = TEXT_COLUMN[self.config.table]
        rows = (
            self.store.fresh(self.config.table)
            .search()
            .where(self.config.where)
            .select(["id", column, "content_hash"])
            .limit(n)
            .to_arrow()
        )
        return EmbedBatch(
            ids=rows.column("id").to_pylist(),
            texts=[t or "" for t in rows.column(column).to_pylist()],
            hashes=rows.column("content_hash").to_pylist(),
        )


def _vector_rows(batch: EmbedBatch, vectors: object) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    from brain.schema import EMBED_DIM, VECTOR

    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    return pa.table(
        {
            "id": pa.array(batch.ids, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, EMBED_DIM).cast(VECTOR),
            "embedded_hash": pa.array(batch.hashes, pa.string()),
        }
    )


def run_embed(config: EmbedConfig, run: WorkerRun, show_progress: bool = True) -> int:
    """Load the model, then embed batch by batch until nothing is pending (or forever with --loop)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from brain.embedder import load_embedder

    store = BrainStore(config.brain)
    store.table(config.table)  # a clear StoreError now if the brain is missing
    run.install_signal_handlers()
    run.write_status()  # visible to the dispatcher while the model loads
    worker = EmbedWorker(config, store, load_embedder(config.device, config.dtype))
    total = worker.pending() if config.limit is None else min(config.limit, worker.pending())
    progress = Progress(
        TextColumn(f"embed {config.table} shard {config.shard[0]}/{config.shard[1]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not show_progress,
    )

    def step() -> int:
        done = worker.step()
        progress.advance(task, done)
        return done

    with progress:
        task = progress.add_task("embed", total=total)
        code = run.loop(step, forever=config.loop)
    return code
