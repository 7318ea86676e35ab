"""The Grafana dashboard uses only metrics agent/service/metrics.py exports, in PromQL that Prometheus accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.agent_rig import NO_CPU_CEILING, REPO, kill_workers, make_settings, write_policy
from support.prometheus import prometheus_unavailable_reason

from agent.service.agent import Agent
from agent.service.metrics import METRIC_NAMES, BrainopsMetrics, tick_callbacks
from agent.service.scheduler import AgentLoop
from agent.state.production import ProductionSnapshots
from core.domain import PRODUCED, GpuInfo, HostMetrics, Observation
from llm.ledger import TokenLedger

DASHBOARD = REPO / "grafana" / "brainops-dashboard.json"
GPU_METRICS = {n for n in METRIC_NAMES if "_gpu_" in n}  # need a GPU host: this machine has none
RAY_METRICS = {n for n in METRIC_NAMES if "_ray_" in n}  # need a [ray] host: tests/test_ray_fleet.py checks them
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        query = var["query"]["query"]
        inner = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query)  # Grafana's helper, not PromQL
        exprs.append(inner.group(1) if inner else query)
    return exprs


def promql(expr: str) -> str:
    """Grafana variables substituted, so the expression is plain PromQL."""
    return expr.replace("$host", ".*").replace("$__rate_interval", "5m")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, labels or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("(") or match.group() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def test_metric_name_lexer() -> None:
    expr = 'histogram_quantile(0.95, sum by (le) (rate(foo_bucket{host=~"a|b"}[15m]))) / on(stage) bar or vector(0)'
    assert metric_names(expr) == {"foo_bucket", "bar"}
    assert metric_names("time() - last_ts") == {"last_ts"}


def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    if not shutil.which("promtool"):
        reason = prometheus_unavailable_reason()  # installs the Debian package (promtool comes with it)
        if reason or not shutil.which("promtool"):
            pytest.skip(reason or "promtool missing")
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"check:{i}", "expr": promql(e)} for i, e in enumerate(dashboard_exprs())],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _exported_after_a_real_tick(tmp: Path) -> set[str]:
    """Sample names on /metrics after one real tick with LLM spend in the ledger and a daily cost cap."""
    from brain.seed import seed_brain

    brain = tmp / "brain"
    seed_brain(str(brain), "small", seed=2, show_progress=False)
    # the small brain's 2,000 records are under the index probe's default minimum: lowered, its series are real too
    policy = write_policy(tmp / "policy.yaml", **NO_CPU_CEILING, index={"min_rows": 1000})
    settings = make_settings(tmp, str(brain), policy)
    settings.budget.daily_cost_cap = 5.0
    ledger = TokenLedger.from_settings(settings)
    reservation = ledger.reserve("routine", 500)
    ledger.settle(reservation, 120, 30, 0.002)  # type: ignore[arg-type]
    ledger.set_routing({"routine": 0.6, "escalation": 0.4})
    # the day's first snapshot, from before this brain was filled: the tick's window has produced something
    ProductionSnapshots(settings.state_db).record(time.time() - 3600, dict.fromkeys(PRODUCED, 0))
    ledger.set_task_tier("reasoning", "routine")
    _reasoning_attempt(str(brain))
    agent = Agent(settings)
    metrics = BrainopsMetrics()
    on_report, on_error = tick_callbacks(metrics, agent)
    try:
        loop = AgentLoop(agent, on_report=on_report, on_error=on_error)
        loop.tick_job()
        assert loop.ticks == 1
    finally:
        kill_workers(settings.run_dir)
    return {s.name for fam in text_string_to_metric_families(metrics.exposition().decode()) for s in fam.samples}


def _reasoning_attempt(brain: str) -> None:
    """One valid, paid reasoning answer in the brain, so the per-tier reasoning series exist after the tick."""
    import time

    from brain.store import BrainStore

    row = {"id": "rsa-1", "wisdom_id": "wis-00000", "community_id": "com-00000", "tier": "routine"}
    BrainStore(brain).add(
        "reasoning_attempts", [{**row, "valid": True, "reason": "", "cost": 0.01, "created_at": time.time()}]
    )


def test_dashboard_uses_only_metrics_a_real_tick_exports(tmp_path: Path) -> None:
    used = set().union(*(metric_names(promql(e)) for e in dashboard_exprs()))
    assert used, "no expressions found"
    exported = _exported_after_a_real_tick(tmp_path)
    missing = sorted(n for n in used - exported if n not in GPU_METRICS | RAY_METRICS)
    assert not missing, f"dashboard uses metrics the agent does not export: {missing}"

    gpu = BrainopsMetrics()
    host = HostMetrics(
        host="brain", gpus=(GpuInfo(index=0, name="RTX", util_percent=5, mem_used_mb=1, mem_total_mb=8),)
    )
    gpu.update_state(Observation(time=1.0, hosts=(host,)))
    gpu_exported = {s.name for fam in text_string_to_metric_families(gpu.exposition().decode()) for s in fam.samples}
    assert used & GPU_METRICS <= gpu_exported


def test_every_exported_metric_has_a_panel() -> None:
    used = set().union(*(metric_names(promql(e)) for e in dashboard_exprs()))
    base = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in used}
    unused = sorted(n for n in METRIC_NAMES if n not in base)
    assert not unused, f"metrics without a dashboard panel: {unused}"


def test_dashboard_file_is_generated_from_the_builder() -> None:
    result = subprocess.run([sys.executable, str(REPO / "grafana" / "build_dashboard.py"), "--check"])
    assert result.returncode == 0, "grafana/brainops-dashboard.json is stale: run python grafana/build_dashboard.py"
    board = json.loads(DASHBOARD.read_text())
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == [
        "Queue depth",
        "Worker status and efficiency",
        "API usage and costs",
        "System health",
        "Disk pressure",
        "Cost per result",
        "Vector search (records)",
    ]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in board["panels"])
