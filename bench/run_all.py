"""`make bench`: run every bench/bench_*.py `run(out_dir)`, each in its own process, then write bench/REPORT.md.

    python -m bench.run_all [--only NAME ...] [--quick] [--out DIR] [--report FILE] [--timeout S]

Each benchmark runs in a child process (torch thread counts, model caches and sshd fleets do not leak from
one into the next); its console output goes to <out>/logs/NAME.log, its returned dict to
<out>/results/NAME.json. A failing or timed-out benchmark is reported as such and the others still run.
--quick passes smaller sizes to the benchmarks that take them (QUICK_ARGS, or a `quick` parameter).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.report import BenchOutcome, load_outcomes, write_report

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
QUICK_ARGS: dict[str, dict[str, Any]] = {
    "bench_observe": {"repeats": 1},
    "bench_stats": {"repeats": 5},
    "bench_simulator": {"hours": 6.0, "seeds": 3},
}
DEFAULT_TIMEOUT_S = 900.0
# Full-size benchmarks that need longer than that on a small machine, when --timeout is not given: the simulator
# grid is 360 runs of ~20 s (agent) spread over the CPUs, ~3 min on 16 cores but ~25 min on 2.
TIMEOUT_S: dict[str, float] = {
    "bench_simulator": 3600.0,
    "bench_ray": 1800.0,  # 2 rounds x 2 sides
    "bench_index": 1800.0,  # 200K rows, build included
}
CHILD_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def discover(bench_dir: Path = BENCH_DIR) -> list[str]:
    return sorted(p.stem for p in bench_dir.glob("bench_*.py"))


def select(names: list[str], only: list[str] | None) -> list[str]:
    """The benchmarks to run; --only accepts `embed` or `bench_embed`. Unknown names are an error."""
    if not only:
        return names
    wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in only]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(names) or 'none'}")
    return [n for n in names if n in wanted]


def run_kwargs(run: Any, name: str, quick: bool) -> dict[str, Any]:
    """Keyword arguments for `run` in quick mode, keeping only the ones its signature accepts."""
    if not quick:
        return {}
    params = inspect.signature(run).parameters
    wanted = {**QUICK_ARGS.get(name, {}), "quick": True}
    return {k: v for k, v in wanted.items() if k in params}


def child(name: str, out_dir: Path, quick: bool, bench_dir: Path = BENCH_DIR) -> int:
    """In the child process: run one benchmark and store what it returned."""
    sys.path.insert(0, str(bench_dir.parent))
    module = importlib.import_module(f"{bench_dir.name}.{name}")
    result = module.run(out_dir, **run_kwargs(module.run, name, quick))
    results = out_dir / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
    return 0


def first_doc_line(name: str, bench_dir: Path = BENCH_DIR) -> str:
    path = bench_dir / f"{name}.py"
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def run_one(name: str, out_dir: Path, quick: bool, timeout_s: float, bench_dir: Path = BENCH_DIR) -> BenchOutcome:
    """The benchmark in a child process, bounded by timeout_s; its output in <out>/logs/NAME.log."""
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result_file = out_dir / "results" / f"{name}.json"
    result_file.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "bench.run_all",
        "--child",
        name,
        "--out",
        str(out_dir),
        "--bench-dir",
        str(bench_dir),
    ]
    argv += ["--quick"] * quick
    env = {**os.environ, **CHILD_ENV, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    doc = first_doc_line(name, bench_dir)
    with (logs / f"{name}.log").open("w") as log:
        try:
            proc = subprocess.run(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            seconds = time.monotonic() - started
            return BenchOutcome(name, "failed", seconds, error=f"timed out after {timeout_s:g} s", doc=doc)
    seconds = time.monotonic() - started
    if proc.returncode != 0 or not result_file.exists():
        tail = (logs / f"{name}.log").read_text(errors="replace").strip().splitlines()[-3:]
        return BenchOutcome(name, "failed", seconds, error=f"exit {proc.returncode}: {' | '.join(tail)}", doc=doc)
    result = json.loads(result_file.read_text())
    if not isinstance(result, dict):
        result = {"value": result}
    if "skipped" in result:
        return BenchOutcome(name, "skipped", seconds, result, doc=doc)
    return BenchOutcome(name, "ok", seconds, result, doc=doc)


def with_earlier_outcomes(fresh: list[BenchOutcome], out_dir: Path) -> list[BenchOutcome]:
    """`--only` re-measures some benchmarks; the report keeps the others' last results rather than dropping them."""
    try:
        earlier = load_outcomes(out_dir)
    except (OSError, ValueError, KeyError):
        return fresh
    by_name = {o.name: o for o in fresh}
    kept = [by_name.pop(o.name, o) for o in earlier]
    return kept + list(by_name.values())


def machine_line() -> str:
    import shutil

    device = "NVIDIA GPU (nvidia-smi present)" if shutil.which("nvidia-smi") else "CPU only"  # torch import is slow
    return f"{platform.machine()} {os.cpu_count()} cores, {device}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="run only this benchmark (repeatable): embed, bench_stats, ...")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a fast check")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out", help="result directory (default bench/out)")
    parser.add_argument("--report", type=Path, default=BENCH_DIR / "REPORT.md", help="report file")
    timeouts = ", ".join(f"{k} {v:g}" for k, v in TIMEOUT_S.items())
    help_timeout = f"seconds per benchmark before it is killed (default {DEFAULT_TIMEOUT_S:g}; full size: {timeouts})"
    parser.add_argument("--timeout", type=float, help=help_timeout)
    parser.add_argument("--bench-dir", type=Path, default=BENCH_DIR, help="package holding bench_*.py modules")
    parser.add_argument("--report-only", action="store_true", help="re-render the report from the last run's results")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out_dir, bench_dir = args.out.resolve(), args.bench_dir.resolve()
    if args.child:
        return child(args.child, out_dir, args.quick, bench_dir)
    if args.report_only:
        outcomes = load_outcomes(out_dir)
        print(
            f"wrote {write_report(outcomes, out_dir, args.report.resolve(), quick=args.quick, machine=machine_line())}"
        )
        return 0
    names = select(discover(bench_dir), args.only)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    outcomes = []
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, TimeElapsedColumn()) as progress:
        task = progress.add_task("benchmarks", total=len(names))
        for name in names:
            progress.update(task, description=f"{name} (log: {out_dir / 'logs' / name}.log)")
            timeout = args.timeout or (DEFAULT_TIMEOUT_S if args.quick else TIMEOUT_S.get(name, DEFAULT_TIMEOUT_S))
            outcome = run_one(name, out_dir, args.quick, timeout, bench_dir)
            outcomes.append(outcome)
            progress.console.print(f"{name}: {outcome.status} in {outcome.seconds:.1f} s {outcome.error}")
            progress.advance(task)
    shown = with_earlier_outcomes(outcomes, out_dir) if args.only else outcomes
    report = write_report(shown, out_dir, args.report.resolve(), quick=args.quick, machine=machine_line())
    print(f"wrote {report}")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
