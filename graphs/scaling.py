"""Queue-driven worker scaling in the spirit of Kubernetes' HPA, sized to what the hosts can take.

desired = ceil(current * backlog / (current * target)) with a tolerance band, bounded steps, and a
scale-down stabilization window (the highest recommendation of the window wins). KEDA-style activation
takes a kind from zero to one. The total is then spread over reachable hosts within each host's CPU and
memory headroom, mirroring the policy engine's projection so the planner does not propose what the guard
would deny.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.domain import HostMetrics, Observation, Proposal

UNLIMITED = 10**6


@dataclass(frozen=True)
class ScalingParams:
    """Per worker kind, from the policy file. Counts are per host, as in the policy."""

    stage: str
    min_workers: int = 0
    max_workers: int = 8
    target_per_worker: float = 200.0
    activation: int = 1
    tolerance: float = 0.1
    max_step_up: int = 4  # HPA: max(+step_up, +100%) per decision
    max_step_down: int = 2
    stabilization_s: float = 300.0
    cooldown_s: float = 30.0
    est_cpu_percent: float = 25.0  # host CPU one more worker adds when none runs to measure
    est_mem_percent: float = 5.0
    llm_bound: bool = False  # its work calls LLMs: more workers cannot help when the budget is gone
    max_wait_s: float | None = None  # wait-time objective; None: HPA rule on target_per_worker


@dataclass
class RecommendationHistory:
    """Recent recommendations per kind, for the scale-down stabilization window (HPA keeps this in memory)."""

    entries: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)

    def add(self, key: str, now: float, desired: int, window_s: float, seed: tuple[float, int] | None = None) -> int:
        """Record a recommendation; return the highest one still inside the window.

        `seed` (time, count) stands in for the history a fresh planner lacks: the last scale change, so a
        restarted planner cannot undo a recent scale-up before a full window has passed.
        """
        q = self.entries.setdefault(key, deque([seed] if seed else []))
        q.append((now, desired))
        while q and q[0][0] < now - window_s:
            q.popleft()
        return max(n for _, n in q)


def hpa_desired(current: int, backlog: int, p: ScalingParams, max_total: int | None = None) -> int:
    """Raw HPA recommendation before stabilization, clamped to [min, max_total] and to the step limits."""
    top = p.max_workers if max_total is None else max_total
    if current == 0:
        if backlog < p.activation:
            return p.min_workers
        raw = math.ceil(backlog / p.target_per_worker)
    else:
        ratio = backlog / (current * p.target_per_worker)
        if abs(ratio - 1.0) <= p.tolerance:
            return max(p.min_workers, min(top, current))
        raw = math.ceil(current * ratio)
    bounded = min(max(raw, current - p.max_step_down), max(current + p.max_step_up, current * 2))
    return max(p.min_workers, min(top, bounded))


def room_for(obs: Observation, host: str, kind: str, est: tuple[float, float], ceilings: tuple[float, float]) -> int:
    """How many more workers of `kind` fit on `host` under its CPU and memory ceilings (a 100% ceiling is off)."""
    metrics = _metrics(obs, host)
    if metrics is None or not metrics.reachable:
        return 0
    cpu_each = obs.worker_cpu_share(kind, host) or est[0]
    fits = [
        _fits(metrics.cpu_percent, cpu_each, ceilings[0]),
        _fits(metrics.mem_percent, est[1], ceilings[1]),
    ]
    return max(0, min(fits))


def _fits(now_pct: float, each: float, ceiling: float) -> int:
    if ceiling >= 100.0 or each <= 0:
        return UNLIMITED
    return math.floor((ceiling - now_pct) / each)


def _metrics(obs: Observation, host: str) -> HostMetrics | None:
    return next((h for h in obs.hosts if h.host == host), None)


@dataclass(frozen=True)
class KindPlan:
    """One kind's scaling inputs, gathered from the observation."""

    kind: str
    p: ScalingParams
    counts: dict[str, int]  # reachable host -> desired (or running) count of this kind
    backlog: int
    rate: float  # net drain per minute; negative = the backlog grows

    @property
    def current(self) -> int:
        return sum(self.counts.values())


def gather(obs: Observation, kind: str, p: ScalingParams) -> KindPlan:
    hosts = [h.host for h in obs.hosts if h.reachable]
    counts = {h: obs.desired.get(f"{kind}@{h}", obs.running(kind, h)) for h in hosts}
    return KindPlan(kind, p, counts, obs.brain.pending.get(p.stage, 0), obs.rates.get(p.stage, 0.0))


def spread_up(
    plan: KindPlan,
    add: int,
    obs: Observation,
    ceilings: dict[str, tuple[float, float]],
    blocked: Iterable[str],
    caps: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """New per-host counts adding up to `add` workers: hosts already running the kind first, then by headroom;
    `caps` bounds the count per host (e.g. to what needs no approval)."""
    skip = set(blocked)
    order = sorted(
        (h for h in plan.counts if h not in skip),
        # Where the kind runs, then where it ran (its desired entry went to zero), then by headroom.
        key=lambda h: (plan.counts[h] == 0, f"{plan.kind}@{h}" not in obs.desired, _load(obs, h)),
    )
    out: dict[str, int] = {}
    for host in order:
        if add <= 0:
            break
        ceiling = ceilings.get(host) or ceilings.get("*") or (90.0, 85.0)
        room = room_for(obs, host, plan.kind, (plan.p.est_cpu_percent, plan.p.est_mem_percent), ceiling)
        top = plan.p.max_workers if caps is None else min(plan.p.max_workers, caps.get(host, plan.p.max_workers))
        take = min(add, top - plan.counts[host], room)
        if take > 0:
            out[host] = plan.counts[host] + take
            add -= take
    return out


def spread_down(plan: KindPlan, remove: int, blocked: Iterable[str], obs: Observation | None = None) -> dict[str, int]:
    """New per-host counts removing `remove` workers: from the hosts running most of them, the busiest host
    first on a tie, each by at most the policy's step, so a burst's spill host empties before the home host
    is touched (fewer changes than taking one from each)."""
    skip = set(blocked)
    out: dict[str, int] = {}
    load = (lambda h: _load(obs, h)) if obs is not None else (lambda h: 0.0)
    for host in sorted((h for h in plan.counts if h not in skip), key=lambda h: (-plan.counts[h], -load(h))):
        if remove <= 0:
            break
        take = min(remove, plan.counts[host] - plan.p.min_workers, plan.p.max_step_down)
        if take > 0:
            out[host] = plan.counts[host] - take
            remove -= take
    return out


def _load(obs: Observation, host: str) -> float:
    m = _metrics(obs, host)
    return max(m.cpu_percent, m.mem_percent) if m else 100.0


def scale_proposals(plan: KindPlan, new_counts: dict[str, int], why: str) -> list[Proposal]:
    return [
        Proposal(
            action="scale_workers",
            args={"kind": plan.kind, "host": host, "count": count},
            rationale=f"{why}; {plan.kind}@{host} {plan.counts[host]} -> {count}",
        )
        for host, count in sorted(new_counts.items())
    ]
