"""Many simulator runs at once: scenarios x seeds x controllers, each run in its own process
(concurrent.futures.ProcessPoolExecutor), results back in the order they were asked for.

Used by `brainops eval sim` and bench/bench_simulator.py.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evals.simulator import SimResult

OnDone = Callable[[int, "GridRun", "SimResult"], None]  # (runs finished so far, the run, its result)


@dataclass(frozen=True)
class GridRun:
    scenario: str
    seed: int
    controller: str
    hours: float
    policy_path: Path | None = None  # None: the shipped policy


def grid(
    scenarios: Sequence[str],
    seeds: Sequence[int],
    controllers: Sequence[str],
    hours: float,
    policy_path: Path | None = None,
) -> list[GridRun]:
    """Scenario by scenario (so whole scenarios finish as the grid goes), the slow agent runs of each first."""
    return [
        GridRun(scenario, seed, controller, hours, policy_path)
        for scenario in scenarios
        for controller in controllers
        for seed in seeds
    ]


def run_one(run: GridRun) -> SimResult:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from evals.sim_model import scenario_config
    from evals.simulator import DEFAULT_POLICY, run_simulation

    cfg = scenario_config(run.scenario, run.seed, hours=run.hours)
    return run_simulation(cfg, run.controller, run.policy_path or DEFAULT_POLICY)


def default_workers() -> int:
    return os.cpu_count() or 1


def run_grid(runs: Sequence[GridRun], workers: int | None = None, on_done: OnDone | None = None) -> list[SimResult]:
    """Every run, `workers` processes at a time (default: one per CPU; 1 runs them here, in order).
    A run that raises stops the grid: the runs not yet started are cancelled and the error is raised."""
    workers = max(1, min(workers or default_workers(), len(runs)))
    if workers == 1:
        serial = []
        for index, run in enumerate(runs):
            serial.append(run_one(run))
            if on_done is not None:
                on_done(index + 1, run, serial[-1])
        return serial
    results: list[SimResult | None] = [None] * len(runs)
    # spawn, not fork: the parent may hold lance's threads (a forked copy of them can deadlock)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures: dict[Future[SimResult], int] = {pool.submit(run_one, run): i for i, run in enumerate(runs)}
        try:
            for finished, future in enumerate(as_completed(futures), start=1):
                index = futures[future]
                results[index] = future.result()
                if on_done is not None:
                    on_done(finished, runs[index], future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return [r for r in results if r is not None]
