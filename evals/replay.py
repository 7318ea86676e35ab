"""Replay: re-run a planner and the policy guard on the observations recorded in the decision log, and
report the ticks where the new decisions differ from the recorded ones (a new model, prompt or policy
before it goes live). Nothing is executed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.domain import Observation, Proposal
from graphs.planners import PlanContext, Planner, PlanResult

if TYPE_CHECKING:
    from agent.state.archive import ObservationArchive
    from agent.state.decisions import DecisionLog, DecisionRecord
    from core.ports import Guard

Decision = tuple[str, str, str]  # (action, canonical args, verdict)
RECENT_DECISIONS = 20


@dataclass(frozen=True)
class TickDiff:
    tick_id: str
    observation_digest: str
    recorded: tuple[Decision, ...]
    replayed: tuple[Decision, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tick_id": self.tick_id,
            "observation_digest": self.observation_digest,
            "recorded": [list(d) for d in self.recorded],
            "replayed": [list(d) for d in self.replayed],
        }


@dataclass(frozen=True)
class ReplayReport:
    ticks: int
    compared: int
    missing_observations: tuple[str, ...]  # tick ids whose observation is not in the archive
    diffs: tuple[TickDiff, ...]

    @property
    def same(self) -> int:
        return self.compared - len(self.diffs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "compared": self.compared,
            "same": self.same,
            "differ": len(self.diffs),
            "missing_observations": list(self.missing_observations),
            "diffs": [d.to_dict() for d in self.diffs],
        }


def _tick_key(tick_id: str) -> re.Pattern[str]:
    return re.compile(re.escape(tick_id) + r":\d+$")


def tick_records(records: list[DecisionRecord]) -> dict[str, list[DecisionRecord]]:
    """The planner's own decisions per tick, in log order (no rejected model calls, no approval answers)."""
    ticks: dict[str, list[DecisionRecord]] = {}
    for record in records:
        key = record.idempotency_key or ""
        if record.observation_digest and _tick_key(record.tick_id).match(key):
            ticks.setdefault(record.tick_id, []).append(record)
    return ticks


def _decision(action: str, args: dict[str, Any], verdict: str | None) -> Decision:
    shown = {} if action == "noop" else args  # a noop's reason is prose; only the fact of doing nothing counts
    return action, json.dumps(shown, sort_keys=True), verdict or "-"


def replay(log: DecisionLog, archive: ObservationArchive, planner: Planner, guard: Guard) -> ReplayReport:
    records = log.all()
    ticks = tick_records(records)
    diffs: list[TickDiff] = []
    missing: list[str] = []
    history: list[dict[str, Any]] = []
    by_tick = {tick: [r.to_dict() for r in recs] for tick, recs in ticks.items()}
    for tick_id, recs in ticks.items():
        digest = recs[0].observation_digest or ""
        obs = archive.get(digest)
        if obs is None:
            missing.append(tick_id)
            continue
        recorded = tuple(_decision(r.action, r.args, r.verdict) for r in recs)
        replayed = replan(obs, planner, guard, history[-RECENT_DECISIONS:])
        if Counter(recorded) != Counter(replayed):
            diffs.append(TickDiff(tick_id, digest, recorded, replayed))
        history += by_tick[tick_id]
    return ReplayReport(len(ticks), len(ticks) - len(missing), tuple(missing), tuple(diffs))


def replan(obs: Observation, planner: Planner, guard: Guard, recent: list[dict[str, Any]]) -> tuple[Decision, ...]:
    """What the tick graph's plan and guard nodes would decide on this observation (no act, no record)."""
    result = planner.plan(PlanContext(obs, obs.time, recent))
    if isinstance(result, PlanResult):
        proposals = result.proposals
    else:
        proposals = (Proposal(action="noop", rationale=f"no plan: {result.reason}"),)
    return tuple(_decision(p.action, p.args, guard(p, obs, obs.time).verdict.value) for p in proposals)
