"""`brainops dedup` and `dedup undo` as operator actions, through the real CLI (subprocesses, stdout piped) on a
real brain with real dedup job workers: the same policy guard, approvals and decision log as the agent's own
dedup. A live dedup the policy sends for approval merges nothing until someone approves it."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from support import wait_for
from support.agent_rig import NO_CPU_CEILING, cli, copy_brain, kill_workers, make_settings, write_policy, write_toml

from agent.state.approvals import ApprovalStore
from agent.state.decisions import DecisionLog, DecisionRecord
from brain.store import BrainStore
from core.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
PLANTED = 24  # the small seed brain's planted duplicates (all found, precision 1.0: tests/test_dedup.py)
NO_APPROVAL = {"actions": {"run_dedup": {"approval_when": []}}}


def live_merges(brain: str) -> int:
    return BrainStore(brain).fresh("merge_log").search().where("undone_at IS NULL").limit(None).to_arrow().num_rows


def records(settings: Settings, action: str) -> list[DecisionRecord]:
    return [r for r in DecisionLog(settings.state_db).all() if r.action == action]


def dedup_jobs(settings: Settings) -> list[str]:
    """Dedup workers the dispatcher ever started on this home, with their process states."""
    from agent.service.effects import Fleet

    workers = Fleet.from_settings(settings).dispatcher.workers(refresh=True, ended=20)
    return [f"{w.id}:{w.state}" for w in workers if w.kind == "dedup"]


def jobs_ended(settings: Settings) -> bool:
    jobs = dedup_jobs(settings)
    return bool(jobs) and all(j.endswith((":stopped", ":crashed")) for j in jobs)


def test_a_dedup_the_policy_sends_for_approval_merges_nothing_until_approved(tmp_path: Path, small_brain: str) -> None:
    brain = copy_brain(small_brain, tmp_path)
    settings = make_settings(tmp_path, brain, write_policy(tmp_path / "policy.yaml", **NO_CPU_CEILING))
    config = write_toml(settings, tmp_path / "brainops.toml")
    try:
        asked = cli(config, "dedup", "--llm-calls", "0")
        assert asked.returncode == 1, asked.stdout + asked.stderr  # not merged: waits for a human
        found = re.search(r"approval (apr-\S+) waits", asked.stdout)
        assert found is not None, asked.stdout
        approval_id = found.group(1)
        assert "more than 20 entities" in asked.stdout and f"brainops approve {approval_id}" in asked.stdout
        assert live_merges(brain) == 0 and dedup_jobs(settings) == []  # nothing merged, no job started
        (request,) = records(settings, "run_dedup")
        assert request.planner.kind == "human" and request.rationale.startswith("requested by cli:operator: ")
        assert request.verdict == "needs_approval" and "risk.run_dedup.live_merge" in request.rule_ids
        assert request.outcome.status == "pending" and request.args["expected_merges"] == PLANTED
        (waiting,) = ApprovalStore(settings.state_db).pending(time.time())
        assert waiting.id == approval_id and waiting.args == request.args

        approved = cli(config, "approve", approval_id, "--by", "operator")
        assert approved.returncode == 0, approved.stdout + approved.stderr
        wait_for(lambda: jobs_ended(settings), "the approved dedup job to end", timeout_s=180)
        assert live_merges(brain) == PLANTED  # exactly the approved plan
        ran = [r for r in records(settings, "run_dedup") if r.approver == "operator"]
        assert len(ran) == 1 and ran[0].outcome.status == "done"

        undone = cli(config, "dedup", "undo", "--last-run", "--by", "alice")
        assert undone.returncode == 0, undone.stderr
        assert undone.stdout.count("undid") == PLANTED and live_merges(brain) == 0
        (undo,) = records(settings, "dedup.undo")
        assert undo.planner.kind == "human" and undo.rationale.startswith("requested by cli:alice: ")
        assert undo.tick_id.startswith("operator-") and undo.outcome.status == "done"
        assert len(undo.args["merge_ids"]) == PLANTED and undo.args["brain"] == brain
        assert DecisionLog(settings.state_db).verify().ok  # in the one chained log, not a log of its own
    finally:
        kill_workers(settings.run_dir)


def test_a_dedup_the_policy_allows_runs_as_a_job_and_undo_honours_read_only(tmp_path: Path, small_brain: str) -> None:
    brain = copy_brain(small_brain, tmp_path)
    policy = write_policy(tmp_path / "policy.yaml", **NO_APPROVAL, **NO_CPU_CEILING)
    settings = make_settings(tmp_path, brain, policy)
    config = write_toml(settings, tmp_path / "brainops.toml")
    try:
        done = cli(config, "dedup", "--json", "--llm-calls", "0")
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)  # stdout is the JSON document alone
        assert report["status"] == "done" and report["verdict"] == "allow"
        assert report["job"]["exit"] == 0 and report["job"]["merged"] == PLANTED
        assert live_merges(brain) == PLANTED
        (request,) = records(settings, "run_dedup")
        assert request.planner.kind == "human" and request.outcome.status == "done" and request.approver is None
        assert report["tick_id"] == request.tick_id

        write_policy(policy, read_only=True, **NO_APPROVAL, **NO_CPU_CEILING)  # the file as it is now decides
        refused = cli(config, "dedup", "undo", "--last-run")
        assert refused.returncode == 1 and "read-only" in refused.stderr, refused.stderr
        assert live_merges(brain) == PLANTED
        (undo,) = records(settings, "dedup.undo")
        assert undo.verdict == "deny" and undo.rule_ids == ("mode.read_only",) and undo.outcome.status == "denied"
    finally:
        kill_workers(settings.run_dir)
