"""Dispatcher + LocalHost with real worker processes (the extract worker on a small real LanceDB brain)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from support import wait_for

from core.domain import WorkerInfo
from fleet.dispatcher import Dispatcher, DispatchError, ReconcileReport, RestartPolicy
from fleet.hosts import InvalidWorkerSpec, LocalHost, WorkerOptions, WorkerSpec, worker_argv
from fleet.probe import RunFiles, kill_session, our_process, read_json, worker_info

SLOW_WORK = WorkerOptions(batch_size=2, item_ms=100)  # ~0.2 s batches: drains are quick, work never runs out


class FakeClock:
    """Dispatcher time only (back-off decisions); the processes run in real time."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def brain(tmp_path_factory: pytest.TempPathFactory) -> str:
    from support.brain_rig import pending_records

    from brain.store import BrainStore

    uri = str(tmp_path_factory.mktemp("brain") / "brain")
    store = BrainStore(uri).open_or_create()
    texts = [f"Ada Lovelace met Person{i % 50} at Acme Corp in City{i % 7}." for i in range(3000)]
    rows = pending_records("rec", texts, "test", 0.0)
    store.add("records", rows)
    return uri


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "run"
    yield path
    for pid_file in path.glob("*.pid"):  # never leave a worker behind, whatever the test did
        meta = read_json(pid_file) or {}
        proc = our_process(meta.get("pid"), meta.get("create_time"))
        if proc is not None and proc.pid != os.getpid():  # the pid-reuse test points a pid file at us
            kill_session(proc.pid)


def make_dispatcher(run_dir: Path, brain: str, clock: FakeClock, **policy: float) -> Dispatcher:
    host = LocalHost(run_dir, "local", cpu_interval_s=0.0)
    return Dispatcher(
        {"local": host},
        run_dir.parent / "registry.db",
        brain_uri=brain,
        clock=clock,
        policy=RestartPolicy(**policy),  # type: ignore[arg-type]
        grace_s=20.0,
    )


def states(d: Dispatcher) -> dict[str, str]:
    return {w.id: w.state for w in d.workers(refresh=True)}


def all_running(d: Dispatcher, n: int) -> dict[str, str] | None:
    seen = states(d)
    return seen if len(seen) == n and set(seen.values()) == {"running"} else None


def reconcile_until(d: Dispatcher, field: str, want: int, now: float, timeout_s: float = 30.0) -> list[str]:
    """Reconcile repeatedly (same dispatcher time) until `want` ids have shown up in report.<field>."""
    got: list[str] = []

    def step() -> list[str] | None:
        report: ReconcileReport = d.reconcile(now)
        got.extend(str(x[0] if isinstance(x, tuple) else x) for x in getattr(report, field))
        return got if len(got) >= want else None

    return wait_for(step, f"{want} worker(s) in report.{field}", timeout_s=timeout_s)


# ---------------------------------------------------------------- specs


def test_worker_argv_is_built_from_validated_fields_only() -> None:
    spec = WorkerSpec("extract-local-1", "extract", "/b", WorkerOptions(shard="1/4", batch_size=8, loop=True))
    assert worker_argv(spec, python="/py", status_file="/r/x.status.json") == [
        "/py", "-m", "agent.cli", "worker", "extract", "--brain", "/b",
        "--shard", "1/4", "--batch-size", "8", "--loop", "--status-file", "/r/x.status.json",
    ]  # fmt: skip
    bad_options = [
        {"shard": "4/4"},
        {"shard": "0/2; rm -rf /"},
        {"shard": "a/b"},
        {"table": "users"},
        {"batch_size": 0},
        {"item_ms": "5"},
        {"loop": "yes"},
    ]
    for bad in bad_options:
        with pytest.raises(InvalidWorkerSpec):
            WorkerOptions(**bad)  # type: ignore[arg-type]
    for worker_id, kind, brain in [("../x", "extract", "/b"), ("ok", "bash", "/b"), ("ok", "embed", "--help")]:
        with pytest.raises(InvalidWorkerSpec):
            WorkerSpec(worker_id, kind, brain)


def test_dispatcher_rejects_bad_requests(tmp_path: Path) -> None:
    d = Dispatcher({"local": LocalHost(tmp_path / "run")}, tmp_path / "r.db", brain_uri="/nowhere")
    with pytest.raises(DispatchError, match="unknown host"):
        d.set_desired("extract", "gpu-9", 1)
    with pytest.raises(DispatchError, match="count"):
        d.set_desired("extract", "local", -1)
    with pytest.raises(DispatchError, match="cannot be scaled"):
        d.set_desired("dedup", "local", 1)
    with pytest.raises(DispatchError, match="no live worker"):
        d.clear_fatal("extract-local-404")
    assert d.desired() == {}


# ---------------------------------------------------------------- real processes


@pytest.mark.slow
def test_scale_up_then_down_drains_newest_first(run_dir: Path, brain: str) -> None:
    clock = FakeClock()
    d = make_dispatcher(run_dir, brain, clock)
    d.set_desired("extract", "local", 3, SLOW_WORK)
    assert len(d.reconcile().started) == 3
    ids = sorted(wait_for(lambda: all_running(d, 3), "3 running workers"), key=lambda i: int(i.rsplit("-", 1)[1]))

    d.set_desired("extract", "local", 1, SLOW_WORK)
    report = d.reconcile()
    assert set(report.draining) == set(ids[1:])  # newest two
    assert sorted(reconcile_until(d, "retired", 2, clock.t)) == sorted(ids[1:])
    for worker_id in ids[1:]:
        status = read_json(RunFiles(run_dir, worker_id).status)
        assert status is not None and status["exit_code"] == 0 and status["state"] == "stopped"
        assert status["processed"] > 0
    assert states(d) == {ids[0]: "running"}
    assert d.desired() == {"extract@local": 1}
    assert not d.reconcile().changed  # steady state: nothing to do


@pytest.mark.slow
def test_killed_worker_restarts_after_backoff(run_dir: Path, brain: str) -> None:
    clock = FakeClock()
    d = make_dispatcher(run_dir, brain, clock, backoff_base_s=5.0)
    d.set_desired("extract", "local", 1, SLOW_WORK)
    (worker_id,) = d.reconcile().started
    wait_for(lambda: all_running(d, 1), "worker running")
    old_pid = d.workers()[0].pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)

    assert reconcile_until(d, "crashed", 1, clock.t) == [worker_id]
    assert d.workers()[0].state == "backoff"
    clock.t += 4.0
    assert not d.reconcile().restarted  # back-off (5 s) not over yet
    clock.t += 1.5
    assert d.reconcile().restarted == (worker_id,)
    wait_for(lambda: all_running(d, 1), "restarted worker running")
    info = d.workers()[0]
    assert info.pid != old_pid and info.restarts == 1


@pytest.mark.slow
def test_crash_loop_goes_fatal_then_clear_fatal_restarts(run_dir: Path, tmp_path: Path) -> None:
    clock = FakeClock()
    d = make_dispatcher(run_dir, str(tmp_path / "no-such-brain"), clock, max_restarts=2, backoff_base_s=1.0)
    d.set_desired("extract", "local", 1)
    (worker_id,) = d.reconcile().started
    delays = []
    for _ in range(2):
        reconcile_until(d, "crashed", 1, clock.t)
        row = d.registry.get(worker_id)
        assert row is not None and row.state == "backoff" and row.next_start_at is not None
        delays.append(row.next_start_at - clock.t)
        clock.t = row.next_start_at
        assert d.reconcile().restarted == (worker_id,)
    assert delays == [1.0, 2.0]  # exponential back-off
    assert reconcile_until(d, "fatal", 1, clock.t) == [worker_id]
    assert RunFiles(run_dir, worker_id).status.exists()
    assert read_json(RunFiles(run_dir, worker_id).status)["exit_code"] == 1  # type: ignore[index]

    clock.t += 3600.0
    report = d.reconcile()
    assert not report.restarted and not report.started  # FATAL holds its slot: no new worker either
    assert d.fatal() == [worker_id] and d.workers()[0].state == "fatal"

    d.clear_fatal(worker_id)
    assert d.reconcile().restarted == (worker_id,)


@pytest.mark.slow
def test_one_shot_jobs_run_to_completion_and_are_not_doubled(run_dir: Path, brain: str) -> None:
    clock = FakeClock()
    d = make_dispatcher(run_dir, brain, clock)
    first = d.run_once("extract", "local", WorkerOptions(shard="0/2", limit=4, batch_size=2, item_ms=200))
    assert first.ok
    for overlapping in (WorkerOptions(shard="0/2"), WorkerOptions(), WorkerOptions(shard="1/3")):
        refused = d.run_once("extract", "local", overlapping)
        assert not refused.ok and "still running" in (refused.error or "")
    other_shard = d.run_once("extract", "local", WorkerOptions(shard="1/2", limit=2))
    assert other_shard.ok  # a different shard of the same job runs side by side
    assert sorted(reconcile_until(d, "finished", 2, clock.t)) == sorted([first.worker_id, other_shard.worker_id])
    infos = {w.id: w for w in d.workers(ended=5)}
    assert {(w.state, w.last_exit) for w in infos.values()} == {("stopped", 0)}
    assert read_json(RunFiles(run_dir, first.worker_id).status)["processed"] == 4  # type: ignore[index]


@pytest.mark.slow
def test_a_job_started_again_under_its_action_key_is_recognised(run_dir: Path, brain: str) -> None:
    """A crash between starting a job and recording it: the retry under the same key starts nothing new
    (job ids used to come from a sequence, so a retry started a second job)."""
    clock = FakeClock()
    d = make_dispatcher(run_dir, brain, clock)
    options = WorkerOptions(limit=2, batch_size=2)
    first = d.run_once("extract", "local", options, job_key="t20261201-abc-0")
    again = d.run_once("extract", "local", options, job_key="t20261201-abc-0")
    assert first.ok and again.ok and again.worker_id == first.worker_id and again.pid == first.pid
    assert [w.id for w in d.workers(ended=5)] == [first.worker_id]
    reconcile_until(d, "finished", 1, clock.t)
    after = d.run_once("extract", "local", options, job_key="t20261201-abc-0")  # finished: still recognised
    assert after.worker_id == first.worker_id and len(d.workers(ended=5)) == 1
    other = d.run_once("extract", "local", options, job_key="t20261201-abc-1")
    assert other.ok and other.worker_id != first.worker_id


@pytest.mark.slow
def test_drain_past_grace_is_killed(run_dir: Path, brain: str) -> None:
    host = LocalHost(run_dir, cpu_interval_s=0.0)
    spec = WorkerSpec("extract-local-slow", "extract", brain, WorkerOptions(batch_size=50, item_ms=1000))
    assert host.start_worker(spec).ok
    assert not host.start_worker(spec).ok  # same id twice: refused while alive
    wait_for(lambda: host.snapshot(1.0).worker(spec.worker_id).state == "running", "slow worker running")  # type: ignore[union-attr]
    assert host.stop_worker(spec.worker_id, drain=True, grace_s=0.3).state == "draining"
    wait_for(lambda: host.snapshot(1.0).worker(spec.worker_id).state == "crashed", "overdue drain killed")  # type: ignore[union-attr]
    info = host.snapshot(1.0).worker(spec.worker_id)
    assert info is not None
    assert info.last_exit == -signal.SIGKILL  # reaped by the host; the 50 s batch never finished


def test_reused_pid_is_not_taken_for_our_worker(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    me = psutil.Process()
    files = RunFiles(run_dir, "extract-local-9")
    files.pid.write_text(json.dumps({"pid": me.pid, "create_time": me.create_time() - 500, "kind": "extract"}))
    info = worker_info(run_dir, "extract-local-9", "local")
    assert info is not None and info.state == "crashed"  # pid alive, but it is someone else's process
    host = LocalHost(run_dir)
    assert host.stop_worker("extract-local-9").state == "not_running"  # and we never signal it

    files.pid.write_text(json.dumps({"pid": me.pid, "create_time": me.create_time(), "kind": "extract"}))
    assert worker_info(run_dir, "extract-local-9", "local").state == "starting"  # type: ignore[union-attr]


@pytest.mark.slow
def test_a_spawn_without_a_registry_row_is_an_orphan_and_is_stopped(run_dir: Path, brain: str) -> None:
    """What a crash between spawning a worker and registering it used to leave: a process nothing knew."""
    clock = FakeClock()
    d = make_dispatcher(run_dir, brain, clock)
    host = d.hosts["local"]
    orphan = WorkerSpec("extract-local-orphan", "extract", brain, SLOW_WORK)
    assert host.start_worker(orphan).ok
    wait_for(lambda: host.snapshot(1.0).worker(orphan.worker_id).state == "running", "orphan running")  # type: ignore[union-attr]
    report = d.reconcile()
    assert report.orphans == (orphan.worker_id,)
    wait_for(lambda: host.snapshot(1.0).worker(orphan.worker_id).state == "stopped", "orphan drained", timeout_s=30)  # type: ignore[union-attr]


def test_the_intent_is_recorded_before_the_spawn(run_dir: Path, brain: str) -> None:
    clock = FakeClock()
    d = make_dispatcher(run_dir, brain, clock)
    seen_rows: list[object] = []
    real_start = d._start

    def start_and_look(row):  # type: ignore[no-untyped-def]
        seen_rows.append(d.registry.get(row.id))  # what a crash right here would leave behind
        return real_start(row)

    d._start = start_and_look  # type: ignore[method-assign]
    d.set_desired("extract", "local", 1, SLOW_WORK)
    started = d.reconcile().started
    assert len(started) == 1 and seen_rows and seen_rows[0] is not None
    assert d.reconcile().orphans == ()  # the crash-window row adopts its process: no orphan


@pytest.mark.slow
def test_a_job_that_finished_since_the_last_reconcile_does_not_block_the_next(run_dir: Path, brain: str) -> None:
    """No loop refreshed the registry: the job is judged from its live process, not its stale row (this was
    recorded "failed: still running" and consumed the approval)."""
    clock = FakeClock()
    d = make_dispatcher(run_dir, brain, clock)
    first = d.run_once("extract", "local", WorkerOptions(limit=2, batch_size=2), job_key="a")
    host = d.hosts["local"]
    wait_for(lambda: host.snapshot(1.0).worker(first.worker_id).state == "stopped", "first job exits")  # type: ignore[union-attr]
    second = d.run_once("extract", "local", WorkerOptions(limit=2, batch_size=2), job_key="b")
    assert second.ok, second.error


# ---------------------------------------------------------------- work in hand


def test_status_counters_become_processed_and_idle(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    me = psutil.Process()
    files = RunFiles(run_dir, "extract-local-7")
    files.pid.write_text(json.dumps({"pid": me.pid, "create_time": me.create_time(), "kind": "extract"}))
    for status, processed, idle in [
        ({"state": "running", "processed": 0, "last_batch": None}, 0, False),  # no batch yet: not known idle
        ({"state": "running", "processed": 40, "last_batch": 20}, 40, False),
        ({"state": "running", "processed": 40, "last_batch": 0}, 40, True),
        ({"state": "draining", "processed": 40, "last_batch": 0}, 40, False),
        ({"state": "running", "processed": "40", "last_batch": True}, None, False),  # not counters: unknown
    ]:
        files.status.write_text(json.dumps(status))
        info = worker_info(run_dir, "extract-local-7", "local")
        assert info is not None and (info.processed, info.idle) == (processed, idle), status


def _status(run_dir: Path, worker_id: str) -> dict:
    status = read_json(RunFiles(run_dir, worker_id).status)
    assert status is not None
    return status


@pytest.mark.slow
def test_scale_down_stops_an_idle_worker_before_a_busy_one(run_dir: Path, brain: str) -> None:
    """The idle worker is the older one, so newest-first (the order before idleness counted) picks the busy one."""
    clock = FakeClock()
    d = make_dispatcher(run_dir, brain, clock)
    d.set_desired("extract", "local", 1, WorkerOptions(batch_size=2, limit=2))  # two records, then nothing to do
    (idle_id,) = d.reconcile().started
    d.set_desired("extract", "local", 2, SLOW_WORK)
    (busy_id,) = d.reconcile().started

    def idle_one() -> WorkerInfo | None:
        seen = {w.id: w for w in d.workers(refresh=True)}
        idle, busy = seen[idle_id], seen[busy_id]
        ready = idle.idle and busy.state == "running" and not busy.idle and (busy.processed or 0) > 0
        return idle if ready else None

    assert wait_for(idle_one, "one idle and one busy extract worker").processed == 2

    d.set_desired("extract", "local", 1, SLOW_WORK)
    assert d.reconcile().draining == (idle_id,)
    assert reconcile_until(d, "retired", 1, clock.t) == [idle_id]
    assert _status(run_dir, idle_id)["exit_code"] == 0
    assert states(d) == {busy_id: "running"}


@pytest.mark.slow
def test_a_drained_worker_finishes_its_batch_and_exits_0(run_dir: Path, brain: str) -> None:
    """Scale-down mid-batch, the batch (1.5 s) well inside the grace period (20 s): no SIGKILL, the batch counts."""
    clock = FakeClock()
    d = make_dispatcher(run_dir, brain, clock)
    d.set_desired("extract", "local", 1, WorkerOptions(batch_size=5, item_ms=300))
    (worker_id,) = d.reconcile().started

    def batches() -> int:
        return int((read_json(RunFiles(run_dir, worker_id).status) or {}).get("batches", 0))

    done = wait_for(lambda: batches() or None, "a first batch done")
    wait_for(lambda: batches() > done, "the next batch to start")
    before = _status(run_dir, worker_id)  # a batch has just begun: the drain lands in its middle

    d.set_desired("extract", "local", 0)
    assert d.reconcile().draining == (worker_id,)
    assert reconcile_until(d, "retired", 1, clock.t) == [worker_id]
    after = _status(run_dir, worker_id)
    assert after["exit_code"] == 0 and after["state"] == "stopped"
    assert after["processed"] > before["processed"] and after["last_batch"] == 5  # the batch in hand completed
    assert after["processed"] == 5 * after["batches"]  # whole batches only: none cut short
    row = d.registry.get(worker_id)
    assert row is not None and row.last_exit == 0  # not -SIGKILL
