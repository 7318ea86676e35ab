"""Disk pressure on a real brain, real worker log files and a real decision log: what each reclaim action frees,
what it never removes, and a tick that reclaims before the disk reaches the policy's ceiling."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support.agent_rig import REPO, cli, copy_brain, kill_workers, make_settings, write_policy, write_toml

from agent.service.agent import Agent
from agent.service.storage import observe_storage, reclaim
from agent.state.decision_archive import archive, read_segment
from agent.state.decisions import DecisionLog, verify_log
from brain.lance_space import version_space
from brain.schema import TABLES
from brain.store import BrainStore
from core.domain import Outcome
from policies.model import Storage

KEY = b"storage-test-key-0123456789abcdef"
DAY = 86_400.0


def _log(tmp: Path, n: int, first: float = 1_000_000.0) -> DecisionLog:
    log = DecisionLog(tmp / "state.db", key=KEY)
    for i in range(n):
        log.append(tick_id=f"t{i}", action="noop", rationale=f"tick {i}", outcome=Outcome(status="noop"), now=first + i)
    return log


# ---------------------------------------------------------------- LanceDB versions


def test_prune_versions_frees_old_versions_and_keeps_the_current_one(small_brain: str, tmp_path: Path) -> None:
    store = BrainStore(copy_brain(small_brain, tmp_path))
    counts = {name: store.fresh(name).count_rows() for name in TABLES}
    before = version_space(store, tuple(TABLES))
    assert before.old_versions > 0 and before.bytes and before.bytes > 0
    settings = make_settings(tmp_path, store.uri, write_policy(tmp_path / "policy.yaml"))

    young = reclaim(settings, Storage(), "versions", older_than_days=7, keep=5)  # the seed's versions are minutes old
    assert young.startswith("pruned 0 LanceDB versions")
    assert version_space(store, tuple(TABLES)).old_versions == before.old_versions

    line = reclaim(settings, Storage(), "versions", older_than_days=0, keep=5)
    after = version_space(BrainStore(store.uri), tuple(TABLES))
    assert f"pruned {before.old_versions} LanceDB versions" in line
    assert after.old_versions == 0 and after.bytes == 0
    fresh = BrainStore(store.uri)
    assert {name: fresh.fresh(name).count_rows() for name in TABLES} == counts  # the current data is all there


# ---------------------------------------------------------------- worker logs


def _live_worker(run_dir: Path, worker_id: str) -> subprocess.Popen[bytes]:
    """A process appending a line every 10 ms to its log, opened for appending as LocalHost opens it."""
    log = (run_dir / f"{worker_id}.log").open("ab")
    code = "import sys, time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.01)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    pid = {"pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time(), "kind": "extract"}
    (run_dir / f"{worker_id}.pid").write_text(json.dumps(pid))
    return proc


def _wait_for(check, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_rotate_logs_compresses_finished_logs_and_copy_truncates_live_ones(tmp_path: Path) -> None:
    from fleet.log_rotation import log_space, rotate_logs

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    finished = run_dir / "extract-local-1.log"
    finished.write_text("old line\n" * 5000)
    proc = _live_worker(run_dir, "extract-local-2")
    live = run_dir / "extract-local-2.log"
    try:
        _wait_for(lambda: live.stat().st_size > 200)
        space = log_space(run_dir, rotate_bytes=100)
        assert space.files == 2 and space.bytes >= finished.stat().st_size
        first = rotate_logs(run_dir, keep=1, rotate_bytes=100)
        assert (first.compressed, first.rotated) == (1, 1) and first.freed > 0
        assert not finished.exists()  # gone only once its gzip copy is on disk
        (copy,) = run_dir.glob("extract-local-1.log.*.gz")
        assert gzip.decompress(copy.read_bytes()).decode() == "old line\n" * 5000
        (rotated,) = run_dir.glob("extract-local-2.log.*.gz")
        assert gzip.decompress(rotated.read_bytes()).startswith(b"tick\n")
        _wait_for(lambda: live.stat().st_size > 0)  # the worker goes on writing, at the start of the emptied file
        assert live.read_bytes().startswith(b"tick")  # O_APPEND: no hole of zeros where the old content was
        _wait_for(lambda: live.stat().st_size > 200)
        second = rotate_logs(run_dir, keep=1, rotate_bytes=100)
        assert (second.rotated, second.deleted) == (1, 1)
        assert [p.name for p in run_dir.glob("extract-local-2.log.*.gz")] != [rotated.name]
        assert len(list(run_dir.glob("extract-local-1.log.*.gz"))) == 1  # a finished worker's copy is kept
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- decision log segments


def test_archived_segments_verify_with_the_live_log_and_tampering_fails(tmp_path: Path) -> None:
    log = _log(tmp_path, 12)
    head = log.head()
    first = archive(log.path, tmp_path / "archive", 1_000_000.0 + 6, KEY, now=2_000_000.0)
    second = archive(log.path, tmp_path / "archive", 1_000_000.0 + 100, KEY, now=2_000_000.0)
    assert (first.first_seq, first.last_seq, second.first_seq, second.last_seq) == (1, 6, 7, 11)
    assert [r.seq for r in log.all()] == [12]  # the newest record stays: the log always holds the head
    assert log.verify().ok and log.verify().checked == 12 and log.head() == head
    report = verify_log(log.path, key=KEY, expect_head=f"{head.seq}:{head.short}")
    assert report.ok, report.reason
    assert log.append(tick_id="t12", action="noop", outcome=Outcome(status="noop"), now=1_000_100.0).seq == 13
    assert log.verify().ok

    segment = Path(second.path)
    rows = read_segment(segment)
    rows[2]["rationale"] = "rewritten"
    segment.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    changed = verify_log(log.path, key=KEY)
    assert not changed.ok and "was changed since it was archived" in (changed.reason or "")

    # someone who can write state.db points the segment row at the edited file's sha256: the chain still fails
    import hashlib
    import sqlite3

    with sqlite3.connect(log.path) as conn:
        digest = hashlib.sha256(segment.read_bytes()).hexdigest()
        conn.execute("UPDATE decision_segments SET sha256 = ? WHERE segment = 2", (digest,))
    forged = verify_log(log.path, key=KEY)
    assert not forged.ok and "signed with the decision key" in (forged.reason or "")


def test_edited_record_inside_a_resigned_segment_breaks_the_chain(tmp_path: Path) -> None:
    """With the key, a segment row can be re-signed, but the edited record no longer matches its hash."""
    import hashlib
    import sqlite3

    from agent.state.decision_archive import segment_mac

    log = _log(tmp_path, 6)
    done = archive(log.path, tmp_path / "archive", 1_000_000.0 + 4, KEY, now=2_000_000.0)
    segment = Path(done.path)
    rows = read_segment(segment)
    rows[1]["rationale"] = "rewritten"
    segment.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    with sqlite3.connect(log.path) as conn:
        conn.row_factory = sqlite3.Row
        seg = dict(conn.execute("SELECT * FROM decision_segments").fetchone())
        seg["sha256"] = hashlib.sha256(segment.read_bytes()).hexdigest()
        conn.execute("UPDATE decision_segments SET sha256 = ?, mac = ?", (seg["sha256"], segment_mac(KEY, seg)))
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 2 and "does not match its hash" in (report.reason or "")


def test_a_crash_between_segment_and_delete_loses_nothing(tmp_path: Path) -> None:
    log = _log(tmp_path, 8)
    script = (
        "import sys; from pathlib import Path; from agent.state.decision_archive import archive\n"
        "archive(Path(sys.argv[1]), Path(sys.argv[2]), 1_000_005.0, sys.argv[3].encode(), now=2_000_000.0)\n"
    )
    args = [sys.executable, "-c", script, str(log.path), str(tmp_path / "archive"), KEY.decode()]
    env = {**os.environ, "PYTHONPATH": str(REPO), "BRAINOPS_FAULT": "archive_before_delete"}
    crashed = subprocess.run(args, env=env, cwd=REPO, timeout=60)
    assert crashed.returncode == 137
    assert log.count() == 8 and log.verify().ok  # the segment is on disk, every record still in the log
    assert len(read_segment(tmp_path / "archive" / "decisions-000000000001.jsonl.gz")) == 5
    env.pop("BRAINOPS_FAULT")
    subprocess.run(args, env=env, cwd=REPO, timeout=60, check=True)  # the retry rewrites the same segment
    assert log.count() == 3 and log.verify().ok and log.verify().checked == 8


def test_decisions_verify_cli_checks_archived_segments(tmp_path: Path, small_brain: str) -> None:
    settings = make_settings(tmp_path, copy_brain(small_brain, tmp_path), write_policy(tmp_path / "policy.yaml"))
    config = write_toml(settings, tmp_path / "brainops.toml")
    log = DecisionLog.from_settings(settings)
    old = time.time() - 40 * DAY
    for i in range(5):
        log.append(tick_id=f"t{i}", action="noop", outcome=Outcome(status="noop"), now=old + i)
    log.append(tick_id="now", action="noop", outcome=Outcome(status="noop"))
    line = reclaim(settings, Storage(), "decisions", older_than_days=30, keep=5)
    assert "archived decision records 1..5 (5)" in line and str(settings.decision_archive_path) in line
    ok = cli(config, "decisions", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    next(settings.decision_archive_path.glob("*.jsonl.gz")).unlink()
    missing = cli(config, "decisions", "verify")
    assert missing.returncode == 1 and "missing" in missing.stdout + missing.stderr


# ---------------------------------------------------------------- the observation and a tick


def test_observation_measures_the_disk_and_each_target(tmp_path: Path, small_brain: str) -> None:
    settings = make_settings(tmp_path, copy_brain(small_brain, tmp_path), write_policy(tmp_path / "policy.yaml"))
    (settings.run_dir / "embed-local-1.log").write_text("x" * 4096)  # a finished worker's log
    _log(settings.home, 3).path  # noqa: B018 - records from 1970: all archivable but the newest
    stats = observe_storage(settings, "local", Storage(archive_decisions_after_days=1), time.time())
    usage = shutil.disk_usage(settings.brain_path)
    assert stats.error is None and stats.disk_percent == pytest.approx(100 * usage.used / usage.total, abs=1)
    assert stats.reclaimable["versions"].bytes and stats.reclaimable["versions"].items > 0
    assert stats.reclaimable["logs"].bytes == 4096 and stats.reclaimable["logs"].items == 1
    assert stats.reclaimable["decisions"].items == 2


def test_a_tick_over_the_act_threshold_prunes_versions_on_a_real_brain(tmp_path: Path, small_brain: str) -> None:
    brain = copy_brain(small_brain, tmp_path)
    usage = shutil.disk_usage(brain)
    used = 100 * usage.used / usage.total
    storage = {"act_at_percent": max(0.5, used - 0.5), "ceiling_percent": 100, "min_reclaim_mb": 0}
    storage["min_version_age_days"] = 0
    no_scaling = {"extract": {"max": 0}, "wisdom": {"max": 0}, "embed": {"max": 0}}
    policy = write_policy(tmp_path / "policy.yaml", storage=storage, workers=no_scaling)
    settings = make_settings(tmp_path, brain, policy)
    try:
        report = Agent(settings).tick()
    finally:
        kill_workers(settings.run_dir)
    done = {p.action: o for p, o in zip(report.proposals, report.outcomes, strict=True)}
    assert "prune_versions" in done, [p.action for p in report.proposals]
    assert done["prune_versions"].status == "done", done["prune_versions"]
    assert version_space(BrainStore(brain), tuple(TABLES)).old_versions == 0
    (record,) = [r for r in DecisionLog.from_settings(settings).all() if r.action == "prune_versions"]
    assert record.args == {"older_than_days": 0} and "frees" in record.rationale
    status = json.loads(settings.status_path.read_text())
    assert status["storage"]["disk_percent"] >= storage["act_at_percent"]
