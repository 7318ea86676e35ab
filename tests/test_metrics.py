"""Prometheus metrics: fed by real ticks, served over real HTTP, scraped by a real Prometheus server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.agent_rig import NO_CPU_CEILING, REPO, copy_brain, kill_workers, make_settings, write_policy, write_toml
from support.prometheus import PrometheusServer, free_port, prometheus_unavailable_reason

from agent.service.agent import Agent
from agent.service.metrics import BrainopsMetrics, start_exporter, tick_callbacks, tier_usage
from agent.service.scheduler import AgentLoop
from core.domain import BrainStats, HostMetrics, Observation, WorkerInfo
from llm.ledger import TokenLedger


def samples(metrics: BrainopsMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} parsed back from the text exposition."""
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: BrainopsMetrics, name: str, /, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


@pytest.fixture(scope="module")
def small_brain(tmp_path_factory: pytest.TempPathFactory) -> str:
    from brain.seed import seed_brain

    path = tmp_path_factory.mktemp("seed") / "brain"
    seed_brain(str(path), "small", seed=5, show_progress=False)
    return str(path)


@pytest.fixture(scope="module")
def ticked(small_brain: str, tmp_path_factory: pytest.TempPathFactory):
    """One agent after one real tick (real workers started), with metrics fed through the loop callbacks."""
    tmp = tmp_path_factory.mktemp("ticked")
    policy = write_policy(tmp / "policy.yaml", **NO_CPU_CEILING)
    agent = Agent(make_settings(tmp, copy_brain(small_brain, tmp), policy))
    metrics = BrainopsMetrics()
    on_report, on_error = tick_callbacks(metrics, agent)
    loop = AgentLoop(agent, on_report=on_report, on_error=on_error)
    loop.tick_job()
    assert loop.ticks == 1
    yield agent, metrics
    kill_workers(agent.settings.run_dir)


def test_one_real_tick_fills_queue_host_decision_and_tick_metrics(ticked) -> None:
    agent, metrics = ticked
    obs = Observation.model_validate_json((agent.settings.home / "last_observation.json").read_text())
    assert obs.brain.pending, "the seeded brain has backlog"
    for stage, depth in obs.brain.pending.items():
        assert value(metrics, "brainops_queue_depth", stage=stage) == depth
    assert value(metrics, "brainops_brain_items", table="records") == obs.brain.records
    assert value(metrics, "brainops_host_up", host="local") == 1.0
    assert value(metrics, "brainops_host_cpu_percent", host="local") is not None
    decisions = list(agent.decisions.all())
    counted = sum(v for (name, _), v in samples(metrics).items() if name == "brainops_decisions_total")
    assert counted == len(decisions) > 0
    for record in decisions:
        assert (value(metrics, "brainops_decisions_total", action=record.action, verdict=record.verdict) or 0) >= 1
    assert value(metrics, "brainops_tick_duration_seconds_count") == 1.0
    assert value(metrics, "brainops_ticks_total", planner="rules") == 1.0
    assert value(metrics, "brainops_tick_failures_total") == 0.0
    assert value(metrics, "brainops_approvals_pending") == len(agent.approvals.pending(agent.clock()))
    assert value(metrics, "brainops_budget_window_tokens") == agent.settings.budget.window_tokens


def test_scaled_workers_show_desired_and_running_per_kind_and_host(ticked) -> None:
    agent, metrics = ticked
    desired = agent.fleet.dispatcher.desired()
    assert desired, "the backlog should have scaled some kind up"
    for key, count in desired.items():
        kind, _, host = key.partition("@")
        assert value(metrics, "brainops_workers_desired", kind=kind, host=host) == count
        assert value(metrics, "brainops_workers", kind=kind, host=host, state="fatal") == 0.0


def test_gauges_are_a_snapshot_vanished_workers_and_dead_hosts_drop_out() -> None:
    metrics = BrainopsMetrics()
    gpu_host = HostMetrics.model_validate(
        {
            "host": "brain",
            "cpu_percent": 50,
            "gpus": [{"index": 0, "name": "A4000", "util_percent": 80, "mem_used_mb": 1024, "mem_total_mb": 16384}],
        }
    )
    workers = (
        WorkerInfo(id="extract-brain-1", kind="extract", host="brain", state="running", cpu_percent=40, rss_mb=100),
        WorkerInfo(id="extract-brain-2", kind="extract", host="brain", state="fatal", restarts=3),
    )
    first = Observation(
        time=1.0,
        hosts=(gpu_host,),
        workers=workers,
        brain=BrainStats(pending={"extract": 900}),
        rates={"extract": 60.0},
        desired={"extract@brain": 2},
    )
    metrics.update_state(first)
    assert value(metrics, "brainops_workers", kind="extract", host="brain", state="running") == 1.0
    assert value(metrics, "brainops_workers", kind="extract", host="brain", state="fatal") == 1.0
    assert value(metrics, "brainops_worker_restarts", kind="extract", host="brain") == 3.0
    assert value(metrics, "brainops_worker_rss_bytes", kind="extract", host="brain") == 100 * 1024 * 1024
    assert value(metrics, "brainops_stage_items_per_worker_minute", stage="extract") == 60.0
    gpu = {"host": "brain", "gpu": "0", "name": "A4000"}
    assert value(metrics, "brainops_host_gpu_utilization_percent", **gpu) == 80.0
    assert value(metrics, "brainops_host_gpu_memory_total_bytes", **gpu) == 16384 * 1024 * 1024

    down = HostMetrics(host="brain", reachable=False, error="timeout")
    metrics.update_state(Observation(time=2.0, hosts=(down,), brain=BrainStats(pending={"extract": 10})))
    assert value(metrics, "brainops_workers", kind="extract", host="brain", state="running") is None
    assert value(metrics, "brainops_host_up", host="brain") == 0.0
    assert value(metrics, "brainops_host_cpu_percent", host="brain") is None  # no stale numbers for a dead host
    assert value(metrics, "brainops_host_gpu_utilization_percent", **gpu) is None
    assert value(metrics, "brainops_queue_depth", stage="extract") == 10.0


def test_tier_tokens_and_cost_come_from_the_real_ledger(tmp_path: Path) -> None:
    ledger = TokenLedger(tmp_path / "state.db", window_s=3600, window_tokens=100_000)
    now = 1_700_000_000.0
    for tier, tin, tout, cost in (("routine", 100, 20, 0.01), ("routine", 50, 10, 0.02), ("strategic", 400, 80, 0.5)):
        reservation = ledger.reserve(tier, 1000, now)
        ledger.settle(reservation, tin, tout, cost, now)  # type: ignore[arg-type]
    ledger.reserve("strategic", 700, now)  # in flight
    old = ledger.reserve("routine", 10, now - 7200)
    ledger.settle(old, 999, 999, 9.0, now - 7200)  # type: ignore[arg-type]  # outside the window
    usage = {u.tier: u for u in tier_usage(tmp_path / "state.db", now, 3600)}
    assert (usage["routine"].tokens_in, usage["routine"].tokens_out) == (150, 30)
    assert usage["routine"].cost == pytest.approx(0.03)
    assert (usage["strategic"].tokens_in, usage["strategic"].reserved) == (400, 700)

    metrics = BrainopsMetrics()
    metrics.update_state(Observation(time=now, budget=ledger.state(now)), list(usage.values()))
    assert value(metrics, "brainops_llm_tokens", tier="strategic", direction="out") == 80.0
    assert value(metrics, "brainops_llm_cost_dollars", tier="strategic") == pytest.approx(0.5)
    assert value(metrics, "brainops_budget_used_tokens") == 150 + 30 + 480
    assert tier_usage(tmp_path / "missing.db", now, 3600) == ()


def test_a_failing_tick_counts_as_failure(tmp_path: Path, small_brain: str) -> None:
    broken = tmp_path / "policy.yaml"
    broken.write_text("workers:\n  extract:\n    max: -3\n")
    agent = Agent(make_settings(tmp_path, copy_brain(small_brain, tmp_path), broken))
    metrics = BrainopsMetrics()
    on_report, on_error = tick_callbacks(metrics, agent)
    loop = AgentLoop(agent, on_report=on_report, on_error=on_error)
    loop.tick_job()
    assert loop.ticks == 0
    assert value(metrics, "brainops_tick_failures_total") == 1.0
    assert value(metrics, "brainops_tick_duration_seconds_count") == 0.0


def test_exporter_serves_on_loopback_and_refuses_a_bad_port() -> None:
    metrics = BrainopsMetrics()
    metrics.update_state(Observation(time=1.0, brain=BrainStats(pending={"embed": 7})))
    server = start_exporter(metrics, 0)
    try:
        assert server.address == "127.0.0.1" and server.port > 0
        with urllib.request.urlopen(server.url, timeout=5) as response:
            body = response.read().decode()
        assert 'brainops_queue_depth{stage="embed"} 7.0' in body
        with pytest.raises(OSError):
            start_exporter(metrics, server.port)  # taken
    finally:
        server.close()
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        start_exporter(metrics, 70000)


# ---------------------------------------------------------------- real Prometheus against `brainops run`


@pytest.mark.slow
def test_prometheus_scrapes_brainops_run(tmp_path: Path, small_brain: str) -> None:
    reason = prometheus_unavailable_reason()
    if reason:
        pytest.skip(reason)
    settings = make_settings(tmp_path, copy_brain(small_brain, tmp_path), write_policy(tmp_path / "p.yaml"))
    config = write_toml(settings, tmp_path / "brainops.toml")
    port = free_port()
    env = {
        **os.environ,
        "BRAINOPS_CONFIG": str(config),
        "BRAINOPS_METRICS_PORT": str(port),
        "BRAINOPS_JSON_LOGS": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--interval", "2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with PrometheusServer(tmp_path / "prom", [f"127.0.0.1:{port}"], scrape_interval_s=0.5) as prom:
            prom.wait_for('up{job="brainops"} == 1', timeout_s=60)
            ticks = prom.wait_for("brainops_ticks_total >= 1", timeout_s=90)
            assert ticks[0]["metric"]["planner"] == "rules"
            stages = {r["metric"]["stage"] for r in prom.wait_for("brainops_queue_depth")}
            assert {"extract", "embed"} <= stages
            assert prom.wait_for('brainops_host_up{host="local"} == 1')
            assert prom.wait_for("sum(brainops_decisions_total) > 0")
            assert prom.wait_for("brainops_tick_duration_seconds_count >= 1 and brainops_tick_duration_seconds_sum > 0")
    finally:
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
        kill_workers(settings.run_dir)
    assert run.returncode == 0, err[-2000:]
    log_lines = [line for line in err.splitlines() if line.startswith("{")]
    assert log_lines, f"no JSON log lines on stderr: {err[-1000:]}"
    records = [json.loads(line) for line in log_lines]
    assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
    assert any("signal" in r["msg"] for r in records)
    assert any("stopped" in r["msg"] for r in records)  # json_logs: notices are log records on stderr
    assert all(line.startswith("{") for line in out.splitlines() if line.strip())  # stdout: decision objects
