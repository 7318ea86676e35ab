"""The real agent behind the real bolt app: prompts posted by the loop, buttons resuming the real graph."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from support import wait_for
from support.agent_rig import NO_CPU_CEILING, copy_brain, kill_workers, make_settings, write_policy
from support.fake_slack import FakeSlack
from support.slack_rig import APPROVER, OPS, SECRET, STRANGER, Rig

from agent.service.agent import Agent
from core.settings import SlackConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path, small_brain: str):
    from agent.slack.backend import attach_to_agent

    slack = FakeSlack().start()
    policy = write_policy(
        tmp_path / "policy.yaml",
        approvers=[APPROVER],
        actions={"run_dedup": {"approval_when": [{"id": "any_merge", "when": {"expected_merges": {"gt": 0}}}]}},
        **NO_CPU_CEILING,
    )
    slack_cfg = SlackConfig(
        mode="http",
        bot_token="xoxb-test",
        signing_secret=SECRET,
        channel=OPS,
        api_url=slack.api_url,
        port=_free_port(),
    )
    settings = make_settings(tmp_path, copy_brain(small_brain, tmp_path), policy, slack=slack_cfg)
    agent = Agent(settings)
    server = attach_to_agent(agent)
    try:
        yield agent, Rig(slack, None, server, None)  # type: ignore[arg-type]
    finally:
        server.stop()
        slack.stop()
        kill_workers(settings.run_dir)


def _dedup_jobs(agent: Agent) -> list:
    return [w for w in agent.fleet.dispatcher.workers(ended=20) if w.kind == "dedup"]


def test_loop_prompt_answered_in_slack_runs_once(live) -> None:
    agent, rig = live
    report = agent.tick()
    pending = [o for o in report.outcomes if o.status == "pending"]
    assert pending, report.outcomes
    approval_id = pending[0].data["approval_id"]
    wait_for(lambda: [c for c in rig.slack.of("chat.postMessage") if c.params.get("blocks")], "the approval prompt")
    ts = agent.approvals.get(approval_id).message_ts
    assert ts  # the prompt's location is stored, so expiry and answers can edit it

    status, _ = rig.click(approval_id, STRANGER, ts)
    assert status == 200
    assert agent.approvals.get(approval_id).status == "pending" and not _dedup_jobs(agent)

    status, _ = rig.click(approval_id, APPROVER, ts)
    assert status == 200
    wait_for(lambda: agent.approvals.get(approval_id).status == "approved", f"approval {approval_id} approved")
    wait_for(lambda: len(_dedup_jobs(agent)) == 1, "one dedup job")
    status, _ = rig.click(approval_id, APPROVER, ts)  # double click
    assert status == 200
    assert len(_dedup_jobs(agent)) == 1
    answered = wait_for(
        lambda: [r for r in agent.decisions.all() if r.action == "run_dedup" and r.approver == APPROVER],
        "the approved run_dedup decision",
    )
    assert len(answered) == 1 and answered[0].outcome.status == "done"
    wait_for(lambda: rig.slack.of("chat.update"), "the prompt edited (chat.update)")


def test_chat_command_goes_through_guard_and_log(live) -> None:
    agent, rig = live
    status, _ = rig.command("scale extract 1 local")
    assert status == 200
    record = wait_for(lambda: [r for r in agent.decisions.all() if r.action == "scale_workers"], "a scale decision")[0]
    assert record.rationale.endswith(APPROVER)
    assert record.verdict == "allow" and record.outcome.status == "done"
    assert record.planner.kind == "human"


def test_pause_from_slack_stops_autonomous_ticks(live) -> None:
    from agent.service.scheduler import AgentLoop

    agent, rig = live
    status, _ = rig.command("pause")
    assert status == 200
    wait_for(lambda: agent.paused_by() == f"slack:{APPROVER}", "the pause from slack")
    loop = AgentLoop(agent)
    loop.tick_job()
    assert loop.ticks == 0 and agent.decisions.count() == 0
    status, _ = rig.command("resume")
    wait_for(lambda: agent.paused_by() is None, "the resume from slack")
    loop.tick_job()
    assert loop.ticks == 1 and agent.decisions.count() > 0
