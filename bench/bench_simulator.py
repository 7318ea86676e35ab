"""Benchmark: the agent's scaling controller next to the HPA and fixed-worker baselines in the closed-loop
fleet simulator, 6 scenarios x 20 seeds x 24 h: medians and worst seeds, each target met or not.

Runs go in parallel (one process per CPU). The agent's median run must take under a minute of wall time
(the median: runs sharing too few cores slow each other down).

    .venv/bin/python -m bench.bench_simulator [OUT_DIR] [--seeds N] [--hours H] [--scenario NAME ...] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evals.sim_grid import GridRun
    from evals.simulator import SimResult

BUDGET_S = 60.0
CONTROLLERS = ("agent", "hpa", "fixed")
JSON_TIMELINE_STRIDE = 10  # sim.json keeps every 10th sample (5 min) of each run's timeline


class Progress:
    """One line per finished scenario and a counter every tenth of the runs: readable when piped to a log."""

    def __init__(self, runs: Sequence[GridRun], started: float) -> None:
        self.started = started
        self.total = len(runs)
        self.left = {s: sum(r.scenario == s for r in runs) for s in dict.fromkeys(r.scenario for r in runs)}
        self.every = max(1, self.total // 10)

    def __call__(self, done: int, run: GridRun, result: SimResult) -> None:
        elapsed = time.perf_counter() - self.started
        self.left[run.scenario] -= 1
        if self.left[run.scenario] == 0:
            print(f"simulator: {run.scenario} done ({done}/{self.total} runs, {elapsed:.0f} s)", flush=True)
        elif done % self.every == 0:
            print(f"simulator: {done}/{self.total} runs ({elapsed:.0f} s)", flush=True)


def run(
    out_dir: Path,
    hours: float = 24.0,
    seeds: int = 20,
    scenarios: Sequence[str] | None = None,
    controllers: Sequence[str] = CONTROLLERS,
    workers: int | None = None,
) -> dict[str, Any]:
    """Simulate every scenario x seed (1..seeds) x controller, write sim.json/.md/.html with the plots into
    out_dir, return the summary, the targets and the wall times."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from evals.sim_grid import default_workers, grid, run_grid
    from evals.sim_model import SCENARIOS
    from evals.sim_report import write_sim_report
    from evals.sim_summary import judge, summarize_runs, summary_to_dict, targets_met

    names = list(scenarios or SCENARIOS)
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
    runs = grid(names, range(1, seeds + 1), controllers, hours)
    workers = workers or default_workers()
    print(
        f"simulator: {len(runs)} runs ({len(names)} scenarios x {seeds} seeds x {len(controllers)} "
        f"controllers, {hours:g} h each) on {workers} processes",
        flush=True,
    )
    started = time.perf_counter()
    results = run_grid(runs, workers, Progress(runs, started))
    wall = time.perf_counter() - started
    title = f"bench: {', '.join(names)}; {seeds} seeds x {hours:g} h"
    files = write_sim_report(results, out_dir, title, timeline_stride=JSON_TIMELINE_STRIDE)
    summary = summarize_runs([r.metrics for r in results])
    targets = judge(summary)
    met, total = targets_met(targets)
    per_run: dict[str, list[float]] = {}
    for r in results:
        per_run.setdefault(r.metrics.controller, []).append(r.metrics.wall_s)
    return {
        "hours": hours,
        "seeds": seeds,
        "scenarios": names,
        "controllers": list(controllers),
        "runs": len(results),
        "workers": workers,
        "wall_s": round(wall, 1),
        "run_wall_s": {
            c: {"median": round(statistics.median(v), 2), "max": round(max(v), 2), "sum": round(sum(v), 1)}
            for c, v in per_run.items()
        },
        "agent_under_budget": statistics.median(per_run.get("agent", [0.0])) < BUDGET_S,
        "summary": summary_to_dict(summary),
        "targets": [t.to_dict() for t in targets],
        "targets_met": {"met": met, "total": total},
        "report": str(files.markdown),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_simulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("bench/out/simulator"), help="report directory")
    parser.add_argument("--seeds", type=int, default=20, help="seeds 1..N (default 20)")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours per run (default 24)")
    parser.add_argument("--scenario", action="append", help="only this scenario (repeatable; default all)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    args = parser.parse_args(argv)
    scenarios = [n.strip() for v in args.scenario or [] for n in v.split(",") if n.strip()] or None
    numbers = run(args.out, args.hours, args.seeds, scenarios, workers=args.workers)
    for t in numbers["targets"]:
        print(f"{t['scenario']:16s} {t['name']:22s} {'met' if t['met'] else 'NOT MET':8s} {t['verdict']}")
    runs = ", ".join(f"{c} median {w['median']} s, max {w['max']} s" for c, w in numbers["run_wall_s"].items())
    met = numbers["targets_met"]
    print(f"{numbers['runs']} runs in {numbers['wall_s']} s on {numbers['workers']} processes ({runs})")
    print(f"targets met {met['met']}/{met['total']}; report: {numbers['report']}")
    return 0 if numbers["agent_under_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
