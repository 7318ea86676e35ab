"""Baseline controllers for the simulator, as Planners so they see the same Observations.

- HpaBaseline: a plain Kubernetes HPA per kind on its home host, with the upstream defaults (tolerance 0.1,
  min 1 replica, scale up by max(+4, +100%), 300 s scale-down stabilization) and nothing else: no host
  capacity check, no cooldowns, no policy, no approvals, no budget routing, no data jobs.
- FixedWorkers: a static worker count per kind, what an operator with a supervisor config runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.domain import PlannerInfo, Proposal
from core.kinds import SCALABLE_KINDS
from evals.sim_model import HOME_HOST
from graphs.planners import PlanContext, PlanResult
from graphs.rule_planner import RecommendationHistory

if TYPE_CHECKING:
    from policies.model import Policy

HPA_KINDS: tuple[str, ...] = SCALABLE_KINDS


@dataclass(frozen=True)
class HpaTarget:
    kind: str
    host: str
    target_per_worker: float
    max_replicas: int
    min_replicas: int = 1


@dataclass
class HpaBaseline:
    targets: tuple[HpaTarget, ...]
    tolerance: float = 0.1
    stabilization_s: float = 300.0
    history: RecommendationHistory = field(default_factory=RecommendationHistory)

    @classmethod
    def from_policy(cls, policy: Policy) -> HpaBaseline:
        targets = []
        for kind in HPA_KINDS:
            lim = policy.worker_limits(kind)
            targets.append(HpaTarget(kind, HOME_HOST[kind], float(lim.target_backlog_per_worker), lim.max))
        return cls(tuple(targets))

    def plan(self, ctx: PlanContext) -> PlanResult:
        obs, proposals = ctx.observation, []
        for t in self.targets:
            key = f"{t.kind}@{t.host}"
            current = obs.desired.get(key, obs.running(t.kind, t.host))
            raw = self._recommend(current, obs.brain.pending.get(t.kind, 0), t)
            stabilized = self.history.add(key, ctx.now, raw, self.stabilization_s)
            desired = raw if raw > current else min(current, stabilized)
            if desired != current:
                args = {"kind": t.kind, "host": t.host, "count": desired}
                proposals.append(Proposal(action="scale_workers", args=args, rationale="hpa"))
        return PlanResult(tuple(proposals), PlannerInfo(kind="rules", model="hpa-baseline"))

    def _recommend(self, current: int, backlog: int, t: HpaTarget) -> int:
        if current == 0:
            raw = math.ceil(backlog / t.target_per_worker)
        else:
            ratio = backlog / (current * t.target_per_worker)
            raw = current if abs(ratio - 1.0) <= self.tolerance else math.ceil(current * ratio)
        raw = min(raw, max(current + 4, current * 2))
        return max(t.min_replicas, min(t.max_replicas, raw))


@dataclass
class FixedWorkers:
    counts: Mapping[str, int] = field(
        default_factory=lambda: {"extract@worker1": 3, "wisdom@brain": 1, "embed@brain": 1}
    )

    def plan(self, ctx: PlanContext) -> PlanResult:
        proposals = []
        for key, count in self.counts.items():
            if ctx.observation.desired.get(key, 0) != count:
                kind, host = key.split("@", 1)
                args = {"kind": kind, "host": host, "count": count}
                proposals.append(Proposal(action="scale_workers", args=args, rationale="fixed"))
        return PlanResult(tuple(proposals), PlannerInfo(kind="rules", model="fixed-baseline"))
