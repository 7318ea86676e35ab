"""Rules for the reasoning tier and the query analysis job.

Reasoning workers themselves are scaled by the ordinary scaling rule (a scalable, LLM-bound kind whose backlog
is pending["reasoning"], under the same budget guards) once `planner.scaled_kinds` names it (it needs model
tiers, so it is not in the default list). What this module adds:

- **Tier**: each tier's yield (valid answers / attempts over the window, `BrainStats.reasoning`) and its valid
  answers per dollar (the ledger's settled cost). A tier counts once it answered `min_attempts` times. When the
  tier reasoning runs on yields under the policy's `reasoning.yield_floor`, reasoning moves to the judged tier
  above the floor with the best yield per dollar, else one tier up (an escalation). When it yields enough but
  another judged tier above the floor gives clearly more valid answers per dollar, it moves there.
- **Queries**: an analyze_queries job once `queries.analyze_backlog` imported queries are unanalyzed.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.domain import Observation, Proposal, TierYield
from graphs.plan_facts import busy, held_back, place

TASK = "reasoning"
BETTER_BY = 1.25  # another tier must give this many times the valid answers per dollar to move a healthy tier
PURPOSE_TIERS = ("routine", "analysis", "strategic")  # tiers named by purpose: no [llm] tiers (eval scenarios)


@dataclass(frozen=True)
class InsightParams:
    tiers: tuple[str, ...] = PURPOSE_TIERS  # the configured tiers, cheapest first
    yield_floor: float = 0.6
    min_attempts: int = 20
    tier_cooldown_s: float = 3600.0
    analyze_backlog: int = 200
    analyze_cooldown_s: float = 1800.0
    refusal_backoff_s: float = 3600.0


def idle_tools(obs: Observation) -> frozenset[str]:
    """This module's action tools the model is not offered on a tick with nothing for them: no reasoning answers
    to judge a tier by, no unanalyzed queries (each offered tool costs prompt tokens on every tick)."""
    idle = set()
    if not obs.brain.reasoning.tiers:
        idle.add("set_reasoning_tier")
    if not obs.brain.queries.unanalyzed:
        idle.add("run_query_analysis")
    return frozenset(idle)


def prompt_facts(obs: Observation) -> dict[str, object]:
    """What the planning model reads of reasoning and queries (empty when there is nothing to read)."""
    stats, facts = obs.brain.reasoning, dict[str, object]()
    if stats.tiers:
        facts["reasoning_yield"] = {
            t.tier: {"valid": t.valid, "attempts": t.attempts, "cost": t.cost} for t in stats.tiers
        }
        facts["reasoning_tier"] = obs.budget.task_tiers.get(TASK) or "split"
    if obs.brain.queries.unanalyzed or obs.brain.queries.topics_without_coverage:
        facts["queries_unanalyzed"] = obs.brain.queries.unanalyzed
        facts["topics_without_coverage"] = obs.brain.queries.topics_without_coverage
    return facts


def proposals(p: InsightParams, obs: Observation, now: float, holds: list[str]) -> list[Proposal]:
    return [*reasoning_tier(p, obs, now, holds), *query_analysis(p, obs, now, holds)]


def _per_dollar(t: TierYield) -> float:
    rate = t.valid_per_dollar
    return float("inf") if rate is None else rate


def reasoning_tier(p: InsightParams, obs: Observation, now: float, holds: list[str]) -> list[Proposal]:
    stats = obs.brain.reasoning
    judged = [t for t in stats.tiers if t.attempts >= p.min_attempts and t.tier in p.tiers]
    if not judged:
        return []
    pinned = obs.budget.task_tiers.get(TASK)
    current = pinned or max(stats.tiers, key=lambda t: t.attempts).tier
    now_on = stats.tier(current)
    good = [t for t in judged if t.yield_rate >= p.yield_floor and t.tier != current]
    best = max(good, key=_per_dollar, default=None)
    floor = f"floor {p.yield_floor:.0%}"
    if now_on.attempts < p.min_attempts:
        return []  # too few answers on the tier in use to judge it
    if now_on.yield_rate < p.yield_floor:
        counts = f"{now_on.valid}/{now_on.attempts}"
        due = f"reasoning yield on {current} is {now_on.yield_rate:.0%} ({counts}), under the {floor}"
        target = best.tier if best else _next_tier(p.tiers, current)
        if target is None:
            holds.append(f"{due}, and no pricier tier is configured")
            return []
        why = f"{due}: escalate to {target}" + (f" (yield {best.yield_rate:.0%})" if best else " (untried)")
    elif best is not None and _per_dollar(best) >= BETTER_BY * _per_dollar(now_on):
        target = best.tier
        why = (
            f"reasoning on {best.tier} yields {best.yield_rate:.0%} (>= {floor}) at {_rate(best)} valid/$ "
            f"against {_rate(now_on)} on {current}: move there"
        )
    else:
        return []
    if target == pinned:
        return []
    held = held_back(obs, "set_reasoning_tier", now, cooldown_s=p.tier_cooldown_s, backoff_s=p.refusal_backoff_s)
    if held:
        holds.append(f"{why}, but the tier change is {held}")
        return []
    return [Proposal(action="set_reasoning_tier", args={"tier": target}, rationale=why)]


def _next_tier(order: tuple[str, ...], tier: str) -> str | None:
    if tier not in order:
        return order[0] if order else None
    index = order.index(tier)
    return order[index + 1] if index + 1 < len(order) else None


def _rate(t: TierYield) -> str:
    rate = t.valid_per_dollar
    return "free" if rate is None else f"{rate:,.0f}"


def query_analysis(p: InsightParams, obs: Observation, now: float, holds: list[str]) -> list[Proposal]:
    unanalyzed = obs.brain.queries.unanalyzed
    if unanalyzed < p.analyze_backlog or busy(obs, "analyze_queries"):
        return []
    due = f"{unanalyzed} queries unanalyzed (>= {p.analyze_backlog})"
    host = place(obs, "analyze_queries")
    if host is None:
        holds.append(f"{due}, but no host is reachable for the analysis job")
        return []
    held = held_back(obs, "run_query_analysis", now, cooldown_s=p.analyze_cooldown_s, backoff_s=p.refusal_backoff_s)
    if held:
        holds.append(f"{due}: query analysis {held}")
        return []
    reason = f"{due}: cluster them and mark the poorly answered topics as priorities"
    return [Proposal(action="run_query_analysis", args={"reason": reason}, rationale=reason)]
