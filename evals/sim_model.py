"""The simulated fleet: hosts, queues fed by arrival traces, workers with start-up time and throughput,
LLM token use against a rolling budget window, and faults. Pure state and arithmetic; seeded, so a run
is a function of its config.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from core.domain import DedupPlanSummary
from core.kinds import JOB_KINDS, KINDS, LLM_BOUND_KINDS, SCALABLE_KINDS, STAGE_OF_KIND

TraceKind = Literal["steady", "bursty", "diurnal"]
LLM_STAGES: tuple[str, ...] = tuple(STAGE_OF_KIND[k] for k in LLM_BOUND_KINDS)
SCALED_STAGES: tuple[str, ...] = tuple(STAGE_OF_KIND[k] for k in SCALABLE_KINDS)


@dataclass(frozen=True)
class HostSpec:
    name: str
    cpu_count: int = 8
    base_cpu: float = 10.0  # percent used by everything that is not a worker
    base_mem: float = 20.0
    gpu: bool = False


@dataclass(frozen=True)
class KindSpec:
    """One worker kind: per-worker throughput (items/min) and the host share one worker takes."""

    kind: str
    throughput_per_min: float
    cpu_share: float
    mem_share: float
    start_delay_s: float = 20.0
    tokens_per_item: int = 0  # LLM stages only


@dataclass(frozen=True)
class TraceSpec:
    kind: TraceKind = "bursty"
    rate_per_min: float = 60.0  # mean arrival rate outside bursts
    burst_every_s: float = 3 * 3600.0  # mean gap between bursts (exponential)
    burst_multiplier: float = 6.0
    burst_duration_s: float = 20 * 60.0
    diurnal_amplitude: float = 0.8  # rate * (1 + a * sin(2 pi t / 1 day))


@dataclass(frozen=True)
class FaultSpec:
    kind: Literal["host_down", "provider_outage"]
    start_s: float
    end_s: float
    host: str | None = None


DEFAULT_HOSTS = (HostSpec("brain", cpu_count=16, base_cpu=15.0, base_mem=35.0, gpu=True), HostSpec("worker1"))
DEFAULT_KINDS = tuple(
    KindSpec(
        k.name,
        throughput_per_min=k.sim.throughput_per_min,
        cpu_share=k.sim.cpu_share,
        mem_share=k.sim.mem_share,
        start_delay_s=k.sim.start_delay_s,
        tokens_per_item=k.sim.tokens_per_item,
    )
    for k in KINDS
)
HOST_OF_ROLE = {"brain": "brain", "worker": "worker1"}  # DEFAULT_HOSTS by role
HOME_HOST = {k.name: HOST_OF_ROLE[k.sim.home] for k in KINDS}
TIER_PRICE_PER_MTOK = {"routine": 1.0, "escalation": 6.0, "strategic": 30.0}


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

    def __post_init__(self) -> None:
        if self.duration_s <= 0 or self.step_s <= 0 or self.tick_s < self.step_s:
            raise ValueError("duration_s and step_s must be positive and tick_s >= step_s")
        if self.window_tokens <= 0 or self.window_s <= 0:
            raise ValueError("window_s and window_tokens must be positive")

    def kind(self, name: str) -> KindSpec:
        for k in self.kinds:
            if k.kind == name:
                return k
        raise KeyError(f"no kind spec for {name!r}")


def arrival_series(cfg: SimConfig) -> np.ndarray:
    """Items arriving in each step (Poisson around the trace's rate), fixed by the seed."""
    rng = np.random.default_rng(cfg.seed)
    steps = math.ceil(cfg.duration_s / cfg.step_s)
    t = np.arange(steps) * cfg.step_s
    rate = np.full(steps, cfg.trace.rate_per_min / 60.0)
    if cfg.trace.kind == "diurnal":
        rate *= 1.0 + cfg.trace.diurnal_amplitude * np.sin(2 * math.pi * t / 86_400.0 - math.pi / 2)
    elif cfg.trace.kind == "bursty":
        start = float(rng.exponential(cfg.trace.burst_every_s))
        while start < cfg.duration_s:
            inside = (t >= start) & (t < start + cfg.trace.burst_duration_s)
            rate[inside] *= cfg.trace.burst_multiplier
            start += cfg.trace.burst_duration_s + float(rng.exponential(cfg.trace.burst_every_s))
    return rng.poisson(np.clip(rate, 0.0, None) * cfg.step_s).astype(float)


@dataclass
class SimWorker:
    id: str
    kind: str
    host: str
    started_at: float
    ready_at: float
    job: bool = False  # one-shot job (embedding shards, dedup, recluster) rather than a scaled worker
    done_at: float | None = None


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


@dataclass
class FleetState:
    """Everything that changes during a run."""

    cfg: SimConfig
    now: float
    backlog: dict[str, float] = field(default_factory=lambda: {"extract": 0.0, "embed": 0.0, "wisdom": 0.0})
    workers: list[SimWorker] = field(default_factory=list)
    desired: dict[str, int] = field(default_factory=dict)
    routing: dict[str, float] = field(default_factory=lambda: {"routine": 0.6, "escalation": 0.35, "strategic": 0.05})
    tokens: TokenWindow = field(default_factory=lambda: TokenWindow(5 * 3600, 60_000_000))
    cost: float = 0.0
    throttled_items: float = 0.0
    duplicate_estimate: float = 0.001
    # The last dedup dry run's plan; its entities_version is the entity count then (the sim's version stand-in).
    dedup_plan: DedupPlanSummary | None = None
    entities: int = 20_000
    relationships: int = 40_000
    relationships_changed: int = 0
    community_built_at: float = 0.0
    history: deque[tuple[float, dict[str, float]]] = field(default_factory=deque)
    next_id: int = 0

    @property
    def elapsed(self) -> float:
        return self.now - self.cfg.start_time

    def fault_active(self, kind: str, host: str | None = None) -> bool:
        t = self.elapsed
        return any(
            f.kind == kind and f.start_s <= t < f.end_s and (host is None or f.host == host) for f in self.cfg.faults
        )

    def host_up(self, host: str) -> bool:
        return not self.fault_active("host_down", host)

    def live(self, kind: str | None = None, host: str | None = None) -> list[SimWorker]:
        return [
            w
            for w in self.workers
            if w.done_at is None and (kind is None or w.kind == kind) and (host is None or w.host == host)
        ]

    def load(self, host: HostSpec) -> tuple[float, float]:
        cpu, mem = host.base_cpu, host.base_mem
        for w in self.live(host=host.name):
            spec = self.cfg.kind(w.kind)
            cpu, mem = cpu + spec.cpu_share, mem + spec.mem_share
        return cpu, mem

    def new_worker(self, kind: str, host: str, job: bool = False) -> SimWorker:
        self.next_id += 1
        delay = self.cfg.kind(kind).start_delay_s
        worker = SimWorker(f"{kind}-{host}-{self.next_id}", kind, host, self.now, self.now + delay, job)
        self.workers.append(worker)
        return worker

    def reconcile(self, kind: str, host: str) -> None:
        """Converge the scaled (non-job) workers of kind@host to the desired count; newest drain first."""
        want = self.desired.get(f"{kind}@{host}", 0)
        scaled = [w for w in self.live(kind, host) if not w.job]
        for _ in range(want - len(scaled)):
            self.new_worker(kind, host)
        for worker in sorted(scaled, key=lambda w: w.started_at, reverse=True)[: max(0, len(scaled) - want)]:
            worker.done_at = self.now

    def price_per_token(self) -> float:
        total = sum(self.routing.values()) or 1.0
        return sum(TIER_PRICE_PER_MTOK.get(t, 1.0) * share for t, share in self.routing.items()) / total / 1e6


ENTITIES_PER_ITEM = 0.5
DUPLICATE_SHARE = 0.02  # of new entities that duplicate an existing one
RATE_WINDOW_S = 300.0


def advance(state: FleetState, arrived: float) -> dict[str, float]:
    """One step: arrivals, work done by ready workers on reachable hosts (LLM stages within the token
    window and not during a provider outage), jobs finishing, then time moves on. Returns items done per stage."""
    cfg, dt = state.cfg, state.cfg.step_s
    state.backlog["extract"] += arrived
    speed = {h.name: _speed(state, h) for h in cfg.hosts}
    done = {stage: _work(state, stage, speed, dt) for stage in SCALED_STAGES}
    state.backlog["embed"] += done["extract"]
    state.backlog["wisdom"] += done["extract"] * cfg.wisdom_per_extract
    new_entities = done["extract"] * ENTITIES_PER_ITEM
    state.entities += int(new_entities)
    state.duplicate_estimate += new_entities * DUPLICATE_SHARE / max(1, state.entities)
    state.relationships += int(done["extract"])
    state.relationships_changed += int(done["extract"])
    _finish_jobs(state)
    state.now += dt
    state.history.append((state.now, dict(state.backlog)))
    while state.history and state.history[0][0] < state.now - RATE_WINDOW_S:
        state.history.popleft()
    return done


def _speed(state: FleetState, host: HostSpec) -> float:
    """An overcommitted host (CPU > 100%) slows every worker on it proportionally."""
    cpu, _ = state.load(host)
    return min(1.0, 100.0 / cpu) if cpu > 0 else 1.0


def _work(state: FleetState, stage: str, speed: dict[str, float], dt: float) -> float:
    spec = state.cfg.kind(stage)
    ready = [w for w in state.live(stage) if w.ready_at <= state.now and state.host_up(w.host)]
    capacity = sum(spec.throughput_per_min / 60.0 * dt * speed[w.host] for w in ready)
    capacity = min(capacity, state.backlog[stage])
    if stage in LLM_STAGES and capacity > 0:
        if state.fault_active("provider_outage"):
            state.throttled_items += capacity
            return 0.0
        fits = state.tokens.room(state.now) // max(1, spec.tokens_per_item)
        if fits < capacity:
            state.throttled_items += capacity - fits
            capacity = float(fits)
        tokens = int(capacity * spec.tokens_per_item)
        state.tokens.charge(state.now, tokens)
        state.cost += tokens * state.price_per_token()
    state.backlog[stage] -= capacity
    return capacity


def _finish_jobs(state: FleetState) -> None:
    for w in state.live():
        if not w.job or w.ready_at > state.now:
            continue
        if w.kind == "embed" and state.backlog["embed"] <= 0:
            w.done_at = state.now
        elif w.kind in JOB_KINDS and state.now >= w.ready_at + state.cfg.job_duration_s:
            w.done_at = state.now
            if w.kind == "dedup":
                state.duplicate_estimate = 0.0
                state.dedup_plan = None  # spent
            else:
                state.relationships_changed = 0
                state.community_built_at = state.now
