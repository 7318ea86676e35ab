"""Read-only tools. The model may call these freely; each returns JSON-able data from the tick's snapshot."""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.tools import InjectedToolArg, tool

from tools.context import ToolContext

# Docstrings are the model's tool descriptions; "Args:" sections become parameter descriptions.
read_tool = tool(parse_docstring=True, error_on_invalid_docstring=False)
Ctx = Annotated[ToolContext, InjectedToolArg]


@read_tool
def get_fleet_overview(ctx: Ctx) -> dict[str, Any]:
    """One-screen summary of the whole fleet: hosts up/down, workers per kind, backlog per stage, budget.

    Call this first when you need orientation; call the narrower tools for details.
    """
    obs = ctx.observation
    kinds = sorted({w.kind for w in obs.workers})
    return {
        "hosts": {h.host: ("up" if h.reachable else f"DOWN: {h.error}") for h in obs.hosts},
        "workers_running": {k: obs.running(k) for k in kinds},
        "workers_unhealthy": [w.id for w in obs.workers if w.state in ("crashed", "backoff", "fatal")],
        "pending": dict(obs.brain.pending),
        "duplicate_estimate": obs.brain.duplicate_estimate,
        "budget_remaining_tokens": obs.budget.remaining_tokens,
        "budget_pace": obs.budget.pace,
        "pending_approvals": len(obs.pending_approvals),
    }


@read_tool
def get_host_metrics(ctx: Ctx, host: str | None = None) -> list[dict[str, Any]]:
    """CPU, memory, disk, load and GPU use per host, and whether the host is reachable.

    Use before placing or adding workers on a host, or when a host might be overloaded or down.

    Args:
        host: one host name; all hosts when omitted.
    """
    return [h.model_dump(mode="json") for h in ctx.observation.hosts if host is None or h.host == host]


@read_tool
def get_workers(ctx: Ctx, kind: str | None = None, host: str | None = None) -> list[dict[str, Any]]:
    """Worker processes with their state (running, draining, crashed, backoff, fatal), restarts and host.

    Use to see what is running before scaling, or to find crash-looping (fatal) workers.

    Args:
        kind: only this worker kind (extract, embed, wisdom, dedup, recluster).
        host: only workers on this host.
    """
    return [
        w.model_dump(mode="json")
        for w in ctx.observation.workers
        if (kind is None or w.kind == kind) and (host is None or w.host == host)
    ]


@read_tool
def get_brain_stats(ctx: Ctx) -> dict[str, Any]:
    """Brain store counts, pending work per stage, duplicate estimate, community age and wisdom coverage.

    Use to decide on dedup (duplicate estimate; dedup_plan: the last dry run's plan, whose hash and absorbed
    count a live run_dedup passes), recluster (changed relationships, community age) and embedding.
    """
    return ctx.observation.brain.model_dump(mode="json")


@read_tool
def get_processing_rates(ctx: Ctx) -> dict[str, Any]:
    """Recent net drain rate per stage in items per minute, beside the current backlog.

    Use to judge whether current workers keep up with a backlog before scaling up or down.
    """
    obs = ctx.observation
    return {
        stage: {"pending": obs.brain.pending.get(stage, 0), "rate_per_min": obs.rates.get(stage, 0.0)}
        for stage in sorted(set(obs.brain.pending) | set(obs.rates))
    }


@read_tool
def get_budget(ctx: Ctx) -> dict[str, Any]:
    """Token budget of the rolling window: used, reserved, remaining, pace, cost today, tier split and routing.

    Use before changing model-tier routing, or when the pace is high.
    """
    budget = ctx.observation.budget
    return budget.model_dump(mode="json") | {"remaining_tokens": budget.remaining_tokens}


@read_tool
def get_recent_decisions(ctx: Ctx, limit: int = 10, action: str | None = None) -> list[dict[str, Any]]:
    """The agent's most recent decisions (action, args, verdict, outcome), newest last.

    Use to avoid repeating an action that just ran, failed or was denied, and to see pending approvals' history.

    Args:
        limit: how many decisions, at most 50.
        action: only decisions of this action.
    """
    rows = list(ctx.recent_decisions(min(max(limit, 1), 50) * (3 if action else 1)))
    if action:
        rows = [r for r in rows if r.get("action") == action]
    return rows[-limit:]


@read_tool
def get_policy_limits(ctx: Ctx) -> dict[str, Any]:
    """Guardrail limits in force: per-kind min/max workers, per-host limits, approval thresholds, mode.

    Use before proposing a count or merge size, so the proposal stays within limits.
    """
    return dict(ctx.policy_summary)


READ_ONLY_TOOLS = (
    get_fleet_overview,
    get_host_metrics,
    get_workers,
    get_brain_stats,
    get_processing_rates,
    get_budget,
    get_recent_decisions,
    get_policy_limits,
)
