"""Embedding throughput on this machine: fp32 vs the dtype `load_embedder` picks, and their cosine.

Run: `.venv/bin/python -m bench.bench_embed` (writes bench/out/bench_embed.json). Texts are record
sentences and entity names from the synthetic brain, so lengths match what the embed worker sees.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from workers import seed_vocab

N_SENTENCES = 512
N_NAMES = 1024
BATCH = 64


def sample_texts(seed: int = 0) -> tuple[list[str], list[str]]:
    from workers.seed import plan_entities

    rng = random.Random(seed)
    names = list(plan_entities("small", seed).names)
    sentences = [
        rng.choice(seed_vocab.RECORD_TEMPLATES).format(a=rng.choice(names), b=rng.choice(names), c=rng.choice(names))
        for _ in range(N_SENTENCES)
    ]
    return sentences, [rng.choice(names) for _ in range(N_NAMES)]


def _throughput(embedder: Any, texts: list[str]) -> tuple[float, np.ndarray]:
    embedder.encode(texts[:BATCH], batch_size=BATCH)  # warm-up
    started = time.perf_counter()
    vectors = embedder.encode(texts, batch_size=BATCH)
    return len(texts) / (time.perf_counter() - started), vectors


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def run(out_dir: Path) -> dict[str, Any]:
    from rich.progress import Progress

    from workers.embedder import load_embedder

    sentences, names = sample_texts()
    results: dict[str, Any] = {}
    vectors: dict[str, np.ndarray] = {}
    with Progress(transient=True) as progress:
        task = progress.add_task("embedding benchmark", total=6)
        # One thread last: torch's thread count is process-wide.
        for label, dtype, threads in (("fp32", "fp32", None), ("chosen", "auto", None), ("chosen_1_thread", "auto", 1)):
            embedder = load_embedder("auto", dtype, threads=threads)
            sent_rate, vectors[label] = _throughput(embedder, sentences)
            progress.advance(task)
            name_rate, _ = _throughput(embedder, names)
            progress.advance(task)
            results[label] = {
                "device": embedder.info.device,
                "dtype": embedder.info.dtype,
                "dtype_reason": embedder.info.dtype_reason,
                "torch_threads": _torch_threads(),
                "sentences_per_s": round(sent_rate, 1),
                "names_per_s": round(name_rate, 1),
            }
    cos = np.sum(vectors["fp32"] * vectors["chosen"], axis=1)
    result = {
        "bench": "embed",
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "batch_size": BATCH,
        **results,
        "speedup": round(results["chosen"]["sentences_per_s"] / results["fp32"]["sentences_per_s"], 2),
        "cosine_chosen_vs_fp32": {"min": round(float(cos.min()), 5), "mean": round(float(cos.mean()), 5)},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_embed.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(json.dumps(run(Path(__file__).resolve().parent / "out"), indent=2))
