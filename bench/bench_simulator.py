"""Benchmark: a bursty 24 h trace through the closed-loop simulator, the agent next to the HPA and
fixed-worker baselines on the same seed. The agent's run must take under a minute of wall time.

    .venv/bin/python -m bench.bench_simulator [OUT_DIR]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

BUDGET_S = 60.0
CONTROLLERS = ("agent", "hpa", "fixed")


def run(out_dir: Path, hours: float = 24.0, seed: int = 1) -> dict[str, Any]:
    """Simulate, write sim.json/.md/.html with plots into out_dir, return the numbers."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from evals.report import write_sim_report
    from evals.sim_model import FaultSpec, SimConfig, TraceSpec
    from evals.simulator import run_simulation

    faults = (
        FaultSpec("provider_outage", 6 * 3600.0, 6.5 * 3600.0),
        FaultSpec("host_down", 15 * 3600.0, 15.5 * 3600.0, "worker1"),
    )
    cfg = SimConfig(seed=seed, duration_s=hours * 3600.0, trace=TraceSpec(kind="bursty"), faults=faults)
    results, wall = [], {}
    for name in CONTROLLERS:
        started = time.perf_counter()
        results.append(run_simulation(cfg, name))
        wall[name] = round(time.perf_counter() - started, 2)
    files = write_sim_report(results, out_dir, f"bench: {hours:g} h bursty trace, seed {seed}")
    return {
        "hours": hours,
        "seed": seed,
        "wall_s": wall,
        "agent_under_budget": wall["agent"] < BUDGET_S,
        "metrics": {r.metrics.controller: r.metrics.to_dict() for r in results},
        "report": str(files.markdown),
    }


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/out/simulator")
    numbers = run(out)
    for name, seconds in numbers["wall_s"].items():
        m = numbers["metrics"][name]
        print(
            f"{name:6s} wall {seconds:6.2f}s  mean backlog {m['mean_backlog']:8.1f}  p95 {m['p95_backlog']:8.1f}  "
            f"flaps {m['flaps']:3d}  overload {m['host_overload_s']:6.0f}s  overshoot {m['budget_overshoot_tokens']}  "
            f"cost {m['cost']:8.2f}  approvals {m['approvals_requested']}"
        )
    print(f"report: {numbers['report']}")
    sys.exit(0 if numbers["agent_under_budget"] else 1)
