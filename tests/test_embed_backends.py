"""The compiled (TorchScript) embedder against sentence-transformers, its cache, and length bucketing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brain.embed_backends import VERIFY_TEXTS, SentenceTransformerBackend, _differs, compiled_file
from brain.embedder import Embedder, load_embedder, machine_key, model_path

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # every test loads the real model

TEXTS = [
    "IBM",
    "Massachusetts Institute of Technology",
    "Kraków",
    "The embed worker drains its batch before it exits, then writes its status file and stops.",
    "Orion Pro 3",
    "a",
    "Incident review: the message queue degraded for forty minutes on Tuesday." * 12,  # > 256 tokens
]


@pytest.fixture(scope="module")
def reference() -> Embedder:
    return load_embedder("cpu", "bf16", compiled=False)


def test_compiled_copy_matches_sentence_transformers_and_is_reused(tmp_path: Path, reference: Embedder) -> None:
    first = load_embedder("cpu", "bf16", cache_dir=tmp_path)
    assert first.info.backend == "torchscript"
    cached = compiled_file(tmp_path, machine_key(model_path()), "bf16")
    assert cached.exists()
    stamp = cached.stat().st_mtime_ns
    second = load_embedder("cpu", "bf16", cache_dir=tmp_path)
    assert second.info.backend == "torchscript" and cached.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    want = reference.encode(TEXTS)
    for embedder in (first, second):
        got = embedder.encode(TEXTS, batch_size=3)
        assert got.shape == (len(TEXTS), 384)
        assert float(np.min(np.sum(got * want, axis=1))) >= 0.9999


def test_a_broken_cache_file_is_replaced_not_fatal(tmp_path: Path, reference: Embedder) -> None:
    cached = compiled_file(tmp_path, machine_key(model_path()), "bf16")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a torchscript archive")
    embedder = load_embedder("cpu", "bf16", cache_dir=tmp_path)
    assert embedder.info.backend == "torchscript"
    assert cached.stat().st_size > 10_000_000  # rebuilt: the bf16 weights alone are ~45 MB
    assert float(np.min(np.sum(embedder.encode(TEXTS) * reference.encode(TEXTS), axis=1))) >= 0.9999


def test_a_copy_that_disagrees_is_never_used(reference: Embedder) -> None:
    class Skewed:
        name = "skewed"

        def __init__(self, inner: SentenceTransformerBackend, shift_tokens: bool) -> None:
            self.inner, self.shift_tokens = inner, shift_tokens

        def tokenize(self, texts: list[str]) -> list[list[int]]:
            ids = self.inner.tokenize(texts)
            return [[*row, 0] for row in ids] if self.shift_tokens else ids

        def embed(self, texts: list[str], token_ids: list[list[int]]) -> np.ndarray:
            vectors = self.inner.embed(texts, token_ids)
            return vectors[::-1].copy()  # rows swapped: wrong vectors

    inner = reference.backend
    assert isinstance(inner, SentenceTransformerBackend)
    assert _differs(inner, inner) is None
    assert "tokenizes differently" in str(_differs(inner, Skewed(inner, shift_tokens=True)))
    assert "cosine" in str(_differs(inner, Skewed(inner, shift_tokens=False)))


def test_length_bucketing_keeps_each_text_with_its_own_vector(reference: Embedder) -> None:
    seen: list[tuple[int, int]] = []
    together = reference.encode(TEXTS, batch_size=2, progress=lambda done, total: seen.append((done, total)))
    alone = np.vstack([reference.encode([text]) for text in TEXTS])
    assert float(np.min(np.sum(together * alone, axis=1))) >= 0.9999
    assert seen[-1] == (len(TEXTS), len(TEXTS)) and len(seen) == 4
    lengths = [len(ids) for ids in reference.backend.tokenize(list(VERIFY_TEXTS))]
    assert max(lengths) > 3 * min(lengths)  # the verification texts really do span many lengths


def test_prepare_embedder_then_doctor_says_workers_start_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import brain.embedder as embedder_module
    from agent.cli.doctor import check_embedder
    from agent.cli.main import app

    monkeypatch.setenv("BRAINOPS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(embedder_module, "bf16_speedup", lambda path: 2.5)  # as on a CPU with bf16 units
    before = check_embedder()
    assert before.status == "WARN" and "never calibrated" in before.detail and "prepare-embedder" in before.fix
    result = CliRunner().invoke(app, ["brain", "prepare-embedder"])
    assert result.exit_code == 0, result.output
    assert "cpu bf16 (calibrated" in result.output and "backend torchscript" in result.output
    assert check_embedder().status == "OK"
    compiled_file(tmp_path, machine_key(model_path()), "bf16").unlink()
    after = check_embedder()
    assert after.status == "WARN" and "no compiled bf16 copy" in after.detail
