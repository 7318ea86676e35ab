"""Real workers that all die the same way at start (a fault that follows the code, not a host): once they
are FATAL the tick scales the kind up nowhere, says why, and hands the crash loop to the notifiers (Slack
pages it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import wait_for
from support.agent_rig import NO_CPU_CEILING, copy_brain, kill_workers, make_settings, write_policy

from fleet.dispatcher import RestartPolicy


@pytest.mark.slow
def test_workers_crashing_alike_stop_the_kind_scaling_and_raise_an_alert(
    tmp_path: Path, small_brain: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.service.agent import Agent

    monkeypatch.setenv("BRAINOPS_FAULT", "worker_start")  # inherited by every worker process: exit 137 at start
    settings = make_settings(
        tmp_path, copy_brain(small_brain, tmp_path), write_policy(tmp_path / "p.yaml", **NO_CPU_CEILING)
    )
    agent = Agent(settings)
    agent.fleet.dispatcher.policy = RestartPolicy(max_restarts=2, backoff_base_s=0.05, backoff_max_s=0.2)
    events: list[dict[str, Any]] = []
    agent.notifiers.append(lambda event, payload: events.append(payload) if event == "tick" else None)
    try:
        first = agent.tick()
        assert any(p.action == "scale_workers" and p.args["kind"] == "extract" for p in first.proposals)

        def all_fatal() -> list[str] | None:
            agent.fleet.dispatcher.reconcile()  # restarts each crash after its back-off, until FATAL
            workers = [w for w in agent.fleet.dispatcher.workers(refresh=True) if w.kind == "extract"]
            return [w.id for w in workers] if workers and all(w.state == "fatal" for w in workers) else None

        fatal = wait_for(all_fatal, "every extract worker to go FATAL", timeout_s=60)
        report = agent.tick()
    finally:
        kill_workers(settings.run_dir)

    ups = [p for p in report.proposals if p.action == "scale_workers" and p.args.get("kind") == "extract"]
    assert not ups, report.proposals  # not on this host, not anywhere: more workers would crash the same way
    [noop] = [p for p in report.proposals if p.action == "noop"]
    assert "crash-looping workers need an operator" in noop.rationale and all(w in noop.rationale for w in fatal)
    assert events[-1]["alerts"] and "exit code 137" in events[-1]["alerts"][0]
    assert set(fatal) <= {w.id for w in agent.fleet.dispatcher.workers() if w.state == "fatal"}
