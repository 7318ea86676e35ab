"""`make bench`: every benchmark runs in its own process, failures do not stop the rest, REPORT.md shows figures."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.agent_rig import REPO

if str(REPO) not in sys.path:  # bench/ is a folder of scripts at the repo root, not an installed package
    sys.path.insert(0, str(REPO))

from bench.report import BenchOutcome, Comparison, comparisons, write_report
from bench.run_all import discover, run_kwargs, select

FAKE_BENCHES = {
    "bench_declared": '''
        """Declares its own figure: a candidate next to a baseline."""
        import json
        def run(out_dir, quick=False):
            out_dir.mkdir(parents=True, exist_ok=True)
            result = {"quick": quick, "comparisons": [{"title": "latency", "unit": "ms",
                      "values": {"new": 2.0, "old (baseline)": 8.0}, "baseline": "old (baseline)"}]}
            (out_dir / "bench_declared.json").write_text(json.dumps(result))
            return result
    ''',
    "bench_crash": '''
        """Always fails."""
        def run(out_dir):
            raise RuntimeError("disk on fire")
    ''',
    "bench_skip": '''
        """Skips itself."""
        def run(out_dir):
            return {"skipped": "needs a GPU"}
    ''',
}


@pytest.fixture
def fake_bench_dir(tmp_path: Path) -> Path:
    package = tmp_path / "fakebench"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, source in FAKE_BENCHES.items():
        (package / f"{name}.py").write_text(textwrap.dedent(source))
    return package


@pytest.mark.slow
def test_run_all_isolates_failures_and_writes_the_report(fake_bench_dir: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out", tmp_path / "REPORT.md"
    argv = ["--bench-dir", str(fake_bench_dir), "--out", str(out), "--report", str(report), "--quick"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run_all", *argv], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one benchmark failed
    summary = {row["name"]: row for row in json.loads((out / "run_all.json").read_text())}
    assert summary["bench_crash"]["status"] == "failed" and "disk on fire" in summary["bench_crash"]["error"]
    assert summary["bench_skip"]["status"] == "skipped"
    assert summary["bench_declared"]["status"] == "ok" and summary["bench_declared"]["result"]["quick"] is True
    text = report.read_text()
    assert "![bench_declared](out/fig_bench_declared.png)" in text
    assert (out / "fig_bench_declared.png").stat().st_size > 1000
    assert "| latency | new: 2 ms | old (baseline): 8 ms | 4.00x better |" in text
    assert "**FAILED**" in text and "needs a GPU" in text
    assert "disk on fire" in (out / "logs" / "bench_crash.log").read_text()
    report.unlink()
    again = subprocess.run(
        [sys.executable, "-m", "bench.run_all", *argv, "--report-only"], cwd=REPO, capture_output=True, timeout=120
    )
    assert again.returncode == 0 and "4.00x better" in report.read_text()  # re-rendered without re-running

    only = subprocess.run(
        [sys.executable, "-m", "bench.run_all", *argv, "--only", "skip"], cwd=REPO, capture_output=True, timeout=120
    )
    assert only.returncode == 0, only.stderr
    kept = [row["name"] for row in json.loads((out / "run_all.json").read_text())]
    assert sorted(kept) == ["bench_crash", "bench_declared", "bench_skip"]  # --only re-measures, keeps the rest
    assert "4.00x better" in report.read_text()


def test_only_selects_by_short_or_full_name_and_rejects_unknown(fake_bench_dir: Path) -> None:
    names = discover(fake_bench_dir)
    assert names == ["bench_crash", "bench_declared", "bench_skip"]
    assert select(names, ["skip", "bench_crash"]) == ["bench_crash", "bench_skip"]
    with pytest.raises(SystemExit, match=r"unknown benchmark.*bench_nope"):
        select(names, ["nope"])
    assert {"bench_embed", "bench_observe", "bench_simulator"} <= set(discover())


def test_quick_arguments_follow_each_run_signature() -> None:
    def observe(out_dir: Path, repeats: int = 3) -> dict[str, object]:
        return {}

    def dedup(out_dir: Path, quick: bool = False) -> dict[str, object]:
        return {}

    assert run_kwargs(observe, "bench_observe", quick=True) == {"repeats": 1}
    assert run_kwargs(dedup, "bench_dedup", quick=True) == {"quick": True}
    assert run_kwargs(dedup, "bench_dedup", quick=False) == {}


@pytest.mark.slow
def test_real_simulator_result_is_drawn_next_to_its_baselines(tmp_path: Path) -> None:
    from bench.bench_simulator import run

    result = run(tmp_path / "sim", hours=1.0, seeds=1, scenarios=["bursty", "steady"], workers=1)
    comps = comparisons("bench_simulator", result)
    assert comps and all(c.baseline == "hpa (baseline)" for c in comps)
    assert all([label for label, _ in c.values][:2] == ["agent", "hpa (baseline)"] for c in comps)
    outcome = BenchOutcome("bench_simulator", "ok", 1.0, result)
    report = write_report([outcome], tmp_path / "out", tmp_path / "REPORT.md", quick=True, machine="test")
    assert "![bench_simulator](out/fig_bench_simulator.png)" in report.read_text()
    assert (tmp_path / "out" / "fig_bench_simulator.png").exists()


def test_ratio_is_oriented_so_above_one_means_better() -> None:
    faster = Comparison("t", "s", (("new", 1.0), ("old", 4.0)), "old", "lower")
    slower_throughput = Comparison("r", "1/s", (("new", 50.0), ("old", 100.0)), "old", "higher")
    assert faster.ratio() == 4.0
    assert slower_throughput.ratio() == 0.5
    assert Comparison("x", "s", (("only", 1.0),)).ratio() is None


def test_unknown_shape_gets_a_number_table_not_a_crash(tmp_path: Path) -> None:
    outcome = BenchOutcome("bench_new", "ok", 2.0, {"bench": "new", "inner": {"seconds": 1.5, "ok": True}})
    text = write_report([outcome], tmp_path, tmp_path / "REPORT.md", quick=False, machine="test").read_text()
    assert "| inner.seconds | 1.5 |" in text and "No figure" in text
