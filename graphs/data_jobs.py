"""The rule planner's data jobs (embedding, dedup, recluster) and model routing: when each is due, and when a
due one is held back, why (cooldown until when, refused when, awaiting which approval, no headroom where).

Each function returns its proposals and appends to `holds` one sentence per due job it holds back, so a tick
that does nothing says what it waits for instead of "all stages within targets".
"""

from __future__ import annotations

import math

from core.actions import cooldown_key
from core.domain import Observation, Proposal
from graphs.plan_facts import busy, held_back, no_room, place, rounded
from graphs.rule_params import RuleParams
from graphs.rules_cost import over_cost_target
from graphs.scaling import room_for

EMBED_COOLDOWN_S = 300.0


def embedding(p: RuleParams, obs: Observation, now: float, holds: list[str]) -> list[Proposal]:
    # Entities missing vectors are filled by the dedup run itself; a job is for the records table.
    missing = obs.brain.pending.get("embed_records", obs.brain.pending.get("embed", 0))
    if "embed" in p.scaling or missing < p.embed_job_threshold:
        return []
    due = f"{missing} rows lack vectors"
    if busy(obs, "embed"):
        return []  # the running job is the answer
    host = place(obs, "embed")
    if host is None:
        holds.append(f"{due}, but no host is reachable for an embedding job")
        return []
    key = f"start_embedding:embed@{host}"
    held = held_back(obs, key, now, cooldown_s=EMBED_COOLDOWN_S, backoff_s=p.refusal_backoff_s)
    if held:
        holds.append(f"{due}: embedding job on {host} {held}")
        return []
    ceiling = p.host_ceilings.get(host) or p.host_ceilings.get("*") or (90.0, 85.0)
    fits = room_for(obs, host, "embed", p.embed_est, ceiling)
    shards = min(p.embed_max_shards, math.ceil(missing / p.embed_rows_per_shard), fits)
    if shards < 1:
        holds.append(f"{due}: no embedding job while {no_room(obs, [host], p.host_ceilings)}")
        return []
    return [
        Proposal(
            action="start_embedding",
            args={"host": host, "shards": shards, "table": "records"},
            rationale=f"{due} and no embedding job runs: {shards} shard(s) on {host}",
        )
    ]


def dedup(p: RuleParams, obs: Observation, now: float, holds: list[str]) -> list[Proposal]:
    """Dedup as a plan: a dry run stores the real merges as the brain's plan; the live run then names
    that plan and its count, so the policy (and a human) judge the merges that will happen."""
    brain = obs.brain
    if brain.duplicate_estimate < p.dedup_threshold:
        return []
    estimate = f"duplicate estimate {brain.duplicate_estimate:.2%} >= threshold {p.dedup_threshold:.2%}"
    if busy(obs, "dedup"):
        return []
    dry_key = cooldown_key("run_dedup", {"dry_run": True})
    held = held_back(obs, "run_dedup", now, cooldown_s=p.dedup_cooldown_s, backoff_s=p.refusal_backoff_s)
    held = held or held_back(obs, dry_key, now, backoff_s=p.refusal_backoff_s)
    if held:
        holds.append(f"{estimate}: dedup {held}")
        return []
    plan = brain.dedup_plan
    if plan is not None and not plan.stale:
        return [
            Proposal(
                action="run_dedup",
                args={"dry_run": False, "expected_merges": plan.absorbed, "plan": plan.hash},
                rationale=(
                    f"{estimate}: dry-run plan {plan.hash[:12]} merges {plan.absorbed} entities into "
                    f"{plan.merges} survivors; run it"
                ),
            )
        ]
    held = held_back(obs, dry_key, now, cooldown_s=p.dedup_dry_run_cooldown_s)
    if held:
        holds.append(f"{estimate}: its plan went stale; the next dry run is {held}")
        return []
    why = "its last plan is stale (the entities changed)" if plan is not None else "no plan yet"
    return [
        Proposal(
            action="run_dedup",
            args={"dry_run": True, "expected_merges": brain.duplicate_candidates},
            rationale=f"{estimate} ({brain.duplicate_candidates} candidates), {why}: a dry run plans the merges",
        )
    ]


def recluster(p: RuleParams, obs: Observation, now: float, holds: list[str], dedup_planned: bool) -> list[Proposal]:
    brain = obs.brain
    if brain.relationships == 0 or busy(obs, "recluster"):
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
    if dedup_planned or busy(obs, "dedup") or any(a.action == "run_dedup" for a in obs.pending_approvals):
        holds.append(f"recluster due ({reason}) waits for the dedup: merges repoint relationships")
        return []
    held = held_back(obs, "run_recluster", now, cooldown_s=p.recluster_cooldown_s, backoff_s=p.refusal_backoff_s)
    if held:
        holds.append(f"recluster due ({reason}) {held}")
        return []
    return [Proposal(action="run_recluster", args={"reason": reason}, rationale=reason)]


def routing(p: RuleParams, obs: Observation, now: float, holds: list[str]) -> list[Proposal]:
    budget = obs.budget
    if not p.cheap_routing:
        return []
    current = rounded(budget.routing or p.default_routing)  # an empty ledger routes by the configured split
    if budget.pace >= p.budget_pace_high and current != rounded(p.cheap_routing):
        target = p.cheap_routing
        why = f"budget pace {budget.pace:.2f} >= {p.budget_pace_high}: shift to cheaper tiers"
    elif (
        budget.pace <= p.budget_pace_low
        and p.default_routing
        and current == rounded(p.cheap_routing)
        and not over_cost_target(p, obs)  # graphs/rules_cost.py keeps the cheap split while over the target
    ):
        target = p.default_routing
        why = f"budget pace {budget.pace:.2f} back under {p.budget_pace_low}: restore"
    else:
        return []
    held = held_back(obs, "set_model_routing", now, backoff_s=p.refusal_backoff_s)
    if held:
        holds.append(f"{why}, but the routing change is {held}")
        return []
    return [Proposal(action="set_model_routing", args={"weights": dict(target)}, rationale=why)]
