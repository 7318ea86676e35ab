"""The closed-loop fleet simulator: the unchanged tick graph with the rule planner and the real PolicyEngine
against a seeded fleet, next to HPA and fixed-worker baselines on the same seeds."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from core.domain import Observation
from evals.report import write_sim_report
from evals.sim_metrics import count_flaps, drain_stats
from evals.sim_model import FaultSpec, SimConfig, TraceSpec, arrival_series
from evals.simulator import SimResult, run_simulation

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
HOUR = 3600.0
BURSTY = TraceSpec(kind="bursty", rate_per_min=60.0, burst_every_s=1200.0, burst_duration_s=900.0)


def short(seed: int = 7, **changes: object) -> SimConfig:
    return replace(SimConfig(seed=seed, duration_s=HOUR, trace=BURSTY), **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def side_by_side() -> dict[str, SimResult]:
    cfg = short()
    return {name: run_simulation(cfg, name) for name in ("agent", "hpa", "fixed")}


@pytest.mark.slow
def test_deterministic_per_seed(side_by_side: dict[str, SimResult]) -> None:
    again = run_simulation(short(), "agent")
    other_seed = run_simulation(short(seed=8), "agent")

    assert again.metrics.comparable() == side_by_side["agent"].metrics.comparable()
    assert again.timeline.to_dict() == side_by_side["agent"].timeline.to_dict()
    assert other_seed.timeline.backlog != again.timeline.backlog
    assert (arrival_series(short()) == arrival_series(short())).all()


@pytest.mark.slow
def test_agent_and_baselines_metrics_side_by_side(side_by_side: dict[str, SimResult], tmp_path: Path) -> None:
    agent, hpa, fixed = side_by_side["agent"].metrics, side_by_side["hpa"].metrics, side_by_side["fixed"].metrics
    for m in (agent, hpa, fixed):
        assert m.budget_overshoot_tokens == 0
        assert m.fleet_tokens > 0 and m.cost > 0 and m.drain.episodes >= 1
    # The agent's decisions went through the tick graph: noops and policy verdicts are recorded...
    assert agent.outcomes.get("noop", 0) > 0 and agent.outcomes.get("done", 0) > 0
    assert agent.scale_changes > 0
    # ...the baselines act directly, and the fixed one never changes after setting its counts.
    assert set(hpa.outcomes) <= {"done", "failed"} and fixed.scale_changes <= 3
    # Same seed, same arrivals: every controller faced the same work.
    assert agent.seed == hpa.seed == fixed.seed

    files = write_sim_report(list(side_by_side.values()), tmp_path)

    md = files.markdown.read_text()
    assert all(f"| {name} | 7 | bursty |" in md for name in ("agent", "hpa", "fixed"))
    assert {p.name for p in files.plots} == {"sim_backlog.png", "sim_workers.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in files.plots)
    assert '<img src="sim_backlog.png"' in files.html.read_text()


def test_budget_window_is_never_overshot_when_it_binds() -> None:
    cfg = short(window_tokens=3_000_000)  # far below what the trace wants in an hour

    results = [run_simulation(cfg, name).metrics for name in ("agent", "hpa")]

    for m in results:
        assert m.throttled_items > 0  # the budget really limited the fleet ...
        assert m.budget_overshoot_tokens == 0  # ... and no step spent past it
        assert m.fleet_tokens <= cfg.window_tokens


def test_faults_reach_the_planner_and_the_effects() -> None:
    seen: list[Observation] = []

    def recording_rules(policy: object, engine: object) -> object:
        from evals.simulator import rules_planner

        inner = rules_planner(policy, engine)  # type: ignore[arg-type]

        class Spy:
            def plan(self, ctx: object) -> object:
                seen.append(ctx.observation)  # type: ignore[attr-defined]
                return inner.plan(ctx)  # type: ignore[arg-type]

        return Spy()

    faults = (FaultSpec("host_down", 600, 1200, "worker1"), FaultSpec("provider_outage", 1800, 2400))
    result = run_simulation(short(faults=faults), "agent", planner_maker=recording_rules)  # type: ignore[arg-type]

    during_down = [o for o in seen if 600 <= o.time - seen[0].time < 1200]
    assert during_down and all(not o.hosts[1].reachable for o in during_down)
    assert all(w.host != "worker1" for o in during_down for w in o.workers)
    outage = [o for o in seen if 1800 <= o.time - seen[0].time < 2400]
    assert all(any("503" in n for n in o.notes) for o in outage)
    assert result.metrics.throttled_items > 0  # LLM stages stood still during the outage
    assert result.metrics.budget_overshoot_tokens == 0


def test_flap_and_drain_accounting() -> None:
    events = [(0.0, "e@w", 1, 3), (100.0, "e@w", 3, 2), (900.0, "e@w", 2, 4), (950.0, "x@w", 0, 1)]
    assert count_flaps(events) == 1  # up then down within 300 s; the later up is outside the window
    stats = drain_stats([0, 60, 120, 180, 240], [0, 1500, 800, 50, 1200])
    assert (stats.episodes, stats.max_s, stats.undrained) == (2, 120.0, 1)


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="tick_s >= step_s"):
        SimConfig(step_s=60.0, tick_s=30.0)
    with pytest.raises(ValueError, match="unknown controller 'k8s'"):
        run_simulation(short(duration_s=60.0), "k8s")
