"""`brainops workers stop [--all]`: real extract workers started by a real dispatcher, drained through the real
CLI (a subprocess, stdout piped), from another process than the one that started them, as `make clean` does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO, wait_for
from support.agent_rig import NO_CPU_CEILING, cli, copy_brain, kill_workers, make_settings, write_policy, write_toml

from agent.service.effects import Fleet
from agent.state.decisions import DecisionLog
from core.settings import Settings
from fleet.hosts import LocalHost, WorkerOptions, WorkerSpec
from fleet.run_files import RunFiles, our_process, read_json

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
STEADY = WorkerOptions(batch_size=5, item_ms=20, loop=True)  # short batches, never out of work for long


def settings_for(tmp_path: Path, brain: str) -> tuple[Settings, Path]:
    settings = make_settings(tmp_path, copy_brain(brain, tmp_path), write_policy(tmp_path / "p.yaml", **NO_CPU_CEILING))
    return settings, write_toml(settings, tmp_path / "brainops.toml")


def alive(settings: Settings, worker_id: str) -> bool:
    meta = read_json(RunFiles(settings.run_dir, worker_id).pid) or {}
    return our_process(meta.get("pid"), meta.get("create_time")) is not None


def all_running(fleet: Fleet, ids: set[str]) -> bool:
    fleet.dispatcher.workers(refresh=True)
    snap = fleet.dispatcher.last_snapshots["local"]
    return all((w := snap.worker(i)) is not None and w.state == "running" for i in ids)


def test_stop_drains_the_scaled_workers_and_all_stops_jobs_and_strays(tmp_path: Path, small_brain: str) -> None:
    settings, config = settings_for(tmp_path, small_brain)
    fleet = Fleet.from_settings(settings)
    dispatcher = fleet.dispatcher
    try:
        dispatcher.set_desired("extract", "local", 2, STEADY)
        report = dispatcher.reconcile()
        job = dispatcher.run_once("extract", "local", STEADY)  # a one-shot job, no desired count
        stray = "extract-stray-1"  # a process of ours no registry row knows (its dispatcher died before the row)
        started = LocalHost(settings.run_dir).start_worker(WorkerSpec(stray, "extract", settings.brain_path, STEADY))
        scaled = set(report.started)
        assert len(scaled) == 2 and job.ok and started.ok
        wait_for(lambda: all_running(fleet, {*scaled, job.worker_id, stray}), "four workers running")

        drained = cli(config, "workers", "stop")
        assert drained.returncode == 0, drained.stdout + drained.stderr
        for worker_id in scaled:
            assert f"stopped {worker_id} on local (exit 0)" in drained.stdout
            assert not alive(settings, worker_id)
        assert f"left running (one-shot jobs; --all stops them too): {job.worker_id}" in drained.stdout
        assert alive(settings, job.worker_id) and alive(settings, stray)
        assert dispatcher.desired() == {"extract@local": 0}  # the next reconcile starts none again
        assert {w.id for w in dispatcher.registry.live()} == {job.worker_id}  # the drained rows are retired

        everything = cli(config, "workers", "stop", "--all", "--json")
        assert everything.returncode == 0, everything.stdout + everything.stderr
        result = json.loads(everything.stdout)
        assert {w["id"] for w in result["stopped"]} == {job.worker_id, stray} and result["running"] == []
        assert not alive(settings, job.worker_id) and not alive(settings, stray)
        again = cli(config, "workers", "stop", "--all")
        assert again.returncode == 0 and again.stdout.strip() == "no workers were running"

        stops = [r for r in DecisionLog(settings.state_db).all() if r.action == "workers.stop"]
        assert [r.args["all"] for r in stops] == [False, True, True]
        assert all(r.planner.kind == "human" and r.rationale.startswith("requested by cli:operator") for r in stops)
        assert stops[0].outcome.status == "done" and len(stops[0].outcome.data["stopped"]) == 2
    finally:
        kill_workers(settings.run_dir)


def test_a_worker_that_does_not_drain_within_its_grace_is_killed(tmp_path: Path, small_brain: str) -> None:
    settings, config = settings_for(tmp_path, small_brain)
    fleet = Fleet.from_settings(settings)
    try:
        fleet.dispatcher.set_desired("extract", "local", 1, WorkerOptions(batch_size=50, item_ms=2000))  # 100 s
        (worker_id,) = fleet.dispatcher.reconcile().started
        wait_for(lambda: all_running(fleet, {worker_id}), "a worker in a long batch")
        stopped = cli(config, "workers", "stop", "--grace", "1", "--timeout", "30")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert f"stopped {worker_id} on local (killed after its grace)" in stopped.stdout
        assert not alive(settings, worker_id)
    finally:
        kill_workers(settings.run_dir)


def test_stop_on_a_home_that_never_started_a_worker_creates_nothing(tmp_path: Path) -> None:
    config = tmp_path / "brainops.toml"
    config.write_text(f'home = "{tmp_path / "home"}"\n')
    done = cli(config, "workers", "stop", "--all")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"no workers to stop: nothing was ever started on home {tmp_path / 'home'} " + (
        "(no dispatcher registry there)"
    )
    assert not (tmp_path / "home").exists()


def test_make_clean_stops_the_workers_before_deleting(tmp_path: Path, small_brain: str) -> None:
    """The Makefile's own clean target, run in a scratch tree whose venv's brainops is this checkout's."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    settings, config = settings_for(tmp_path, small_brain)
    fleet = Fleet.from_settings(settings)
    tree = tmp_path / "tree"
    brainops = tree / "venv" / "bin" / "brainops"
    brainops.parent.mkdir(parents=True)
    brainops.write_text(f'#!/bin/sh\ncd "{REPO}" && exec "{sys.executable}" -m agent.cli "$@"\n')
    brainops.chmod(0o755)
    (tree / ".brainops").mkdir()
    try:
        fleet.dispatcher.set_desired("extract", "local", 2, STEADY)
        started = set(fleet.dispatcher.reconcile().started)
        wait_for(lambda: all_running(fleet, started), "two workers running")
        env = {**os.environ, "BRAINOPS_CONFIG": str(config)}
        done = subprocess.run(
            ["make", "-f", str(REPO / "Makefile"), "clean", "VENV=venv"],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert all(f"stopped {w} on local (exit 0)" in done.stdout for w in started), done.stdout
        assert not any(alive(settings, w) for w in started)
        assert list(tree.iterdir()) == []  # then the venv and ./.brainops went
    finally:
        kill_workers(settings.run_dir)
