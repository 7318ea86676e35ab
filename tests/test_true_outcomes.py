"""What the CLI says is what happened: an approval that read-only then blocked is reported as blocked
(exit 1, was "approved", exit 0), and an expiry the CLI runs into is recorded at once (was: next tick)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.agent_rig import cli, copy_brain, kill_workers, make_settings, write_policy, write_toml

from agent.service.agent import Agent

RISKY = {"actions": {"run_dedup": {"approval_when": [{"id": "any_merge", "when": {"expected_merges": {"gt": 0}}}]}}}


def _rig(tmp_path: Path, small_brain: str) -> tuple[Agent, Path, Path]:
    policy = write_policy(tmp_path / "p.yaml", **RISKY)
    settings = make_settings(tmp_path, copy_brain(small_brain, tmp_path), policy)
    return Agent(settings), write_toml(settings, tmp_path / "brainops.toml"), policy


@pytest.mark.slow
def test_an_approval_blocked_by_read_only_is_reported_as_blocked(tmp_path: Path, small_brain: str) -> None:
    agent, config, policy = _rig(tmp_path, small_brain)
    try:
        report = agent.request("run_dedup", {"dry_run": False, "expected_merges": 30}, "operator")
        approval_id = report.outcomes[0].data["approval_id"]
        policy.write_text(policy.read_text().replace("read_only: false", "read_only: true"))
        answered = cli(config, "approve", approval_id, "--by", "operator")
        assert answered.returncode == 1, answered.stdout + answered.stderr
        assert "did not run" in answered.stderr and "read-only" in answered.stderr
        assert not [w for w in agent.fleet.dispatcher.workers(ended=10) if w.kind == "dedup"]
    finally:
        kill_workers(agent.settings.run_dir)


@pytest.mark.slow
def test_an_expiry_the_cli_notices_is_recorded_then(tmp_path: Path, small_brain: str) -> None:
    agent, config, _ = _rig(tmp_path, small_brain)
    args = {"dry_run": False, "expected_merges": 30}
    agent.approvals.create(
        "apr-old", "t0", "run_dedup", args, "dups", "high", ("any_merge",), "rules", 1, time.time() - 60
    )
    answered = cli(config, "approve", "apr-old", "--by", "operator")
    assert answered.returncode == 1 and "expired" in answered.stderr
    expired = [r for r in agent.decisions.all() if r.action == "run_dedup" and r.outcome.status == "expired"]
    assert len(expired) == 1
