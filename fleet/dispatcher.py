"""Desired worker counts -> real processes on hosts: start, drain, restart crashed ones with back-off, FATAL.

Restart policy, supervisord-style: a crashed worker slot is restarted after an exponential back-off
(base, 2*base, 4*base, ... capped). Restarts are counted within a sliding window; a slot that crashes
again after `max_restarts` restarts in the window goes FATAL and stays down until `clear_fatal`.
Time is always a parameter (`now`) or the injected clock, so back-off is tested without sleeping.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.domain import HostMetrics, WorkerInfo, WorkerState
from core.faults import point
from core.kinds import SCALABLE_KINDS, WORKER_KINDS
from fleet.hosts import (
    DEFAULT_GRACE_S,
    Host,
    HostSnapshot,
    InvalidWorkerSpec,
    StartResult,
    StopResult,
    WorkerOptions,
    WorkerSpec,
)
from fleet.registry import Desired, Registry, WorkerRow

MAX_DESIRED = 64


class DispatchError(ValueError):
    """A request the dispatcher refuses (unknown host or worker, bad count, ...); the message says why."""


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 3
    window_s: float = 300.0
    backoff_base_s: float = 2.0
    backoff_max_s: float = 60.0

    def delay(self, restarts_in_window: int) -> float:
        return float(min(self.backoff_max_s, self.backoff_base_s * 2**restarts_in_window))


@dataclass(frozen=True)
class ReconcileReport:
    time: float
    started: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    draining: tuple[str, ...] = ()  # asked to drain this round (scale-down)
    retired: tuple[str, ...] = ()  # finished draining, or exited cleanly on their own
    finished: tuple[str, ...] = ()  # one-shot jobs that ended (done or failed)
    crashed: tuple[str, ...] = ()  # crashes detected this round
    backoff: tuple[tuple[str, float], ...] = ()  # (worker id, restart not before)
    fatal: tuple[str, ...] = ()  # went FATAL this round
    unreachable: tuple[str, ...] = ()  # hosts whose snapshot failed: left untouched
    orphans: tuple[str, ...] = ()  # processes of ours in a run dir with no registry row: stopped
    errors: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any((self.started, self.restarted, self.draining, self.retired, self.crashed, self.fatal, self.orphans))


@dataclass
class _Tally:
    lists: dict[str, list[object]] = field(default_factory=dict)

    def add(self, key: str, item: object) -> None:
        self.lists.setdefault(key, []).append(item)

    def report(self, now: float) -> ReconcileReport:
        return ReconcileReport(time=now, **{k: tuple(v) for k, v in self.lists.items()})  # type: ignore[arg-type]


def _overlap(a: WorkerOptions, b: WorkerOptions) -> bool:
    if a.table != b.table:
        return False
    if a.shard is None or b.shard is None:
        return True
    (i, n), (j, m) = (tuple(map(int, s.split("/"))) for s in (a.shard, b.shard))
    return n != m or i == j


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-.") or "host"


def job_worker_id(kind: str, host: str, job_key: str, options: WorkerOptions) -> str:
    """The id of the job one action started: the same action key always names the same worker."""
    shard = f"-s{options.shard.replace('/', 'of')}" if options.shard else ""
    digest = hashlib.sha256(job_key.encode()).hexdigest()[:10]
    return f"{kind}-{_slug(host)[:16]}-job-{_slug(job_key)[:20]}-{digest}{shard}"


class Dispatcher:
    def __init__(
        self,
        hosts: Mapping[str, Host],
        registry_db: Path,
        *,
        brain_uri: str,
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.time,
        grace_s: float = DEFAULT_GRACE_S,
        snapshot_timeout_s: float = 5.0,
    ) -> None:
        self.hosts = dict(hosts)
        self.registry = Registry(registry_db)
        self.brain_uri = brain_uri
        self.policy = policy or RestartPolicy()
        self.clock = clock
        self.grace_s = grace_s
        self.snapshot_timeout_s = snapshot_timeout_s
        self.last_snapshots: dict[str, HostSnapshot] = {}
        self.down: dict[str, HostMetrics] = {}  # hosts whose last snapshot failed, with the error
        self._lock = threading.Lock()  # one reconcile at a time; host calls run outside DB transactions

    # ------------------------------------------------------------ requests

    def set_desired(self, kind: str, host: str, n: int, options: WorkerOptions | None = None) -> None:
        """Keep n workers of kind on host (applied by the next reconcile). Scaled workers always --loop."""
        if kind not in SCALABLE_KINDS:
            raise DispatchError(f"kind {kind!r} cannot be scaled; scalable: {', '.join(SCALABLE_KINDS)}")
        self._check_host(host)
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_DESIRED:
            raise DispatchError(f"count must be an int in [0, {MAX_DESIRED}], got {n!r}")
        base = options or WorkerOptions()
        opts = WorkerOptions(**{**base.__dict__, "loop": True})
        self.registry.set_desired(Desired(kind, host, n, opts), self.clock())

    def desired(self) -> dict[str, int]:
        """{"kind@host": count}, the shape Observation.desired uses."""
        return {f"{d.kind}@{d.host}": d.count for d in self.registry.desired()}

    def run_once(
        self,
        kind: str,
        host: str,
        options: WorkerOptions | None = None,
        now: float | None = None,
        job_key: str | None = None,
    ) -> StartResult:
        """Start a one-shot job (dedup / recluster / embed). Refused while a job of that kind still runs on
        the same rows: other shards (same n) or the other embed table may run side by side.

        With a `job_key` (the action's idempotency key) the worker id derives from it, so a repeated start
        of the same action (a retry after a crash mid-effect) finds the job it started and starts nothing."""
        now = self.clock() if now is None else now
        if kind not in WORKER_KINDS:
            raise DispatchError(f"unknown worker kind {kind!r}; known: {', '.join(WORKER_KINDS)}")
        self._check_host(host)
        opts = options or WorkerOptions()
        if job_key is not None:
            worker_id = job_worker_id(kind, host, job_key, opts)
            earlier = self.registry.get(worker_id)
            if earlier is not None and earlier.state != "failed":
                return StartResult(ok=True, worker_id=worker_id, pid=earlier.pid, started_at=earlier.started_at)
        busy = self._busy_jobs(kind, opts, now)
        if busy:
            return StartResult(ok=False, worker_id=busy[0], error=f"{kind} job {busy[0]} is still running")
        row = self._new_row(kind, host, opts, now, one_shot=True)
        if job_key is not None:
            row = row.evolve(id=job_worker_id(kind, host, job_key, opts))
        self.registry.save(row)  # the intent first (see _start_new)
        result = self._start(row)
        point("after_spawn")
        if result.ok:
            self.registry.save(row.evolve(pid=result.pid, started_at=result.started_at))
        else:
            self.registry.save(row.evolve(state="failed", ended_at=now))
        return result

    def _busy_jobs(self, kind: str, opts: WorkerOptions, now: float) -> list[str]:
        """Jobs of this kind on overlapping rows that still run: judged from the live processes, since a
        registry row is only as fresh as the last reconcile (a job may have finished since)."""

        def busy() -> list[WorkerRow]:
            return [w for w in self.registry.live() if w.one_shot and w.kind == kind and _overlap(w.options, opts)]

        rows = busy()
        if rows:
            with self._lock:
                snaps = self._observe(_Tally())
                for row in rows:
                    if row.host in snaps:
                        self._settle(row, snaps[row.host].worker(row.id), now, _Tally())
            rows = busy()
        return [w.id for w in rows]

    def stop(self, worker_id: str, drain: bool = True) -> StopResult:
        """Drain (or stop) one worker for good; a scaled worker's desired count drops by one."""
        row = self._live_row(worker_id)
        if not row.one_shot:
            self._lower_desired(row.kind, row.host)
        if row.state in ("backoff", "fatal"):
            self.registry.save(row.evolve(state="retired", ended_at=self.clock()))
            return StopResult(ok=True, worker_id=worker_id, state="not_running")
        result = self._host_stop(row, drain)
        self.registry.save(row.evolve(state="draining"))
        return result

    def clear_fatal(self, worker_id: str, now: float | None = None) -> None:
        """Forget a FATAL slot's crash history; the next reconcile restarts it."""
        now = self.clock() if now is None else now
        row = self._live_row(worker_id)
        if row.state != "fatal":
            raise DispatchError(f"worker {worker_id} is {row.state}, not fatal")
        self.registry.save(row.evolve(state="backoff", restarts=(), next_start_at=now))

    def fatal(self) -> list[str]:
        return [w.id for w in self.registry.live() if w.state == "fatal"]

    # ------------------------------------------------------------ reconcile

    def reconcile(self, now: float | None = None) -> ReconcileReport:
        """Observe every host once, settle each worker slot, then scale each (kind, host) to its count."""
        now = self.clock() if now is None else now
        tally = _Tally()
        with self._lock:
            snaps = self._observe(tally)
            for row in self.registry.live():
                if row.host in snaps:
                    self._settle(row, snaps[row.host].worker(row.id), now, tally)
            for host, snap in snaps.items():
                self._stop_orphans(host, snap, tally)
            for d in self.registry.desired():
                if d.host in snaps:
                    self._scale(d, now, tally)
        return tally.report(now)

    def workers(self, refresh: bool = False, ended: int = 0) -> list[WorkerInfo]:
        """Every live slot as WorkerInfo (process state from the last snapshot), plus `ended` recent ended ones."""
        if refresh:
            with self._lock:
                self._observe(_Tally())
        rows = self.registry.live() + self.registry.recent_ended(ended) if ended else self.registry.live()
        return [self._info(row) for row in rows]

    def _observe(self, tally: _Tally) -> dict[str, HostSnapshot]:
        """One snapshot per host, all hosts in parallel, each bounded by the snapshot timeout."""
        from fleet.remote import observe_hosts

        names = list(self.hosts)
        snaps = {}
        taken = observe_hosts([self.hosts[n] for n in names], self.snapshot_timeout_s)
        for name, snap in zip(names, taken, strict=True):
            if not snap.metrics.reachable:
                tally.add("unreachable", name)
                self.down[name] = snap.metrics
                continue
            self.down.pop(name, None)
            snaps[name] = self.last_snapshots[name] = snap
        return snaps

    def _stop_orphans(self, host: str, snap: HostSnapshot, tally: _Tally) -> None:
        """A process no registry row knows (spawned by a dispatcher that died before its intent record, or
        by an older version) is nobody's: drain it, and say so."""
        for w in snap.workers:
            if w.state in ("starting", "running") and self.registry.get(w.id) is None:
                result = self.hosts[host].stop_worker(w.id, drain=True)
                if result.ok:
                    tally.add("orphans", w.id)
                else:
                    tally.add("errors", f"orphan {w.id}: stop failed: {result.error}")

    def _settle(self, row: WorkerRow, seen: WorkerInfo | None, now: float, tally: _Tally) -> None:
        if row.state == "backoff":
            if row.next_start_at is None or now >= row.next_start_at:
                self._restart(row, now, tally)
            return
        if row.state == "fatal" or (seen is not None and seen.state in ("starting", "running", "draining")):
            return
        exit_code = seen.last_exit if seen is not None else None
        clean = seen is not None and seen.state == "stopped"
        if row.state == "draining" or (clean and not row.one_shot):
            self.registry.save(row.evolve(state="retired", last_exit=exit_code, ended_at=now))
            tally.add("retired", row.id)
        elif row.one_shot:
            self.registry.save(row.evolve(state="done" if clean else "failed", last_exit=exit_code, ended_at=now))
            tally.add("finished", row.id)
            if not clean:
                tally.add("crashed", row.id)
        else:
            tally.add("crashed", row.id)
            self._after_crash(row.evolve(last_exit=exit_code), now, tally)

    def _after_crash(self, row: WorkerRow, now: float, tally: _Tally) -> None:
        recent = tuple(t for t in row.restarts if t > now - self.policy.window_s)
        if len(recent) >= self.policy.max_restarts:
            self.registry.save(row.evolve(state="fatal", restarts=recent, next_start_at=None))
            tally.add("fatal", row.id)
            return
        at = now + self.policy.delay(len(recent))
        self.registry.save(row.evolve(state="backoff", restarts=recent, next_start_at=at))
        tally.add("backoff", (row.id, at))

    def _restart(self, row: WorkerRow, now: float, tally: _Tally) -> None:
        row = row.evolve(restarts=(*row.restarts, now), total_restarts=row.total_restarts + 1)
        result = self._start(row)
        if not result.ok:
            tally.add("errors", f"{row.id}: restart failed: {result.error}")
            self._after_crash(row, now, tally)
            return
        self.registry.save(row.evolve(state="active", pid=result.pid, started_at=result.started_at))
        tally.add("restarted", row.id)

    def _scale(self, d: Desired, now: float, tally: _Tally) -> None:
        slots = [
            w
            for w in self.registry.live()
            if w.kind == d.kind and w.host == d.host and not w.one_shot and w.state != "draining"
        ]
        for _ in range(d.count - len(slots)):
            self._start_new(d, now, tally)
        if len(slots) > d.count:
            # No process first (fatal, backing off), then idle workers (no work in hand to lose), then the newest.
            order = {"fatal": 0, "backoff": 1, "active": 2}
            seen = self.last_snapshots.get(d.host)
            idle = {w.id for w in seen.workers if w.idle} if seen else set()
            victims = sorted(slots, key=lambda w: (order[w.state], w.id not in idle, -w.created_at, -w.seq))
            for row in victims[: len(slots) - d.count]:
                self._scale_down(row, now, tally)

    def _start_new(self, d: Desired, now: float, tally: _Tally) -> None:
        row = self._new_row(d.kind, d.host, d.options, now, one_shot=False)
        self.registry.save(row)  # the intent first: a crash right after the spawn leaves a row, not an orphan
        result = self._start(row)
        if not result.ok:
            tally.add("errors", f"{row.id}: start failed: {result.error}")
            self.registry.save(row)
            self._after_crash(row, now, tally)
            return
        point("after_spawn")
        self.registry.save(row.evolve(pid=result.pid, started_at=result.started_at))
        tally.add("started", row.id)

    def _scale_down(self, row: WorkerRow, now: float, tally: _Tally) -> None:
        if row.state != "active":
            self.registry.save(row.evolve(state="retired", ended_at=now))
            tally.add("retired", row.id)
            return
        result = self._host_stop(row, drain=True)
        if not result.ok:
            tally.add("errors", f"{row.id}: stop failed: {result.error}")
            return
        self.registry.save(row.evolve(state="draining"))
        tally.add("draining", row.id)

    # ------------------------------------------------------------ helpers

    def _new_row(self, kind: str, host: str, options: WorkerOptions, now: float, *, one_shot: bool) -> WorkerRow:
        seq = self.registry.next_seq("worker")
        tag = "once-" if one_shot else ""
        worker_id = f"{kind}-{_slug(host)}-{tag}{seq}"
        return WorkerRow(worker_id, kind, host, options, one_shot, state="active", created_at=now, seq=seq)

    def _start(self, row: WorkerRow) -> StartResult:
        try:
            spec = WorkerSpec(row.id, row.kind, self.brain_uri, row.options)
        except InvalidWorkerSpec as exc:
            return StartResult(ok=False, worker_id=row.id, error=str(exc))
        try:
            return self.hosts[row.host].start_worker(spec)
        except Exception as exc:  # remote hosts can fail in many ways; it is one failed start
            return StartResult(ok=False, worker_id=row.id, error=repr(exc))

    def _host_stop(self, row: WorkerRow, drain: bool) -> StopResult:
        try:
            return self.hosts[row.host].stop_worker(row.id, drain=drain, grace_s=self.grace_s)
        except Exception as exc:
            return StopResult(ok=False, worker_id=row.id, error=repr(exc))

    def _info(self, row: WorkerRow) -> WorkerInfo:
        snap = self.last_snapshots.get(row.host)
        seen = snap.worker(row.id) if snap else None
        state: WorkerState
        if row.state in ("backoff", "fatal"):
            state = row.state  # type: ignore[assignment]
        elif row.state in ("retired", "done"):
            state = "stopped"
        elif row.state == "failed":
            state = "crashed"
        else:
            state = seen.state if seen else ("draining" if row.state == "draining" else "starting")
        base = seen or WorkerInfo(id=row.id, kind=row.kind, host=row.host, pid=row.pid, started_at=row.started_at)
        last_exit = row.last_exit if row.last_exit is not None else base.last_exit
        return base.model_copy(update={"state": state, "restarts": row.total_restarts, "last_exit": last_exit})

    def _check_host(self, host: str) -> None:
        if host not in self.hosts:
            raise DispatchError(f"unknown host {host!r}; known: {', '.join(sorted(self.hosts)) or 'none'}")

    def _live_row(self, worker_id: str) -> WorkerRow:
        row = self.registry.get(worker_id)
        if row is None or row.state not in ("active", "draining", "backoff", "fatal"):
            raise DispatchError(f"no live worker {worker_id!r}")
        return row

    def _lower_desired(self, kind: str, host: str) -> None:
        for d in self.registry.desired():
            if d.kind == kind and d.host == host and d.count > 0:
                self.registry.set_desired(Desired(kind, host, d.count - 1, d.options), self.clock())
