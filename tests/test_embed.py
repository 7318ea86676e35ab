"""The embedder (real MiniLM weights) and the embed worker as real OS processes on a real LanceDB brain."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from support import wait_for
from support.brain_rig import read_status, start_worker, worker_env

from brain.embedder import CALIBRATION_SENTENCES, Embedder, EmbedderError, calibrate, load_embedder, model_path
from brain.seed import seed_brain
from brain.store import EMBED_PENDING, BrainStore
from workers.runtime import bucket_of

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder("cpu", "bf16")


@pytest.fixture()
def brain(tmp_path: Path) -> str:
    uri = str(tmp_path / "brain")
    seed_brain(uri, "small", seed=21, show_progress=False)
    return uri


@pytest.mark.slow
def test_encode_gives_unit_float32_vectors_that_mean_something(embedder: Embedder) -> None:
    vectors = embedder.encode(["IBM", "International Business Machines", "banana bread recipe"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert embedder.encode([]).shape == (0, 384)
    with pytest.raises(ValueError, match="batch_size"):
        embedder.encode(["x"], batch_size=0)


@pytest.mark.slow
def test_bf16_matches_fp32_and_the_verdict_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import brain.embedder as embedder_module

    cosine = calibrate(model_path(), "cpu", "bf16")
    assert cosine >= 0.995
    assert embedder_module.bf16_speedup(model_path(), rounds=1) > 0  # measured for real once
    # A CPU without bf16 units runs it slower than fp32: accurate or not, fp32 is the verdict there.
    monkeypatch.setattr(embedder_module, "bf16_speedup", lambda path: 0.4)
    slow = load_embedder("cpu", "auto", cache_dir=tmp_path / "no-bf16-units")
    assert (slow.info.dtype, slow.info.dtype_reason) == ("fp32", "calibrated")
    monkeypatch.setattr(embedder_module, "bf16_speedup", lambda path: 2.5)
    first = load_embedder("cpu", "auto", cache_dir=tmp_path)
    assert (first.info.dtype, first.info.dtype_reason) == ("bf16", "calibrated")
    assert first.info.calibration_cosine == pytest.approx(cosine, abs=1e-3)
    assert (tmp_path / "embed_calibration.json").exists()
    second = load_embedder("cpu", "auto", cache_dir=tmp_path)
    assert (second.info.dtype, second.info.dtype_reason) == ("bf16", "cached")
    fp32 = load_embedder("cpu", "fp32")
    a = fp32.encode(list(CALIBRATION_SENTENCES))
    b = second.encode(list(CALIBRATION_SENTENCES))
    assert float(np.min(np.sum(a * b, axis=1))) >= 0.995


@pytest.mark.slow
def test_impossible_device_or_dtype_is_refused() -> None:
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(EmbedderError, match="no CUDA"):
            load_embedder("cuda")
        with pytest.raises(EmbedderError, match="fp16 runs only on CUDA"):
            load_embedder("cpu", "fp16")
    with pytest.raises(EmbedderError, match="unknown dtype"):
        load_embedder("cpu", "int3")


def _pending(uri: str, table: str) -> int:
    return BrainStore(uri).fresh(table).count_rows(EMBED_PENDING)


@pytest.mark.slow
def test_two_shards_in_two_processes_cover_everything_without_overlap(
    brain: str, tmp_path: Path, embedder: Embedder
) -> None:
    ids = BrainStore(brain).table("entities").to_arrow().column("id").to_pylist()
    procs, statuses = [], []
    for i in range(2):
        status_path = tmp_path / f"shard{i}.json"
        args = ["embed", "--brain", brain, "--table", "entities", "--shard", f"{i}/2", "--dtype", "bf16"]
        args += ["--batch-size", "40", "--status-file", str(status_path)]
        procs.append(start_worker(args, tmp_path / f"shard{i}.log"))
        statuses.append(status_path)
    for i, proc in enumerate(procs):
        assert proc.wait(timeout=150) == 0, (tmp_path / f"shard{i}.log").read_text()
    done = [read_status(path) for path in statuses]
    for i, status in enumerate(done):
        assert status is not None and status["state"] == "stopped" and status["exit_code"] == 0
        assert status["processed"] == sum(1 for x in ids if bucket_of(x) % 2 == i)
    assert sum(s["processed"] for s in done if s) == len(ids) == 300
    assert _pending(brain, "entities") == 0
    # the stored vector is the model's vector of the entity name
    rows = BrainStore(brain).table("entities").search().limit(5).to_arrow()
    stored = np.array(rows.column("vector").to_pylist(), dtype=np.float32)
    fresh = embedder.encode(rows.column("name").to_pylist())
    assert np.min(np.sum(stored * fresh, axis=1)) > 0.99


@pytest.mark.slow
def test_killed_worker_loses_at_most_its_batch_and_the_rerun_does_only_the_rest(brain: str, tmp_path: Path) -> None:
    # keep ~200 unprocessed records so the rerun stays short on a busy 2-core machine
    BrainStore(brain).table("records").delete("id >= 'rec-0001200'")
    status = tmp_path / "embed.json"
    args = ["embed", "--brain", brain, "--table", "records", "--dtype", "bf16", "--batch-size", "16"]
    pending_at_start = _pending(brain, "records")
    proc = start_worker([*args, "--status-file", str(status)], tmp_path / "first.log")
    wait_for(lambda: (read_status(status) or {}).get("batches", 0) >= 3, "three committed batches", timeout_s=120)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    killed = read_status(status)
    assert killed is not None and killed["exit_code"] is None  # a crash, not a drain
    left = _pending(brain, "records")
    committed = pending_at_start - left
    # everything the status reported is on disk; at most the batch in hand was lost
    assert killed["processed"] <= committed <= killed["processed"] + 16
    assert left > 0

    rerun_status = tmp_path / "rerun.json"
    rerun = start_worker([*args, "--status-file", str(rerun_status)], tmp_path / "rerun.log")
    assert rerun.wait(timeout=150) == 0, (tmp_path / "rerun.log").read_text()
    final = read_status(rerun_status)
    assert final is not None and final["processed"] == left
    assert _pending(brain, "records") == 0


@pytest.mark.slow
def test_sigterm_drains_the_batch_in_hand(brain: str, tmp_path: Path) -> None:
    status = tmp_path / "drain.json"
    args = ["embed", "--brain", brain, "--table", "records", "--dtype", "bf16", "--batch-size", "16", "--loop"]
    pending_at_start = _pending(brain, "records")
    proc = start_worker([*args, "--status-file", str(status)], tmp_path / "drain.log")
    wait_for(lambda: (read_status(status) or {}).get("batches", 0) >= 1, "a first batch", timeout_s=120)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    final = read_status(status)
    assert final is not None and final["state"] == "stopped" and final["exit_code"] == 0
    # the batch in hand was finished and counted: nothing embedded goes unreported
    assert 0 < final["processed"] < pending_at_start
    assert _pending(brain, "records") == pending_at_start - final["processed"]


@pytest.mark.slow
def test_worker_refuses_bad_arguments(tmp_path: Path) -> None:
    bad_table = start_worker(["embed", "--brain", str(tmp_path), "--table", "wisdom"], tmp_path / "a.log")
    assert bad_table.wait(timeout=60) == 2
    assert "table must be one of records, entities" in (tmp_path / "a.log").read_text()
    missing = start_worker(
        ["embed", "--brain", str(tmp_path / "none"), "--dtype", "bf16"], tmp_path / "b.log", worker_env()
    )
    assert missing.wait(timeout=60) == 1
    assert "brainops brain seed" in (tmp_path / "b.log").read_text()
