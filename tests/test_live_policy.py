"""A running agent uses the policy file as it is now: read_only, limits and approvers take effect on the next
tick or answer; a file that fails to load keeps the last good policy and says so (log, decision record)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.settings import HostConfig, Settings

DEFAULT = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(DEFAULT.read_text().replace("approvers: [operator]", "approvers: [operator, alice]"))
    return path


@pytest.fixture
def agent(tmp_path: Path, policy_file: Path):  # type: ignore[no-untyped-def]
    from agent.service.agent import Agent

    settings = Settings(
        home=tmp_path / "home",
        brain_uri=str(tmp_path / "no-brain"),
        policy_file=policy_file,
        demo_seed=False,
        hosts=[HostConfig(name="local", role="brain")],
    )
    settings.ensure_dirs()
    return Agent(settings)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_read_only_set_while_running_denies_the_next_request(agent, policy_file: Path) -> None:  # type: ignore[no-untyped-def]
    assert agent.policy.read_only is False
    engine_before = agent.engine
    _edit(policy_file, "read_only: false", "read_only: true")
    report = agent.request("run_recluster", {"reason": "cron"}, "cron:nightly")
    assert report.verdicts[0]["verdict"] == "deny"
    assert "mode.read_only" in report.verdicts[0]["rule_ids"]
    assert agent.engine is not engine_before


def test_a_removed_approver_cannot_answer_any_more(agent, policy_file: Path) -> None:  # type: ignore[no-untyped-def]
    approval = agent.approvals.create(
        "apr-1", "t1", "run_dedup", {"dry_run": False, "expected_merges": 30}, "dups", "high", ("x",), "rules", 900, 0
    )
    assert "alice" in agent.policy.approvers
    _edit(policy_file, "approvers: [operator, alice]", "approvers: [operator]")
    result = agent.approvals.answer(approval.id, True, "alice", agent.policy.approvers, now=1.0)
    assert result.status == "not_approver"


def test_a_broken_policy_keeps_the_last_good_one_and_says_so_once(
    agent, policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    good = agent.policy
    policy_file.write_text("version: 1\nread_only: maybe\n  bad: [indent\n")
    with caplog.at_level(logging.ERROR, logger="brainops"):
        assert agent.policy is good
        assert agent.policy is good  # the same bad version is reported once
    failure = agent.policy_failure
    assert failure is not None and failure.where.startswith(f"{policy_file}:")
    records = [r for r in agent.decisions.all() if r.action == "policy.reload_failed"]
    assert len(records) == 1 and str(policy_file) in records[0].args["file"]
    assert sum("fails to load" in r.getMessage() for r in caplog.records) == 1
    # Fixed again: the new version is in force and the failure is gone.
    policy_file.write_text(DEFAULT.read_text().replace("read_only: false", "read_only: true"))
    assert agent.policy.read_only is True and agent.policy_failure is None


def test_a_new_process_answers_with_the_last_good_approvers(agent, policy_file: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from agent.state.approvals import policy_approvers

    assert "alice" in agent.policy.approvers  # loads once: the last good copy is kept in the home
    policy_file.write_text(": not yaml :\n")
    assert "alice" in policy_approvers(agent.settings)
    assert "last good policy" in capsys.readouterr().err


def test_no_good_version_ever_is_an_error(tmp_path: Path) -> None:
    from policies.live import LivePolicy
    from policies.loader import PolicyError

    path = tmp_path / "p.yaml"
    path.write_text("read_only: maybe\n")
    with pytest.raises(PolicyError, match=r"p.yaml:1"):
        LivePolicy(path).current()
