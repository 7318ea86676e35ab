"""The wisdom worker on a real small brain: extractive without a model, fleet LLM (scripted server) with one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.fake_llm_server import FakeLLMServer, Text, three_tier_config

from brain.store import BrainStore
from llm.cache import DiskResponseCache
from llm.fleet import FleetLLM
from llm.ledger import TokenLedger
from llm.router import TierRouter
from workers.wisdom import WisdomConfig, WisdomWorker

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def brain(tmp_path: Path) -> str:
    from brain.seed import seed_brain

    path = str(tmp_path / "brain")
    seed_brain(path, "small", seed=4, show_progress=False)
    return path


def _pending(uri: str) -> int:
    return BrainStore(uri).stats().pending["wisdom"]


@pytest.mark.slow
def test_worker_process_covers_every_community_once(brain: str, tmp_path: Path) -> None:
    before = _pending(brain)
    assert before > 0
    (tmp_path / "brainops.toml").write_text("# no model tiers\n")
    env = {**os.environ, "BRAINOPS_CONFIG": str(tmp_path / "brainops.toml")}
    cmd = [sys.executable, "-m", "agent.cli", "worker", "wisdom", "--brain", brain, "--batch-size", "4"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _pending(brain) == 0
    texts = BrainStore(brain).fresh("wisdom").to_lance().to_table(columns=["id", "text"]).to_pylist()
    new = [t for t in texts if t["text"].endswith("[extractive summary]")]
    assert len(new) == before and all("centred on" in t["text"] for t in new)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert again.returncode == 0 and BrainStore(brain).fresh("wisdom").count_rows() == len(texts)


def test_shards_split_communities_without_overlap(brain: str) -> None:
    counts = []
    for shard in ((0, 2), (1, 2)):
        worker = WisdomWorker(WisdomConfig(brain, shard=shard), BrainStore(brain))
        counts.append(sum(iter(worker.step, 0)))
    assert _pending(brain) == 0 and sum(counts) > 0 and all(c >= 0 for c in counts)
    ids = BrainStore(brain).fresh("wisdom").to_lance().to_table(columns=["community_id"]).column(0).to_pylist()
    assert len(ids) == len(set(ids))


def test_fleet_llm_writes_the_text_and_pays_from_the_budget(
    brain: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLM_KEY", "test")
    with FakeLLMServer() as server:
        pending = _pending(brain)
        server.script(*[Text(f"Insight number {i}.") for i in range(pending)])
        ledger = TokenLedger(tmp_path / "state.db")
        llm = FleetLLM(
            TierRouter(three_tier_config(server.base_url), ledger), ledger, DiskResponseCache(tmp_path / "c")
        )
        worker = WisdomWorker(WisdomConfig(brain, batch_size=8), BrainStore(brain), llm)
        written = sum(iter(worker.step, 0))
    assert written == pending and _pending(brain) == 0
    texts = BrainStore(brain).fresh("wisdom").to_lance().to_table(columns=["text"]).column(0).to_pylist()
    assert sum(t.startswith("Insight number") for t in texts) == pending
    assert ledger.state().used_tokens > 0 and len(server.requests) == pending
