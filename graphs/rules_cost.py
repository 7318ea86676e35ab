"""Cost per result: route fleet calls to the cheaper tiers while the month's LLM dollars per 1,000 records are
over the policy's target (`cost.max_llm_per_1k_records`), and keep them there until they are back under it.

Why routing and not scaling: an LLM-bound worker's cost per record is set by the tier it calls, not by how
many workers run; the cheap split is the same one the budget-pace rule uses (planner.cheap_routing), so the
two rules agree on what "cheaper" means and never flap against each other (data_jobs.routing does not restore
the configured split while this target is exceeded).
"""

from __future__ import annotations

from core.domain import Observation, Proposal
from graphs.plan_facts import held_back, rounded
from graphs.rule_params import RuleParams


def llm_per_1k_records(obs: Observation) -> float | None:
    """The month's LLM dollars per 1,000 records processed; None before any record was processed."""
    month = obs.cost.month
    if month is None or month.produced.get("records", 0) <= 0:
        return None
    return month.llm_cost / month.produced["records"] * 1000.0


def over_cost_target(p: RuleParams, obs: Observation) -> bool:
    per_1k = llm_per_1k_records(obs)
    return p.max_llm_per_1k_records is not None and per_1k is not None and per_1k > p.max_llm_per_1k_records


def cost_routing(p: RuleParams, obs: Observation, now: float, holds: list[str]) -> list[Proposal]:
    if not p.cheap_routing or not over_cost_target(p, obs):
        return []
    current = rounded(obs.budget.routing or p.default_routing)
    if current == rounded(p.cheap_routing):
        return []
    per_1k = llm_per_1k_records(obs) or 0.0
    why = (
        f"this month's LLM cost ${per_1k:.3f} per 1,000 records is over the policy's target "
        f"${p.max_llm_per_1k_records:.3f}: shift to cheaper tiers"
    )
    held = held_back(obs, "set_model_routing", now, backoff_s=p.refusal_backoff_s)
    if held:
        holds.append(f"{why}, but the routing change is {held}")
        return []
    return [Proposal(action="set_model_routing", args={"weights": dict(p.cheap_routing)}, rationale=why)]
