"""Suite reports: JSON for machines, Markdown and HTML for people, PNG plots (matplotlib, Agg) next to them.
The simulator's report is evals/sim_report.py; both render HTML through evals/report_html.py.

Suite runs are compared from their JSON, so an old run file (another model, an older policy) is enough.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evals.report_html import ReportFiles, html_page, pyplot

if TYPE_CHECKING:
    from evals.runner import SuiteRun

SUMMARY_KEYS = (
    "pass_rate",
    "precision",
    "recall",
    "forbidden_rate",
    "forbidden_executed",
    "approval_accuracy",
    "verdict_accuracy",
    "policy_violations",
    "joint_overcommits",
    "tokens_in",
    "tokens_out",
    "cost",
    "latency_p50_s",
    "latency_p95_s",
)


# ---------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Comparison:
    a_label: str
    b_label: str
    metrics: tuple[tuple[str, Any, Any], ...]  # (name, a, b)
    changed: tuple[tuple[str, bool | None, bool | None], ...]  # scenarios whose pass^k differs

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a_label,
            "b": self.b_label,
            "metrics": [{"name": n, "a": a, "b": b} for n, a, b in self.metrics],
            "changed": [{"scenario": s, "a": a, "b": b} for s, a, b in self.changed],
        }


def load_run(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable eval run JSON ({exc})") from None
    if not isinstance(data, dict) or "scenarios" not in data or "summary" not in data:
        raise ValueError(f"{path}: not an eval run (no 'summary'/'scenarios'); pass a file written by brainops eval")
    return data


def compare_runs(a: Mapping[str, Any], b: Mapping[str, Any]) -> Comparison:
    """a = this run, b = the other; per-scenario pass^k (all runs passed) and the summary side by side."""
    metrics = tuple((k, a["summary"].get(k), b["summary"].get(k)) for k in ("scenarios", "runs", *SUMMARY_KEYS))
    passed_a = {s["scenario_id"]: s["passed_all"] for s in a["scenarios"]}
    passed_b = {s["scenario_id"]: s["passed_all"] for s in b["scenarios"]}
    changed = tuple(
        (sid, passed_a.get(sid), passed_b.get(sid))
        for sid in sorted(set(passed_a) | set(passed_b))
        if passed_a.get(sid) != passed_b.get(sid)
    )
    return Comparison(str(a.get("label")), str(b.get("label")), metrics, changed)


# ---------------------------------------------------------------- suite report


def write_suite_report(run: SuiteRun, out_dir: Path, other: Mapping[str, Any] | None = None) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = run.to_dict()
    comparison = compare_runs(data, other) if other is not None else None
    if comparison is not None:
        data["comparison"] = comparison.to_dict()
    json_path = out_dir / f"eval-{_slug(run.label)}.json"
    json_path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    plots = [_plot_categories(data, other, out_dir), _plot_latency(data, out_dir)]
    md = _suite_markdown(data, comparison, plots)
    md_path = out_dir / "report.md"
    md_path.write_text(md)
    html_path = out_dir / "report.html"
    html_path.write_text(html_page(f"brainops eval: {run.label}", md))
    return ReportFiles(json_path, md_path, html_path, tuple(plots))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text) or "run"


def _category_rates(data: Mapping[str, Any]) -> dict[str, float]:
    return {cat: ok / total for cat, (ok, total) in data["by_category"].items()}


def _plot_categories(data: Mapping[str, Any], other: Mapping[str, Any] | None, out_dir: Path) -> Path:
    plt = pyplot()
    rates = _category_rates(data)
    cats = sorted(set(rates) | (set(_category_rates(other)) if other else set()))
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.4 if other else 0.8
    xs = range(len(cats))
    ax.bar([x - (width / 2 if other else 0) for x in xs], [rates.get(c, 0) for c in cats], width, label=data["label"])
    if other:
        theirs = _category_rates(other)
        ax.bar([x + width / 2 for x in xs], [theirs.get(c, 0) for c in cats], width, label=str(other["label"]))
    ax.set_xticks(list(xs), cats, rotation=40, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"pass^{data['repeat']} (share of scenarios)")
    ax.legend()
    fig.tight_layout()
    path = out_dir / "pass_by_category.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_latency(data: Mapping[str, Any], out_dir: Path) -> Path:
    plt = pyplot()
    latencies = [r["latency_s"] * 1000 for s in data["scenarios"] for r in s["runs"]]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(latencies, bins=30)
    ax.set_xlabel("planner latency per tick (ms)")
    ax.set_ylabel("runs")
    fig.tight_layout()
    path = out_dir / "latency.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _suite_markdown(data: Mapping[str, Any], comparison: Comparison | None, plots: Sequence[Path]) -> str:
    s = data["summary"]
    k = data["repeat"]
    lines = [
        f"# brainops eval: {data['label']}",
        "",
        f"planner `{data['planner']}`, policy `{data['policy']}`, {s['scenarios']} scenarios x {k} run(s)",
        "",
        f"**pass^{k} = {s[f'pass_hat_{k}']:.3f}**, pass^1 = {s['pass_hat_1']:.3f}",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {key} | {s[key]} |" for key in SUMMARY_KEYS],
        "",
        *[f"![{p.stem}]({p.name})" for p in plots],
        "",
        "## Scenarios",
        "",
        "| scenario | category | pass^k | runs passed | first failure | rule planner known wrong |",
        "|---|---|---|---|---|---|",
    ]
    for sc in data["scenarios"]:
        passed = sum(r["score"]["passed"] for r in sc["runs"])
        failure = next((f for r in sc["runs"] for f in r["score"]["failures"]), "")
        wrong = "yes" if sc["rules_known_wrong"] else ""
        mark = "pass" if sc["passed_all"] else "**FAIL**"
        lines.append(
            f"| {sc['scenario_id']} | {sc['category']} | {mark} | {passed}/{len(sc['runs'])} | "
            f"{_cell(failure)} | {wrong} |"
        )
    if comparison is not None:
        lines += ["", *_comparison_markdown(comparison)]
    return "\n".join(lines) + "\n"


def _comparison_markdown(c: Comparison) -> list[str]:
    lines = [
        f"## Comparison: {c.a_label} (this run) vs {c.b_label}",
        "",
        f"| metric | {c.a_label} | {c.b_label} |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {a} | {b} |" for name, a, b in c.metrics]
    lines += ["", "| scenario | this run | other run |", "|---|---|---|"]
    lines += [f"| {sid} | {_mark(a)} | {_mark(b)} |" for sid, a, b in c.changed]
    if not c.changed:
        lines.append("| (no scenario changed) | | |")
    return lines


def _mark(value: bool | None) -> str:
    return "absent" if value is None else ("pass" if value else "FAIL")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:160]
