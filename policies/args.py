"""Argument checks for proposed actions. Reasons go back to the model verbatim, so they say what is wrong
and what would be valid."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.actions import ACTION_ARGS
from core.actions import action as spec
from core.domain import Observation, is_plan_hash
from core.kinds import EMBED_TABLES, SCALABLE_KINDS
from policies.model import Policy


@dataclass(frozen=True)
class Finding:
    rule_id: str
    reason: str


@dataclass(frozen=True)
class ArgContext:
    policy: Policy
    obs: Observation
    known_hosts: Collection[str]
    known_tiers: Collection[str] = ()
    tier_ranks: Mapping[str, str] = field(default_factory=dict)


Check = Callable[[dict[str, Any], ArgContext], list[Finding]]


def check_args(action: str, args: dict[str, Any], ctx: ArgContext) -> list[Finding]:
    """Every problem with the arguments at once, so the model can fix them in one retry."""
    findings = _shape(action, args)
    present = {k: v for k, v in args.items() if k in ACTION_ARGS[action]}
    return findings + CHECKS.get(action, _no_check)(present, ctx)


def _shape(action: str, args: dict[str, Any]) -> list[Finding]:
    expected = ACTION_ARGS[action]
    out: list[Finding] = []
    for extra in sorted(set(args) - set(expected)):
        out.append(Finding("args.unexpected", f"{action} takes no argument {extra!r}; it takes {_list(expected)}"))
    required = set(expected) - spec(action).optional_args
    for missing in sorted(required - set(args)):
        out.append(Finding("args.missing", f"{action} needs argument {missing!r}"))
    return out


def _no_check(args: dict[str, Any], ctx: ArgContext) -> list[Finding]:
    return []


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _list(items: Collection[str]) -> str:
    return ", ".join(sorted(items)) or "(none)"


def _type_error(name: str, want: str, value: object) -> Finding:
    return Finding("args.type", f"{name} must be {want}, got {value!r}")


def _check_host(args: dict[str, Any], ctx: ArgContext) -> list[Finding]:
    if "host" not in args:
        return []
    host = args["host"]
    if not isinstance(host, str):
        return [_type_error("host", "a host name", host)]
    if host not in ctx.known_hosts:
        return [Finding("args.unknown_host", f"unknown host {host!r}; known hosts: {_list(ctx.known_hosts)}")]
    return []


def _check_count(name: str, value: object, minimum: int) -> list[Finding]:
    if not _is_int(value):
        return [_type_error(name, "an integer", value)]
    if minimum == 0 and value < 0:  # type: ignore[operator]
        return [Finding("args.negative_count", f"{name} must be >= 0, got {value}")]
    if value < minimum:  # type: ignore[operator]
        return [Finding(f"args.{name}_range", f"{name} must be >= {minimum}, got {value}")]
    return []


def _scale_workers(args: dict[str, Any], ctx: ArgContext) -> list[Finding]:
    out = _check_host(args, ctx)
    kind = args.get("kind")
    if "kind" in args and kind not in SCALABLE_KINDS:
        reason = f"worker kind {kind!r} cannot be scaled; scalable kinds: {_list(SCALABLE_KINDS)}"
        out.append(Finding("args.unknown_kind", reason))
    if "count" in args:
        out += _check_count("count", args["count"], 0)
    return out


def _start_embedding(args: dict[str, Any], ctx: ArgContext) -> list[Finding]:
    out = _check_host(args, ctx)
    if "shards" in args:
        out += _check_count("shards", args["shards"], 1)
    if "table" in args and args["table"] not in EMBED_TABLES:
        out.append(Finding("args.unknown_table", f"table must be one of {_list(EMBED_TABLES)}, got {args['table']!r}"))
    return out


def _run_dedup(args: dict[str, Any], ctx: ArgContext) -> list[Finding]:
    out: list[Finding] = []
    if "dry_run" in args and not isinstance(args["dry_run"], bool):
        out.append(_type_error("dry_run", "true or false", args["dry_run"]))
    if "expected_merges" in args:
        out += _check_count("expected_merges", args["expected_merges"], 0)
    plan = args.get("plan")
    if plan is None:
        return out
    if not is_plan_hash(plan):
        want = "the 64-hex hash of the brain stats' dedup_plan, or absent"
        return [*out, Finding("args.plan", f"plan must be {want}, got {plan!r}")]
    if args.get("dry_run") is True:
        reason = "a dry run makes a new plan and takes none: leave plan out, or set dry_run false to run it"
        out.append(Finding("args.plan_with_dry_run", reason))
    current = ctx.obs.brain.dedup_plan
    merges = args.get("expected_merges", 0)
    if current is not None and plan == current.hash and _is_int(merges) and merges < current.absorbed:
        reason = (
            f"expected_merges {merges} is below the {current.absorbed} merges of plan {plan[:12]}: the job "
            f"would stop; pass expected_merges={current.absorbed}"
        )
        out.append(Finding("args.expected_merges_below_plan", reason))
    return out


def _reason_text(args: dict[str, Any], ctx: ArgContext) -> list[Finding]:
    if "reason" in args and not isinstance(args["reason"], str):
        return [_type_error("reason", "a string", args["reason"])]
    return []


def _set_model_routing(args: dict[str, Any], ctx: ArgContext) -> list[Finding]:
    weights = args.get("weights")
    if "weights" not in args:
        return []
    if not isinstance(weights, dict) or not weights:
        return [_type_error("weights", "a non-empty mapping {tier: share}", weights)]
    routing = ctx.policy.routing
    allowed = routing.allowed_tiers or tuple(sorted(ctx.known_tiers))  # empty in the policy: the configured tiers
    out: list[Finding] = []
    for tier, share in weights.items():
        if tier not in allowed:
            reason = f"tier {tier!r} is not allowed; allowed tiers: {_list(allowed) or 'none configured'}"
            out.append(Finding("routing.tier_not_allowed", reason))
        if not _is_number(share) or not 0.0 <= share <= 1.0:
            out.append(Finding("args.weight_range", f"weight of {tier!r} must be a number in [0, 1], got {share!r}"))
    if out:
        return out
    total = sum(weights.values())
    if abs(total - 1.0) > routing.sum_tolerance:
        out.append(Finding("args.weights_sum", f"weights must sum to 1, they sum to {total:.3f}"))
    shares = with_purpose_shares(weights, ctx.tier_ranks)
    for name, cap in routing.max_share.items():
        if shares.get(name, 0.0) > cap + 1e-9:
            reason = f"share of {name!r} is {shares[name]:.2f}, the policy allows at most {cap:.2f}"
            out.append(Finding(f"routing.max_share.{name}", reason))
    return out


def with_purpose_shares(weights: Mapping[str, Any], ranks: Mapping[str, str]) -> dict[str, Any]:
    """The weights plus, for each purpose that is not itself a tier's name, the summed weight of its tiers."""
    out: dict[str, Any] = dict(weights)
    for purpose in set(ranks.values()) - set(weights):
        out[purpose] = sum(w for t, w in weights.items() if ranks.get(t) == purpose and _is_number(w))
    return out


def _worker_ref(args: dict[str, Any], ctx: ArgContext) -> list[Finding]:
    if "worker_id" not in args:
        return []
    worker_id = args["worker_id"]
    if not isinstance(worker_id, str):
        return [_type_error("worker_id", "a worker id string", worker_id)]
    if not any(w.id == worker_id for w in ctx.obs.workers):
        known = [w.id for w in ctx.obs.workers]
        return [Finding("args.unknown_worker", f"no worker with id {worker_id!r}; known workers: {_list(known)}")]
    return []


def _restart_worker(args: dict[str, Any], ctx: ArgContext) -> list[Finding]:
    found = _worker_ref(args, ctx)
    count = args.get("restarts_last_hour", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        found.append(_type_error("restarts_last_hour", "a count >= 0", count))
    return found


def _min_age(name: str, setting: str) -> Check:
    """Disk-pressure actions: never below the policy's minimum age (the model may ask for older, not younger)."""

    def check(args: dict[str, Any], ctx: ArgContext) -> list[Finding]:
        if name not in args:
            return []  # the shape check says it is missing
        value = args[name]
        if not _is_number(value):
            return [_type_error(name, "a number of days", value)]
        floor = float(getattr(ctx.policy.storage, setting))
        if float(value) < floor:
            why = f"{name} {value:g} is under the policy's storage.{setting} ({floor:g}); use {floor:g} or more"
            return [Finding("storage.min_age", why)]
        return []

    return check


def _set_reasoning_tier(args: dict[str, Any], ctx: ArgContext) -> list[Finding]:
    tier = args.get("tier")
    if "tier" not in args:
        return []
    if not isinstance(tier, str) or not tier:
        return [_type_error("tier", "a tier name", tier)]
    allowed = ctx.policy.routing.allowed_tiers or tuple(sorted(ctx.known_tiers))
    if tier not in allowed:
        reason = f"tier {tier!r} is not allowed; allowed tiers: {_list(allowed) or 'none configured'}"
        return [Finding("routing.tier_not_allowed", reason)]
    return []


CHECKS: dict[str, Check] = {
    "scale_workers": _scale_workers,
    "start_embedding": _start_embedding,
    "run_dedup": _run_dedup,
    "run_recluster": _reason_text,
    "set_model_routing": _set_model_routing,
    "restart_worker": _restart_worker,
    "stop_worker": _worker_ref,
    "noop": _reason_text,
    "prune_versions": _min_age("older_than_days", "min_version_age_days"),
    "archive_decisions": _min_age("older_than_days", "archive_decisions_after_days"),
    "set_reasoning_tier": _set_reasoning_tier,
    "run_query_analysis": _reason_text,
}
