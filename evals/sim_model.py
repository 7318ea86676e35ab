"""The simulated fleet: hosts with prices, FIFO stage queues fed by arrival traces, workers that take batches
(start-up time, throughput, draining on stop), LLM token use against a rolling budget window, and faults.
Pure state and arithmetic; seeded, so a run is a function of its config. One step's work is in
evals/sim_work.py; per-item waits in evals/sim_waits.py.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from core.domain import DedupPlanSummary
from core.kinds import KINDS, LLM_BOUND_KINDS, SCALABLE_KINDS, STAGE_OF_KIND
from evals.sim_waits import Cohort, StageQueue, WaitLog

TraceKind = Literal["steady", "bursty", "diurnal", "step"]
LLM_STAGES: tuple[str, ...] = tuple(STAGE_OF_KIND[k] for k in LLM_BOUND_KINDS)
SCALED_STAGES: tuple[str, ...] = tuple(STAGE_OF_KIND[k] for k in SCALABLE_KINDS)
GRACE_S = 30.0  # the real dispatcher's drain grace (fleet.hosts.DEFAULT_GRACE_S)


@dataclass(frozen=True)
class HostSpec:
    name: str
    cpu_count: int = 8
    base_cpu: float = 10.0  # percent used by everything that is not a worker
    base_mem: float = 20.0
    gpu: bool = False
    cost_per_hour: float = 0.15  # dollars per hour at full load; a worker costs its CPU share of it


@dataclass(frozen=True)
class KindSpec:
    """One worker kind: per-worker throughput (items/min), its batch, and the host share one worker takes."""

    kind: str
    throughput_per_min: float
    cpu_share: float
    mem_share: float
    start_delay_s: float = 20.0
    tokens_per_item: int = 0  # LLM stages only
    batch_items: int = 1  # items taken (and committed) at once


@dataclass(frozen=True)
class TraceSpec:
    kind: TraceKind = "bursty"
    rate_per_min: float = 60.0  # mean arrival rate outside bursts
    burst_every_s: float = 3 * 3600.0  # mean gap between bursts (exponential)
    burst_multiplier: float = 6.0
    burst_duration_s: float = 20 * 60.0
    diurnal_amplitude: float = 0.8  # rate * (1 + a * sin(2 pi t / 1 day))
    step_at: float = 1 / 3  # "step": the rate multiplies at this share of the run and stays so
    step_multiplier: float = 2.0


@dataclass(frozen=True)
class FaultSpec:
    kind: Literal["host_down", "provider_outage"]
    start_s: float
    end_s: float
    host: str | None = None


DEFAULT_HOSTS = (
    HostSpec("brain", cpu_count=16, base_cpu=15.0, base_mem=35.0, gpu=True, cost_per_hour=0.30),
    HostSpec("worker1", cost_per_hour=0.15),
)
DEFAULT_KINDS = tuple(
    KindSpec(
        k.name,
        throughput_per_min=k.sim.throughput_per_min,
        cpu_share=k.sim.cpu_share,
        mem_share=k.sim.mem_share,
        start_delay_s=k.sim.start_delay_s,
        tokens_per_item=k.sim.tokens_per_item,
        batch_items=k.sim.batch_items,
    )
    for k in KINDS
)
HOST_OF_ROLE = {"brain": "brain", "worker": "worker1"}  # DEFAULT_HOSTS by role
HOME_HOST = {k.name: HOST_OF_ROLE[k.sim.home] for k in KINDS}
TIER_PRICE_PER_MTOK = {"routine": 1.0, "analysis": 6.0, "strategic": 30.0}


@dataclass(frozen=True)
class SimConfig:
    seed: int = 1
    duration_s: float = 3600.0
    step_s: float = 10.0
    tick_s: float = 30.0
    hosts: tuple[HostSpec, ...] = DEFAULT_HOSTS
    kinds: tuple[KindSpec, ...] = DEFAULT_KINDS
    trace: TraceSpec = field(default_factory=TraceSpec)
    faults: tuple[FaultSpec, ...] = ()
    window_s: int = 5 * 3600
    window_tokens: int = 90_000_000
    wisdom_per_extract: float = 0.05
    job_duration_s: float = 120.0
    approve_after_s: float | None = 300.0  # a human answers approvals after this long; None = never
    initial_desired: tuple[tuple[str, int], ...] = (("extract@worker1", 1), ("wisdom@brain", 1))
    start_time: float = 1_800_000_000.0
    grace_s: float = GRACE_S  # a stopped worker finishes its batch within this, or is killed and loses it
    scenario: str = ""  # the scenario's name (SimMetrics.trace); "" = the trace's kind

    def __post_init__(self) -> None:
        if self.duration_s <= 0 or self.step_s <= 0 or self.tick_s < self.step_s:
            raise ValueError("duration_s and step_s must be positive and tick_s >= step_s")
        if self.window_tokens <= 0 or self.window_s <= 0:
            raise ValueError("window_s and window_tokens must be positive")

    @property
    def name(self) -> str:
        return self.scenario or self.trace.kind

    def kind(self, name: str) -> KindSpec:
        for k in self.kinds:
            if k.kind == name:
                return k
        raise KeyError(f"no kind spec for {name!r}")

    def host(self, name: str) -> HostSpec:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(f"no host spec for {name!r}")


# ---------------------------------------------------------------- traces and scenarios

SCENARIOS: tuple[str, ...] = ("steady", "bursty", "diurnal", "step", "host_failure", "provider_outage")


def scenario_config(name: str, seed: int, hours: float = 24.0) -> SimConfig:
    """A named scenario: a trace, and for host_failure / provider_outage a fault on top of the bursty trace
    (worker1 down 2 h from 40% of the run; the LLM provider down 1 h from 25% of the run)."""
    duration = hours * 3600.0
    cfg = SimConfig(seed=seed, duration_s=duration, scenario=name)
    traces: dict[str, TraceKind] = {"steady": "steady", "bursty": "bursty", "diurnal": "diurnal", "step": "step"}
    if name in traces:
        return replace(cfg, trace=TraceSpec(kind=traces[name]))
    if name == "host_failure":
        start = 0.4 * duration
        fault = FaultSpec("host_down", start, min(duration, start + 2 * 3600.0), "worker1")
    elif name == "provider_outage":
        start = 0.25 * duration
        fault = FaultSpec("provider_outage", start, min(duration, start + 3600.0))
    else:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return replace(cfg, trace=TraceSpec(kind="bursty"), faults=(fault,))


def _rates(cfg: SimConfig) -> tuple[np.ndarray, list[float], np.random.Generator]:
    """Arrival rate (items/s) per step, and the step times where the load rises (burst starts, the step)."""
    rng = np.random.default_rng(cfg.seed)
    steps = math.ceil(cfg.duration_s / cfg.step_s)
    t = np.arange(steps) * cfg.step_s
    rate = np.full(steps, cfg.trace.rate_per_min / 60.0)
    rises: list[float] = []

    def first_step_at(start: float) -> None:
        index = math.ceil(start / cfg.step_s - 1e-9)
        if index < steps:
            rises.append(float(t[index]))

    if cfg.trace.kind == "diurnal":
        rate *= 1.0 + cfg.trace.diurnal_amplitude * np.sin(2 * math.pi * t / 86_400.0 - math.pi / 2)
    elif cfg.trace.kind == "bursty":
        start = float(rng.exponential(cfg.trace.burst_every_s))
        while start < cfg.duration_s:
            inside = (t >= start) & (t < start + cfg.trace.burst_duration_s)
            rate[inside] *= cfg.trace.burst_multiplier
            first_step_at(start)
            start += cfg.trace.burst_duration_s + float(rng.exponential(cfg.trace.burst_every_s))
    elif cfg.trace.kind == "step":
        start = cfg.trace.step_at * cfg.duration_s
        rate[t >= start] *= cfg.trace.step_multiplier
        first_step_at(start)
    return np.clip(rate, 0.0, None), rises, rng


def arrival_series(cfg: SimConfig) -> np.ndarray:
    """Items arriving in each step (Poisson around the trace's rate), fixed by the seed."""
    rate, _, rng = _rates(cfg)
    return rng.poisson(rate * cfg.step_s).astype(float)


def arrival_rates(cfg: SimConfig) -> np.ndarray:
    """The trace's arrival rate (items/s) per step, before Poisson noise."""
    return _rates(cfg)[0]


def load_rises(cfg: SimConfig) -> list[float]:
    """Seconds from the start where the arrival rate rises: the first step of each burst, the step."""
    return _rates(cfg)[1]


# ---------------------------------------------------------------- state


@dataclass
class SimWorker:
    id: str
    kind: str
    host: str
    started_at: float
    ready_at: float
    job: bool = False  # one-shot job (embedding shards, dedup, recluster) rather than a scaled worker
    done_at: float | None = None
    seq: int = 0
    processed: float = 0.0  # items finished (committed batches)
    busy_total: float = 0.0  # seconds spent processing
    busy_reported: float = 0.0  # ... as of its last committed batch (what a real worker's status file says)
    idle: bool = False  # its last step found no work
    batch: list[Cohort] = field(default_factory=list)  # the items in hand
    batch_size: float = 0.0
    progress: float = 0.0  # items of the batch done (committed only when the batch is)
    stop_at: float | None = None  # stopped while holding a batch: draining since

    @property
    def draining(self) -> bool:
        return self.stop_at is not None


@dataclass
class TokenWindow:
    """Rolling-window ledger: a batch of LLM calls reserves its tokens first and only what fits runs."""

    window_s: int
    window_tokens: int
    events: deque[tuple[float, int]] = field(default_factory=deque)
    used: int = 0
    max_used: int = 0
    total: int = 0

    def _expire(self, now: float) -> None:
        while self.events and self.events[0][0] <= now - self.window_s:
            self.used -= self.events.popleft()[1]

    def room(self, now: float) -> int:
        self._expire(now)
        return max(0, self.window_tokens - self.used)

    def charge(self, now: float, tokens: int) -> None:
        if tokens <= 0:
            return
        self._expire(now)
        self.events.append((now, tokens))
        self.used += tokens
        self.total += tokens
        self.max_used = max(self.max_used, self.used)

    @property
    def overshoot(self) -> int:
        return max(0, self.max_used - self.window_tokens)


def _stages() -> dict[str, float]:
    return dict.fromkeys(SCALED_STAGES, 0.0)


@dataclass
class FleetState:
    """Everything that changes during a run."""

    cfg: SimConfig
    now: float
    backlog: dict[str, float] = field(default_factory=_stages)  # pending per stage: queued + in hand
    queues: dict[str, StageQueue] = field(default_factory=lambda: {s: StageQueue() for s in SCALED_STAGES})
    waits: WaitLog = field(default_factory=WaitLog)
    workers: list[SimWorker] = field(default_factory=list)  # live ones (finished workers are dropped)
    desired: dict[str, int] = field(default_factory=dict)
    routing: dict[str, float] = field(default_factory=lambda: {"routine": 0.6, "analysis": 0.35, "strategic": 0.05})
    tokens: TokenWindow = field(default_factory=lambda: TokenWindow(5 * 3600, 60_000_000))
    cost: float = 0.0  # fleet LLM dollars
    throttled_items: float = 0.0
    worker_s: dict[str, float] = field(default_factory=dict)  # per kind: seconds a live worker existed
    busy_s: dict[str, float] = field(default_factory=dict)  # per kind: the part spent processing
    compute_cost: float = 0.0
    lost_items: float = 0.0  # done items thrown away by a scale-down kill (or restart)
    fault_lost_items: float = 0.0  # done items thrown away when their host went down
    duplicate_estimate: float = 0.001
    # The last dedup dry run's plan; its entities_version is the entity count then (the sim's version stand-in).
    dedup_plan: DedupPlanSummary | None = None
    entities: int = 20_000
    relationships: int = 40_000
    relationships_changed: int = 0
    community_built_at: float = 0.0
    history: deque[tuple[float, dict[str, float]]] = field(default_factory=deque)
    next_id: int = 0
    specs: dict[str, KindSpec] = field(init=False)
    host_specs: dict[str, HostSpec] = field(init=False)
    _prices: dict[tuple[str, str], float] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.specs = {k.kind: k for k in self.cfg.kinds}
        self.host_specs = {h.name: h for h in self.cfg.hosts}

    @property
    def elapsed(self) -> float:
        return self.now - self.cfg.start_time

    def fault_active(self, kind: str, host: str | None = None, at: float | None = None) -> bool:
        t = self.elapsed if at is None else at - self.cfg.start_time
        return any(
            f.kind == kind and f.start_s <= t < f.end_s and (host is None or f.host == host) for f in self.cfg.faults
        )

    def host_up(self, host: str) -> bool:
        return not self.cfg.faults or not self.fault_active("host_down", host)

    def live(self, kind: str | None = None, host: str | None = None) -> list[SimWorker]:
        """Workers whose process exists, draining ones included."""
        return [w for w in self.workers if (kind is None or w.kind == kind) and (host is None or w.host == host)]

    def load(self, host: HostSpec) -> tuple[float, float]:
        cpu, mem = host.base_cpu, host.base_mem
        for w in self.workers:
            if w.host == host.name:
                spec = self.specs[w.kind]
                cpu, mem = cpu + spec.cpu_share, mem + spec.mem_share
        return cpu, mem

    def new_worker(self, kind: str, host: str, job: bool = False) -> SimWorker:
        self.next_id += 1
        delay = self.specs[kind].start_delay_s
        wid, seq = f"{kind}-{host}-{self.next_id}", self.next_id
        worker = SimWorker(wid, kind, host, self.now, self.now + delay, job, seq=seq)
        self.workers.append(worker)
        return worker

    def reconcile(self, kind: str, host: str) -> None:
        """Converge the scaled (non-job, non-draining) workers of kind@host to the desired count. Scale-down
        stops workers with no work in hand first (idle or still starting), then the newest, as the dispatcher."""
        want = self.desired.get(f"{kind}@{host}", 0)
        scaled = [w for w in self.live(kind, host) if not w.job and not w.draining]
        for _ in range(want - len(scaled)):
            self.new_worker(kind, host)
        order = sorted(scaled, key=lambda w: (bool(w.batch), -w.started_at, -w.seq))
        for worker in order[: max(0, len(scaled) - want)]:
            self.stop(worker)

    def stop(self, worker: SimWorker) -> None:
        """SIGTERM: a worker with a batch in hand drains (finishes it within the grace, taking no new one)."""
        if worker.batch:
            worker.stop_at = self.now
        else:
            self.retire(worker, self.now)

    def retire(self, worker: SimWorker, at: float) -> None:
        worker.done_at = at
        if worker in self.workers:
            self.workers.remove(worker)

    def drop_batch(self, worker: SimWorker, fault: bool = False) -> None:
        """The batch in hand is not committed: its items go back to the front of the queue, its done part is lost."""
        if not worker.batch:
            return
        self.queues[STAGE_OF_KIND[worker.kind]].put_back(worker.batch)
        if fault:
            self.fault_lost_items += worker.progress
        else:
            self.lost_items += worker.progress
        worker.batch, worker.batch_size, worker.progress = [], 0.0, 0.0

    def unfinished(self, stage: str) -> list[Cohort]:
        """Items of the stage not processed yet: queued, and in the hands of its workers."""
        cohorts = list(self.queues[stage].cohorts)
        for w in self.workers:
            if w.batch and STAGE_OF_KIND[w.kind] == stage:
                cohorts.extend(w.batch)
        return cohorts

    def price_per_s(self, kind: str, host: str) -> float:
        """Dollars one worker of kind on host costs per second: the host's price times the kind's CPU share."""
        key = (kind, host)
        if key not in self._prices:
            self._prices[key] = self.host_specs[host].cost_per_hour * self.specs[kind].cpu_share / 100.0 / 3600.0
        return self._prices[key]

    def price_per_token(self) -> float:
        total = sum(self.routing.values()) or 1.0
        return sum(TIER_PRICE_PER_MTOK.get(t, 1.0) * share for t, share in self.routing.items()) / total / 1e6
