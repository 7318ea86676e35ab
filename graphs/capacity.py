"""Worker counts from what the fleet measures, against a wait-time objective (policy `workers.<kind>.max_wait_s`).

Between ticks a `KindMeter` learns, per worker kind:
- one worker's throughput (items/min) from the workers' own `processed` counters, over intervals in which
  they were busy (work was waiting and the worker did not report its last batch empty);
- the arrival rate: items processed plus the change of the backlog, smoothed with Holt's linear trend
  (level + trend). Sizing up takes the higher of the forecast and the latest interval, so a burst is
  answered on the tick it shows; a lull is believed only as the level follows it;
- how long a new worker takes to run, and for LLM-bound kinds the tokens one item costs.

Sizing is queueing in its fluid form: an item arriving now waits while the backlog ahead of it is worked
off, so n workers of throughput mu keep waits under W when n * mu >= lambda + backlog / (W - start-up).
Up at once to that; down only to it with `SPARE` headroom, once the stabilization window agrees, and only
as far as workers are idle (the dispatcher stops idle ones first), so a scale-down never takes work in hand.
A kind whose load is a small fraction of one worker runs in bursts: to zero once drained, back when the
oldest waiting item would otherwise miss the objective.

Holt's method is written out (a dozen lines, one O(1) update per tick) rather than taken from statsmodels,
whose Holt-Winters refits a whole series per call and would be the planner's only heavy import.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace

from core.domain import Observation, ScalePrediction, WorkerInfo

ALPHA, BETA, PHI = 0.3, 0.05, 0.9  # Holt smoothing of the arrival level, its trend, and the trend's damping
# Workers report their counters per batch, so one interval says little: throughput is pooled over the busy
# worker-minutes of a sliding window, and trusted once there are enough of them.
THROUGHPUT_WINDOW_S = 1800.0
MIN_BUSY_MINUTES = 2.0  # ... or MIN_TIMED_BATCHES intervals from workers that time their own batches
MIN_TIMED_BATCHES = 1  # a worker that times its batches reports a real rate from its first one
MEASURE_HOLD_S = 600.0  # how long a kind's workers are kept, unmeasured, for a first throughput figure
DEFAULT_START_S = 30.0  # a new worker's start-up until it is measured
MAX_START_S = 300.0  # a longer "start-up" is a worker seen late (its host was away), not a slow start
SPARE = 0.5  # capacity kept above the objective's need before workers are stopped
DUTY = 0.75  # below this many workers' worth of load a kind runs in bursts (to zero when drained)
NOTHING_ARRIVING = 0.5  # items/min below which a drained kind with a short objective may stop too
TICK_MIN = 0.5  # a tick's worth of arrivals (minutes) still counts as drained
SLOW_ALPHA = 0.01  # per tick: the slow level follows over ~50 minutes at 30 s ticks
SAFETY = 0.8  # share of the objective the sizing aims at (the rest absorbs forecast error)


@dataclass
class Holt:
    level: float | None = None
    trend: float = 0.0

    def update(self, x: float) -> None:
        if self.level is None:
            self.level = x
            return
        previous = self.level
        self.level = max(0.0, ALPHA * x + (1 - ALPHA) * (self.level + PHI * self.trend))
        self.trend = BETA * (self.level - previous) + (1 - BETA) * PHI * self.trend

    def forecast(self, steps: float = 1.0) -> float:
        """Damped trend: the sum of PHI**k over the horizon, so a slope is not extrapolated for ever."""
        damped = sum(PHI**k for k in range(1, max(1, round(steps)) + 1))
        return max(0.0, (self.level or 0.0) + self.trend * damped)


@dataclass(frozen=True)
class _Sample:
    time: float
    backlog: int
    processed: dict[str, int]  # worker id -> its counter
    busy_s: dict[str, float]  # worker id -> seconds it spent on batches, where it reports them
    running: frozenset[str]  # ids running and not idle at this sample


@dataclass
class KindMeter:
    per_worker: float | None = None  # items/min of one busy worker
    arrivals: Holt = field(default_factory=Holt)
    last_arrival: float = 0.0  # items/min over the latest interval
    slow_level: float = 0.0  # a slow EWMA of arrivals: what a long objective plans for
    busy: deque[tuple[float, int, float]] = field(default_factory=deque)  # (time, items, busy worker-minutes)
    first_seen: float | None = None  # when its workers first reported counters
    timed_intervals: int = 0  # intervals measured from workers' own busy time
    drained_since: float | None = None  # since when the queue has held no more than a tick's arrivals
    start_s: float = DEFAULT_START_S
    tokens_per_item: float | None = None
    empty_since: float | None = None  # when the backlog was last seen at zero (the oldest item's age)
    last: _Sample | None = None
    seen_starting: dict[str, float] = field(default_factory=dict)

    def update(self, obs: Observation, kind: str, stage: str) -> int:
        """Learn from the interval since the last sample; returns the items the kind's workers finished in it."""
        workers = [w for w in obs.workers if w.kind == kind]
        backlog = obs.brain.pending.get(stage, 0)
        sample = _Sample(
            time=obs.time,
            backlog=backlog,
            processed={w.id: w.processed for w in workers if w.processed is not None},
            busy_s={w.id: w.busy_s for w in workers if w.busy_s is not None},
            running=frozenset(w.id for w in workers if w.state == "running" and not w.idle),
        )
        self._learn_start(workers, obs.time)
        if self.first_seen is None and sample.processed:
            self.first_seen = obs.time
        done = 0
        if self.last is not None and sample.time > self.last.time:
            done = self._learn(self.last, sample)
        if backlog <= 0 or self.empty_since is None:
            self.empty_since = obs.time
        if backlog > max(1.0, self.arrivals.forecast() * TICK_MIN):
            self.drained_since = None
        elif self.drained_since is None:
            self.drained_since = obs.time
        self.last = sample
        return done

    def _learn(self, before: _Sample, now: _Sample) -> int:
        minutes = (now.time - before.time) / 60.0
        done = {wid: n - before.processed.get(wid, 0) for wid, n in now.processed.items()}
        total = sum(max(0, d) for d in done.values())
        arrived = max(0.0, (now.backlog - before.backlog + total) / minutes)
        self.last_arrival = arrived
        first = self.arrivals.level is None
        self.arrivals.update(arrived)
        self.slow_level = arrived if first else _ewma(self.slow_level, arrived, SLOW_ALPHA)
        self._learn_throughput(before, now, done, minutes)
        return total

    def _learn_throughput(self, before: _Sample, now: _Sample, done: dict[str, int], minutes: float) -> None:
        """Workers that report their busy time give throughput at any load; otherwise only intervals in which
        every worker was busy (work waiting at both ends) count."""
        timed = [w for w in now.busy_s if w in done and w in before.busy_s]
        if timed:
            busy_min = sum(max(0.0, now.busy_s[w] - before.busy_s[w]) for w in timed) / 60.0
            if busy_min > 0:
                self.busy.append((now.time, sum(max(0, done[w]) for w in timed), busy_min))
                self.timed_intervals += 1
        else:
            busy = [w for w in before.running & now.running if w in done]
            if busy and before.backlog > 0 and now.backlog > 0:
                self.busy.append((now.time, sum(max(0, done[w]) for w in busy), len(busy) * minutes))
        while self.busy and self.busy[0][0] < now.time - THROUGHPUT_WINDOW_S:
            self.busy.popleft()
        busy_minutes = sum(m for _, _, m in self.busy)
        if busy_minutes >= MIN_BUSY_MINUTES or (self.timed_intervals >= MIN_TIMED_BATCHES and busy_minutes > 0):
            self.per_worker = sum(n for _, n, _ in self.busy) / busy_minutes

    def drained_for(self, now: float) -> float:
        return 0.0 if self.drained_since is None else now - self.drained_since

    def measuring(self, now: float) -> bool:
        """Its workers report counters but their throughput is not known yet (for at most one window)."""
        return self.per_worker is None and self.first_seen is not None and now - self.first_seen < MEASURE_HOLD_S

    def learn_tokens(self, per_item: float) -> None:
        old = self.tokens_per_item
        self.tokens_per_item = per_item if old is None else _ewma(old, per_item, 0.2)

    def _learn_start(self, workers: list[WorkerInfo], now: float) -> None:
        for w in workers:
            if w.state == "starting":
                # From when it was first seen starting: a worker restarted after its host came back keeps
                # its original start time, which would read as hours of start-up.
                self.seen_starting.setdefault(w.id, max(w.started_at or now, now - MAX_START_S))
            elif w.state == "running" and w.id in self.seen_starting:
                took = min(MAX_START_S, max(0.0, now - self.seen_starting.pop(w.id)))
                self.start_s = _ewma(self.start_s, took, 0.3)
        live = {w.id for w in workers}
        for wid in [i for i in self.seen_starting if i not in live]:
            del self.seen_starting[wid]


def _ewma(old: float, new: float, alpha: float) -> float:
    return alpha * new + (1 - alpha) * old


@dataclass
class CapacityMeters:
    """The meters of every scaled kind, kept across ticks (and across planners rebuilt for a policy edit)."""

    kinds: dict[str, KindMeter] = field(default_factory=dict)
    updated_at: float | None = None
    tokens_used: int | None = None
    burn_per_min: float | None = None  # EWMA of the token window's net use per minute

    def minutes_of_budget_left(self, remaining_tokens: int) -> float | None:
        """At the recent burn, minutes until the window's remaining tokens are gone; None if it is not shrinking."""
        if self.burn_per_min is None or self.burn_per_min <= 0:
            return None
        return remaining_tokens / self.burn_per_min

    def update(self, obs: Observation, stages: dict[str, str], llm_bound: frozenset[str] = frozenset()) -> None:
        """Once per observation (a second call for the same time changes nothing). The ledger counts tokens for
        the fleet, not per kind, so LLM-bound kinds share one tokens-per-item figure."""
        if self.updated_at is not None and obs.time <= self.updated_at:
            return
        llm_items = 0
        for kind, stage in stages.items():
            done = self.kinds.setdefault(kind, KindMeter()).update(obs, kind, stage)
            llm_items += done if kind in llm_bound else 0
        spent = obs.budget.used_tokens - (self.tokens_used if self.tokens_used is not None else obs.budget.used_tokens)
        if self.updated_at is not None and obs.time > self.updated_at:
            # Net burn of the rolling window (spending minus what ages out): how fast what is left goes.
            rate = spent / ((obs.time - self.updated_at) / 60.0)
            self.burn_per_min = rate if self.burn_per_min is None else _ewma(self.burn_per_min, rate, 0.2)
        if llm_items > 0 and spent > 0:
            for kind in llm_bound & self.kinds.keys():
                self.kinds[kind].learn_tokens(spent / llm_items)
        self.updated_at, self.tokens_used = obs.time, obs.budget.used_tokens

    def get(self, kind: str) -> KindMeter | None:
        return self.kinds.get(kind)


@dataclass(frozen=True)
class Sizing:
    """What the objective asks of one kind: `need` workers (fractional) and the whole count to run."""

    desired: int
    need: float
    arrivals: float  # items/min the sizing planned for
    why: str
    sustained: float = 0.0  # workers the forecast arrivals alone need (no backlog): a lasting load, not a burst
    drained: bool = False  # a scale-down of idle workers on a drained queue (no stabilization window needed)


@dataclass(frozen=True)
class Objective:
    max_wait_s: float
    tolerance: float = 0.1  # up only when the need passes the current count by this share
    may_idle: bool = True  # the kind may go to zero between bursts (its objective is long against the flap window)
    horizon_ticks: float = 10.0  # how far ahead a scale-down looks along the arrival trend


def size(meter: KindMeter, backlog: int, current: int, idle: int, objective: Objective) -> Sizing | None:
    """None until one worker's throughput is measured (then the HPA rule decides)."""
    mu = meter.per_worker
    if mu is None or mu <= 0:
        return None
    sizing = _size(meter, mu, backlog, current, idle, objective)
    return replace(sizing, sustained=meter.arrivals.forecast() / mu)


def _size(meter: KindMeter, mu: float, backlog: int, current: int, idle: int, goal: Objective) -> Sizing:
    """Short objectives answer what arrives now (the latest interval, or the trend ahead); long ones, whose
    queue absorbs a burst, size for the slow level, the mean over a good part of the objective."""
    if goal.may_idle:
        rising = settled = meter.slow_level
    else:
        settled = max(meter.arrivals.forecast(), meter.arrivals.forecast(goal.horizon_ticks))
        rising = max(settled, meter.last_arrival)
    window_min = max(0.5, (SAFETY * goal.max_wait_s - meter.start_s) / 60.0)
    need_up = (rising + backlog / window_min) / mu
    need = (settled + backlog / window_min) / mu
    objective = f"wait <= {_minutes(goal.max_wait_s)}"
    if current == 0:
        if not goal.may_idle and rising > 0:
            return Sizing(max(1, math.ceil(need_up - 1e-9)), need_up, rising, f"{objective}: work is arriving")
        return _from_zero(meter, backlog, mu, goal.max_wait_s, (rising, need_up), objective)
    if need_up > current * (1 + goal.tolerance):
        up = math.ceil(need_up - 1e-9)
        return Sizing(up, need_up, rising, f"{objective} needs {need_up:.1f} worker(s) at {mu:.0f}/min each")
    drained = backlog <= max(1.0, settled * TICK_MIN) and idle >= 1
    if not drained:
        return Sizing(current, need, settled, f"{objective} met by {current} worker(s) (needs {need:.1f})")
    if goal.may_idle and settled / mu < DUTY and backlog <= 0 and idle >= current:
        why = f"drained and {settled:.1f}/min arriving is {settled / mu:.0%} of a worker"
        return Sizing(0, need, settled, why, drained=True)
    floor = 0 if backlog <= 0 and settled < NOTHING_ARRIVING and idle >= current else 1
    down = max(floor, current - idle, math.ceil(need * (1 + SPARE) - 1e-9))
    if down < current:
        why = f"{objective} needs {need:.1f} worker(s) (+{SPARE:.0%} spare); {idle} idle"
        return Sizing(down, need, settled, why, drained=True)
    return Sizing(current, need, settled, f"{objective} met by {current} worker(s) (needs {need:.1f})")


def _from_zero(
    meter: KindMeter, backlog: int, mu: float, max_wait_s: float, load: tuple[float, float], objective: str
) -> Sizing:
    """A kind at zero starts when waiting longer would make its oldest item miss the objective."""
    rising, need_up = load
    if backlog <= 0:
        return Sizing(0, 0.0, rising, "nothing waiting")
    if need_up >= 1.0:
        count = math.ceil(need_up - 1e-9)
        return Sizing(count, need_up, rising, f"{objective}: {rising:.0f}/min arriving needs {need_up:.1f} worker(s)")
    age = 0.0 if meter.empty_since is None or meter.last is None else meter.last.time - meter.empty_since
    arriving_meanwhile = rising * meter.start_s / 60.0
    drain_s = 60.0 * (backlog + arriving_meanwhile) / max(1e-9, mu - rising)
    if age + meter.start_s + drain_s < SAFETY * max_wait_s:
        return Sizing(0, need_up, rising, f"oldest item ~{_minutes(age)} old: one worker can wait")
    return Sizing(1, need_up, rising, f"{objective}: the oldest item is ~{_minutes(age)} old; drain it with one worker")


def drain_seconds(backlog: int, workers: int, mu: float, arrivals: float) -> float | None:
    """Seconds until `workers` work off `backlog` while `arrivals`/min keep coming; None if they never do."""
    net = workers * mu - arrivals
    if backlog <= 0:
        return 0.0
    if net <= 0:
        return None
    return 60.0 * backlog / net


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


@dataclass(frozen=True)
class CostModel:
    """Dollars per hour one worker of a kind costs on a host: the host's price times the worker's CPU share."""

    host_costs: dict[str, float]  # host -> cost_per_hour at full load; "*" for hosts not named

    def per_worker(self, obs: Observation, kind: str, host: str, est_cpu_percent: float) -> float:
        price = self.host_costs.get(host, self.host_costs.get("*", 0.0))
        share = obs.worker_cpu_share(kind, host) or est_cpu_percent
        return price * share / 100.0


def predict(
    obs: Observation,
    meter: KindMeter | None,
    kind: str,
    stage: str,
    change: tuple[int, int],
    cost: tuple[CostModel, str, int, float],
    max_wait_s: float | None = None,
) -> ScalePrediction:
    """The expected effect of taking `kind` from change[0] to change[1] workers in total; `cost` is
    (model, host, workers added there, est_cpu_percent)."""
    before, after = change
    model, host, added, est_cpu = cost
    backlog = obs.brain.pending.get(stage, 0)
    mu = meter.per_worker if meter is not None else None
    arrivals = max(meter.arrivals.forecast(), meter.last_arrival) if meter is not None else 0.0
    return ScalePrediction(
        kind=kind,
        before=before,
        after=after,
        backlog=backlog,
        arrival_per_min=round(arrivals, 2),
        per_worker_per_min=round(mu or 0.0, 2),
        basis="measured" if mu else "unmeasured",
        drain_s=None if not mu else _rounded(drain_seconds(backlog, after, mu, arrivals)),
        wait_objective_s=max_wait_s,
        compute_per_hour_delta=round(added * model.per_worker(obs, kind, host, est_cpu), 4),
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def budget_workers(obs: Observation, meter: KindMeter, max_wait_s: float) -> int:
    """Workers of an LLM-bound kind the token window can pay for over the next objective period (at least the
    window's sustained rate)."""
    b = obs.budget
    if meter.tokens_per_item is None or meter.per_worker is None or b.window_tokens <= 0:
        return 10**6
    horizon_min = max(10.0, max_wait_s / 60.0)
    per_min = max(b.remaining_tokens / horizon_min, b.window_tokens / (b.window_s / 60.0))
    return math.floor(per_min / (meter.tokens_per_item * meter.per_worker))
