"""Writes grafana/brainops-dashboard.json from the panel list below (run after changing a panel).

`python grafana/build_dashboard.py` rewrites the JSON; `--check` exits 1 if the file is out of date.
Every expression uses only metric names from agent/service/metrics.py (tests/test_dashboard.py checks that against
a real tick's /metrics and validates each expression with promtool).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "brainops-dashboard.json"
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
H = '{host=~"$host"}'

# (title, panel type, unit, [(expr, legend)], width)
Panel = tuple[str, str, str, list[tuple[str, str]], int]

ROWS: list[tuple[str, list[Panel]]] = [
    (
        "Queue depth",
        [
            ("Queue depth per stage", "timeseries", "short", [("brainops_queue_depth", "{{stage}}")], 8),
            (
                "Processing rate (items/min)",
                "timeseries",
                "short",
                [("brainops_processing_rate_per_minute", "{{stage}}")],
                8,
            ),
            (
                "Minutes to drain at current rate",
                "stat",
                "m",
                [
                    (
                        "brainops_queue_depth / on(stage) clamp_min(brainops_processing_rate_per_minute, 0.001)",
                        "{{stage}}",
                    )
                ],
                8,
            ),
            ("Brain size", "stat", "short", [("brainops_brain_items", "{{table}}")], 16),
            ("Duplicate estimate", "gauge", "percentunit", [("brainops_brain_duplicate_estimate", "duplicates")], 8),
            (
                "Reasoning chains and runbooks",
                "timeseries",
                "short",
                [("brainops_reasoning_outputs", "{{kind}}"), ('brainops_queue_depth{stage="reasoning"}', "waiting")],
                8,
            ),
            (
                "Query patterns",
                "timeseries",
                "short",
                [
                    ("brainops_queries_unanalyzed", "unanalyzed queries"),
                    ("brainops_query_topics_without_coverage", "topics without coverage"),
                ],
                8,
            ),
        ],
    ),
    (
        "Worker status and efficiency",
        [
            (
                "Workers by kind and state",
                "timeseries",
                "short",
                [("sum by (kind, state) (brainops_workers" + H + ")", "{{kind}} {{state}}")],
                8,
            ),
            (
                "Desired vs running",
                "timeseries",
                "short",
                [
                    ("sum by (kind) (brainops_workers_desired" + H + ")", "{{kind}} desired"),
                    ('sum by (kind) (brainops_workers{state="running", host=~"$host"})', "{{kind}} running"),
                ],
                8,
            ),
            (
                "Crashed / fatal workers",
                "stat",
                "short",
                [
                    ('sum(brainops_workers{state="fatal"}) or vector(0)', "fatal"),
                    ('sum(brainops_workers{state=~"crashed|backoff"}) or vector(0)', "crashed / backing off"),
                ],
                8,
            ),
            (
                "Items per worker-minute",
                "timeseries",
                "short",
                [("brainops_stage_items_per_worker_minute", "{{stage}}")],
                8,
            ),
            (
                "Worker CPU % (sum per kind@host)",
                "timeseries",
                "percent",
                [("brainops_worker_cpu_percent" + H, "{{kind}}@{{host}}")],
                8,
            ),
            (
                "Worker memory and restarts",
                "timeseries",
                "bytes",
                [
                    ("brainops_worker_rss_bytes" + H, "{{kind}}@{{host}} rss"),
                    ("brainops_worker_restarts" + H, "{{kind}}@{{host}} restarts"),
                ],
                8,
            ),
        ],
    ),
    (
        "API usage and costs",
        [
            (
                "Tokens in window by tier",
                "timeseries",
                "short",
                [
                    ("sum by (tier, direction) (brainops_llm_tokens)", "{{tier}} {{direction}}"),
                    ("brainops_budget_used_tokens", "all tiers"),
                ],
                8,
            ),
            ("Cost in window by tier ($)", "timeseries", "currencyUSD", [("brainops_llm_cost_dollars", "{{tier}}")], 8),
            (
                "Budget remaining",
                "gauge",
                "percentunit",
                [("brainops_budget_remaining_tokens / brainops_budget_window_tokens", "remaining")],
                4,
            ),
            ("Budget pace", "stat", "short", [("brainops_budget_pace", "pace")], 4),
            (
                "Cost today vs daily cap ($)",
                "timeseries",
                "currencyUSD",
                [
                    ("brainops_budget_cost_today_dollars", "today"),
                    ("brainops_budget_daily_cost_cap_dollars", "cap"),
                ],
                8,
            ),
            ("Routing weights", "timeseries", "percentunit", [("brainops_llm_routing_weight", "{{tier}}")], 8),
            ("Reserved tokens (in flight)", "timeseries", "short", [("brainops_llm_reserved_tokens", "{{tier}}")], 8),
            (
                "Reasoning yield by tier (24 h window)",
                "timeseries",
                "percentunit",
                [
                    ("brainops_reasoning_yield_ratio", "{{tier}}"),
                    ("brainops_reasoning_tier_pinned", "pinned: {{tier}}"),
                ],
                8,
            ),
            (
                "Reasoning answers and valid per dollar by tier",
                "timeseries",
                "short",
                [
                    ("brainops_reasoning_attempts", "{{tier}} answers"),
                    ("brainops_reasoning_valid_per_dollar", "{{tier}} valid/$"),
                ],
                8,
            ),
            (
                "Decisions per hour by action and verdict",
                "timeseries",
                "short",
                [("sum by (action, verdict) (increase(brainops_decisions_total[1h]))", "{{action}} {{verdict}}")],
                12,
            ),
            (
                "Outcomes per hour",
                "timeseries",
                "short",
                [("sum by (status) (increase(brainops_decision_outcomes_total[1h]))", "{{status}}")],
                6,
            ),
            ("Approvals pending", "stat", "short", [("brainops_approvals_pending", "pending")], 6),
            (
                "Policy file fails to load (last good in force)",
                "stat",
                "short",
                [("brainops_policy_stale", "stale")],
                6,
            ),
            (
                "Decision chain head (record it: decisions verify --expect-head)",
                "stat",
                "short",
                [
                    ("brainops_decision_chain_seq", "seq"),
                    ("max by (seq, hash) (brainops_decision_chain_head)", "{{seq}}:{{hash}}"),
                ],
                6,
            ),
        ],
    ),
    (
        "System health",
        [
            ("Host reachable", "stat", "bool_yes_no", [("brainops_host_up" + H, "{{host}}")], 6),
            ("Host CPU %", "timeseries", "percent", [("brainops_host_cpu_percent" + H, "{{host}}")], 6),
            ("Host memory %", "timeseries", "percent", [("brainops_host_memory_percent" + H, "{{host}}")], 6),
            (
                "Host disk % and load",
                "timeseries",
                "short",
                [
                    ("brainops_host_disk_percent" + H, "{{host}} disk %"),
                    ("brainops_host_load1" + H, "{{host}} load1"),
                ],
                6,
            ),
            (
                "GPU utilisation %",
                "timeseries",
                "percent",
                [("brainops_host_gpu_utilization_percent" + H, "{{host}} gpu{{gpu}}")],
                8,
            ),
            (
                "GPU memory %",
                "timeseries",
                "percentunit",
                [
                    (
                        "brainops_host_gpu_memory_used_bytes" + H + " / brainops_host_gpu_memory_total_bytes" + H,
                        "{{host}} gpu{{gpu}}",
                    )
                ],
                8,
            ),
            (
                "Host snapshot time",
                "timeseries",
                "s",
                [("brainops_host_observe_seconds" + H, "{{host}}")],
                8,
            ),
            (
                "Tick duration",
                "timeseries",
                "s",
                [
                    ("histogram_quantile(0.5, sum by (le) (rate(brainops_tick_duration_seconds_bucket[15m])))", "p50"),
                    ("histogram_quantile(0.95, sum by (le) (rate(brainops_tick_duration_seconds_bucket[15m])))", "p95"),
                ],
                8,
            ),
            (
                "Ray nodes and unplaced actors",
                "timeseries",
                "short",
                [
                    ("brainops_ray_nodes" + H, "{{host}} nodes"),
                    ("brainops_ray_pending_actors" + H, "{{host}} actors waiting for a node"),
                ],
                8,
            ),
            (
                "Ray actors per kind and state",
                "timeseries",
                "short",
                [("sum by (kind, state) (brainops_ray_actors" + H + ")", "{{kind}} {{state}}")],
                8,
            ),
            (
                "Ticks and failures per hour",
                "timeseries",
                "short",
                [
                    ("sum by (planner) (increase(brainops_ticks_total[1h]))", "{{planner}} ticks"),
                    ("increase(brainops_tick_failures_total[1h])", "failures"),
                ],
                8,
            ),
            (
                "Seconds since last tick",
                "stat",
                "s",
                [("time() - brainops_last_tick_timestamp_seconds", "age")],
                8,
            ),
        ],
    ),
    (
        "Disk pressure",
        [
            ("Brain host disk use", "gauge", "percent", [("brainops_storage_disk_percent", "{{host}}")], 8),
            (
                "Reclaimable per target",
                "timeseries",
                "bytes",
                [("brainops_storage_reclaimable_bytes", "{{target}}")],
                8,
            ),
            (
                "Reclaim actions done per day",
                "timeseries",
                "short",
                [
                    (
                        "sum by (action) (increase(brainops_decision_outcomes_total"
                        '{action=~"prune_versions|rotate_logs|archive_decisions", status="done"}[1d]))',
                        "{{action}}",
                    )
                ],
                8,
            ),
        ],
    ),
    (
        "Cost per result",
        [
            (
                "Cost per 1,000 records (month)",
                "stat",
                "currencyUSD",
                [('brainops_cost_per_result_dollars{window="month", per="1k_records"}', "per 1k records")],
                8,
            ),
            (
                "Cost per wisdom entry (month)",
                "stat",
                "currencyUSD",
                [('brainops_cost_per_result_dollars{window="month", per="wisdom"}', "per wisdom entry")],
                8,
            ),
            (
                "Cost per reasoning chain (month)",
                "stat",
                "currencyUSD",
                [('brainops_cost_per_result_dollars{window="month", per="chain"}', "per chain")],
                8,
            ),
            ("Cost today and this month", "stat", "currencyUSD", [("brainops_cost_total_dollars", "{{window}}")], 8),
            (
                "LLM and compute dollars this month",
                "timeseries",
                "currencyUSD",
                [
                    ('brainops_cost_llm_dollars{window="month"}', "LLM {{tier}}"),
                    ('brainops_cost_compute_dollars{window="month"}', "compute"),
                ],
                8,
            ),
            ("Produced this month", "stat", "short", [('brainops_produced_items{window="month"}', "{{item}}")], 8),
        ],
    ),
    (
        "Vector search (records)",
        [
            (
                "Search latency (probe)",
                "timeseries",
                "s",
                [("brainops_index_search_latency_seconds", "p{{quantile}}")],
                8,
            ),
            ("Recall@10 vs exact search", "gauge", "percentunit", [("brainops_index_recall_at_10", "recall@10")], 8),
            (
                "Fragments and rows not indexed",
                "timeseries",
                "short",
                [
                    ("brainops_index_fragments", "{{size}} fragments"),
                    ("brainops_index_unindexed_rows", "unindexed rows"),
                ],
                8,
            ),
            (
                "Index, versions, probe time",
                "stat",
                "short",
                [
                    ("brainops_index_indexed", "ANN index (1 = yes)"),
                    ("brainops_index_versions", "table versions"),
                    ("brainops_index_probe_seconds", "probe seconds"),
                ],
                24,
            ),
        ],
    ),
]


def _panel(panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    title, kind, unit, targets, width = panel
    out: dict[str, Any] = {
        "id": panel_id,
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }
    if "fatal" in title.lower() or "reachable" in title.lower():
        red_when = 1 if "fatal" in title.lower() else 0
        steps = [{"color": "green", "value": None}, {"color": "red", "value": red_when}]
        if red_when == 0:
            steps = [{"color": "red", "value": None}, {"color": "green", "value": 1}]
        out["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": steps}
    return out


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, panel_id = 0, 1
    for row_title, row_panels in ROWS:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y, x = panel_id + 1, y + 1, 0
        for panel in row_panels:
            if x + panel[4] > 24:
                x, y = 0, y + 8
            panels.append(_panel(panel_id, panel, x, y))
            panel_id, x = panel_id + 1, x + panel[4]
        y += 8
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus"}],
        "title": "brainops",
        "uid": "brainops-main",
        "description": "brainops agent: queues, workers, LLM usage and costs, fleet health (agent/service/metrics.py).",
        "tags": ["brainops"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "host",
                    "label": "host",
                    "type": "query",
                    "datasource": DS,
                    "query": {"query": "label_values(brainops_host_up, host)", "refId": "host"},
                    "definition": "label_values(brainops_host_up, host)",
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                }
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.exists() and OUT.read_text() == text else 1)
    OUT.write_text(text)
    print(f"wrote {OUT}")
