"""Embedding throughput on this machine: the embedder brainops runs (`load_embedder`: calibrated dtype,
compiled copy, texts batched by token count) against sentence-transformers out of the box (fp32 and bf16,
`model.encode`), their cosine, and how long each takes to load.

Run: `.venv/bin/python -m bench.bench_embed` (writes bench/out/bench_embed.json). Texts are record
sentences and entity names from the synthetic brain, so lengths match what the embed worker sees.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from brain import seed_vocab

N_SENTENCES = 512
N_NAMES = 4096
BATCH = 64


def sample_texts(seed: int = 0) -> tuple[list[str], list[str]]:
    from brain.seed import plan_entities

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


def _plain_sentence_transformers(dtype: str) -> Any:
    """sentence-transformers as shipped: its default attention, batches sorted by character count."""
    import torch
    from sentence_transformers import SentenceTransformer

    from brain.embedder import model_path

    kwargs = {"dtype": torch.bfloat16} if dtype == "bf16" else None
    model = SentenceTransformer(str(model_path()), device="cpu", model_kwargs=kwargs)

    class Plain:
        def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
            return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)

    return Plain()


def _fresh_load_s(code: str, repeat: int = 3) -> float:
    """Best of `repeat` runs of import + load in a new interpreter: what a worker pays at start."""
    timed = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    command = [sys.executable, "-c", timed]
    runs = [subprocess.run(command, capture_output=True, text=True, check=True) for _ in range(repeat)]
    return round(min(float(r.stdout.strip().splitlines()[-1]) for r in runs), 2)


def _load(label: str) -> tuple[Any, dict[str, Any]]:
    from brain.embedder import load_embedder

    if label in ("fp32", "bf16_sentence_transformers"):
        embedder = _plain_sentence_transformers("fp32" if label == "fp32" else "bf16")
        return embedder, {"device": "cpu", "dtype": label[:4], "backend": "sentence-transformers as shipped"}
    embedder = load_embedder("auto", "auto", threads=1 if label == "chosen_1_thread" else None)
    keys = ("device", "dtype", "dtype_reason", "backend")
    return embedder, {key: getattr(embedder.info, key) for key in keys}


def run(out_dir: Path) -> dict[str, Any]:
    from rich.progress import Progress

    sentences, names = sample_texts()
    results: dict[str, Any] = {}
    vectors: dict[str, np.ndarray] = {}
    labels = ("fp32", "bf16_sentence_transformers", "chosen", "chosen_1_thread")  # one thread last: process-wide
    with Progress(transient=True) as progress:
        task = progress.add_task("embedding benchmark", total=2 * len(labels))
        for label in labels:
            embedder, info = _load(label)
            sent_rate, vectors[label] = _throughput(embedder, sentences)
            progress.advance(task)
            name_rate, _ = _throughput(embedder, names)
            progress.advance(task)
            results[label] = {
                **info,
                "torch_threads": _torch_threads(),
                "sentences_per_s": round(sent_rate, 1),
                "names_per_s": round(name_rate, 1),
            }
    cos = np.sum(vectors["fp32"] * vectors["chosen"], axis=1)
    results["load_s_in_a_fresh_process"] = {
        "chosen": _fresh_load_s("from brain.embedder import load_embedder; load_embedder()"),
        "sentence_transformers": _fresh_load_s(
            "import torch; from sentence_transformers import SentenceTransformer; "
            "from brain.embedder import model_path; "
            "SentenceTransformer(str(model_path()), device='cpu', model_kwargs={'dtype': torch.bfloat16})"
        ),
    }
    result = {
        "bench": "embed",
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "batch_size": BATCH,
        "texts": {"sentences": len(sentences), "names": len(names)},
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
