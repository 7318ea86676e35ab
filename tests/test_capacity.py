"""The measuring scaling controller: throughput from worker counters, arrival forecasts, the wait objective."""

from __future__ import annotations

from core.domain import BrainStats, BudgetState, HostMetrics, Observation, Proposal, ScalePrediction, WorkerInfo
from graphs.capacity import CapacityMeters, Holt, KindMeter, Objective, budget_workers, drain_seconds, size
from graphs.planners import PlanContext
from graphs.rule_planner import RuleParams, RulePlanner
from graphs.scaling import ScalingParams

T0 = 1_800_000_000.0
SHORT = Objective(300.0, may_idle=False)  # extract's: five minutes, never idle while work arrives
LONG = Objective(14400.0)  # wisdom's: four hours, runs in bursts
TICK = 30.0


def _obs(
    t: float, backlog: int, processed: list[int], *, idle: list[bool] | None = None, used: int = 0, desired=None
) -> Observation:
    idle = idle or [False] * len(processed)
    workers = tuple(
        WorkerInfo(id=f"extract-w-{i}", kind="extract", host="w", processed=n, idle=idle[i], cpu_percent=80.0)
        for i, n in enumerate(processed)
    )
    return Observation(
        time=t,
        hosts=(HostMetrics(host="w", cpu_percent=30.0, mem_percent=30.0, cpu_count=8),),
        workers=workers,
        brain=BrainStats(pending={"extract": backlog}),
        budget=BudgetState(window_s=5 * 3600, window_tokens=90_000_000, used_tokens=used),
        desired=desired if desired is not None else {"extract@w": len(processed)},
    )


def _steady_meter(rate_per_worker: float, arrivals: float, workers: int, ticks: int = 10) -> KindMeter:
    """A meter fed `ticks` busy intervals: each worker finishes rate*tick items, arrivals keep the backlog."""
    meter = KindMeter()
    backlog, done = 1000, [0] * workers
    for i in range(ticks):
        meter.update(_obs(T0 + i * TICK, backlog, list(done)), "extract", "extract")
        done = [d + int(rate_per_worker * TICK / 60) for d in done]
        backlog += int(arrivals * TICK / 60) - int(rate_per_worker * TICK / 60) * workers
    return meter


def test_throughput_and_arrivals_are_learned_from_counters() -> None:
    meter = _steady_meter(rate_per_worker=50.0, arrivals=120.0, workers=2)
    assert meter.per_worker is not None and abs(meter.per_worker - 50.0) < 1.0
    assert abs(meter.arrivals.forecast() - 120.0) < 5.0


def test_idle_workers_do_not_teach_a_low_throughput() -> None:
    meter = KindMeter()
    meter.update(_obs(T0, 0, [100, 100], idle=[True, True]), "extract", "extract")
    meter.update(_obs(T0 + TICK, 0, [105, 105], idle=[True, True]), "extract", "extract")
    assert meter.per_worker is None  # nothing was waiting: 10 items/min says nothing about capacity


def test_a_burst_is_answered_on_the_tick_it_shows() -> None:
    meter = _steady_meter(rate_per_worker=50.0, arrivals=60.0, workers=2)
    assert size(meter, 0, 2, 0, SHORT).desired == 2  # 1.2 workers' worth: keep 2
    # One interval at six times the rate: the next sizing jumps, without waiting for the level to catch up.
    last = meter.last
    assert last is not None
    done = [n + 25 for n in last.processed.values()]
    meter.update(_obs(last.time + TICK, last.backlog + 180 - 50, done), "extract", "extract")
    sizing = size(meter, last.backlog + 130, 2, 0, SHORT)
    assert sizing.desired >= 6, sizing


def test_scale_down_keeps_spare_and_never_stops_busy_workers() -> None:
    meter = _steady_meter(rate_per_worker=50.0, arrivals=60.0, workers=2)
    # Six workers for 60/min: the objective needs 1.2 (+50% spare) -> 2, but only once drained, and only
    # as many as are idle (the dispatcher stops idle workers first).
    assert size(meter, 40, 6, 1, SHORT).desired == 6
    assert size(meter, 0, 6, 3, SHORT).desired == 3
    assert size(meter, 0, 6, 6, SHORT).desired == 2


def test_a_light_kind_runs_in_bursts_within_its_objective() -> None:
    meter = KindMeter(per_worker=12.0)
    meter.arrivals = Holt(level=3.0)
    meter.last_arrival = 3.0
    meter.update(_obs(T0, 0, [50], idle=[True]), "extract", "extract")
    assert size(meter, 0, 1, 1, LONG).desired == 0  # drained, and 3/min is a quarter of a worker
    meter.last = None
    meter.update(_obs(T0 + 600, 30, []), "extract", "extract")
    assert size(meter, 30, 0, 0, LONG).desired == 0  # the oldest item is 10 minutes old: it can wait
    meter.update(_obs(T0 + 3 * 3600, 540, []), "extract", "extract")
    assert size(meter, 540, 0, 0, LONG).desired == 1  # three hours: start, or it misses the 4 h objective


def test_budget_caps_llm_bound_workers() -> None:
    meter = KindMeter(per_worker=50.0, tokens_per_item=1500.0)
    rich = _obs(T0, 0, [], used=0)
    poor = _obs(T0, 0, [], used=89_000_000)
    assert budget_workers(rich, meter, 300.0) > 100
    assert budget_workers(poor, meter, 300.0) == 4  # the window's sustained rate: 300k tokens/min


def test_meters_update_once_per_observation_and_share_tokens_per_item() -> None:
    meters = CapacityMeters()
    stages = {"extract": "extract"}
    meters.update(_obs(T0, 500, [0]), stages, frozenset({"extract"}))
    meters.update(_obs(T0 + 60, 450, [50], used=75_000), stages, frozenset({"extract"}))
    later = _obs(T0 + 120, 400, [100], used=150_000)
    meters.update(later, stages, frozenset({"extract"}))
    meters.update(later, stages, frozenset({"extract"}))  # the same tick again: no double counting
    meter = meters.get("extract")
    assert meter is not None and meter.tokens_per_item == 1500.0 and meter.per_worker == 50.0


def test_workers_that_time_their_batches_are_measured_at_light_load() -> None:
    meter = KindMeter()
    for i in range(4):  # one worker at a quarter load: 3 items/min done, 15 s of every minute busy
        worker = WorkerInfo(id="w-1", kind="wisdom", host="b", processed=3 * i, idle=True, busy_s=15.0 * i)
        obs = Observation(time=T0 + 60 * i, workers=(worker,), brain=BrainStats(pending={"wisdom": 0}))
        meter.update(obs, "wisdom", "wisdom")
    assert meter.per_worker == 12.0  # 3 items per 15 busy seconds, though the queue was empty at every tick


def test_the_arrival_forecast_never_goes_negative_after_a_burst() -> None:
    holt = Holt()
    for x in [60.0] * 5 + [400.0] * 10 + [0.0] * 30:
        holt.update(x)
    assert holt.level is not None and holt.level >= 0.0 and holt.forecast(10) >= 0.0


def test_drain_time_arithmetic() -> None:
    assert drain_seconds(6200, 7, 50.0, 60.0) == 60.0 * 6200 / 290.0
    assert drain_seconds(100, 1, 50.0, 60.0) is None
    assert drain_seconds(0, 0, 50.0, 60.0) == 0.0


def test_prediction_reads_as_one_line() -> None:
    p = ScalePrediction(
        kind="extract",
        before=4,
        after=7,
        backlog=6200,
        arrival_per_min=60.0,
        per_worker_per_min=50.0,
        basis="measured",
        drain_s=1320.0,
        compute_per_hour_delta=0.41,
    )
    assert p.summary() == "4 -> 7 extract: backlog 6,200 drains in ~22 min, +$0.41/h compute"
    growing = p.model_copy(update={"after": 1, "drain_s": None, "compute_per_hour_delta": -0.2})
    assert growing.summary() == "4 -> 1 extract: backlog 6,200 keeps growing, -$0.20/h compute"


def _planner(max_wait_s: float | None, budget_horizon_min: float = 30.0) -> RulePlanner:
    p = ScalingParams(stage="extract", max_workers=8, target_per_worker=500.0, llm_bound=True, max_wait_s=max_wait_s)
    from graphs.capacity import CostModel

    params = RuleParams(scaling={"extract": p}, cost=CostModel({"*": 0.5}), budget_horizon_min=budget_horizon_min)
    return RulePlanner(params)


def test_rule_planner_sizes_from_the_objective_and_predicts_the_effect() -> None:
    planner = _planner(300.0)
    backlog, done = 600, [0, 0]
    for i in range(6):  # two busy workers at 50/min, 200/min arriving: the backlog grows
        result = planner.plan(PlanContext(_obs(T0 + i * TICK, backlog, list(done)), T0 + i * TICK))
        done = [d + 25 for d in done]
        backlog += 100 - 50
    scale = [p for p in result.proposals if p.action == "scale_workers"]
    assert scale and scale[0].args["count"] == 6, result.proposals  # the objective wants ~9; the step is +4
    prediction = scale[0].prediction
    assert prediction is not None and prediction.basis == "measured"
    assert prediction.before == 2 and prediction.after == scale[0].args["count"]
    assert prediction.drain_s == 60.0 * prediction.backlog / (6 * 50.0 - prediction.arrival_per_min)
    # Each new worker costs the host price times its CPU share (80% per-core on 8 cores = 10%): $0.05/h.
    assert abs(prediction.compute_per_hour_delta - 0.05 * (prediction.after - 2)) < 1e-6
    assert scale[0].rationale.startswith(prediction.summary())


def test_without_an_objective_the_hpa_rule_decides() -> None:
    planner = _planner(None)
    result = planner.plan(PlanContext(_obs(T0, 3000, [0, 0]), T0))
    scale = [p for p in result.proposals if p.action == "scale_workers"]
    assert scale and scale[0].args["count"] == 6  # HPA: ceil(2 * 3000 / (2 * 500)) = 6
    assert scale[0].prediction is not None and scale[0].prediction.basis == "unmeasured"


def _tight_budget_ticks(planner: RulePlanner) -> tuple[Proposal, ...]:
    backlog, done, used = 600, [0, 0], 84_500_000  # 5.5M of the window's 90M left (over the 5% floor)
    for i in range(6):
        obs = _obs(T0 + i * TICK, backlog, list(done), used=used)
        result = planner.plan(PlanContext(obs, T0 + i * TICK))
        done = [d + 25 for d in done]
        used += 50 * 3000  # every item costs 3,000 tokens: the window burns 300k tokens/min
        backlog += 50
    return result.proposals


def test_the_token_window_caps_what_the_objective_asks_for() -> None:
    proposals = _tight_budget_ticks(_planner(300.0, budget_horizon_min=5.0))
    scale = [p for p in proposals if p.action == "scale_workers"]
    # The objective asks for ~9 (6 after the step limit); ~5M tokens over the next 10 minutes pay for 3
    # workers at 50 items/min and 3,000 tokens an item.
    assert scale and scale[0].args["count"] == 3, proposals
    assert "the token window pays for 3" in scale[0].rationale


def test_a_burn_that_empties_the_window_soon_holds_llm_bound_scale_ups() -> None:
    proposals = _tight_budget_ticks(_planner(300.0))  # 30 minutes' projection
    assert [p.action for p in proposals] == ["noop"], proposals
    assert "at the recent burn (300,000 tokens/min)" in proposals[0].rationale
    assert "run out in ~16 min" in proposals[0].rationale


def test_a_burst_already_draining_fast_gets_no_second_scale_up() -> None:
    """Six workers at 200/min against 200/min arriving drain a 3,000 backlog at 1,000/min: an item arriving
    now waits about 3 min, under the 300 s objective, so no more workers (HPA at 200 items/worker asks for 15)."""
    from graphs.capacity import CostModel

    p = ScalingParams(stage="extract", max_workers=16, target_per_worker=200.0, max_wait_s=300.0)
    planner = RulePlanner(RuleParams(scaling={"extract": p}, cost=CostModel({"*": 0.5})))
    backlog, done = 3000, [0] * 6
    counts = []
    for i in range(5):
        result = planner.plan(PlanContext(_obs(T0 + i * TICK, backlog, list(done)), T0 + i * TICK))
        ups = [q.args["count"] for q in result.proposals if q.action == "scale_workers" and q.args["count"] > 6]
        counts.append(max(ups, default=6))
        done = [d + 100 for d in done]
        backlog += 100 - 600
    assert backlog > 0 and counts[1:] == [6] * 4, counts  # measured from its first interval on: it holds
