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
from dataclasses import dataclass, field

from core.domain import Observation, ScalePrediction, WorkerInfo

ALPHA, BETA = 0.3, 0.05  # Holt smoothing of the arrival level and its trend, per tick
THROUGHPUT_ALPHA = 0.3  # EWMA of one busy worker's throughput
DEFAULT_START_S = 30.0  # a new worker's start-up until it is measured
SPARE = 0.25  # capacity kept above the objective's need before workers are stopped
DUTY = 0.35  # below this many workers' worth of load a kind runs in bursts (to zero when drained)
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
        self.level = ALPHA * x + (1 - ALPHA) * (self.level + self.trend)
        self.trend = BETA * (self.level - previous) + (1 - BETA) * self.trend

    def forecast(self, steps: float = 1.0) -> float:
        return max(0.0, (self.level or 0.0) + self.trend * steps)


@dataclass(frozen=True)
class _Sample:
    time: float
    backlog: int
    processed: dict[str, int]  # worker id -> its counter
    running: frozenset[str]  # ids running and not idle at this sample


@dataclass
class KindMeter:
    per_worker: float | None = None  # items/min of one busy worker
    arrivals: Holt = field(default_factory=Holt)
    last_arrival: float = 0.0  # items/min over the latest interval
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
            running=frozenset(w.id for w in workers if w.state == "running" and not w.idle),
        )
        self._learn_start(workers, obs.time)
        done = 0
        if self.last is not None and sample.time > self.last.time:
            done = self._learn(self.last, sample)
        if backlog <= 0 or self.empty_since is None:
            self.empty_since = obs.time
        self.last = sample
        return done

    def _learn(self, before: _Sample, now: _Sample) -> int:
        minutes = (now.time - before.time) / 60.0
        done = {wid: n - before.processed.get(wid, 0) for wid, n in now.processed.items()}
        total = sum(max(0, d) for d in done.values())
        arrived = max(0.0, (now.backlog - before.backlog + total) / minutes)
        self.last_arrival = arrived
        self.arrivals.update(arrived)
        busy = [max(0, done[w]) / minutes for w in before.running & now.running if w in done]
        if busy and before.backlog > 0 and now.backlog > 0:
            rate = sum(busy) / len(busy)
            self.per_worker = rate if self.per_worker is None else _ewma(self.per_worker, rate, THROUGHPUT_ALPHA)
        return total

    def learn_tokens(self, per_item: float) -> None:
        old = self.tokens_per_item
        self.tokens_per_item = per_item if old is None else _ewma(old, per_item, 0.2)

    def _learn_start(self, workers: list[WorkerInfo], now: float) -> None:
        for w in workers:
            if w.state == "starting":
                self.seen_starting.setdefault(w.id, w.started_at or now)
            elif w.state == "running" and w.id in self.seen_starting:
                took = max(0.0, now - self.seen_starting.pop(w.id))
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


def size(meter: KindMeter, backlog: int, current: int, idle: int, max_wait_s: float) -> Sizing | None:
    """None until one worker's throughput is measured (then the HPA rule decides)."""
    mu = meter.per_worker
    if mu is None or mu <= 0:
        return None
    rising = max(meter.arrivals.forecast(), meter.last_arrival)
    settled = meter.arrivals.forecast()
    window_min = max(0.5, (SAFETY * max_wait_s - meter.start_s) / 60.0)
    need_up = (rising + backlog / window_min) / mu
    need = (settled + backlog / window_min) / mu
    objective = f"wait <= {_minutes(max_wait_s)}"
    if current == 0:
        return _from_zero(meter, backlog, mu, max_wait_s, need_up, objective)
    up = math.ceil(need_up - 1e-9)
    if up > current:
        return Sizing(up, need_up, rising, f"{objective} needs {need_up:.1f} worker(s) at {mu:.0f}/min each")
    if settled / mu < DUTY and backlog <= 0 and idle >= current:
        return Sizing(0, need, settled, f"drained and {settled:.1f}/min arriving is {settled / mu:.0%} of a worker")
    down = max(1, math.ceil(need * (1 + SPARE) - 1e-9))
    if down < current:
        keep = max(down, current - idle) if backlog > 0 else down
        why = f"{objective} needs {need:.1f} worker(s) (+{SPARE:.0%} spare); {idle} idle"
        return Sizing(keep, need, settled, why)
    return Sizing(current, need, settled, f"{objective} met by {current} worker(s) (needs {need:.1f})")


def _from_zero(meter: KindMeter, backlog: int, mu: float, max_wait_s: float, need_up: float, objective: str) -> Sizing:
    """A kind at zero starts when waiting longer would make its oldest item miss the objective."""
    rising = max(meter.arrivals.forecast(), meter.last_arrival)
    if backlog <= 0:
        return Sizing(0, 0.0, rising, "nothing waiting")
    if rising / mu >= DUTY:
        count = max(1, math.ceil(need_up - 1e-9))
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
