"""`tick --dry-run` records and changes nothing: no worker started or restarted (a worker writes the brain),
no approval resumed, no brain table version moved."""

from __future__ import annotations

from pathlib import Path

from support.agent_rig import NO_CPU_CEILING, cli, copy_brain, kill_workers, make_settings, write_policy, write_toml

from agent.service.agent import Agent
from fleet.hosts import WorkerOptions


def _versions(uri: str) -> dict[str, int]:
    import lancedb

    db = lancedb.connect(uri)
    names = db.list_tables().tables
    return {name: db.open_table(name).version for name in names}


def test_a_dry_run_tick_starts_nothing_and_writes_no_brain_table(tmp_path: Path, small_brain: str) -> None:
    brain = copy_brain(small_brain, tmp_path)
    settings = make_settings(tmp_path, brain, write_policy(tmp_path / "p.yaml", **NO_CPU_CEILING))
    config = write_toml(settings, tmp_path / "brainops.toml")
    Agent(settings).fleet.dispatcher.set_desired("extract", "local", 2, WorkerOptions(batch_size=5))  # not running
    before = _versions(brain)
    try:
        ran = cli(config, "tick", "--dry-run")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "dry_run" in ran.stdout
        assert list(settings.run_dir.glob("*.pid")) == []  # a real tick would have started the two workers
        assert _versions(brain) == before
    finally:
        kill_workers(settings.run_dir)


def test_an_unreadable_brain_is_reported_as_such_never_as_within_targets(tmp_path: Path, small_brain: str) -> None:
    import shutil

    brain = copy_brain(small_brain, tmp_path)
    settings = make_settings(tmp_path, brain, write_policy(tmp_path / "p.yaml", **NO_CPU_CEILING))
    agent = Agent(settings)
    for data in Path(brain).glob("entities.lance/data/*"):  # corrupt one table's data files
        data.write_bytes(b"not lance")
    shutil.rmtree(next(Path(brain).glob("records.lance")) / "_versions")
    try:
        report = agent.tick()
        assert [p.action for p in report.proposals] == ["noop"]
        assert "brain unreadable" in report.proposals[0].rationale
        assert "within targets" not in report.proposals[0].rationale
        assert agent.observe().brain.error
    finally:
        kill_workers(settings.run_dir)
