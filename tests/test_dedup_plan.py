"""Dedup as a plan, on real LanceDB brains: a dry run stores the real merges as the brain's plan, the planner
proposes the live run with that plan's hash and count, the policy and the approver judge that count, and
the live job merges only the approved plan, or stops when the plan no longer holds."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from brain.schema import EMBED_DIM, ENTITIES
from brain.seed import content_hash
from brain.store import BrainStore
from core.actions import action
from core.domain import Observation, Proposal, Verdict, approval_context_lines
from core.ports import ApprovalRequest
from graphs.planners import PlanContext
from graphs.rule_planner import RuleParams, RulePlanner
from graphs.tick import approval_context
from policies.engine import PolicyEngine
from policies.loader import load_policy
from workers.dedup import run_dedup
from workers.dedup_plan import PlanRefused, load_plan, plan_hash
from workers.runtime import EXIT_REFUSED

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parent.parent
WORDS = [
    *("Aurora", "Basalt", "Cobalt", "Dynamo", "Ember", "Falcon", "Granite", "Horizon", "Indigo", "Juniper"),
    *("Krypton", "Lumen", "Meridian", "Nimbus", "Onyx", "Paragon", "Quartz", "Radiant", "Sierra", "Tundra"),
    *("Umbra", "Vertex", "Willow", "Xenon"),
]
NOW = 1_900_000_000.0


def _entity(ent_id: str, name: str, ent_type: str, vector: np.ndarray, created_at: float) -> dict[str, Any]:
    return {
        "id": ent_id,
        "name": name,
        "type": ent_type,
        "content_hash": content_hash(name),
        "embedded_hash": content_hash(name),
        "vector": vector.tolist(),
        "created_at": created_at,
    }


def _rows() -> list[tuple[str, str, str, str]]:
    """(id, name, type, vector group): 12 duplicates the name-collision count sees, 12 it does not."""
    rows = []
    for i, w in enumerate(WORDS[:12]):  # same type, same folded name: counted as collisions
        rows += [
            (f"x{i}a", f"{w} Robotics", "organization", f"x{i}"),
            (f"x{i}b", f"{w.upper()} robotics", "organization", f"x{i}"),
        ]
    for i, w in enumerate(WORDS[12:18]):  # same name under a type alias (org = organization)
        rows += [(f"a{i}a", f"{w} Foundry", "organization", f"a{i}"), (f"a{i}b", f"{w} Foundry", "org", f"a{i}")]
    for i, w in enumerate(WORDS[18:24]):  # the same words in another order
        rows += [
            (f"w{i}a", f"{w} Data Systems", "organization", f"w{i}"),
            (f"w{i}b", f"Systems {w} Data", "organization", f"w{i}"),
        ]
    rows += [(f"s{i}", f"Solo Concept {w} {i}", "concept", f"s{i}") for i, w in enumerate(WORDS)]
    return rows


def _vectors(groups: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for g in dict.fromkeys(groups):
        v = rng.standard_normal(EMBED_DIM).astype(np.float32)
        out[g] = v / np.linalg.norm(v)
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = str(tmp_path_factory.mktemp("plan") / "brain")
    store = BrainStore(uri).open_or_create()
    rows = _rows()
    vec = _vectors([g for *_, g in rows])
    entities = [_entity(i, n, t, vec[g], 1000.0 + k) for k, (i, n, t, g) in enumerate(rows)]
    store.add("entities", pa.Table.from_pylist(entities, schema=ENTITIES))
    return uri


@pytest.fixture()
def store(template: str, tmp_path: Path) -> BrainStore:
    shutil.copytree(template, tmp_path / "brain")
    return BrainStore(str(tmp_path / "brain"))


def _no_model(texts: list[str], progress: object = None) -> np.ndarray:
    raise AssertionError(f"every vector is stored; nothing should be embedded (asked for {len(texts)})")


def _add_duplicate_pair(store: BrainStore, word: str = "Zephyr") -> None:
    vec = _vectors(["new"], seed=99)["new"]
    rows = [
        _entity("n1a", f"{word} Robotics", "organization", vec, 5000.0),
        _entity("n1b", f"{word.upper()} robotics", "organization", vec, 5001.0),
    ]
    store.add("entities", pa.Table.from_pylist(rows, schema=ENTITIES))


def _merged(store: BrainStore) -> dict[str, str]:
    rows = store.fresh("entities").to_arrow().select(["id", "merged_into"]).to_pylist()
    return {r["id"]: r["merged_into"] for r in rows if r["merged_into"] is not None}


def _observe(store: BrainStore, **extra: Any) -> Observation:
    from core.domain import HostMetrics

    return Observation(time=NOW, hosts=(HostMetrics(host="local"),), brain=store.stats(NOW), **extra)


def _planner() -> RulePlanner:
    return RulePlanner(RuleParams(scaling={}, dedup_threshold=0.005))


def _dedup_proposals(obs: Observation) -> list[Proposal]:
    return [p for p in _planner().plan(PlanContext(obs, NOW)).proposals if p.action == "run_dedup"]


def _engine() -> PolicyEngine:
    return PolicyEngine(load_policy(REPO / "policies" / "default.yaml"), known_hosts=["local"])


# ---------------------------------------------------------------- the plan


def test_a_dry_run_stores_the_real_merge_count_where_name_collisions_under_report(store: BrainStore) -> None:
    before = store.stats(NOW)
    assert before.dedup_plan is None
    assert before.duplicate_candidates == 12  # the cheap estimate: name collisions only
    # What the planner used to send for a live run: 12, under the live_merge rule's 20, so no human was asked.
    old = Proposal(action="run_dedup", args={"dry_run": False, "expected_merges": before.duplicate_candidates})
    assert _engine().evaluate(old, _observe(store), NOW).verdict == Verdict.ALLOW

    versions = {t: store.fresh(t).version for t in ("entities", "relationships", "merge_log")}
    report = run_dedup(store, dry_run=True, encoder=_no_model)
    assert report.absorbed == 24 and not report.merge_ids
    assert {t: store.fresh(t).version for t in versions} == versions  # nothing merged, nothing embedded

    plan = load_plan(store)
    assert plan is not None and plan.absorbed == report.absorbed and len(plan.merges) == len(report.merges)
    assert plan.hash == plan_hash(report.merges) and re.fullmatch(r"[0-9a-f]{64}", plan.hash)
    assert plan.entities_version == versions["entities"]
    after = store.stats(NOW)
    assert after.dedup_plan is not None and not after.dedup_plan.stale
    assert after.dedup_plan.hash == plan.hash and after.dedup_plan.absorbed == 24
    assert after.duplicate_candidates == after.pending["dedup"] == 24  # the plan's real count now
    sample = after.dedup_plan.sample
    scores = sorted(m.score for m in report.merges)
    assert 0 < len(sample) <= 8 and sample[0].score == scores[-1] and sample[-1].score == scores[0]
    assert all(p.kept and p.absorbed for p in sample)


def test_the_plan_goes_stale_when_the_entities_change(store: BrainStore) -> None:
    run_dedup(store, dry_run=True, encoder=_no_model)
    _add_duplicate_pair(store)
    stats = store.stats(NOW)
    assert stats.dedup_plan is not None and stats.dedup_plan.stale
    assert stats.duplicate_candidates >= 24  # an estimate again, at least the last dry run's count


# ---------------------------------------------------------------- planner and policy


def test_the_planner_proposes_a_dry_run_first_then_the_live_run_of_its_plan(store: BrainStore) -> None:
    engine = _engine()
    first = _dedup_proposals(_observe(store))
    assert [p.args for p in first] == [{"dry_run": True, "expected_merges": 12}]
    assert engine.evaluate(first[0], _observe(store), NOW).verdict == Verdict.ALLOW  # a dry run asks nobody

    run_dedup(store, dry_run=True, encoder=_no_model)
    plan = load_plan(store)
    assert plan is not None
    # The dry run just finished: its cooldown does not hold back the live run it planned.
    obs = _observe(store, recent_actions={"run_dedup:dry_run": NOW - 60})
    second = _dedup_proposals(obs)
    assert [p.args for p in second] == [{"dry_run": False, "expected_merges": 24, "plan": plan.hash}]
    decision = engine.evaluate(second[0], obs, NOW)
    assert decision.verdict == Verdict.NEEDS_APPROVAL and "risk.run_dedup.live_merge" in decision.rule_ids

    # The old single-step proposal, or one naming another plan, is judged on the plan's real count too.
    for args in ({"dry_run": False, "expected_merges": 12}, {"dry_run": False, "plan": "0" * 64}):
        judged = engine.evaluate(Proposal(action="run_dedup", args=args), obs, NOW)
        assert judged.verdict == Verdict.NEEDS_APPROVAL, args
    # A live run claiming fewer merges than the plan it names is refused with the number to pass.
    low = engine.evaluate(Proposal(action="run_dedup", args={**second[0].args, "expected_merges": 5}), obs, NOW)
    assert low.verdict == Verdict.DENY and "pass expected_merges=24" in low.reasons[0]
    bad = engine.evaluate(Proposal(action="run_dedup", args={"plan": "not-a-hash"}), obs, NOW)
    assert bad.verdict == Verdict.DENY and bad.rule_ids == ("args.plan",)

    # Stale: a new dry run, not the live run of a plan made on other entities.
    _add_duplicate_pair(store)
    third = _dedup_proposals(_observe(store))
    assert [p.args["dry_run"] for p in third] == [True]
    # ... unless one ran within the dry-run cooldown (and a live dedup cools both down).
    assert _dedup_proposals(_observe(store, recent_actions={"run_dedup:dry_run": NOW - 60})) == []
    assert _dedup_proposals(_observe(store, recent_actions={"run_dedup": NOW - 60})) == []


# ---------------------------------------------------------------- the approval


def test_the_approval_shows_the_planned_count_and_sample_and_is_bound_to_the_plan(
    store: BrainStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.cli import state as cli_state
    from agent.service.agent import Agent
    from agent.slack.blocks import approval_blocks, approval_text
    from agent.state.approvals import verify_binding
    from core.domain import PlannerInfo, PolicyDecision
    from core.settings import load_settings

    run_dedup(store, dry_run=True, encoder=_no_model)
    obs = _observe(store)
    proposal = _dedup_proposals(obs)[0]
    decision = _engine().evaluate(proposal, obs, NOW)
    context = approval_context(proposal, obs)
    lines = approval_context_lines(context)
    plan = obs.brain.dedup_plan
    assert plan is not None
    pair = plan.sample[0]
    assert lines[0].startswith(f"dedup plan {plan.hash[:12]}: 24 entities merged")
    assert any(pair.absorbed in line and pair.kept in line and f"{pair.score:.3f}" in line for line in lines[1:])
    assert approval_context_lines(approval_context(proposal.model_copy(update={"args": {"plan": "f" * 64}}), obs))[
        0
    ].endswith("the job will refuse to run")

    policy = tmp_path / "policy.yaml"
    policy.write_text(re.sub(r"(?m)^approvers:.*$", "approvers: [alice]", (REPO / "policies/default.yaml").read_text()))
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("BRAINOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BRAINOPS_POLICY_FILE", str(policy))
    monkeypatch.setenv("BRAINOPS_CONFIG", str(tmp_path / "empty.toml"))
    agent = Agent(load_settings())
    request = ApprovalRequest(
        "apr-t1-0", "t1", proposal, PolicyDecision.model_validate(decision.model_dump()), PlannerInfo(), "d", context
    )
    ticket = agent.open(request, NOW)
    approval = agent.approvals.get(ticket.approval_id)
    assert approval is not None and approval.context == context
    assert verify_binding(approval, "run_dedup", proposal.args)  # what runs is what was approved ...
    assert not verify_binding(approval, "run_dedup", {**proposal.args, "plan": "0" * 64})  # ... and no other plan

    text, blocks = approval_text(approval), json.dumps(approval_blocks(approval))
    assert "24 entities merged" in text and "24 entities merged" in blocks and pair.absorbed in blocks
    app = __import__("typer").Typer()
    cli_state.register(app)
    listed = CliRunner().invoke(app, ["approvals"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "24 entities merged" in listed.output and pair.absorbed in listed.output
    assert f"score {pair.score:.3f}" in listed.output


def test_the_approved_args_become_the_jobs_plan_and_max_merges() -> None:
    from evals.runner import RecordingEffects
    from fleet.hosts import InvalidWorkerSpec, WorkerOptions, WorkerSpec

    spec, fx, plan = action("run_dedup"), RecordingEffects(), "ab" * 32
    assert spec.effect is not None
    spec.effect(fx, spec.complete({"dry_run": False, "expected_merges": 24, "plan": plan}), "k1")
    spec.effect(fx, spec.complete({"dry_run": True, "expected_merges": 12}), "k2")
    assert fx.calls == [
        f"run_job dedup@- dry_run=False plan={plan[:12]} max_merges=24",
        "run_job dedup@- dry_run=True",
    ]
    options = WorkerOptions(plan=plan, max_merges=24)
    assert WorkerSpec("dedup-x", "dedup", "/b", options).args[-4:] == ("--plan", plan, "--max-merges", "24")
    with pytest.raises(InvalidWorkerSpec, match="plan must be"):
        WorkerOptions(plan="abc; rm -rf /")
    with pytest.raises(InvalidWorkerSpec, match="take no"):
        WorkerSpec("recluster-x", "recluster", "/b", options)


# ---------------------------------------------------------------- the live job


def test_a_live_run_naming_a_replaced_or_unknown_plan_stops_and_merges_nothing(
    store: BrainStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from agent.cli.main import app
    from workers.runtime import WorkerRun

    run_dedup(store, dry_run=True, encoder=_no_model)
    first = load_plan(store)
    _add_duplicate_pair(store)
    run_dedup(store, dry_run=True, encoder=_no_model)  # a newer plan replaces it
    second = load_plan(store)
    assert first is not None and second is not None and second.hash != first.hash and second.absorbed == 25
    versions = {t: store.fresh(t).version for t in ("entities", "relationships", "merge_log")}

    with pytest.raises(PlanRefused, match=f"dedup plan {first.hash[:12]} is no longer current"):
        run_dedup(store, plan=first.hash, max_merges=first.absorbed, encoder=_no_model)
    monkeypatch.setattr(WorkerRun, "install_signal_handlers", lambda self: None)  # keep pytest's SIGINT
    status = tmp_path / "dedup.status.json"
    argv = ["worker", "dedup", "--brain", store.uri, "--status-file", str(status)]
    result = CliRunner().invoke(app, [*argv, "--plan", "0" * 64, "--max-merges", "24"])
    assert result.exit_code == EXIT_REFUSED, result.output
    assert "dedup plan 000000000000 is no longer current: run a dry run and approve the new plan" in result.output
    assert "Traceback" not in result.output
    final = json.loads(status.read_text())
    assert final["exit_code"] == EXIT_REFUSED and final["state"] == "stopped"
    assert {t: store.fresh(t).version for t in versions} == versions and _merged(store) == {}


def test_a_live_run_that_would_merge_more_than_approved_stops_and_merges_nothing(store: BrainStore) -> None:
    run_dedup(store, dry_run=True, encoder=_no_model)
    plan = load_plan(store)
    assert plan is not None and plan.absorbed == 24
    _add_duplicate_pair(store)  # between the dry run and the approved live run
    versions = {t: store.fresh(t).version for t in ("entities", "relationships", "merge_log")}
    with pytest.raises(PlanRefused, match="would now merge 25 entities, more than the 24 approved"):
        run_dedup(store, plan=plan.hash, max_merges=24, encoder=_no_model)
    assert {t: store.fresh(t).version for t in versions} == versions and _merged(store) == {}
    assert load_plan(store) == plan  # still there: a dry run replaces it


def test_a_live_run_applies_exactly_the_approved_merges(store: BrainStore, template: str, tmp_path: Path) -> None:
    run_dedup(store, dry_run=True, encoder=_no_model)
    plan = load_plan(store)
    assert plan is not None
    approved = {a: m.kept_id for m in plan.merges for a in m.absorbed_ids}
    report = run_dedup(store, plan=plan.hash, max_merges=plan.absorbed, encoder=_no_model)
    assert _merged(store) == approved and len(report.merge_ids) == len(plan.merges)
    stats = store.stats(NOW)
    assert stats.dedup_plan is None and stats.duplicate_candidates == 0  # spent

    # Entities added after the dry run: a merge the approver never saw is not made, even within the count.
    shutil.copytree(template, tmp_path / "other")
    other = BrainStore(str(tmp_path / "other"))
    run_dedup(other, dry_run=True, encoder=_no_model)
    plan = load_plan(other)
    assert plan is not None
    _add_duplicate_pair(other)
    report = run_dedup(other, plan=plan.hash, max_merges=plan.absorbed + 1, encoder=_no_model)
    assert _merged(other) == {a: m.kept_id for m in plan.merges for a in m.absorbed_ids}
    assert report.absorbed == 24 and not {"n1a", "n1b"} & set(_merged(other))


def test_a_refused_job_becomes_a_note_the_next_tick_sees() -> None:
    from agent.service.observer import supervise_notes
    from fleet.dispatcher import ReconcileReport

    report = ReconcileReport(
        time=NOW, finished=("dedup-job-1", "recluster-job-2"), crashed=("dedup-job-1", "recluster-job-2")
    )
    notes = supervise_notes(report, {"dedup-job-1": EXIT_REFUSED, "recluster-job-2": 1})
    assert notes[0] == "crashed workers: recluster-job-2"
    assert notes[1].startswith(f"job dedup-job-1 stopped with exit {EXIT_REFUSED}: refused to go on and wrote nothing")
    assert "approved plan no longer holds" in notes[1]


# ---------------------------------------------------------------- end to end: agent, approval, real workers


@pytest.mark.slow
def test_the_agent_plans_asks_stops_on_a_changed_brain_and_merges_the_new_plan(
    store: BrainStore, tmp_path: Path
) -> None:
    from support import wait_for
    from support.agent_rig import NO_CPU_CEILING, kill_workers, make_settings, write_policy

    from agent.service.agent import Agent

    now = [NOW]
    settings = make_settings(tmp_path, store.uri, write_policy(tmp_path / "policy.yaml", **NO_CPU_CEILING))
    agent = Agent(settings, clock=lambda: now[0])

    def job_ended(job_id: str) -> Any:
        ended = [w for w in agent.fleet.dispatcher.workers(refresh=True, ended=20) if w.id == job_id]
        return ended[0] if ended and ended[0].state in ("stopped", "crashed") else None

    def approve(approval_id: str) -> Any:
        assert agent.answer(approval_id, True, "operator").ok
        [record] = [r for r in agent.decisions.all() if r.extra and r.extra.get("approval_id") == approval_id]
        assert record.outcome.status == "done", record.outcome
        return record.outcome.detail.split()[2]  # "dedup job <id> started on <host>"

    def dedup_step(expect: dict[str, Any]) -> Any:
        report = agent.tick()
        rows = zip(report.proposals, report.outcomes, strict=True)
        [(proposal, outcome)] = [(p, o) for p, o in rows if p.action == "run_dedup"]
        assert {k: proposal.args.get(k) for k in expect} == expect, proposal
        return outcome

    try:
        dry = dedup_step({"dry_run": True})
        assert dry.status == "done", dry
        job = dry.detail.split()[2]
        wait_for(lambda: job_ended(job), "the dry-run job to finish", timeout_s=90)
        plan = load_plan(store)
        assert plan is not None and plan.absorbed == 24 and _merged(store) == {}

        now[0] += 60
        pending = dedup_step({"dry_run": False, "plan": plan.hash, "expected_merges": 24})
        assert pending.status == "pending"  # 24 > 20: a human decides, shown the plan
        approval = agent.approvals.get(pending.data["approval_id"])
        assert approval is not None and approval.context["dedup_plan"]["hash"] == plan.hash

        _add_duplicate_pair(store)  # the brain changes while the approval waits
        job = approve(approval.id)
        stopped = wait_for(lambda: job_ended(job), "the live job to stop", timeout_s=90)
        assert stopped.last_exit == EXIT_REFUSED and _merged(store) == {}
        agent.supervise(now[0])
        assert any(f"job {job} stopped with exit {EXIT_REFUSED}" in n for n in agent.observer.notes)

        now[0] += 3601  # past the live dedup's cooldown: the stale plan is planned again, then run
        dry = dedup_step({"dry_run": True})
        wait_for(lambda: job_ended(dry.detail.split()[2]), "the second dry run", timeout_s=90)
        plan = load_plan(store)
        assert plan is not None and plan.absorbed == 25
        now[0] += 60
        pending = dedup_step({"dry_run": False, "plan": plan.hash, "expected_merges": 25})
        job = approve(pending.data["approval_id"])
        done = wait_for(lambda: job_ended(job), "the live job", timeout_s=90)
        assert done.last_exit == 0
        assert _merged(store) == {a: m.kept_id for m in plan.merges for a in m.absorbed_ids}
    finally:
        kill_workers(settings.run_dir)
