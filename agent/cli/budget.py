"""`brainops budget`: cost per result, today and this month, from the brain, the ledger and the policy's host costs.

The figures are computed now (agent/service/cost_report.py), the way each tick computes them for STATUS.json
and /metrics; nothing is recorded. Before the agent's first tick of the day there is no window to measure.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from core.domain import CostStats, CostWindow


def register(app: typer.Typer) -> None:
    app.command("budget", help="Cost per result: per 1,000 records, wisdom entry and chain, per day and month.")(
        budget
    )


def budget(
    config: str = typer.Option(None, "--config", "-c", help="brainops.toml (default: ./brainops.toml)"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object: the STATUS.json `cost` part and totals."),
) -> None:
    """What the pipeline produced and what it cost (LLM dollars by tier from the ledger, compute from the
    policy's hosts.<h>.cost_per_hour), since the first tick of the UTC day and of the month."""
    from agent.service.cost_report import cost_stats, light_brain_stats
    from core.settings import load_settings
    from policies.live import live_policy

    settings = load_settings(config, existing_state=True)
    policy = live_policy(settings).current()
    now = time.time()
    brain = light_brain_stats(settings.brain_path)
    host_costs = {h.name: policy.host_limits(h.name).cost_per_hour for h in settings.hosts}
    stats = cost_stats(settings, brain, host_costs, now, record=False)
    if as_json:
        typer.echo(json.dumps(_json(stats), sort_keys=True))
    else:
        for line in _lines(stats):
            typer.echo(line)
    if stats.error:
        raise typer.Exit(1)


def _json(stats: CostStats) -> dict[str, Any]:
    from agent.service.cost_report import per_result

    def window(w: CostWindow | None) -> dict[str, Any] | None:
        return None if w is None else {**w.model_dump(mode="json"), "total_cost": w.total_cost, **per_result(w)}

    return {
        "produced_total": stats.totals,
        "absent_tables": list(stats.absent_tables),
        "day": window(stats.day),
        "month": window(stats.month),
        "error": stats.error,
    }


def _money(value: float | None) -> str:
    return "n/a (nothing produced)" if value is None else f"${value:,.4f}"


def _lines(stats: CostStats) -> list[str]:
    from agent.service.cost_report import per_result

    if stats.error:
        return [f"cost per result unknown: {stats.error}"]
    out = []
    for name, w in (("today", stats.day), ("this month", stats.month)):
        if w is None:
            out.append(f"{name}: no production snapshot yet (the agent's first tick of the period records one)")
            continue
        since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(w.since))
        tiers = ", ".join(f"{t} ${c:,.4f}" for t, c in w.llm_cost_by_tier.items()) or "none"
        made = ", ".join(f"{k} {v:,}" for k, v in w.produced.items())
        per = per_result(w)
        out += [
            f"{name} (since {since}, {w.hours:.1f} h): ${w.total_cost:,.4f} = LLM ${w.llm_cost:,.4f} ({tiers})"
            f" + compute ${w.compute_cost:,.4f}",
            f"  produced: {made}",
            f"  per 1,000 records {_money(per['per_1k_records'])}, per wisdom entry {_money(per['per_wisdom'])},"
            f" per chain {_money(per['per_chain'])}",
        ]
    if stats.absent_tables:
        out.append(f"no {', '.join(stats.absent_tables)} table in the brain: counted as 0")
    return out
