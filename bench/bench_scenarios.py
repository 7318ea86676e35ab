"""The rule planner on both scenario splits, pass^3 each, reported apart: the tuned split (evals/scenarios/,
which the planner's authors work against) and the held-out split (evals/scenarios_heldout/, which they do
not). A gap between the two is how much the planner fits its own scenarios rather than the decisions.

Each split's full eval report (JSON, Markdown, HTML, figures) goes to OUT_DIR/<split>/.

    .venv/bin/python -m bench.bench_scenarios [OUT_DIR] [--repeat K]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

REPEAT = 3
SPLIT_LABELS = {"tuned": "tuned", "heldout": "held-out"}
METRICS = (  # (result key, title, unit, better)
    ("pass_hat", "rule planner pass^k", "share", "higher"),
    ("precision", "rule planner precision", "share", "higher"),
    ("recall", "rule planner recall", "share", "higher"),
    ("forbidden_rate", "forbidden proposals per proposal", "share", "lower"),
    ("forbidden_executed", "forbidden actions executed", "runs' actions", "lower"),
    ("joint_overcommits", "hosts over-committed by a tick's proposals together", "runs' hosts", "lower"),
)


def run_split(split: str, out_dir: Path, repeat: int) -> dict[str, Any]:
    """The rule planner over one split under the shipped policy; its report written to out_dir/split."""
    import yaml

    from core.settings import PlannerConfig
    from evals.report import write_suite_report
    from evals.runner import SuiteSetup, rules_factory, run_suite
    from evals.scenario import load_split

    scenarios = load_split(split)
    policy = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
    setup = SuiteSetup(
        yaml.safe_load(policy.read_text()), PlannerConfig().model_dump(), out_dir / split / "state", rules_factory
    )
    started = time.perf_counter()
    run = run_suite(scenarios, setup, repeat=repeat, label=f"rules-{split}", progress=False)
    wall = time.perf_counter() - started
    files = write_suite_report(run, out_dir / split)
    summary = run.summary()
    controls = {s.id for s in scenarios if s.control}
    failing = [r for r in run.results if not r.passed_all]
    return {
        "scenarios": summary["scenarios"],
        "controls": len(controls),
        "pass_hat": summary[f"pass_hat_{repeat}"],
        "pass_hat_1": summary["pass_hat_1"],
        "precision": summary["precision"],
        "recall": summary["recall"],
        "forbidden_rate": summary["forbidden_rate"],
        "forbidden_executed": summary["forbidden_executed"],
        "joint_overcommits": summary["joint_overcommits"],
        "policy_violations": summary["policy_violations"],
        "rules_known_wrong": sum(1 for r in run.results if r.rules_known_wrong),
        "failing": [r.scenario_id for r in failing],
        "failing_controls": [r.scenario_id for r in failing if r.scenario_id in controls],
        "by_category": {k: {"passed": ok, "scenarios": n} for k, (ok, n) in sorted(run.by_category().items())},
        "wall_s": round(wall, 2),
        "report": str(files.markdown),
    }


def run(out_dir: Path, repeat: int = REPEAT) -> dict[str, Any]:
    """Both splits; the result declares its comparisons (held-out next to tuned) for bench/REPORT.md."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    splits = {split: run_split(split, out_dir, repeat) for split in SPLIT_LABELS}
    tuned, heldout = splits["tuned"], splits["heldout"]
    comparisons = [
        {
            "title": title.replace("^k", f"^{repeat}"),
            "unit": unit,
            "values": {SPLIT_LABELS["heldout"]: heldout[key], SPLIT_LABELS["tuned"]: tuned[key]},
            "baseline": SPLIT_LABELS["tuned"],
            "better": better,
        }
        for key, title, unit, better in METRICS
    ]
    return {
        "repeat": repeat,
        "tuned": tuned,
        "heldout": heldout,
        "gap_pass_hat": round(tuned["pass_hat"] - heldout["pass_hat"], 4),
        "comparisons": comparisons,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scenarios", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("bench/out/scenarios"), help="report directory")
    parser.add_argument("--repeat", type=int, default=REPEAT, help=f"runs per scenario (default {REPEAT})")
    args = parser.parse_args(argv)
    result = run(args.out, args.repeat)
    k = result["repeat"]
    for split, label in SPLIT_LABELS.items():
        r = result[split]
        print(
            f"{label:9s} {r['scenarios']:4d} scenarios ({r['controls']} controls): pass^{k} {r['pass_hat']:.3f}, "
            f"precision {r['precision']:.3f}, recall {r['recall']:.3f}, forbidden rate {r['forbidden_rate']:.3f} "
            f"(executed {r['forbidden_executed']}), joint over-commits {r['joint_overcommits']}, "
            f"{len(r['failing'])} failing ({r['rules_known_wrong']} known wrong); report {r['report']}"
        )
    print(f"pass^{k} gap tuned - held-out: {result['gap_pass_hat']:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
