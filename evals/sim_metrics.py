"""What a simulation run is judged by: per-item waits, worker-seconds (and the idle part), compute and LLM
cost, reaction to load rises, work lost on scale-down, flaps, host overload, budget overshoot, tokens,
approvals and backlog drain; plus the time series the report plots."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from evals.sim_model import SCALED_STAGES, arrival_rates, load_rises
from evals.sim_verify import VerifyTally

if TYPE_CHECKING:
    from core.ports import DecisionEntry
    from evals.sim_model import FleetState, SimConfig
    from policies.model import HostLimits

DRAIN_HIGH = 1000.0  # an extract backlog above this starts a drain episode ...
DRAIN_LOW = 100.0  # ... which ends when it falls below this
FLAP_WINDOW_S = 300.0  # a direction change within the HPA scale-down stabilization window is a flap


@dataclass
class Timeline:
    t: list[float] = field(default_factory=list)
    backlog: dict[str, list[float]] = field(default_factory=dict)
    workers: dict[str, list[int]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    window_tokens_used: list[int] = field(default_factory=list)
    scale_events: list[tuple[float, str, int, int]] = field(default_factory=list)
    overload_s: float = 0.0

    def sample(self, state: FleetState) -> None:
        self.t.append(state.elapsed)
        for stage, value in state.backlog.items():
            self.backlog.setdefault(stage, []).append(round(value, 1))
        for kind in ("extract", "wisdom", "embed"):
            self.workers.setdefault(kind, []).append(len(state.live(kind)))
        for host in state.cfg.hosts:
            cpu = state.load(host)[0] if state.host_up(host.name) else 0.0
            self.cpu.setdefault(host.name, []).append(round(cpu, 1))
        self.window_tokens_used.append(state.tokens.used)

    def scaled(self, now: float, key: str, before: int, after: int) -> None:
        if before != after:
            self.scale_events.append((now, key, before, after))

    def overload(self, state: FleetState, ceilings: Mapping[str, HostLimits]) -> None:
        for host in state.cfg.hosts:
            if not state.host_up(host.name):
                continue
            cpu, mem = state.load(host)
            lim = ceilings[host.name]
            if cpu > lim.cpu_ceiling_percent or mem > lim.mem_ceiling_percent:
                self.overload_s += state.cfg.step_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CountingRecorder:
    """The simulator's decision recorder: counts outcomes and the planner's tokens and cost."""

    outcomes: dict[str, int] = field(default_factory=dict)
    planner_tokens: int = 0
    planner_cost: float = 0.0
    verify: VerifyTally = field(default_factory=VerifyTally)

    def record(self, entry: DecisionEntry, now: float) -> str:
        status = entry.outcome.status
        if status == "done":
            self.verify.note(entry.proposal, now)
        self.outcomes[status] = self.outcomes.get(status, 0) + 1
        self.planner_tokens += entry.planner.tokens_in + entry.planner.tokens_out
        self.planner_cost += entry.planner.cost
        return entry.key


@dataclass(frozen=True)
class DrainStats:
    episodes: int
    mean_s: float
    max_s: float
    undrained: int  # episodes still above the low mark when the run ended


@dataclass(frozen=True)
class SimMetrics:
    """One run, judged by what a fleet owner pays for and feels. Waits are per item, in seconds from arrival
    to commit (unfinished items count with their wait so far); worker-seconds count every second a worker
    process exists; costs are dollars."""

    controller: str
    seed: int
    trace: str  # the scenario's name
    duration_s: float
    p95_wait_s: float  # the extract stage's p95 wait
    wait_s: dict[str, dict[str, float]]  # stage -> {"p50", "p95", "max"}
    worker_seconds: float
    worker_seconds_by_kind: dict[str, float]
    idle_worker_seconds: float  # start-up, unused capacity, waiting on tokens or a provider, draining waits
    idle_worker_seconds_by_kind: dict[str, float]
    compute_cost: float  # worker-seconds x host cost_per_hour x the kind's CPU share
    llm_cost: float  # the fleet's tokens and the planner's
    scale_changes: int
    flaps: int
    reaction_ticks: float | None  # worst over load rises: controller ticks until extract scaled up; None: no rise
    lost_items: int  # done items thrown away when a stopped worker was killed at the grace
    fault_lost_items: int  # done items thrown away when their host went down (a fault, not a decision)
    budget_overshoot_tokens: int
    host_overload_s: float
    fleet_tokens: int
    planner_tokens: int
    throttled_items: int
    approvals_requested: int
    outcomes: dict[str, int]
    mean_backlog: float
    p95_backlog: float
    final_backlog: float
    drain: DrainStats
    wall_s: float
    verified_share: float | None = None  # done actions that did what they expected, of those judged

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def comparable(self) -> dict[str, Any]:
        """Everything except wall time: what must be identical for the same seed."""
        data = self.to_dict()
        data.pop("wall_s")
        return data


def drain_stats(t: list[float], backlog: list[float], high: float = DRAIN_HIGH, low: float = DRAIN_LOW) -> DrainStats:
    durations, undrained, start = [], 0, None
    for time_s, value in zip(t, backlog, strict=True):
        if start is None and value > high:
            start = time_s
        elif start is not None and value < low:
            durations.append(time_s - start)
            start = None
    if start is not None:
        undrained = 1
        durations.append(t[-1] - start)
    mean = sum(durations) / len(durations) if durations else 0.0
    return DrainStats(len(durations), round(mean, 1), round(max(durations, default=0.0), 1), undrained)


def count_flaps(events: list[tuple[float, str, int, int]], window_s: float = FLAP_WINDOW_S) -> int:
    """Direction changes of one kind@host's desired count within `window_s` of the previous change."""
    last: dict[str, tuple[float, int]] = {}
    flaps = 0
    for now, key, before, after in events:
        direction = 1 if after > before else -1
        previous = last.get(key)
        if previous is not None and previous[1] != direction and now - previous[0] < window_s:
            flaps += 1
        last[key] = (now, direction)
    return flaps


def reaction_ticks(
    rises: list[float],
    events: list[tuple[float, str, int, int]],
    duration_s: float,
    tick_s: float,
    covered: Callable[[float], bool] = lambda _rise: False,
) -> float | None:
    """Worst, over load rises (seconds from start), of the ticks from the rise to the first extract scale-up
    (any host) at or after it; a rise not answered before the next rise or the end counts the ticks until then.
    A rise the workers running at that moment already cover (`covered`: a burst arriving while the last one's
    workers are still up) needs no scale-up and counts 0."""
    ups = sorted(t for t, key, before, after in events if key.startswith("extract@") and after > before)
    worst: float | None = None
    for index, rise in enumerate(rises):
        if covered(rise):
            worst = max(worst or 0.0, 0.0)
            continue
        limit = rises[index + 1] if index + 1 < len(rises) else duration_s
        answer = next((t for t in ups if rise <= t < limit), limit)
        ticks = round((answer - rise) / tick_s, 3)
        worst = ticks if worst is None else max(worst, ticks)
    return worst


def _covers(cfg: SimConfig, timeline: Timeline) -> Callable[[float], bool]:
    """Whether the extract workers running at a rise already process the arrival rate that follows it."""
    rate_per_s = arrival_rates(cfg)
    per_worker_s = cfg.kind("extract").throughput_per_min / 60.0

    def covered(rise: float) -> bool:
        at = max((i for i, t in enumerate(timeline.t) if t <= rise), default=None)
        if at is None:
            return False
        step = min(len(rate_per_s) - 1, round(rise / cfg.step_s))
        return timeline.workers.get("extract", [0])[at] * per_worker_s >= rate_per_s[step]

    return covered


def summarize(
    name: str,
    cfg: SimConfig,
    state: FleetState,
    timeline: Timeline,
    recorder: CountingRecorder,
    approvals: int,
    wall_s: float,
) -> SimMetrics:
    extract = timeline.backlog.get("extract", [0.0])
    ordered = sorted(extract)
    waits = {stage: state.waits.summary(stage, state.now, state.unfinished(stage)) for stage in SCALED_STAGES}
    by_kind = {k: round(v, 1) for k, v in sorted(state.worker_s.items())}
    idle = {k: round(max(0.0, v - state.busy_s.get(k, 0.0)), 1) for k, v in sorted(state.worker_s.items())}
    events = [(t - cfg.start_time, key, before, after) for t, key, before, after in timeline.scale_events]
    return SimMetrics(
        controller=name,
        seed=cfg.seed,
        trace=cfg.name,
        duration_s=cfg.duration_s,
        p95_wait_s=waits["extract"]["p95"],
        wait_s=waits,
        worker_seconds=round(sum(state.worker_s.values()), 1),
        worker_seconds_by_kind=by_kind,
        idle_worker_seconds=round(sum(idle.values()), 1),
        idle_worker_seconds_by_kind=idle,
        compute_cost=round(state.compute_cost, 4),
        llm_cost=round(state.cost + recorder.planner_cost, 4),
        scale_changes=len(timeline.scale_events),
        flaps=count_flaps(timeline.scale_events),
        reaction_ticks=reaction_ticks(load_rises(cfg), events, cfg.duration_s, cfg.tick_s, _covers(cfg, timeline)),
        lost_items=round(state.lost_items),
        fault_lost_items=round(state.fault_lost_items),
        budget_overshoot_tokens=state.tokens.overshoot,
        host_overload_s=timeline.overload_s,
        fleet_tokens=state.tokens.total - recorder.planner_tokens,
        planner_tokens=recorder.planner_tokens,
        throttled_items=int(state.throttled_items),
        approvals_requested=approvals,
        outcomes=dict(sorted(recorder.outcomes.items())),
        mean_backlog=round(sum(extract) / len(extract), 1),
        p95_backlog=ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        final_backlog=extract[-1],
        drain=drain_stats(timeline.t, extract),
        wall_s=round(wall_s, 3),
        verified_share=recorder.verify.share(),
    )
