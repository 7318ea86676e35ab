"""The expectation builders of the actions in core/actions.py (`ActionSpec.expect`): what each one should do to
the figures the next ticks observe. Shapes and the verdict: core/expectations.py."""

from __future__ import annotations

import math

from core.domain import Observation, Proposal, ScalePrediction
from core.expectation_types import Comparator, Rollback
from core.expectations import (
    DEFAULT_HORIZON_S,
    DRAIN_TOLERANCE,
    MAX_HORIZON_S,
    MIN_HORIZON_S,
    Check,
    Expectation,
    ExpectBuilder,
    _dur,
    _num,
    clamp_horizon,
    read_metric,
)
from core.kinds import STAGE_OF_KIND, kind

JOB_HORIZON_S = 600.0  # a one-shot job (dedup, recluster) is expected to have shown its effect by then
WORKER_HORIZON_S = 120.0
ROUTING_SLACK = 0.01
UNMEASURED_SLACK = 100.0
EXACT_RECALL = 0.99  # exact search, measured by the probe against itself (rounding aside)
RELS_CHANGED = "brain.relationships_changed_since_recluster"


def expect_scale(obs: Observation, proposal: Proposal) -> Expectation | None:
    """Up: the stage's backlog drains as predicted within the horizon. Down: waits stay under the objective (the
    backlog stays what the remaining workers clear within it); crossing it is harm, and the rollback scales back."""
    kind_name, host, count = (proposal.args.get(k) for k in ("kind", "host", "count"))
    if not isinstance(kind_name, str) or kind_name not in STAGE_OF_KIND or not isinstance(count, int):
        return None
    metric = f"brain.pending.{STAGE_OF_KIND[kind_name]}"
    backlog = float(obs.brain.pending.get(STAGE_OF_KIND[kind_name], 0))
    here = obs.desired.get(f"{kind_name}@{host}", obs.running(kind_name, str(host)))
    back = Rollback(action="scale_workers", args={"kind": kind_name, "host": host, "count": here})
    subject, p = f"scale:{kind_name}", proposal.prediction
    if count > here:
        return _scale_up(metric, backlog, p, subject, back)
    if count < here:
        return _scale_down(metric, backlog, p, subject, back.model_copy(update={"why": f"scale back to {here}"}))
    return None


def _scale_up(metric: str, backlog: float, p: ScalePrediction | None, subject: str, back: Rollback) -> Expectation:
    if p is None or p.basis == "unmeasured" or p.per_worker_per_min <= 0:
        target = float(math.floor(backlog * (1 - DRAIN_TOLERANCE)))
        check = Check(metric=metric, op="<=", target=target, baseline=backlog)
        summary = f"backlog {_num(backlog)} falls to {_num(target)} or less within {_dur(DEFAULT_HORIZON_S)}"
        return Expectation(checks=(check,), horizon_s=DEFAULT_HORIZON_S, summary=summary, subject=subject)
    rate = p.after * p.per_worker_per_min - p.arrival_per_min  # items/min the backlog should fall by
    horizon = clamp_horizon(1.5 * p.drain_s) if p.drain_s is not None else DEFAULT_HORIZON_S
    left = max(0.0, backlog - rate * horizon / 60.0)
    target = round(left + DRAIN_TOLERANCE * backlog + p.arrival_per_min, 1)
    check = Check(metric=metric, op="<=", target=target, baseline=backlog)
    summary = f"backlog {_num(backlog)} down to {_num(target)} or less within {_dur(horizon)} ({rate:,.0f}/min net)"
    drain = {"backlog": backlog, "rate_per_min": round(rate, 2), "per_worker_per_min": p.per_worker_per_min}
    drain |= {"after": float(p.after), "arrivals_per_min": p.arrival_per_min}
    return Expectation(checks=(check,), horizon_s=horizon, summary=summary, subject=subject, drain=drain)


def _scale_down(metric: str, backlog: float, p: ScalePrediction | None, subject: str, back: Rollback) -> Expectation:
    if p is not None and p.per_worker_per_min > 0:  # waits under the objective (without one: the horizon)
        objective = p.wait_objective_s or DEFAULT_HORIZON_S
        target = round(max(1, p.after) * p.per_worker_per_min * objective / 60.0, 1)
        horizon = clamp_horizon(objective)
        summary = f"waits stay under {_dur(objective)}: backlog at most {_num(target)} at {p.after} worker(s)"
    else:  # throughput unknown: the backlog at most doubles (or grows by UNMEASURED_SLACK items)
        target = round(max(backlog * 2, backlog + UNMEASURED_SLACK), 1)
        horizon = DEFAULT_HORIZON_S
        summary = f"backlog stays at {_num(target)} or less within {_dur(horizon)}"
    check = Check(metric=metric, op="<=", target=target, baseline=backlog)
    harm = Check(metric=metric, op=">=", target=target, baseline=backlog)
    return Expectation(
        checks=(check,), horizon_s=horizon, summary=summary, subject=subject, harm=(harm,), rollback=back, hold=True
    )


def expect_embedding(obs: Observation, proposal: Proposal) -> Expectation:
    """Rows without vectors fall to (nearly) zero by the time the shards take at the embedder's rate."""
    table = str(proposal.args.get("table", "records"))
    shards = max(1, int(proposal.args.get("shards", 1)))
    stage = f"embed_{table}" if f"embed_{table}" in obs.brain.pending else "embed"  # the split, where reported
    metric = f"brain.pending.{stage}"
    rows = float(obs.brain.pending.get(stage, 0))
    rate = obs.rates.get("embed") or kind("embed").sim.throughput_per_min
    horizon = clamp_horizon(1.5 * 60.0 * rows / max(1.0, rate * shards))
    target = math.floor(DRAIN_TOLERANCE * rows)
    check = Check(metric=metric, op="<=", target=target, baseline=rows)
    summary = f"{table} rows without vectors {_num(rows)} -> {_num(target)} or less within {_dur(horizon)}"
    return Expectation(checks=(check,), horizon_s=horizon, summary=summary, subject=f"embed:{table}")


def expect_dedup(obs: Observation, proposal: Proposal) -> Expectation:
    """A dry run stores a fresh plan; a live run lowers the duplicate estimate by about what its plan absorbs (a
    rise is harm)."""
    if proposal.args.get("dry_run"):
        check = Check(metric="brain.dedup_plan.created_at", op=">=", target=obs.time)
        made = read_metric(obs, "brain.dedup_plan.created_at")
        check = check.model_copy(update={"baseline": made})
        summary = f"a dedup plan made after {obs.time:.0f} within {_dur(JOB_HORIZON_S)}"
        return Expectation(checks=(check,), horizon_s=JOB_HORIZON_S, summary=summary, subject="dedup:plan")
    before = obs.brain.duplicate_estimate
    live = max(1, obs.brain.entities)
    absorbed = int(proposal.args.get("expected_merges", 0)) or obs.brain.duplicate_candidates
    target = round(max(0.0, before - 0.5 * absorbed / live), 6)
    check = Check(metric="brain.duplicate_estimate", op="<=", target=target, baseline=before)
    harm = Check(metric="brain.duplicate_estimate", op=">=", target=before + 1e-6, baseline=before)
    summary = f"duplicate estimate {before:.4f} -> {target:.4f} or less within {_dur(JOB_HORIZON_S)}"
    plan = proposal.args.get("plan")
    back = (  # a run is named by the plan it merged: without one there is no run to name
        Rollback(
            action="undo_dedup", args={"run": plan, "merges": absorbed}, why=f"undo the merges of plan {plan[:12]}"
        )
        if isinstance(plan, str)
        else None
    )
    return Expectation(
        checks=(check,), horizon_s=JOB_HORIZON_S, summary=summary, subject="dedup", harm=(harm,), rollback=back
    )


def expect_recluster(obs: Observation, proposal: Proposal) -> Expectation:
    """The communities are rebuilt: their age resets and the relationships changed since fall to few. (Modularity
    is not in the observation yet; a check on it is one more `Check` once it is.)"""
    changed = float(obs.brain.relationships_changed_since_recluster)
    checks = (
        Check(metric="brain.community_age_s", op="<=", target=JOB_HORIZON_S, baseline=obs.brain.community_age_s),
        Check(metric=RELS_CHANGED, op="<=", target=math.floor(0.1 * changed) + 10, baseline=changed),
    )
    summary = f"communities rebuilt within {_dur(JOB_HORIZON_S)} ({_num(changed)} changed relationships absorbed)"
    return Expectation(checks=checks, horizon_s=JOB_HORIZON_S, summary=summary, subject="recluster")


def expect_routing(obs: Observation, proposal: Proposal) -> Expectation | None:
    """Each tier's share of fleet calls is the weight set."""
    weights = {str(k): float(v) for k, v in dict(proposal.args.get("weights", {})).items()}
    total = sum(weights.values())
    if total <= 0:
        return None
    checks: list[Check] = []
    for tier, weight in sorted(weights.items()):
        share, base = round(weight / total, 4), obs.budget.routing.get(tier)
        checks.append(Check(metric=f"budget.routing.{tier}", op=">=", target=share - ROUTING_SLACK, baseline=base))
        checks.append(Check(metric=f"budget.routing.{tier}", op="<=", target=share + ROUTING_SLACK, baseline=base))
    shares = ", ".join(f"{t} {w / total:.0%}" for t, w in sorted(weights.items()))
    summary = f"tier shares {shares}"
    return Expectation(checks=tuple(checks), horizon_s=MIN_HORIZON_S, summary=summary, subject="routing")


def expect_worker(running: bool) -> ExpectBuilder:
    def build(obs: Observation, proposal: Proposal) -> Expectation:
        worker = str(proposal.args.get("worker_id", ""))
        op: Comparator = ">=" if running else "<="
        target = 1.0 if running else 0.0
        metric = f"worker_up.{worker}"
        check = Check(metric=metric, op=op, target=target, baseline=read_metric(obs, metric))
        state = "running" if running else "stopped"
        summary = f"{worker} {state} within {_dur(WORKER_HORIZON_S)}"
        return Expectation(checks=(check,), horizon_s=WORKER_HORIZON_S, summary=summary, subject=f"worker:{worker}")

    return build


def expect_reclaim(target: str) -> ExpectBuilder:
    """Disk work (prune_versions, rotate_logs, archive_decisions): what it covers (old versions, rotated logs,
    archivable decision records) falls to a tenth or less within the job's horizon."""
    metric = f"storage.reclaimable.{target}.items"

    def build(obs: Observation, proposal: Proposal) -> Expectation:
        before = read_metric(obs, metric) or 0.0
        return _job_clears(metric, before, f"{target} to reclaim", f"storage:{target}")

    return build


def expect_query_analysis(obs: Observation, proposal: Proposal) -> Expectation:
    """The analyze_queries job puts (nearly) every unanalyzed query in a topic within a job's horizon."""
    before = float(obs.brain.queries.unanalyzed)
    return _job_clears("brain.queries.unanalyzed", before, "unanalyzed queries", "queries")


def _job_clears(metric: str, before: float, what: str, subject: str) -> Expectation:
    """A one-shot job's work list (`metric`, `before` now) falls to a tenth or less within a job's horizon."""
    goal = float(math.floor(DRAIN_TOLERANCE * before))
    check = Check(metric=metric, op="<=", target=goal, baseline=before)
    summary = f"{what} {_num(before)} -> {_num(goal)} or less within {_dur(JOB_HORIZON_S)}"
    return Expectation(checks=(check,), horizon_s=JOB_HORIZON_S, summary=summary, subject=subject)


def expect_reasoning_tier(obs: Observation, proposal: Proposal) -> Expectation:
    """The tier reasoning moves to keeps at least the share of valid answers reasoning had before, judged after an
    hour of its answers (the action's cooldown); falling further under it is harm, and the rollback moves back."""
    tier = str(proposal.args.get("tier", ""))
    before = obs.brain.reasoning.yield_rate
    metric = f"reasoning_yield.{tier}"
    check = Check(metric=metric, op=">=", target=round(before, 4), baseline=read_metric(obs, metric))
    harm = Check(metric=metric, op="<=", target=round(0.9 * before, 4), baseline=read_metric(obs, metric))
    previous = obs.budget.task_tiers.get("reasoning")
    back = (
        Rollback(action="set_reasoning_tier", args={"tier": previous}, why=f"back to {previous}") if previous else None
    )
    summary = f"reasoning on {tier} keeps a yield of {before:.0%} or more within {_dur(MAX_HORIZON_S)}"
    return Expectation(
        checks=(check,), horizon_s=MAX_HORIZON_S, summary=summary, subject="reasoning", harm=(harm,), rollback=back
    )


def expect_index(obs: Observation, proposal: Proposal) -> Expectation:
    """optimize_index: (nearly) every record is in the index afterwards, and search is no slower and no less right
    than the probe saw it (each worse by more than 10% is harm). Before the first probe only coverage is checked."""
    rows, unindexed = float(obs.index.rows), float(obs.index.unindexed_rows if obs.index.indexed else obs.index.rows)
    goal = float(math.floor(DRAIN_TOLERANCE * rows))
    checks = [Check(metric="index.unindexed_rows", op="<=", target=goal, baseline=unindexed)]
    harm: list[Check] = []
    measured: tuple[tuple[str, float | None, Comparator], ...] = (
        ("index.p95_ms", obs.index.p95_ms, "<="),
        ("index.recall_at_10", obs.index.recall_at_10, ">="),
    )
    for metric, value, better in measured:
        if value is None:
            continue
        checks.append(Check(metric=metric, op=better, target=value, baseline=value))
        worse: Comparator = ">=" if better == "<=" else "<="
        harm.append(Check(metric=metric, op=worse, target=value * (1.1 if better == "<=" else 0.9), baseline=value))
    within = _dur(MAX_HORIZON_S)
    summary = f"rows not in the index {_num(unindexed)} -> {_num(goal)} or less, search no worse, within {within}"
    # Only a first build is reversed by dropping it: search goes back to the exact search it was measured on.
    back = None if obs.index.indexed else Rollback(action="drop_index", args={}, why="drop the new index")
    return Expectation(
        checks=tuple(checks),
        horizon_s=MAX_HORIZON_S,
        summary=summary,
        subject="index",
        harm=tuple(harm),
        rollback=back,
    )


def expect_undo_dedup(obs: Observation, proposal: Proposal) -> Expectation:
    """The run's absorbed entities are live again (at least one, when the count is not known)."""
    before = float(obs.brain.live_entities)
    merges = max(1, int(proposal.args.get("merges", 0)))
    check = Check(metric="brain.live_entities", op=">=", target=before + merges, baseline=before)
    summary = f"live entities {_num(before)} -> {_num(before + merges)} or more within {_dur(MIN_HORIZON_S)}"
    return Expectation(checks=(check,), horizon_s=MIN_HORIZON_S, summary=summary, subject="dedup:undo")


def expect_drop_index(obs: Observation, proposal: Proposal) -> Expectation:
    """No vector index on the records afterwards, and search exact again (recall@10 back to 1 where measured)."""
    checks = [Check(metric="index.indexed", op="<=", target=0.0, baseline=float(obs.index.indexed))]
    if obs.index.recall_at_10 is not None:
        checks.append(Check(metric="index.recall_at_10", op=">=", target=EXACT_RECALL, baseline=obs.index.recall_at_10))
    summary = f"records searched exactly (no vector index, recall@10 {EXACT_RECALL}) within {_dur(WORKER_HORIZON_S)}"
    return Expectation(checks=tuple(checks), horizon_s=WORKER_HORIZON_S, summary=summary, subject="index")
