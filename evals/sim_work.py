"""One step of the simulated fleet: arrivals join the extract queue; every live worker on a reachable host
takes batches from the front of its stage's queue and works through them at its throughput (slowed on an
overcommitted host, stopped by a provider outage, limited by the token window for LLM stages); a finished
batch is committed (its items' waits recorded, extract's output joins the embed and wisdom queues at that
moment); a draining worker finishes its batch within the grace or is killed and its batch goes back; jobs
finish. Worker-seconds, busy seconds and compute cost are counted as time passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.kinds import STAGE_OF_KIND
from evals.sim_model import LLM_STAGES, SCALED_STAGES, FleetState, SimWorker
from evals.sim_waits import EPS

ENTITIES_PER_ITEM = 0.5
DUPLICATE_SHARE = 0.02  # of new entities that duplicate an existing one
RATE_WINDOW_S = 300.0


@dataclass
class _Step:
    state: FleetState
    now: float
    end: float
    speed: dict[str, float]
    up: dict[str, bool]
    outage: bool
    room: float  # tokens left in the window for this step
    tokens: float = 0.0  # tokens spent in this step
    done: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SCALED_STAGES, 0.0))
    extracted: list[tuple[float, float]] = field(default_factory=list)  # (commit time, items)


def advance(state: FleetState, arrived: float) -> dict[str, float]:
    """One step of cfg.step_s; returns items done (committed) per stage."""
    cfg = state.cfg
    now = state.now
    state.queues["extract"].add(now, arrived)
    state.backlog["extract"] += arrived
    up = {h.name: state.host_up(h.name) for h in cfg.hosts}
    step = _Step(
        state,
        now,
        now + cfg.step_s,
        speed={h.name: _speed(state, h.name) for h in cfg.hosts if up[h.name]},
        up=up,
        outage=bool(cfg.faults) and state.fault_active("provider_outage"),
        room=float(state.tokens.room(now)),
    )
    for worker in list(state.workers):
        if not up[worker.host]:
            _host_down(state, worker, step.end)
        elif STAGE_OF_KIND[worker.kind] in state.queues:
            _work(step, worker)
        else:
            _job(step, worker)
    tokens = int(step.tokens)
    if tokens > 0:
        state.tokens.charge(now, tokens)
        state.cost += tokens * state.price_per_token()
    for t, items in step.extracted:  # extract's output: new embed rows and wisdom candidates, from commit time
        state.queues["embed"].add(t, items)
        state.queues["wisdom"].add(t, items * cfg.wisdom_per_extract)
    extracted = step.done["extract"]
    state.backlog["embed"] += extracted
    state.backlog["wisdom"] += extracted * cfg.wisdom_per_extract
    new_entities = extracted * ENTITIES_PER_ITEM
    state.entities += int(new_entities)
    state.duplicate_estimate += new_entities * DUPLICATE_SHARE / max(1, state.entities)
    state.relationships += int(extracted)
    state.relationships_changed += int(extracted)
    state.now = step.end
    state.history.append((state.now, dict(state.backlog)))
    while state.history and state.history[0][0] < state.now - RATE_WINDOW_S:
        state.history.popleft()
    return step.done


def _speed(state: FleetState, host: str) -> float:
    """An overcommitted host (CPU > 100%) slows every worker on it proportionally."""
    cpu, _ = state.load(state.host_specs[host])
    return min(1.0, 100.0 / cpu) if cpu > 0 else 1.0


def _work(step: _Step, w: SimWorker) -> None:
    state, cfg = step.state, step.state.cfg
    spec = state.specs[w.kind]
    stage = STAGE_OF_KIND[w.kind]
    queue = state.queues[stage]
    rate = spec.throughput_per_min / 60.0 * step.speed[w.host]  # items/s
    per_item = spec.tokens_per_item if stage in LLM_STAGES else 0
    stop_by = step.end if w.stop_at is None else min(step.end, w.stop_at + cfg.grace_s)
    t = step.now if w.ready_at < step.now else w.ready_at
    if not w.batch and queue.size <= EPS and not w.draining and t < step.end:  # the common case: nothing to do
        w.idle = True
        _account(step, w, 0.0, t if w.job else None)
        return
    busy = 0.0
    finished_at: float | None = None
    while t < stop_by - EPS:
        if not w.batch:
            if w.draining:  # drained: its batch is committed and it takes no new one
                break
            if queue.size <= EPS:
                w.idle = True
                if w.job:  # an embedding job ends when there is nothing left to embed
                    finished_at = t
                break
            w.batch = queue.take(spec.batch_items)
            w.batch_size, w.progress, w.idle = sum(c[1] for c in w.batch), 0.0, False
        can = rate * (stop_by - t)
        todo = min(w.batch_size - w.progress, can)
        if per_item:
            if step.outage:  # every call fails: the batch stands still
                state.throttled_items += todo
                break
            fits = step.room / per_item
            if fits < todo:
                state.throttled_items += todo - fits
                todo = fits
            step.room -= todo * per_item
            step.tokens += todo * per_item
        if todo <= EPS:
            break
        used = todo / rate
        t += used
        busy += used
        w.busy_total += used
        w.progress += todo
        if w.progress >= w.batch_size - EPS:
            _commit(step, w, stage, t)
        elif todo < can - EPS:  # out of tokens: waits for the window to free up
            break
    if w.draining and finished_at is None:
        if not w.batch:
            finished_at = min(t, stop_by)
        elif w.stop_at is not None and w.stop_at + cfg.grace_s <= step.end + EPS:  # killed at the grace
            state.drop_batch(w)
            finished_at = w.stop_at + cfg.grace_s
    _account(step, w, busy, finished_at)


def _commit(step: _Step, w: SimWorker, stage: str, t: float) -> None:
    state = step.state
    state.waits.record(stage, t, w.batch)
    state.backlog[stage] = max(0.0, state.backlog[stage] - w.batch_size)
    w.processed += w.batch_size
    w.busy_reported = w.busy_total
    step.done[stage] += w.batch_size
    if stage == "extract":
        step.extracted.append((t, w.batch_size))
    w.batch, w.batch_size, w.progress = [], 0.0, 0.0


def _job(step: _Step, w: SimWorker) -> None:
    """A dedup or recluster job: busy from ready for job_duration_s, then its effect lands."""
    state = step.state
    finish = w.ready_at + state.cfg.job_duration_s
    busy = max(0.0, min(step.end, finish) - max(step.now, w.ready_at))
    if finish > step.end:
        _account(step, w, busy, None)
        return
    _account(step, w, busy, finish)
    if w.kind == "dedup":
        state.duplicate_estimate = 0.0
        state.dedup_plan = None  # spent
    else:
        state.relationships_changed = 0
        state.community_built_at = finish


def _account(step: _Step, w: SimWorker, busy: float, finished_at: float | None) -> None:
    """Worker-seconds: every second the worker's process exists in this step; busy: the part it processed."""
    state = step.state
    alive = (step.end if finished_at is None else finished_at) - (step.now if w.started_at < step.now else w.started_at)
    state.worker_s[w.kind] = state.worker_s.get(w.kind, 0.0) + alive
    state.busy_s[w.kind] = state.busy_s.get(w.kind, 0.0) + (busy if busy < alive else alive)
    state.compute_cost += alive * state.price_per_s(w.kind, w.host)
    if finished_at is not None:
        state.retire(w, finished_at)


def _host_down(state: FleetState, w: SimWorker, end: float) -> None:
    """The host is gone: the batch in hand is lost to the fault; the worker comes back (after its start-up)
    when the host does, except a draining one, which is simply gone. No worker-seconds while down."""
    state.drop_batch(w, fault=True)
    w.idle = False
    if w.draining:
        state.retire(w, state.now)
    else:
        w.ready_at = max(w.ready_at, end + state.specs[w.kind].start_delay_s)
