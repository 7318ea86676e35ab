"""The closed-loop fleet simulator: the unchanged tick graph with the rule planner and the real PolicyEngine
against a seeded fleet, next to HPA and fixed-worker baselines on the same seeds."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from core.domain import Observation
from evals.sim_metrics import Timeline, count_flaps, drain_stats, reaction_ticks
from evals.sim_model import (
    DEFAULT_KINDS,
    SCENARIOS,
    FaultSpec,
    FleetState,
    KindSpec,
    SimConfig,
    TraceSpec,
    arrival_series,
    load_rises,
    scenario_config,
)
from evals.sim_report import write_sim_report
from evals.sim_work import advance
from evals.simulator import SimEffects, SimResult, run_simulation

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
        assert m.fleet_tokens > 0 and m.llm_cost > 0 and m.compute_cost > 0
        assert m.trace == "bursty" and set(m.wait_s) == {
            "extract",
            "embed",
            "wisdom",
            "reasoning",
        }  # reasoning: no arrivals here
        assert m.p95_wait_s == m.wait_s["extract"]["p95"] > 0
        assert 0 < m.idle_worker_seconds < m.worker_seconds == pytest.approx(sum(m.worker_seconds_by_kind.values()))
    assert hpa.drain.episodes >= 1 and fixed.drain.episodes >= 1  # the trace is hard for the baselines
    # The agent's decisions went through the tick graph: noops and policy verdicts are recorded...
    assert agent.outcomes.get("noop", 0) > 0 and agent.outcomes.get("done", 0) > 0
    assert agent.scale_changes > 0
    # ...the baselines act directly, and the fixed one never changes after setting its counts.
    assert set(hpa.outcomes) <= {"done", "failed"} and fixed.scale_changes <= 3
    # Same seed, same arrivals: every controller faced the same work.
    assert agent.seed == hpa.seed == fixed.seed

    files = write_sim_report(list(side_by_side.values()), tmp_path)

    md = files.markdown.read_text()
    assert "## bursty" in md and "| metric | agent | HPA | fixed |" in md
    assert {p.name for p in files.plots} == {"sim_bursty_backlog.png", "sim_bursty_workers.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in files.plots)
    assert '<img src="sim_bursty_backlog.png"' in files.html.read_text()


def test_budget_window_is_never_overshot_when_it_binds() -> None:
    cfg = short(window_tokens=3_000_000)  # far below what the trace wants in an hour

    results = [run_simulation(cfg, name).metrics for name in ("agent", "hpa")]

    for m in results:
        assert m.throttled_items > 0  # the budget really limited the fleet ...
        assert m.budget_overshoot_tokens == 0  # ... and no step spent past it
        assert m.fleet_tokens <= cfg.window_tokens


def test_faults_reach_the_planner_and_the_effects() -> None:
    seen: list[Observation] = []
    policies: list[object] = []

    def recording_rules(policy: object, engine: object) -> object:
        from evals.simulator import rules_planner

        policies.append(policy)
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
    # The agent sees what each worker finished and whether it found work, and what each host costs.
    workers = [w for o in seen for w in o.workers]
    assert any(w.processed for w in workers) and any(w.idle for w in workers)
    policy = policies[0]
    brain, worker1 = policy.host_limits("brain"), policy.host_limits("worker1")  # type: ignore[attr-defined]
    assert (brain.cost_per_hour, worker1.cost_per_hour) == (0.30, 0.15)
    assert brain.max_workers == 8 and brain.cpu_ceiling_percent == 90  # the rest from the policy's "*"


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


# ---------------------------------------------------------------- the fleet's accounting, by hand


def tiny(*, batch: int = 10, delay: float = 0.0, faults: tuple[FaultSpec, ...] = ()) -> FleetState:
    """One extract kind at 1 item/s on worker1, 10 s steps, the clock from 0; embed and wisdom unworked."""
    extract = KindSpec("extract", 60.0, cpu_share=10.0, mem_share=1.0, start_delay_s=delay, batch_items=batch)
    kinds = tuple(extract if k.kind == "extract" else k for k in DEFAULT_KINDS)
    cfg = SimConfig(duration_s=100.0, tick_s=10.0, kinds=kinds, initial_desired=(), start_time=0.0, faults=faults)
    return FleetState(cfg=cfg, now=0.0)


def scale(state: FleetState, count: int) -> None:
    SimEffects(state, Timeline()).scale("extract", "worker1", count)


def waits(state: FleetState, stage: str = "extract") -> dict[str, float]:
    return state.waits.summary(stage, state.now, state.unfinished(stage))


def test_waits_are_per_item_from_arrival_to_commit_and_unfinished_items_count() -> None:
    state = tiny()
    scale(state, 1)
    for arrived in (10, 20, 0, 15):  # batches of 10 commit at 10, 20, 30, 40; 5 items still queued at 40
        advance(state, arrived)

    # 10 items waited 10 s (t0 -> 10), 10 waited 10 s (t10 -> 20), 10 waited 20 s (t10 -> 30), 10 waited 10 s
    # (t30 -> 40), and the 5 left from t30 have waited 10 s: 35 of 45 items at 10 s, 10 at 20 s.
    assert waits(state) == {"p50": 10.0, "p95": 20.0, "max": 20.0}
    # Embed rows arrive when extract commits them (10 each at 10, 20, 30, 40) and nobody embeds them.
    assert waits(state, "embed") == {"p50": 10.0, "p95": 30.0, "max": 30.0}
    worker = state.workers[0]
    assert (worker.processed, worker.idle, state.backlog["extract"]) == (40.0, False, 5.0)

    advance(state, 0)  # the last 5 commit at 45; then the queue is empty

    assert (worker.processed, worker.idle, state.backlog["extract"]) == (45.0, True, 0.0)
    assert state.worker_s["extract"] == 50.0 and state.busy_s["extract"] == pytest.approx(45.0)


def test_idle_worker_seconds_and_compute_cost() -> None:
    state = tiny(delay=20.0)
    scale(state, 1)
    for arrived in (5, 0, 0, 0):  # ready at 20, the 5 items take 5 s, then nothing to do
        advance(state, arrived)

    assert waits(state)["max"] == 25.0
    assert state.worker_s["extract"] == 40.0 and state.busy_s["extract"] == pytest.approx(5.0)  # idle: 35 s
    # 40 s on worker1 ($0.15/h at full load) at a 10% CPU share
    assert state.compute_cost == pytest.approx(40 * 0.15 * 10 / 100 / 3600)


def test_a_busy_worker_scaled_down_drains_within_the_grace_or_loses_its_batch() -> None:
    long = tiny(batch=100)
    scale(long, 1)
    advance(long, 100)  # 10 of its 100 items done
    scale(long, 0)
    assert long.workers[0].draining and long.workers[0].batch
    for _ in range(3):
        advance(long, 0)
    # Killed at the 30 s grace with 40 items done: they are thrown away, the batch goes back to the front.
    assert (long.lost_items, long.workers, long.backlog["extract"]) == (40.0, [], 100.0)
    assert list(long.queues["extract"].cohorts) == [[0.0, 100.0]] and long.worker_s["extract"] == 40.0

    short_batch = tiny(batch=20)
    scale(short_batch, 1)
    advance(short_batch, 20)
    scale(short_batch, 0)
    advance(short_batch, 0)  # finishes its batch at 20 s, within the grace, and stops
    assert (short_batch.lost_items, short_batch.workers, short_batch.backlog["extract"]) == (0.0, [], 0.0)
    assert short_batch.worker_s["extract"] == 20.0

    idle = tiny()
    scale(idle, 1)
    advance(idle, 0)
    scale(idle, 0)  # no work in hand: gone at once
    assert (idle.lost_items, idle.workers, idle.worker_s["extract"]) == (0.0, [], 10.0)


def test_scale_down_stops_workers_without_work_in_hand_before_the_newest() -> None:
    state = tiny()
    scale(state, 2)
    older, newer = state.workers
    state.queues["extract"].add(0.0, 10)
    newer.batch, newer.batch_size = state.queues["extract"].take(10), 10.0

    scale(state, 1)

    assert state.workers == [newer] and not newer.draining and older.done_at == 0.0


def test_work_lost_to_a_host_fault_is_not_counted_as_lost_items() -> None:
    state = tiny(batch=100, faults=(FaultSpec("host_down", 15, 40, "worker1"),))
    scale(state, 1)
    for arrived in (100, 0, 0):  # 20 items done by 20 s, then the host goes down
        advance(state, arrived)
    assert (state.lost_items, state.fault_lost_items) == (0.0, 20.0)
    assert list(state.queues["extract"].cohorts) == [[0.0, 100.0]]
    assert state.worker_s["extract"] == 20.0  # no worker-seconds while its host is down


# ---------------------------------------------------------------- scenarios and reaction


def test_reaction_ticks_count_from_each_load_rise_to_the_next_extract_scale_up() -> None:
    events = [(0.0, "extract@worker1", 1, 3), (160.0, "extract@worker1", 3, 4), (200.0, "wisdom@brain", 1, 2)]
    assert reaction_ticks([], events, 3600.0, 30.0) is None
    assert reaction_ticks([100.0], events, 3600.0, 30.0) == 2.0
    # The second rise is never answered: it counts the ticks to the end of the run.
    assert reaction_ticks([100.0, 700.0], events, 3600.0, 30.0) == pytest.approx((3600 - 700) / 30, abs=1e-3)
    # ... unless the workers still up from the first burst already cover it: nothing to react to.
    assert reaction_ticks([100.0, 700.0], events, 3600.0, 30.0, covered=lambda rise: rise == 700.0) == 2.0


def test_the_step_scenario_doubles_the_rate_and_reports_the_reaction() -> None:
    cfg = scenario_config("step", seed=4, hours=1.0)
    arrivals = arrival_series(cfg)

    assert load_rises(cfg) == [1200.0] and cfg.name == "step"
    assert 1.6 < arrivals[120:].mean() / arrivals[:120].mean() < 2.4
    m = run_simulation(cfg, "hpa").metrics
    assert m.reaction_ticks is not None and 0 <= m.reaction_ticks <= (3600 - 1200) / 30
    assert load_rises(scenario_config("steady", 4)) == load_rises(scenario_config("diurnal", 4)) == []


@pytest.mark.parametrize("name", SCENARIOS)
def test_each_scenario_runs_for_every_controller(name: str) -> None:
    cfg = scenario_config(name, seed=3, hours=0.5)
    for controller in ("agent", "hpa", "fixed"):
        m = run_simulation(cfg, controller).metrics
        assert (m.trace, m.controller, m.duration_s) == (name, controller, 1800.0)
        assert m.worker_seconds > 0 and m.budget_overshoot_tokens == 0
        assert (m.reaction_ticks is None) == (name in ("steady", "diurnal"))
    if name == "host_failure":
        assert cfg.faults == (FaultSpec("host_down", 720.0, 1800.0, "worker1"),)
    if name == "provider_outage":
        assert cfg.faults == (FaultSpec("provider_outage", 450.0, 1800.0),)


def test_scenarios_are_deterministic_per_seed_and_the_grace_is_the_dispatchers() -> None:
    from fleet.hosts import DEFAULT_GRACE_S

    cfg = scenario_config("host_failure", seed=5, hours=1.0)
    first, again = run_simulation(cfg, "hpa"), run_simulation(cfg, "hpa")
    assert first.metrics.comparable() == again.metrics.comparable()
    assert first.timeline.to_dict() == again.timeline.to_dict()
    assert cfg.grace_s == DEFAULT_GRACE_S
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        scenario_config("nope", seed=1)
