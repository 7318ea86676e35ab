"""Read-only tools. The model may call these freely; each returns JSON-able data from the tick's snapshot.

Outside text in a result (host errors from remote stderr, earlier decisions with their rationales and outcomes)
is fenced with the call's delimiter (ToolContext.fenced, core/fence.py); entity names (the dedup plan's sample)
stay out. A str result is shown to the model as it is, a structure as compact JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from langchain_core.tools import InjectedToolArg, tool

from tools.context import ToolContext

# Docstrings are the model's tool descriptions; "Args:" sections become parameter descriptions.
read_tool = tool(parse_docstring=True, error_on_invalid_docstring=False)
Ctx = Annotated[ToolContext, InjectedToolArg]


def decision_view(row: Mapping[str, Any], now: float) -> dict[str, Any]:
    """One logged decision, compact: how long ago, action, arguments, verdict, outcome, rationale. It holds
    outside text (rationales, outcome details, a rejected call verbatim): callers fence the whole list."""
    out: dict[str, Any] = {}
    if isinstance(row.get("time"), int | float):
        out["age_s"] = round(max(0.0, now - row["time"]))
    out |= {k: row[k] for k in ("action", "args", "verdict") if row.get(k) not in (None, {}, "")}
    outcome = row.get("outcome")
    if isinstance(outcome, Mapping):
        detail = outcome.get("detail")
        out["outcome"] = f"{outcome.get('status')}: {detail}" if detail else outcome.get("status")
    if row.get("rationale"):
        out["rationale"] = row["rationale"]
    return out


def fenced_json(data: Any, fenced: Callable[[object], str]) -> str:
    return fenced(json.dumps(data, separators=(",", ":"), default=str))


def host_view(h: Any, fenced: Callable[[object], str]) -> dict[str, Any]:
    data: dict[str, Any] = h.model_dump(mode="json")
    if h.error:
        data["error"] = fenced(h.error)
    return data


@read_tool
def get_fleet_overview(ctx: Ctx) -> dict[str, Any]:
    """Hosts up/down, running workers per kind, backlog per stage, budget, pending approvals."""
    obs = ctx.observation
    kinds = sorted({w.kind for w in obs.workers})
    return {
        "hosts": {h.host: "up" if h.reachable else f"DOWN: {ctx.fenced(h.error or 'unreachable')}" for h in obs.hosts},
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
    """CPU, memory, disk, load, GPUs and reachability per host."""
    return [host_view(h, ctx.fenced) for h in ctx.observation.hosts if host is None or h.host == host]


@read_tool
def get_workers(ctx: Ctx, kind: str | None = None, host: str | None = None) -> list[dict[str, Any]]:
    """Worker processes: state, restarts, host, CPU, memory."""
    return [
        w.model_dump(mode="json")
        for w in ctx.observation.workers
        if (kind is None or w.kind == kind) and (host is None or w.host == host)
    ]


@read_tool
def get_brain_stats(ctx: Ctx) -> dict[str, Any]:
    """Brain counts, pending per stage, duplicates, dedup_plan, community age, wisdom coverage."""
    brain = ctx.observation.brain
    data: dict[str, Any] = brain.model_dump(mode="json", exclude={"dedup_plan", "error"})
    if brain.error:
        data["error"] = ctx.fenced(brain.error)
    if brain.dedup_plan is not None:  # its sample (entity names: record text) is for human approvers only
        data["dedup_plan"] = brain.dedup_plan.model_dump(mode="json", exclude={"sample"})
    return data


@read_tool
def get_processing_rates(ctx: Ctx) -> dict[str, Any]:
    """Net drain per stage (items/min; negative: growing) beside the backlog."""
    obs = ctx.observation
    return {
        stage: {"pending": obs.brain.pending.get(stage, 0), "rate_per_min": obs.rates.get(stage, 0.0)}
        for stage in sorted(set(obs.brain.pending) | set(obs.rates))
    }


@read_tool
def get_budget(ctx: Ctx) -> dict[str, Any]:
    """Token budget: used, reserved, remaining, pace, cost today, per tier, routing."""
    budget = ctx.observation.budget
    return budget.model_dump(mode="json") | {"remaining_tokens": budget.remaining_tokens}


@read_tool
def get_recent_decisions(ctx: Ctx, limit: int = 10, action: str | None = None) -> str:
    """The agent's latest decisions, newest last.

    Args:
        limit: at most 50.
    """
    rows = list(ctx.recent_decisions(min(max(limit, 1), 50) * (3 if action else 1)))
    if action:
        rows = [r for r in rows if r.get("action") == action]
    return fenced_json([decision_view(r, ctx.observation.time) for r in rows[-limit:]], ctx.fenced)


@read_tool
def get_policy_limits(ctx: Ctx) -> dict[str, Any]:
    """Limits in force: workers, hosts, scaling, routing (allowed tiers, max_share), and per action its risk,
    cooldown and what needs human approval."""
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
