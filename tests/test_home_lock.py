"""One loop per home and ticks that serialize: a second `brainops run` exits 2 naming the holder; concurrent
ticks on one home open one approval for one need (8 concurrent ticks opened 8 identical dedup approvals)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support.agent_rig import NO_CPU_CEILING, cli, copy_brain, kill_workers, make_settings, write_policy, write_toml

from agent.service.agent import Agent
from agent.service.locks import HomeLock, LoopAlreadyRunning, LoopLock

RISKY_DEDUP = {
    "actions": {"run_dedup": {"approval_when": [{"id": "any_merge", "when": {"expected_merges": {"gt": 0}}}]}}
}
HOLD = """import sys
from pathlib import Path
from agent.service.locks import LoopLock
with LoopLock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.mark.slow
def test_a_second_loop_on_one_home_exits_2_naming_the_holder(tmp_path: Path, small_brain: str) -> None:
    settings = make_settings(tmp_path, copy_brain(small_brain, tmp_path), write_policy(tmp_path / "p.yaml"))
    config = write_toml(settings, tmp_path / "brainops.toml")
    argv = [sys.executable, "-c", HOLD, str(settings.home / "loop.lock")]
    holder = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        second = cli(config, "run", "--ticks", "1")
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"pid {holder.pid}" in second.stderr and "one loop per home" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        holder.communicate("", timeout=30)
    with LoopLock(settings.home / "loop.lock"), pytest.raises(LoopAlreadyRunning):  # free once the holder is gone
        LoopLock(settings.home / "loop.lock").__enter__()


def test_home_lock_is_exclusive_across_holders_and_reentrant_within_one(tmp_path: Path) -> None:
    path = tmp_path / "tick.lock"
    first, second = HomeLock(path), HomeLock(path)  # two open files: as two processes see it
    order: list[str] = []
    with first, first:  # re-entrant
        started = threading.Event()

        def contend() -> None:
            started.set()
            with second:
                order.append("second")

        thread = threading.Thread(target=contend)
        thread.start()
        started.wait(10)
        order.append("first")
    thread.join(30)
    assert order == ["first", "second"]


@pytest.mark.slow
def test_concurrent_ticks_open_one_approval_for_one_need(tmp_path: Path, small_brain: str) -> None:
    brain = copy_brain(small_brain, tmp_path)
    policy = write_policy(tmp_path / "p.yaml", **{**NO_CPU_CEILING, **RISKY_DEDUP})
    settings = make_settings(tmp_path, brain, policy)
    agents = [Agent(settings) for _ in range(8)]  # eight processes' worth: own connections, own lock files
    barrier = threading.Barrier(len(agents))
    errors: list[BaseException] = []

    def tick(agent: Agent) -> None:
        try:
            barrier.wait()
            agent.tick()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(a,)) for a in agents]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(240)
        assert not errors, errors
        pending = [a for a in agents[0].approvals.pending(agents[0].clock()) if a.action == "run_dedup"]
        assert len(pending) == 1
    finally:
        kill_workers(settings.run_dir)
