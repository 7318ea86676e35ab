"""One approval executes once, whoever resumes it: the CLI (`brainops approve` resumes the graph itself) and
the loop's settle step race for the same approval thread, with the window between claim and effect widened
on purpose. Before the home lock, one approved stop_worker retired two workers in 3 of 6 trials."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from support.agent_rig import NO_CPU_CEILING, copy_brain, kill_workers, make_settings, write_policy

from agent.service.agent import Agent

WEIGHTS = {"routine": 0.5, "escalation": 0.35, "strategic": 0.15}  # > 10% strategic: needs approval
TIERS = {"allowed_tiers": list(WEIGHTS)}  # no model tiers are configured here: the policy names them


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.slow
def test_cli_or_slack_answer_racing_the_loop_executes_an_approval_once(
    tmp_path: Path, small_brain: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRAINOPS_FAULT", "after_claim:0.02")  # widen the claim -> effect window
    settings = make_settings(
        tmp_path, copy_brain(small_brain, tmp_path), write_policy(tmp_path / "p.yaml", routing=TIERS, **NO_CPU_CEILING)
    )
    clock = Clock()
    cli_side, loop_side = Agent(settings, clock=clock), Agent(settings, clock=clock)  # two processes' worth
    from agent.cli.main import _resume_answered
    from agent.service.effects import Fleet
    from agent.state.approvals import answer_approval

    effects: list[str] = []
    real = Fleet.set_routing

    def counted(self, weights):  # type: ignore[no-untyped-def]
        effects.append("set_routing")
        return real(self, weights)

    monkeypatch.setattr(Fleet, "set_routing", counted)  # every Agent in this process, the CLI's included

    def slack_click(approval_id: str) -> None:  # the Slack app's path: Agent.answer
        cli_side.answer(approval_id, True, "operator")

    def cli_approve(approval_id: str) -> None:  # `brainops approve`: the store, then a fresh Agent resumes
        answer_approval(settings, approval_id, True, "operator", on_answered=_resume_answered)

    try:
        for trial in range(50):
            clock.t += 3600  # past every cooldown
            report = cli_side.request("set_model_routing", {"weights": WEIGHTS}, "operator")
            approval_id = report.outcomes[0].data["approval_id"]
            human = slack_click if trial % 2 else cli_approve
            _race(lambda a=approval_id, answer=human: answer(a), loop_side.maintain)
            loop_side.maintain()  # whichever lost the race settles now; nothing may run again
            assert len(effects) == trial + 1, f"trial {trial}: {len(effects) - trial} executions"
        done = [r for r in cli_side.decisions.all() if r.action == "set_model_routing" and r.approver]
        assert len(done) == 50 and {r.outcome.status for r in done} == {"done"}
    finally:
        kill_workers(settings.run_dir)


def _race(*contenders) -> None:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(len(contenders))

    def run(body) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        body()

    threads = [threading.Thread(target=run, args=(body,)) for body in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
