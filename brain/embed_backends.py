"""The two ways the embedder runs MiniLM: through sentence-transformers, or a frozen TorchScript copy of it.

Why a TorchScript copy: importing sentence-transformers (and with it transformers and scikit-learn) costs
about 5 s of CPU, more than a cold dedup can afford; loading a frozen module needs only torch and
tokenizers (about 1.2 s). The copy is traced from the sentence-transformers model on this machine, checked
against it (token ids equal, cosine >= EXPORT_MIN_COSINE on texts of many lengths and batch shapes), and
cached next to the bf16 calibration, keyed by CPU, package versions and dtype. A copy that fails the check
is never written; a cached file that no longer loads is deleted and rebuilt by the next load. The cache is
trusted like any other file under the operator's own cache directory (torch.jit.load runs its code).

torch 2.13 marks torch.jit.save/load deprecated in favour of torch.export. Measured here, an exported
program takes 2.5 s to load (TorchScript: 0.06 s) and embeds no faster, which would give back half of what
the copy is for; so TorchScript stays until torch removes it, and any failure to trace or load falls back
to sentence-transformers rather than failing the worker.

`Embedder.encode` tokenizes first and batches texts of equal token count together: sentence-transformers
sorts by character count, which pads entity names by ~57%.
"""

from __future__ import annotations

import logging
import os
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

EXPORT_MIN_COSINE = 0.9999
FORMAT_VERSION = 1
VERIFY_TEXTS: tuple[str, ...] = (
    "IBM",
    "Kubernetes",
    "Orion Pro 3",
    "International Business Machines",
    "Zürich, São Paulo and Kraków offices share one on-call rotation.",
    "Meeting notes: Priya presented the supply chain resilience roadmap to the platform group on Tuesday.",
    "Customer call with Northwind Labs about their retrieval-augmented generation rollout, "
    "the latency budget for the vector index, and who owns the on-call rotation once it ships.",
)


class Backend(Protocol):
    name: str

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, special tokens included, truncated as the model truncates."""
        ...

    def embed(self, texts: list[str], token_ids: list[list[int]]) -> np.ndarray:
        """Mean-pooled float32 vectors (not yet normalized) of texts already tokenized as `token_ids`."""
        ...


class SentenceTransformerBackend:
    name = "sentence-transformers"

    def __init__(self, model: Any) -> None:
        self.model = model

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return list(self.model.tokenizer(texts, truncation=True, max_length=self.model.max_seq_length)["input_ids"])

    def embed(self, texts: list[str], token_ids: list[list[int]]) -> np.ndarray:
        out = self.model.encode(
            texts, batch_size=len(texts), normalize_embeddings=False, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(out, dtype=np.float32)


class TorchScriptBackend:
    name = "torchscript"

    def __init__(self, module: Any, tokenizer: Any) -> None:
        self.module = module
        self.tokenizer = tokenizer

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def embed(self, texts: list[str], token_ids: list[list[int]]) -> np.ndarray:
        import torch

        ids, mask = padded(token_ids)
        with torch.inference_mode():
            return self.module(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()


def padded(token_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ids (pad id 0) and the attention mask, as wide as the longest text."""
    width = max(len(row) for row in token_ids)
    ids = np.zeros((len(token_ids), width), dtype=np.int64)
    mask = np.zeros((len(token_ids), width), dtype=np.int64)
    for i, row in enumerate(token_ids):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def load_tokenizer(model_dir: Path, max_length: int) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads every text to 128; batches pad themselves to their longest text
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def compiled_file(cache_dir: Path, machine_key: str, dtype: str) -> Path:
    versions = "-".join(package_version(p) for p in ("sentence-transformers", "transformers", "tokenizers"))
    return cache_dir / "compiled" / f"minilm-{machine_key}-{versions}-v{FORMAT_VERSION}-{dtype}.pt"


def package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def load_compiled(file: Path, model_dir: Path, max_length: int) -> TorchScriptBackend | None:
    """The cached module, or None when there is none or it no longer loads (then it is removed)."""
    if not file.exists():
        return None
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # see the module docstring
            module = torch.jit.load(str(file), map_location="cpu")
    except Exception as exc:  # a truncated or foreign file: rebuild rather than fail the worker
        log.warning("compiled embedder %s does not load (%s); removing it", file, exc)
        file.unlink(missing_ok=True)
        return None
    return TorchScriptBackend(module.eval(), load_tokenizer(model_dir, max_length))


def export_compiled(model: Any, model_dir: Path, file: Path) -> TorchScriptBackend | None:
    """Trace and freeze `model` (a CPU SentenceTransformer), check it, and cache it; None if it differs."""
    import torch

    candidate = TorchScriptBackend(None, load_tokenizer(model_dir, int(model.max_seq_length)))
    example = tuple(torch.from_numpy(a) for a in padded(candidate.tokenize(list(VERIFY_TEXTS[:3]))))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about shape branches that are constant for BERT
        traced = torch.jit.trace(_mean_pooled(model[0].auto_model.eval()), example, check_trace=False, strict=False)
        candidate.module = torch.jit.freeze(traced.eval())
    problem = _differs(SentenceTransformerBackend(model), candidate)
    if problem:
        log.warning("compiled embedder not used: %s", problem)
        return None
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".{os.getpid()}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(candidate.module, str(tmp))
    tmp.replace(file)
    return candidate


def _differs(reference: Backend, candidate: Backend) -> str | None:
    texts = list(VERIFY_TEXTS)
    if reference.tokenize(texts) != candidate.tokenize(texts):
        return "tokenizer.json tokenizes differently from the sentence-transformers tokenizer"
    for batch in (texts, texts[:1], texts[::-1]):  # different batch sizes and paddings
        ids = reference.tokenize(batch)
        got, want = _unit(candidate.embed(batch, ids)), _unit(reference.embed(batch, ids))
        cosine = float(np.min(np.sum(got * want, axis=1)))
        if cosine < EXPORT_MIN_COSINE:
            return f"cosine {cosine:.5f} < {EXPORT_MIN_COSINE} against sentence-transformers"
    return None


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _mean_pooled(bert: Any) -> Any:
    import torch

    class MeanPooled(torch.nn.Module):
        """BERT + sentence-transformers' mean pooling: the part of all-MiniLM-L6-v2 worth compiling."""

        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    return MeanPooled(bert)
