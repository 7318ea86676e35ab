"""The records' vector index on a real LanceDB brain: the probe, the optimize_index job as a real worker process
started by a real tick, its effect in the decision log, `brainops brain search`, and the policy's index section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import wait_for
from support.agent_rig import NO_CPU_CEILING, cli, kill_workers, make_settings, write_policy, write_toml

from brain.index_probe import META_INDEX_PROBE, ProbeSettings, SearchSettings, probe
from brain.seed_vectors import record_rows, topic_vectors, write_vector_records
from brain.store import BrainStore
from brain.vector_index import BuildSettings, last_run, optimize_index
from policies.loader import PolicyError, load_policy_text

ROWS = 6_000
# Small enough for a test: 6 partitions of 1,000 rows, few k-means rounds, a probe of 16 queries.
BUILD = BuildSettings(rows_per_partition=1_000, max_iterations=10, keep_versions_s=60)
PROBE = ProbeSettings(queries=16, budget_s=10.0, min_rows=1_000)
SEARCH = SearchSettings()
INDEX_POLICY = {
    "min_rows": 1_000,
    "probe_queries": 16,
    "rows_per_partition": 1_000,
    "max_iterations": 10,
    "max_small_fragments": 10,
    "keep_versions_s": 60,
}


def vector_brain(tmp: Path, rows: int = ROWS, batch_rows: int = 200) -> BrainStore:
    """A brain whose records arrived in small appends: rows / batch_rows small fragments."""
    store = BrainStore(str(tmp / "brain")).open_or_create()
    write_vector_records(store, rows, seed=1, batch_rows=batch_rows)
    return store


def test_probe_measures_search_against_exact_on_a_fixed_sample(tmp_path: Path) -> None:
    store = BrainStore(str(tmp_path / "brain")).open_or_create()
    write_vector_records(store, 800, batch_rows=800)
    tiny = probe(store, PROBE, SEARCH)
    assert tiny.skipped and "800 records" in tiny.skipped and not tiny.measured
    assert store.meta_get(META_INDEX_PROBE) is None  # a skipped probe picks no sample

    store.add("records", record_rows(800, topic_vectors(1_200, seed=2)))
    flat = probe(store, PROBE, SEARCH)
    assert flat.measured and not flat.indexed and flat.rows == 2_000
    assert flat.queries == 16 and flat.recall_at_10 == 1.0  # flat search is exact
    assert flat.p50_ms is not None and flat.p95_ms is not None and 0 < flat.p50_ms <= flat.p95_ms
    sample = json.loads(store.meta_get(META_INDEX_PROBE) or "{}")["ids"]
    assert len(sample) == 16 and probe(store, PROBE, SEARCH).queries == 16
    assert json.loads(store.meta_get(META_INDEX_PROBE) or "{}")["ids"] == sample  # the same sample every tick

    hurried = probe(store, ProbeSettings(queries=16, budget_s=1e-6, min_rows=1_000), SEARCH)
    assert hurried.queries == 1  # the budget bounds it: one query, and it says how many it timed


def test_optimize_index_builds_compacts_then_only_tidies_and_retrains_when_recall_is_low(tmp_path: Path) -> None:
    store = vector_brain(tmp_path)
    first = optimize_index(store, BUILD, PROBE, SEARCH, worker_id="index-local-1")
    before, after = first.before, first.after
    assert not before.indexed and before.small_fragments == ROWS // 200 and before.recall_at_10 == 1.0
    assert after.indexed and after.index_type == "IvfPq" and after.fragments == 1 and after.unindexed_rows == 0
    assert after.recall_at_10 is not None and after.recall_at_10 >= 0.9  # measured against the kept exact answers
    assert after.recall_queries == 16 and after.p95_ms is not None
    assert any(s.startswith("built IVF_PQ (6 partitions") for s in first.steps), first.steps
    assert last_run(store) == first  # what the next tick reads and records

    again = optimize_index(store, BUILD, PROBE, SEARCH)
    assert again.steps == () and again.after.indexed  # healthy: nothing rebuilt, nothing to compact
    assert again.versions_pruned == 0 and again.after.versions > 1  # every version is younger than keep_versions_s

    strict = BuildSettings(**{**BUILD.__dict__, "recall_min": 1.0})  # recall under the minimum: retrain
    retrained = optimize_index(store, strict, PROBE, SEARCH)
    assert retrained.steps and retrained.steps[0].startswith("retrained (recall@10"), retrained.steps


def test_a_tick_starts_the_index_job_and_the_next_records_its_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.service.agent import Agent

    store = vector_brain(tmp_path)
    policy = write_policy(tmp_path / "policy.yaml", **NO_CPU_CEILING, index=INDEX_POLICY)
    settings = make_settings(tmp_path, store.uri, policy)
    monkeypatch.setenv("BRAINOPS_CONFIG", str(write_toml(settings, tmp_path / "brainops.toml")))
    agent = Agent(settings)
    try:
        first = agent.tick()
        proposed = [p for p in first.proposals if p.action == "optimize_index"]
        assert proposed and "30 small fragments > 10" in proposed[0].args["reason"], first.proposals
        done = [o for p, o in zip(first.proposals, first.outcomes, strict=True) if p.action == "optimize_index"]
        assert done[0].status == "done" and "index job" in done[0].detail, done

        run = wait_for(lambda: last_run(store), "the index job's result in the brain", timeout_s=60)
        second = agent.tick()
        assert not [p for p in second.proposals if p.action == "optimize_index"]  # healthy now
        effects = agent.decisions.by_key(f"index-effect:{run.run_id}")
        assert len(effects) == 1 and effects[0].outcome.status == "done"
        data = effects[0].outcome.data
        assert data["before"]["small_fragments"] == 30 and data["after"]["fragments"] == 1
        assert data["after"]["indexed"] and data["worker_id"].startswith("index-local")
        assert "search p95" in effects[0].outcome.detail and "recall@10" in effects[0].outcome.detail
        agent.tick()
        assert len(agent.decisions.by_key(f"index-effect:{run.run_id}")) == 1  # recorded once
    finally:
        kill_workers(settings.run_dir)


@pytest.mark.slow  # loads the embedding model three times
def test_brain_search_finds_the_record_a_text_was_embedded_from(tmp_path: Path) -> None:
    from brain.embedder import load_embedder

    texts = ["Quarterly revenue grew in the Nordic region", "The embed worker drains its batch", "Leiden clustering"]
    store = BrainStore(str(tmp_path / "brain")).open_or_create()
    rows = record_rows(0, load_embedder().encode(texts)).to_pylist()
    for row, text in zip(rows, texts, strict=True):
        row["text"] = text
    store.add("records", rows)
    settings = make_settings(tmp_path, store.uri, write_policy(tmp_path / "policy.yaml"))
    config = write_toml(settings, tmp_path / "brainops.toml")

    found = cli(config, "brain", "search", "Nordic revenue growth", "--k", "2", "--json")
    assert found.returncode == 0, found.stderr
    out = json.loads(found.stdout)
    assert out["hits"][0]["text"] == texts[0] and len(out["hits"]) == 2 and not out["indexed"]

    plain = cli(config, "brain", "search", "Leiden clustering", "--k", "1")
    assert plain.returncode == 0 and "Leiden clustering" in plain.stdout and "\x1b[" not in plain.stdout

    empty = cli(config, "brain", "search", "   ")
    assert empty.returncode == 2 and empty.stderr.strip() == "search: the text is empty; give the words to search for"
    assert "Traceback" not in empty.stderr


def test_the_policy_index_section_is_checked() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text("version: 1\nindex:\n  num_sub_vectors: 50\n", "p.yaml")
    assert str(info.value).startswith("p.yaml:3: index.num_sub_vectors:") and "divide the vector size 384" in str(
        info.value
    )
    with pytest.raises(PolicyError) as young:
        load_policy_text("version: 1\nindex:\n  keep_versions_s: 0\n", "p.yaml")
    assert "keep_versions_s" in str(young.value)  # pruning keeps a minimum age: never 0
