"""The observation the planner tests start from: a two-host fleet with one extract worker and a backlog."""

from __future__ import annotations

from core.domain import BrainStats, HostMetrics, Observation, WorkerInfo

NOW = 1_800_000_000.0


def extract_backlog(**changes: object) -> Observation:
    base = Observation(
        time=NOW,
        hosts=(HostMetrics(host="brain", cpu_count=8), HostMetrics(host="worker1", cpu_count=8, cpu_percent=20)),
        workers=(WorkerInfo(id="extract-worker1-1", kind="extract", host="worker1", started_at=NOW - 600),),
        brain=BrainStats(records=10_000, pending={"extract": 1_500}),
        rates={"extract": 20.0},
        desired={"extract@worker1": 1},
    )
    return base.model_copy(update=changes)
