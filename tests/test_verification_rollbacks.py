"""Rollbacks of data actions that made things worse, with every part real: a dedup run by a real job worker on a
small LanceDB brain whose duplicate estimate then rises gets its `undo_dedup` proposed, which waits for a human
and, approved through the real approvals path, undoes exactly that run; an index build's `drop_index` on a real
LanceDB table.

The agent's clock runs ahead of the wall clock where an action's horizon must pass (the brain keeps real time)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support import wait_for
from support.agent_rig import NO_CPU_CEILING, copy_brain, kill_workers, make_settings, write_policy

from agent.service.agent import Agent
from agent.state.decision_links import linked
from brain.store import BrainStore

NO_WORKERS = {kind: {"max": 0} for kind in ("extract", "embed", "wisdom")}
POLICY: dict[str, Any] = {
    **NO_CPU_CEILING,
    "workers": NO_WORKERS,
    "actions": {
        "run_dedup": {"approval_when": []},
        **{name: {"enabled": False} for name in ("start_embedding", "run_recluster", "optimize_index")},
    },
}


class Clock:
    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


def _live_merges(brain: str) -> set[str]:
    table = BrainStore(brain).fresh("merge_log").search().where("undone_at IS NULL").limit(None).to_arrow()
    return set(table.column("merge_id").to_pylist())


def _dedup_jobs_ended(agent: Agent) -> bool:
    jobs = [w for w in agent.fleet.dispatcher.workers(refresh=True, ended=20) if w.kind == "dedup"]
    return bool(jobs) and all(w.state in ("stopped", "crashed") for w in jobs)


@pytest.mark.slow  # a real dedup job worker embeds and merges the small brain (~20 s on a loaded 2-core machine)
@pytest.mark.timeout(300)
def test_a_dedup_after_which_duplicates_rose_proposes_undoing_that_run_and_approving_undoes_it(
    tmp_path: Path, small_brain: str
) -> None:
    from brain.store import META_DEDUP_CANDIDATES
    from workers.dedup import run_dedup
    from workers.dedup_match import MatchConfig

    brain = copy_brain(small_brain, tmp_path)
    settings = make_settings(tmp_path, brain, write_policy(tmp_path / "policy.yaml", **POLICY))
    clock = Clock()
    agent = Agent(settings, clock=clock)
    try:
        store = BrainStore(brain)
        earlier = run_dedup(store, match=MatchConfig(max_llm_calls=0))  # an earlier run the undo must not touch
        assert earlier.merge_ids
        run_dedup(store, dry_run=True, match=MatchConfig(max_llm_calls=0))
        plan = agent.observe().brain.dedup_plan
        if plan is None or plan.absorbed == 0:  # the earlier run took every duplicate: undo one merge of it
            from workers.dedup_undo import undo_merge

            assert undo_merge(store, earlier.merge_ids[0]).ok
            run_dedup(store, dry_run=True, match=MatchConfig(max_llm_calls=0))
            plan = agent.observe().brain.dedup_plan
        assert plan is not None and plan.absorbed > 0
        before = _live_merges(brain)
        args = {"dry_run": False, "expected_merges": plan.absorbed, "plan": plan.hash}
        agent.request("run_dedup", args, "test", "merge the planned duplicates")
        dedup = next(r for r in agent.decisions.all() if r.action == "run_dedup" and r.outcome.status == "done")
        wait_for(lambda: _dedup_jobs_ended(agent), "the dedup job to end", timeout_s=240)
        made = _live_merges(brain) - before
        assert made, "the live run merged nothing"
        assert dedup.extra["expectation"]["rollback"]["args"] == {"run": plan.hash, "merges": plan.absorbed}
        store.meta_set(META_DEDUP_CANDIDATES, 40)  # a later look finds more duplicates than before the run

        clock.ahead = dedup.extra["expectation"]["horizon_s"] + 5
        report = agent.tick()

        verdict = next(r for r in linked(agent.decisions, dedup.id) if r.action == "verify")
        assert verdict.outcome.status == "missed" and verdict.outcome.data["harmed"] is True
        back = [(p, o) for p, o in zip(report.proposals, report.outcomes, strict=True) if p.rollback_of == dedup.id]
        assert len(back) == 1, report.proposals
        proposal, outcome = back[0]
        assert proposal.action == "undo_dedup" and proposal.args == {"run": plan.hash, "merges": plan.absorbed}
        assert outcome.status == "pending", outcome  # it rewrites the brain: a human approves it
        assert _live_merges(brain) == before | made  # nothing undone yet

        answered = agent.answer(str(outcome.data["approval_id"]), True, "operator")
        assert answered.ok, answered

        assert _live_merges(brain) == before  # exactly that run's merges undone, the earlier run's kept
        undo = [r for r in linked(agent.decisions, dedup.id) if r.action == "undo_dedup"][-1]
        assert undo.outcome.status == "done" and undo.approver == "operator", undo
        assert f"undid {len(made)} merges of dedup run {plan.hash[:12]}" in undo.outcome.detail
        assert undo.extra["expectation"]["checks"][0]["metric"] == "brain.live_entities"
    finally:
        kill_workers(settings.run_dir)


def test_an_index_build_that_made_search_less_right_proposes_dropping_it_which_restores_exact_search(
    tmp_path: Path,
) -> None:
    from support.observations import extract_backlog

    from agent.service.effects import Fleet
    from brain.index_probe import ProbeSettings, SearchSettings, probe
    from brain.seed_vectors import write_vector_records
    from brain.vector_index import BuildSettings, optimize_index
    from core.actions import action
    from core.domain import Proposal, Verdict
    from core.expectations import judge
    from graphs.verifying import rollback_for
    from policies.engine import PolicyEngine
    from policies.loader import load_policy

    store = BrainStore(str(tmp_path / "brain")).open_or_create()
    write_vector_records(store, 3_000, seed=1, batch_rows=1_500)
    probe_cfg, search = ProbeSettings(queries=16, budget_s=10.0, min_rows=1_000), SearchSettings()
    exact = probe(store, probe_cfg, search)
    assert not exact.indexed and exact.recall_at_10 == 1.0
    build = extract_backlog(index=exact)
    proposal = Proposal(action="optimize_index", args={"reason": "no index on 3,000 records"})
    expected = action("optimize_index").expect(build, proposal)  # type: ignore[misc]
    assert expected is not None and expected.rollback is not None and expected.rollback.action == "drop_index"

    coarse = BuildSettings(rows_per_partition=500, max_iterations=2, num_sub_vectors=4)  # a lossy index
    built = optimize_index(store, coarse, probe_cfg, search).after
    assert built.indexed and built.recall_at_10 is not None and built.recall_at_10 < 0.9, built
    verdict = judge(expected, 0.0, extract_backlog(index=built), expected.horizon_s + 1)
    assert verdict is not None and verdict.verdict == "missed" and verdict.harmed, verdict
    back = rollback_for("index-action", "optimize_index", expected, verdict)
    assert back is not None and back.action == "drop_index" and back.rollback_of == "index-action"
    policy = load_policy(Path(__file__).parents[1] / "policies" / "default.yaml")
    decided = PolicyEngine(policy).evaluate(back, extract_backlog(index=built), 0.0)
    assert decided.verdict == Verdict.NEEDS_APPROVAL, decided  # a human approves dropping the index

    settings = make_settings(tmp_path, store.uri, write_policy(tmp_path / "policy.yaml", **NO_CPU_CEILING))
    dropped = Fleet.from_settings(settings).drop_index("records")  # the effect an approval runs
    assert "dropped the vector index" in dropped, dropped
    after = probe(store, probe_cfg, search)
    assert not after.indexed and after.recall_at_10 == 1.0  # exact search again
    undo_expected = action("drop_index").expect(extract_backlog(index=built), back)  # type: ignore[misc]
    assert undo_expected is not None
    judged = judge(undo_expected, 0.0, extract_backlog(index=after), 1.0)
    assert judged is not None and judged.verdict == "verified", judged
    assert "nothing dropped" in Fleet.from_settings(settings).drop_index("records")  # once is enough
