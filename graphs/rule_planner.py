"""The deterministic rule planner: a real controller, the default when no model is configured.

Scaling follows Kubernetes' HPA: desired = ceil(current * metric / target) with a tolerance band, bounded
steps up and down, and a scale-down stabilization window (the highest recommendation of the window wins, so
a noisy backlog does not flap the worker count). Activation (KEDA) decides when to go from zero to one.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from agent.domain import Observation, PlannerInfo, Proposal
from graphs.planners import PlanContext, PlanResult


@dataclass(frozen=True)
class ScalingParams:
    """Per worker kind, from the policy file."""

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


@dataclass(frozen=True)
class RuleParams:
    scaling: dict[str, ScalingParams]
    dedup_threshold: float = 0.005  # duplicate share of live entities that triggers a dedup run
    dedup_cooldown_s: float = 3600.0
    recluster_change_ratio: float = 0.05  # changed relationships / all relationships
    recluster_max_age_s: float = 24 * 3600.0
    recluster_cooldown_s: float = 600.0
    embed_job_threshold: int = 500  # missing vectors that justify a one-shot (GPU) embedding job
    embed_rows_per_shard: int = 20_000
    embed_max_shards: int = 4
    budget_pace_high: float = 1.2
    budget_pace_low: float = 0.7
    cheap_routing: dict[str, float] = field(default_factory=dict)
    default_routing: dict[str, float] = field(default_factory=dict)
    # host -> (cpu %, mem %) above which no worker is added there; "*" for unlisted hosts
    host_ceilings: dict[str, tuple[float, float]] = field(default_factory=lambda: {"*": (90.0, 85.0)})


@dataclass
class RecommendationHistory:
    """Recent desired counts per kind@host, for the scale-down stabilization window (HPA keeps this in memory)."""

    window_s: float = 300.0
    entries: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)

    def add(self, key: str, now: float, desired: int, window_s: float) -> int:
        """Record a recommendation; return the highest one still inside the window."""
        q = self.entries.setdefault(key, deque())
        q.append((now, desired))
        while q and q[0][0] < now - window_s:
            q.popleft()
        return max(n for _, n in q)


def hpa_desired(current: int, backlog: int, p: ScalingParams) -> int:
    """Raw HPA recommendation before stabilization, clamped to [min, max] and to the step limits."""
    if current == 0:
        if backlog < p.activation:
            return p.min_workers
        raw = math.ceil(backlog / p.target_per_worker)
    else:
        ratio = backlog / (current * p.target_per_worker)
        if abs(ratio - 1.0) <= p.tolerance:
            return max(p.min_workers, min(p.max_workers, current))
        raw = math.ceil(current * ratio)
    up_limit = max(current + p.max_step_up, current * 2)
    down_limit = current - p.max_step_down
    bounded = min(max(raw, down_limit), up_limit)
    return max(p.min_workers, min(p.max_workers, bounded))


class RulePlanner:
    def __init__(self, params: RuleParams, history: RecommendationHistory | None = None) -> None:
        self.params = params
        self.history = history or RecommendationHistory()

    def plan(self, ctx: PlanContext) -> PlanResult:
        obs, now = ctx.observation, ctx.now
        proposals = [
            *self._scaling(obs, now),
            *self._embedding(obs, now),
            *self._dedup(obs, now),
            *self._recluster(obs, now),
            *self._routing(obs),
        ]
        if not proposals:
            proposals.append(Proposal(action="noop", rationale=self._why_nothing(obs)))
        return PlanResult(proposals=tuple(proposals), planner=PlannerInfo(kind="rules"))

    # ------------------------------------------------------------ scaling

    def _scaling(self, obs: Observation, now: float) -> list[Proposal]:
        out: list[Proposal] = []
        for kind, p in self.params.scaling.items():
            backlog = obs.brain.pending.get(p.stage, 0)
            host = _place(obs, kind)
            if host is None:
                continue
            key = f"{kind}@{host}"
            current = obs.desired.get(key, obs.running(kind, host))
            raw = hpa_desired(current, backlog, p)
            stabilized = self.history.add(key, now, raw, p.stabilization_s)
            desired = raw if raw > current else min(current, stabilized)
            if desired == current or _in_cooldown(obs, f"scale_workers:{key}", now, p.cooldown_s):
                continue
            if desired > current and not self._host_has_room(obs, host):
                continue
            direction = "up" if desired > current else "down"
            out.append(
                Proposal(
                    action="scale_workers",
                    args={"kind": kind, "host": host, "count": desired},
                    rationale=(
                        f"{p.stage} backlog {backlog} with {current} worker(s) vs target "
                        f"{p.target_per_worker:g}/worker: scale {direction} to {desired}"
                    ),
                )
            )
        return out

    # ------------------------------------------------------------ data jobs

    def _embedding(self, obs: Observation, now: float) -> list[Proposal]:
        p = self.params
        missing = obs.brain.pending.get("embed", 0)
        if "embed" in p.scaling or missing < p.embed_job_threshold:
            return []
        if any(w.kind == "embed" and w.state in ("starting", "running", "draining") for w in obs.workers):
            return []
        host = _place(obs, "embed")
        if host is None or _in_cooldown(obs, f"start_embedding:embed@{host}", now, 300.0):
            return []
        shards = max(1, min(p.embed_max_shards, math.ceil(missing / p.embed_rows_per_shard)))
        return [
            Proposal(
                action="start_embedding",
                args={"host": host, "shards": shards, "table": "records"},
                rationale=f"{missing} rows lack vectors and no embedding job runs: {shards} shard(s) on {host}",
            )
        ]

    def _dedup(self, obs: Observation, now: float) -> list[Proposal]:
        p, brain = self.params, obs.brain
        if brain.duplicate_estimate < p.dedup_threshold or _busy(obs, "dedup"):
            return []
        if _in_cooldown(obs, "run_dedup", now, p.dedup_cooldown_s) or _awaiting(obs, "run_dedup"):
            return []
        return [
            Proposal(
                action="run_dedup",
                args={"dry_run": False, "expected_merges": brain.duplicate_candidates},
                rationale=(
                    f"duplicate estimate {brain.duplicate_estimate:.2%} >= threshold {p.dedup_threshold:.2%} "
                    f"({brain.duplicate_candidates} candidates)"
                ),
            )
        ]

    def _recluster(self, obs: Observation, now: float) -> list[Proposal]:
        p, brain = self.params, obs.brain
        if brain.relationships == 0 or _busy(obs, "recluster") or _awaiting(obs, "run_recluster"):
            return []
        if _in_cooldown(obs, "run_recluster", now, p.recluster_cooldown_s):
            return []
        changed = brain.relationships_changed_since_recluster / brain.relationships
        age = brain.community_age_s
        if brain.communities == 0 or age is None:
            reason = "no communities yet"
        elif changed >= p.recluster_change_ratio:
            reason = f"{changed:.1%} of relationships changed since the last recluster"
        elif age >= p.recluster_max_age_s:
            reason = f"communities are {age / 3600:.1f} h old"
        else:
            return []
        return [Proposal(action="run_recluster", args={"reason": reason}, rationale=reason)]

    def _routing(self, obs: Observation) -> list[Proposal]:
        p, budget = self.params, obs.budget
        if not p.cheap_routing or not budget.routing:
            return []
        current = {k: round(v, 3) for k, v in budget.routing.items()}
        if budget.pace >= p.budget_pace_high and current != _rounded(p.cheap_routing):
            target, why = (
                p.cheap_routing,
                f"budget pace {budget.pace:.2f} >= {p.budget_pace_high}: shift to cheaper tiers",
            )
        elif budget.pace <= p.budget_pace_low and p.default_routing and current == _rounded(p.cheap_routing):
            target, why = p.default_routing, f"budget pace {budget.pace:.2f} back under {p.budget_pace_low}: restore"
        else:
            return []
        return [Proposal(action="set_model_routing", args={"weights": dict(target)}, rationale=why)]

    def _host_has_room(self, obs: Observation, host: str) -> bool:
        ceilings = self.params.host_ceilings
        cpu_max, mem_max = ceilings.get(host) or ceilings.get("*") or (90.0, 85.0)
        metrics = next((h for h in obs.hosts if h.host == host), None)
        return (
            metrics is not None
            and metrics.reachable
            and metrics.cpu_percent <= cpu_max
            and metrics.mem_percent <= mem_max
        )

    def _why_nothing(self, obs: Observation) -> str:
        fatal = [w.id for w in obs.workers if w.state == "fatal"]
        down = [h.host for h in obs.hosts if not h.reachable]
        parts = ["all stages within targets"]
        if fatal:
            parts.append(f"crash-looping workers need an operator: {', '.join(fatal)}")
        if down:
            parts.append(f"unreachable hosts skipped: {', '.join(down)}")
        return "; ".join(parts)


# ---------------------------------------------------------------- helpers


def _rounded(weights: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in weights.items()}


def _in_cooldown(obs: Observation, key: str, now: float, cooldown_s: float) -> bool:
    last = obs.recent_actions.get(key)
    return last is not None and now - last < cooldown_s


def _busy(obs: Observation, kind: str) -> bool:
    return any(w.kind == kind and w.state in ("starting", "running", "draining") for w in obs.workers)


def _awaiting(obs: Observation, action: str) -> bool:
    return any(a.action == action for a in obs.pending_approvals)


def _place(obs: Observation, kind: str) -> str | None:
    """Host for a kind: where it already runs, else the reachable host with most headroom (GPU first for embed)."""
    current = {w.host for w in obs.workers if w.kind == kind and w.state in ("starting", "running")}
    current |= {key.split("@", 1)[1] for key, n in obs.desired.items() if key.startswith(f"{kind}@") and n > 0}
    reachable = [h for h in obs.hosts if h.reachable]
    for h in reachable:
        if h.host in current:
            return h.host
    if not reachable:
        return None
    return min(
        reachable, key=lambda h: (0 if kind == "embed" and h.gpus else 1, max(h.cpu_percent, h.mem_percent))
    ).host
