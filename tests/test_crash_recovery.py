"""A process killed mid-tick (at the claim, right after a spawn, before the record) leaves no effect without a
decision record and no orphan process: the next tick on the home finishes the interrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.agent_rig import NO_CPU_CEILING, cli, copy_brain, kill_workers, make_settings, write_policy, write_toml

from agent.service.agent import Agent
from agent.service.recovery import unfinished_ticks


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["after_claim", "after_spawn", "before_record"])
def test_a_tick_killed_mid_way_is_finished_and_recorded_by_the_next(
    tmp_path: Path, small_brain: str, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    settings = make_settings(
        tmp_path, copy_brain(small_brain, tmp_path), write_policy(tmp_path / "p.yaml", **NO_CPU_CEILING)
    )
    config = write_toml(settings, tmp_path / "brainops.toml")
    try:
        monkeypatch.setenv("BRAINOPS_FAULT", fault)
        crashed = cli(config, "tick")
        assert crashed.returncode == 137, crashed.stdout + crashed.stderr
        monkeypatch.delenv("BRAINOPS_FAULT")
        agent = Agent(settings)
        assert agent.decisions.all() == []  # the crash left effects (or claims) but no record
        agent.tick()
        records = agent.decisions.all()
        interrupted = [r for r in records if r.tick_id == records[0].tick_id]
        scale = [r for r in interrupted if r.action == "scale_workers" and r.args["kind"] == "extract"]
        assert scale and scale[0].outcome.status == "done", [(r.action, r.outcome) for r in interrupted]
        if fault != "before_record":
            assert scale[0].outcome.detail.startswith("recovered: done")
        assert agent.fleet.reconcile().orphans == ()
        desired = agent.fleet.dispatcher.desired()
        live = [w for w in agent.fleet.dispatcher.workers(refresh=True) if w.kind == "extract"]
        assert len(live) == desired[f"extract@{live[0].host}"]  # started once: no second spawn
        assert unfinished_ticks(agent.checkpointer) == []
    finally:
        kill_workers(settings.run_dir)


@pytest.mark.slow
def test_24_random_kill_9s_leave_no_unrecorded_effect_and_no_orphan(tmp_path: Path, small_brain: str) -> None:
    """`brainops run` killed with SIGKILL at 24 random moments, restarted each time on the same home."""
    import json
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    policy = write_policy(tmp_path / "p.yaml", **NO_CPU_CEILING)
    settings = make_settings(tmp_path, copy_brain(small_brain, tmp_path), policy)
    config = write_toml(settings, tmp_path / "brainops.toml")
    env = {**os.environ, "BRAINOPS_CONFIG": str(config), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    rng = random.Random(24)
    try:
        for _ in range(24):
            loop = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "run", "--interval", "1"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(rng.uniform(1.5, 5.0))  # the fault: a kill at a random moment of start-up or ticking
            loop.send_signal(signal.SIGKILL)
            loop.wait(30)
        agent = Agent(settings)
        agent.tick()  # the next process on the home finishes whatever the last kill interrupted
        assert unfinished_ticks(agent.checkpointer) == []
        assert agent.fleet.reconcile().orphans == ()
        done = [r for r in agent.decisions.all() if r.action == "scale_workers" and r.outcome.status == "done"]
        last: dict[str, int] = {}
        for record in done:
            last[f"{record.args['kind']}@{record.args['host']}"] = record.args["count"]
        seen = [(r.tick_id, r.action, r.args, r.outcome.status, r.outcome.detail[:80]) for r in agent.decisions.all()]
        assert agent.fleet.dispatcher.desired() == last, seen  # every count set is recorded
        runs = {p.stem.split(".")[0] for p in settings.run_dir.glob("*.pid")}
        known = {w.id for w in agent.fleet.dispatcher.workers(ended=10_000)}
        assert runs <= known, f"processes no record knows: {sorted(runs - known)}"
        assert json.dumps(last)  # at least one scale decision survived the kills
        assert last
    finally:
        kill_workers(settings.run_dir)


def test_a_tick_stopped_before_it_decided_is_dropped_not_replayed(tmp_path: Path, small_brain: str) -> None:
    """What a kill during the first step leaves: a thread with no input values (it crashed the next tick)."""
    policy = write_policy(tmp_path / "p.yaml", **NO_CPU_CEILING)
    settings = make_settings(tmp_path, copy_brain(small_brain, tmp_path), policy)
    agent = Agent(settings)
    try:
        graph = agent._tick_graph(agent.planner)
        config = {"configurable": {"thread_id": "t-killed-while-observing"}}
        graph.update_state(config, {"recovering": False}, as_node="__start__")
        assert graph.get_state(config).next == ("observe",)
        agent.tick()
        assert unfinished_ticks(agent.checkpointer) == []
        assert {r.tick_id for r in agent.decisions.all()} == {agent.decisions.all()[0].tick_id}
    finally:
        kill_workers(settings.run_dir)
