"""The cost-per-result part of `brainops budget` (agent/cli/state.py): today and this month, from the brain, the
ledger and the policy's host costs.

The figures are computed now (agent/service/cost_report.py), the way each tick computes them for STATUS.json
and /metrics; nothing is recorded. Before the agent's first tick of the day there is no window to measure.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.domain import CostStats
    from core.settings import Settings


def cost_per_result(settings: Settings) -> CostStats:
    """Today's and the month's figures, computed now; nothing is recorded."""
    from agent.service.cost_report import cost_stats, light_brain_stats
    from policies.live import live_policy

    policy = live_policy(settings).current()
    host_costs = {h.name: policy.host_limits(h.name).cost_per_hour for h in settings.hosts}
    return cost_stats(settings, light_brain_stats(settings.brain_path), host_costs, time.time(), record=False)


def cost_json(stats: CostStats) -> dict[str, Any]:
    from agent.service.cost_report import window_document

    return {
        "produced_total": stats.totals,
        "absent_tables": list(stats.absent_tables),
        "day": window_document(stats.day),
        "month": window_document(stats.month),
        "error": stats.error,
    }


def _money(value: float | None) -> str:
    return "n/a (nothing produced)" if value is None else f"${value:,.4f}"


def cost_lines(stats: CostStats) -> list[str]:
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
