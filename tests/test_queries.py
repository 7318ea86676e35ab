"""Query patterns on a real small brain: import a JSONL log (all or nothing), cluster the queries with the real
embedder and Leiden, write poorly answered topics as priorities, and the wisdom worker takes them first."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from brain.embedder import Embedder
from brain.queries_import import QueryImportError, import_queries
from brain.schema import WISDOM
from brain.store import BrainStore
from workers.analyze_queries import QueryAnalysis, QueryAnalysisConfig
from workers.wisdom import WisdomConfig, WisdomWorker

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def embedder() -> Iterator[Embedder]:
    from brain.embedder import load_embedder

    yield load_embedder("cpu")


@pytest.fixture
def brain(small_brain: str, tmp_path: Path) -> str:
    path = tmp_path / "brain"
    shutil.copytree(small_brain, path)
    return str(path)


def _write(path: Path, rows: Sequence[Mapping[str, Any] | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "brain", *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def _without_seed_queries(brain: str) -> BrainStore:
    """The brain without the seed's own query log: each test imports the log it reasons about."""
    store = BrainStore(brain)
    store.table("queries").delete("true")
    return store


def test_import_refuses_a_bad_line_whole_and_imports_a_good_log_once(brain: str, tmp_path: Path) -> None:
    _without_seed_queries(brain)
    good = {"text": "who runs acme", "time": 1_700_000_000, "hits": 3, "best_score": 0.42, "user": "ignored"}
    bad = _write(tmp_path / "bad.jsonl", [good, "", {"text": "x", "time": 5, "hits": 1, "best_score": 1.5}])
    done = _cli("import-queries", str(bad), "--path", brain)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"import-queries: {bad}:3: best_score: Input should be less than or equal to 1; nothing was imported"
    ]
    assert BrainStore(brain).stats().queries.total == 0  # the good first line was not imported either
    broken = _write(tmp_path / "broken.jsonl", [good, '{"text": "a", "time": 1'])
    with pytest.raises(QueryImportError, match=f"^{broken}:2: not JSON"):
        import_queries(BrainStore(brain), broken)
    log = _write(tmp_path / "q.jsonl", [good, {**good, "time": 1_700_000_060}])
    assert import_queries(BrainStore(brain), log).added == 2
    assert import_queries(BrainStore(brain), log).added == 0  # the same log twice adds nothing
    stats = BrainStore(brain).stats()
    assert (stats.queries.total, stats.queries.unanalyzed, stats.pending["queries"]) == (2, 2, 2)


def test_poorly_answered_topics_become_priorities_wisdom_takes_first(
    brain: str, tmp_path: Path, embedder: Embedder
) -> None:
    store = _without_seed_queries(brain)
    names = {
        r["id"]: r["name"] for r in store.fresh("entities").to_lance().to_table(columns=["id", "name"]).to_pylist()
    }
    wisdom = {r["community_id"]: r["text"] for r in store.fresh("wisdom").to_lance().to_table().to_pylist()}
    leaves = store.leaf_communities()
    bare_id, bare = [(c, [names[m] for m in ms]) for c, ms in leaves if c not in wisdom][-1]  # last by id
    known = next([names[m] for m in ms] for c, ms in leaves if c in wisdom)
    assert WisdomWorker(WisdomConfig(brain), store)._pending()[0][0] != bare_id  # by id, it is not first today
    topics = {
        # poorly answered and nothing in the brain's wisdom about it: a priority
        "bare": [f"who is {bare[0]} working with", f"{bare[0]} projects with partners", f"partners of {bare[0]}"],
        # poorly answered, but wisdom already covers it
        "known": [
            f"{known[0]}, {known[1]} and {known[2]} keep coming up together",
            f"what links {known[0]} and {known[1]}",
        ],
        # well answered
        "fine": ["how do I reset my password", "password reset link not working", "change account password"],
    }
    score = {"bare": 0.2, "known": 0.3, "fine": 0.9}
    rows = [
        {"text": q, "time": 1_700_000_000 + i, "hits": 1, "best_score": score[t]}
        for t, qs in topics.items()
        for i, q in enumerate(qs)
    ]
    import_queries(store, _write(tmp_path / "q.jsonl", rows))

    report = QueryAnalysis(QueryAnalysisConfig(brain), store, embedder).run(now=2_000_000_000.0)
    assert report.queries == len(rows) and report.topics >= 3 and report.priorities == 1
    stats = store.stats()
    assert (stats.queries.unanalyzed, stats.queries.topics_without_coverage) == (0, 1)
    (priority,) = store.fresh("priorities").to_lance().to_table().to_pylist()
    assert priority["sample"] in topics["bare"] and priority["community_ids"][0] == bare_id
    topic_ids = store.fresh("queries").to_lance().to_table(columns=["text", "topic_id"]).to_pylist()
    assert len({r["topic_id"] for r in topic_ids if r["text"] in topics["bare"]}) == 1

    wisdom_worker = WisdomWorker(WisdomConfig(brain, batch_size=1), store)
    assert wisdom_worker._pending()[0][0] == bare_id  # the priority goes first
    assert wisdom_worker.step() == 1 and bare_id in {
        r["community_id"] for r in store.fresh("wisdom").to_lance().to_table().to_pylist()
    }

    # wisdom that answers the topic: the next run drops the priority (topics without coverage falls to 0)
    answer = {"id": "wis-answer", "community_id": bare_id, "text": priority["sample"], "created_at": 1.0}
    store.add("wisdom", pa.Table.from_pylist([answer], schema=WISDOM))
    again = QueryAnalysis(QueryAnalysisConfig(brain), store, embedder).run()
    assert (again.queries, again.dropped) == (0, 1) and store.stats().queries.topics_without_coverage == 0


@pytest.mark.slow
def test_one_agent_tick_escalates_reasoning_and_runs_the_query_analysis_job(brain: str, tmp_path: Path) -> None:
    """The real agent: brain stats and the ledger observed, the rules propose, the policy allows, the actor pins the
    tier in the ledger and starts the analyze_queries job as a process, which analyzes every imported query."""
    import time

    from support import wait_for
    from support.agent_rig import NO_CPU_CEILING, kill_workers, make_settings, write_policy

    from agent.service.agent import Agent

    store = BrainStore(brain)
    now = time.time()
    attempts = [
        {"id": f"rsa-{i}", "wisdom_id": f"wis-{i:05d}", "community_id": "c", "tier": "routine"}
        | {"valid": i % 2 == 0, "reason": "" if i % 2 == 0 else "cites no entity", "cost": 0.001, "created_at": now}
        for i in range(24)
    ]
    store.add("reasoning_attempts", attempts)  # 50% yield on routine, under the default 60% floor
    rows = [
        {"text": f"question {i} about cobalt pricing", "time": now + i, "hits": 0, "best_score": 0.1} for i in range(8)
    ]
    import_queries(store, _write(tmp_path / "q.jsonl", rows))
    policy = write_policy(tmp_path / "policy.yaml", **NO_CPU_CEILING, queries={"analyze_backlog": 5})
    settings = make_settings(tmp_path, brain, policy)
    agent = Agent(settings)
    agent.fleet.ledger.set_routing({"routine": 0.6, "analysis": 0.35, "strategic": 0.05})
    try:
        report = agent.tick()
        done = {p.action: (p, o) for p, o in zip(report.proposals, report.outcomes, strict=True)}
        tier, tier_outcome = done["set_reasoning_tier"]
        assert tier.args == {"tier": "analysis"} and tier_outcome.status == "done", tier_outcome
        assert agent.fleet.ledger.task_tier("reasoning") == "analysis"
        job_outcome = done["run_query_analysis"][1]
        assert job_outcome.status == "done", job_outcome
        job = job_outcome.detail.split()[2]  # "analyze_queries job <id> started on <host>"

        def ended() -> Any:
            found = [w for w in agent.fleet.dispatcher.workers(refresh=True, ended=20) if w.id == job]
            return found[0] if found and found[0].state in ("stopped", "crashed") else None

        assert wait_for(ended, "the analyze_queries job", timeout_s=120).last_exit == 0
        assert BrainStore(brain).stats().queries.unanalyzed == 0
    finally:
        kill_workers(settings.run_dir)
