"""The simulator across seeds: medians and worst seeds, the agent's targets against the baselines, the report
files (sim.json/.md/.html and per-scenario figures) and `brainops eval sim` refusing an unknown scenario."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evals.sim_metrics import Timeline
from evals.sim_report import write_sim_report
from evals.sim_summary import Check, Spread, fmt, judge, spread, summarize_runs, targets_met

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@dataclass(frozen=True)
class Metrics:
    """The SimMetrics contract's fields the summary reads, with defaults that meet every target."""

    controller: str = "agent"
    seed: int = 1
    trace: str = "bursty"
    duration_s: float = 7200.0
    p95_wait_s: float = 100.0
    wait_s: dict[str, dict[str, float]] = field(default_factory=dict)
    worker_seconds: float = 1200.0
    idle_worker_seconds: float = 100.0
    compute_cost: float = 1.0
    llm_cost: float = 2.0
    scale_changes: int = 3
    flaps: int = 0
    reaction_ticks: float | None = 1.0
    lost_items: int = 0
    budget_overshoot_tokens: int = 0
    mean_backlog: float = 10.0
    host_overload_s: float = 0.0
    throttled_items: int = 0
    wall_s: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Result:
    metrics: Metrics
    timeline: Timeline


BASELINES: dict[str, dict[str, Any]] = {
    "hpa": {"p95_wait_s": 400.0, "worker_seconds": 1600.0, "scale_changes": 30},
    "fixed": {"p95_wait_s": 300.0, "worker_seconds": 2000.0, "scale_changes": 1},
}


def runs(scenario: str = "bursty", seeds: int = 3, **agent: Any) -> list[Metrics]:
    out = []
    for seed in range(1, seeds + 1):
        out.append(Metrics(seed=seed, trace=scenario, **agent))
        out += [Metrics(c, seed, scenario, **values) for c, values in BASELINES.items()]
    return out


def timeline(m: Metrics, step_s: float = 30.0) -> Timeline:
    steps = int(m.duration_s / step_s) + 1
    scale = {"agent": 1.0, "hpa": 2.5, "fixed": 1.5}[m.controller]
    tl = Timeline(t=[i * step_s for i in range(steps)])
    burst = [max(0.0, math.sin(i / 40.0 + m.seed)) for i in range(steps)]
    tl.backlog = {"extract": [round(800 * scale * b * b, 1) for b in burst], "embed": [0.0] * steps}
    tl.workers = {
        "extract": [1 + round(4 * b / scale) for b in burst],
        "wisdom": [1] * steps,
        "embed": [int(b > 0.9) for b in burst],
    }
    return tl


def results(*scenarios: str, seeds: int = 3) -> list[Result]:
    return [Result(m, timeline(m)) for s in scenarios for m in runs(s, seeds)]


# ---------------------------------------------------------------- summary


def test_median_and_worst_per_scenario_and_controller() -> None:
    data = runs(seeds=3)
    data[0] = replace(data[0], p95_wait_s=50.0, flaps=2)  # agent, seed 1
    data[3] = replace(data[3], p95_wait_s=500.0)  # agent, seed 2
    data[6] = replace(data[6], reaction_ticks=None)  # agent, seed 3: no load rise
    data.append(Metrics("agent", 1, "steady", reaction_ticks=None))

    summary = summarize_runs(data)

    assert list(summary) == ["bursty", "steady"]
    assert list(summary["bursty"]) == ["agent", "hpa", "fixed"]
    agent = summary["bursty"]["agent"]
    assert agent["p95_wait_s"] == Spread(median=100.0, worst=500.0, runs=3)
    assert agent["flaps"] == Spread(0.0, 2.0, 3)
    assert agent["reaction_ticks"] == Spread(1.0, 1.0, 2)  # the None is skipped
    assert summary["steady"]["agent"]["reaction_ticks"] == Spread(None, None, 0)
    assert spread([4, 1, 2, 3]) == Spread(2.5, 4.0, 4)


def test_every_target_met_by_a_good_agent() -> None:
    targets = judge(summarize_runs(runs()))

    assert [t.name for t in targets] == [
        "vs HPA",
        "vs fixed",
        "no flaps",
        "scale changes vs HPA",
        "reaction",
        "nothing lost",
        "budget kept",
    ]
    assert all(t.met for t in targets) and targets_met(targets) == (7, 7)
    verdicts = {t.name: t.verdict for t in targets}
    assert verdicts["vs HPA"] == (
        "p95 wait (extract) 100 s vs HPA 400 s (0.25x, target <= 0.5x); "
        "worker-seconds 1,200 vs HPA 1,600 (0.75x, target <= 1x): met"
    )
    assert verdicts["scale changes vs HPA"] == "scale changes 3 vs HPA 30 (0.10x, target <= 0.33x): met"
    assert verdicts["no flaps"] == "worst flaps 0 (target 0): met"
    assert verdicts["reaction"] == "worst reaction 1 tick (target <= 1 tick): met"


@pytest.mark.parametrize(
    ("agent", "failed"),
    [
        ({"p95_wait_s": 250.0}, {"vs HPA"}),  # 0.625x HPA's wait, still under fixed's
        ({"p95_wait_s": 350.0}, {"vs HPA", "vs fixed"}),
        ({"worker_seconds": 1500.0}, {"vs fixed"}),  # 0.75x fixed's, still under HPA's
        ({"worker_seconds": 1700.0}, {"vs HPA", "vs fixed"}),
        ({"scale_changes": 11}, {"scale changes vs HPA"}),
        ({"reaction_ticks": 2.0}, {"reaction"}),
        ({"lost_items": 1}, {"nothing lost"}),
        ({"budget_overshoot_tokens": 5}, {"budget kept"}),
    ],
)
def test_a_target_missed_on_the_medians(agent: dict[str, Any], failed: set[str]) -> None:
    targets = judge(summarize_runs(runs(**agent)))

    assert {t.name for t in targets if not t.met} == failed
    assert all(t.verdict.endswith(": not met") for t in targets if not t.met)


def test_worst_seed_targets_fail_on_one_bad_seed_while_medians_pass() -> None:
    data = runs(seeds=3)
    data[0] = replace(data[0], flaps=1, reaction_ticks=4.0, p95_wait_s=9000.0)  # one agent seed

    targets = {t.name: t for t in judge(summarize_runs(data))}

    assert not targets["no flaps"].met and targets["no flaps"].verdict == "worst flaps 1 (target 0): not met"
    assert not targets["reaction"].met
    assert targets["vs HPA"].met  # judged on the median p95 wait, which one seed does not move


def test_targets_without_their_baseline_or_values_are_left_out() -> None:
    only_agent = [Metrics(seed=s, reaction_ticks=None) for s in (1, 2)]

    names = [t.name for t in judge(summarize_runs(only_agent))]

    assert names == ["no flaps", "nothing lost", "budget kept"]


def test_check_ratios_and_number_text() -> None:
    both_zero = Check("p95_wait_s", "median", 0.0, 0.0, "hpa", 0.0, 0.5)
    assert both_zero.met and both_zero.ratio() is None and "(both 0, target <= 0.5x)" in both_zero.describe()
    assert not Check("p95_wait_s", "median", 3.0, 0.0, "hpa", 0.0, 0.5).met
    assert [fmt(212.4, "s"), fmt(1340, "s"), fmt(12.345, "$"), fmt(0.16), fmt(None)] == [
        "212 s",
        "1,340 s",
        "$12.3",
        "0.16",
        "-",
    ]


# ---------------------------------------------------------------- report files


def test_report_files_have_the_summary_targets_tables_and_figures(tmp_path: Path) -> None:
    made = results("bursty", "steady")

    files = write_sim_report(made, tmp_path, "test sim", timeline_stride=4)  # type: ignore[arg-type]

    data = json.loads(files.json.read_text())
    assert {"runs", "summary", "targets", "targets_met", "title"} <= set(data)
    assert len(data["runs"]) == 18 and set(data["runs"][0]) == {"metrics", "timeline"}
    assert len(data["runs"][0]["timeline"]["t"]) == len(made[0].timeline.t[::4])
    assert data["summary"]["bursty"]["hpa"]["p95_wait_s"] == {"median": 400.0, "worst": 400.0, "runs": 3}
    assert data["targets_met"] == {"met": 14, "total": 14}
    assert data["targets"][0]["verdict"].startswith("p95 wait (extract) 100 s vs HPA 400 s")

    md = files.markdown.read_text()
    assert "| metric | agent | HPA | fixed |" in md and "## bursty" in md and "## steady" in md
    assert "| p95 wait (extract), s | 100 (100) | 400 (400) | 300 (300) |" in md
    assert "- **met** · vs HPA: p95 wait (extract) 100 s vs HPA 400 s (0.25x, target <= 0.5x)" in md
    assert "- **met** · vs fixed: worker-seconds 1,200 vs fixed 2,000 (0.60x, target <= 0.7x)" in md
    verdicts = [line for line in md.splitlines() if line.startswith(("- **met** · ", "- **not met** · "))]
    assert len(verdicts) == sum(len(t["checks"]) for t in data["targets"]) == 18  # one per metric per target
    assert "**Targets met: 14/14**" in md and "Every target met." in md and "**7 of 7 targets met**" in md
    names = [p.name for p in files.plots]
    assert names == [f"sim_{s}_{w}.png" for s in ("bursty", "steady") for w in ("backlog", "workers")]
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in files.plots)
    page = files.html.read_text()
    header = '<th>metric</th><th class="num">agent</th><th class="num">HPA</th><th class="num">fixed</th>'
    assert header + '</tr></thead><tbody><tr><td>p95 wait (extract), s</td><td class="num">100 (100)</td>' in page
    assert "---" not in page  # the Markdown header rules are not rendered as rows
    assert '<tr><td>bursty</td><td class="center ok">met</td>' in page and '<img src="sim_steady_workers.png"' in page
    assert '<li class="ok"><b>met</b> · no flaps: worst flaps 0 (target 0)</li>' in page


def test_a_missed_target_is_marked_in_the_report(tmp_path: Path) -> None:
    made = [Result(m, timeline(m)) for m in runs(seeds=2, lost_items=3)]

    files = write_sim_report(made, tmp_path)  # type: ignore[arg-type]

    md = files.markdown.read_text()
    assert "- **not met** · nothing lost: worst lost items 3 (target 0)" in md
    assert "**not met**: bursty nothing lost." in md and "**6 of 7 targets met**" in md
    page = files.html.read_text()
    assert '<li class="bad"><b>not met</b> · nothing lost: worst lost items 3 (target 0)</li>' in page
    assert '<td class="center bad"><b>not met</b></td>' in page


# ---------------------------------------------------------------- CLI


def _one_line(output: str) -> str:
    """The CLI's error box as one line of text."""
    return " ".join(" ".join(line.strip(" │╭╮╰╯─").split()) for line in output.splitlines()).strip()


@pytest.mark.parametrize("value", ["weekly", "bursty,weekly"])
def test_cli_refuses_an_unknown_scenario_in_one_sentence(tmp_path: Path, value: str) -> None:
    from agent.cli.main import app
    from evals.sim_model import SCENARIOS

    done = CliRunner().invoke(app, ["eval", "sim", "--scenario", value, "--out", str(tmp_path / "o")])

    assert done.exit_code == 2
    text = _one_line(done.output)
    assert f"unknown scenario 'weekly'; choose from {', '.join(SCENARIOS)}" in text
    assert "Traceback" not in done.output and not (tmp_path / "o").exists()


def test_cli_help_names_every_scenario() -> None:
    from agent.cli.main import app
    from evals.sim_model import SCENARIOS

    done = CliRunner().invoke(app, ["eval", "sim", "--help"], env={"COLUMNS": "200"})

    assert all(name in done.output for name in SCENARIOS)


def test_cli_runs_two_scenarios_on_the_real_simulator(tmp_path: Path) -> None:
    from agent.cli.main import app

    args = ["eval", "sim", "--scenario", "steady", "--scenario", "step", "--seeds", "1-2", "--hours", "0.25"]
    done = CliRunner().invoke(app, [*args, "--controllers", "agent,hpa", "--workers", "2", "--out", str(tmp_path)])

    assert done.exit_code == 0, done.output
    data = json.loads((tmp_path / "sim.json").read_text())
    assert [(r["metrics"]["trace"], r["metrics"]["controller"], r["metrics"]["seed"]) for r in data["runs"]] == [
        (s, c, seed) for s in ("steady", "step") for c in ("agent", "hpa") for seed in (1, 2)
    ]
    assert set(data["summary"]) == {"steady", "step"} and set(data["summary"]["step"]) == {"agent", "hpa"}
    assert {t["name"] for t in data["targets"]} >= {"vs HPA", "no flaps"}
    assert not any(t["name"] == "vs fixed" for t in data["targets"])  # fixed did not run
    assert "targets met" in done.output
    figures = {f"sim_{s}_{w}.png" for s in ("steady", "step") for w in ("backlog", "workers")}
    assert {p.name for p in tmp_path.glob("*.png")} == figures


def test_seed_lists_take_ranges() -> None:
    from agent.cli.eval import _seed_list

    assert _seed_list("1-3,7,2") == [1, 2, 3, 7]


def test_bench_returns_the_summary_and_targets_the_bench_report_draws(tmp_path: Path) -> None:
    import sys

    from support.agent_rig import REPO

    if str(REPO) not in sys.path:  # bench/ is a folder of scripts at the repo root, not an installed package
        sys.path.insert(0, str(REPO))
    from bench.bench_simulator import run
    from bench.report import BenchOutcome, comparisons, write_report

    result = run(tmp_path / "sim", hours=0.25, seeds=1, scenarios=["step"], workers=1)

    assert result["runs"] == 3 and result["scenarios"] == ["step"] and result["wall_s"] > 0
    assert set(result["summary"]["step"]) == {"agent", "hpa", "fixed"}
    assert result["targets_met"]["total"] == len(result["targets"]) > 0
    assert (tmp_path / "sim" / "sim_step_backlog.png").exists()
    comps = comparisons("bench_simulator", json.loads(json.dumps(result)))
    assert [c.title for c in comps] == ["step: median p95 wait", "step: median worker-seconds"]
    assert all([label for label, _ in c.values] == ["agent", "hpa (baseline)", "fixed (baseline)"] for c in comps)
    outcome = BenchOutcome("bench_simulator", "ok", 1.0, result)
    report = write_report([outcome], tmp_path, tmp_path / "REPORT.md", quick=True, machine="test").read_text()
    assert f"Targets met: **{result['targets_met']['met']}/{len(result['targets'])}**" in report
    assert "| step | vs HPA |" in report and "[sim/sim.md](sim/sim.md)" in report
