"""Suite and replay reports: JSON for machines, Markdown and HTML for people, PNG plots (matplotlib, Agg,
drawn by evals/report_plots.py) next to them. The simulator's report is evals/sim_report.py; all render HTML
through evals/report_html.py.

Suite runs are compared from their JSON, so an old run file (another model, an older policy) is enough.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evals.report_html import ReportFiles, html_page
from evals.report_plots import plot_replay, suite_plots

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
    plots = suite_plots(data, other, out_dir)
    md = _suite_markdown(data, comparison, plots)
    md_path = out_dir / "report.md"
    md_path.write_text(md)
    html_path = out_dir / "report.html"
    html_path.write_text(html_page(f"brainops eval: {run.label}", md))
    return ReportFiles(json_path, md_path, html_path, tuple(plots))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text) or "run"


SECTIONS = (  # (heading, the figures under it)
    ("Actions", ("pass_by_category", "precision_recall")),
    ("Safety", ("forbidden", "approvals")),
    ("Cost and speed", ("tokens_cost", "latency")),
)


def _suite_markdown(data: Mapping[str, Any], comparison: Comparison | None, plots: Sequence[Path]) -> str:
    s = data["summary"]
    k = data["repeat"]
    headline = f"**pass^{k} = {s[f'pass_hat_{k}']:.3f}**" + (f", pass^1 = {s['pass_hat_1']:.3f}" if k != 1 else "")
    failing = [sc for sc in data["scenarios"] if not sc["passed_all"]]
    lines = [
        f"# brainops eval: {data['label']}",
        "",
        f"planner `{data['planner']}`, policy `{data['policy']}`, {s['scenarios']} scenarios x {k} run(s)",
        "",
        f"{headline}; {len(failing)} of {s['scenarios']} scenarios failing. Action precision {s['precision']:.3f}, "
        f"recall {s['recall']:.3f}; forbidden actions executed {s['forbidden_executed']}; approvals right "
        f"{s['approval_accuracy']:.3f}; {s['tokens_in'] + s['tokens_out']:,} tokens, ${s['cost']:.4f}; planner "
        f"latency p50 {s['latency_p50_s'] * 1000:.3g} ms, p95 {s['latency_p95_s'] * 1000:.3g} ms.",
        "",
        *[f"- **FAIL** {sc['scenario_id']} ({sc['category']}): {_cell(_first_failure(sc))}" for sc in failing],
        "",
        "| metric | value |",
        "|---|--:|",
        *[f"| {key} | {s[key]} |" for key in SUMMARY_KEYS],
    ]
    by_name = {p.stem: p for p in plots}
    for heading, names in SECTIONS:
        shown = [by_name.pop(n) for n in names if n in by_name]
        if shown:
            lines += ["", f"## {heading}", "", *[f"![{p.stem}]({p.name})" for p in shown]]
    lines += [f"![{p.stem}]({p.name})" for p in by_name.values()]  # any other figure, last
    if comparison is not None:
        lines += ["", *_comparison_markdown(comparison)]
    lines += [
        "",
        "## Scenarios",
        "",
        "| scenario | category | pass^k | runs passed | first failure | rule planner known wrong |",
        "|---|---|---|---|---|---|",
    ]
    for sc in data["scenarios"]:
        passed = sum(r["score"]["passed"] for r in sc["runs"])
        wrong = "yes" if sc["rules_known_wrong"] else ""
        mark = "pass" if sc["passed_all"] else "**FAIL**"
        lines.append(
            f"| {sc['scenario_id']} | {sc['category']} | {mark} | {passed}/{len(sc['runs'])} | "
            f"{_cell(_first_failure(sc))} | {wrong} |"
        )
    return "\n".join(lines) + "\n"


def _first_failure(sc: Mapping[str, Any]) -> str:
    return str(next((f for r in sc["runs"] for f in r["score"]["failures"]), ""))


def _comparison_markdown(c: Comparison) -> list[str]:
    lines = [
        f"## Comparison: {c.a_label} (this run) vs {c.b_label}",
        "",
        f"| metric | {c.a_label} | {c.b_label} |",
        "|---|--:|--:|",
    ]
    lines += [f"| {name} | {a} | {b} |" for name, a, b in c.metrics]
    lines += ["", "| scenario | this run | other run |", "|---|---|---|"]
    lines += [f"| {sid} | {_mark(a)} | {_mark(b)} |" for sid, a, b in c.changed]
    if not c.changed:
        lines.append("| (no scenario changed) | | |")
    return lines


def _mark(value: bool | None) -> str:
    return "absent" if value is None else ("pass" if value else "FAIL")


def _cell(text: str, most: int = 160) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:most]


# ---------------------------------------------------------------- replay report


def write_replay_report(data: Mapping[str, Any], out_dir: Path, *, planner: str, policy: str) -> ReportFiles:
    """replay.json (`ReplayReport.to_dict()`), replay.md, replay.html and replay.png into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "replay.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    plot = plot_replay(data, out_dir)
    md = _replay_markdown(data, planner, policy, plot)
    md_path = out_dir / "replay.md"
    md_path.write_text(md)
    html_path = out_dir / "replay.html"
    html_path.write_text(html_page("brainops eval replay", md))
    return ReportFiles(json_path, md_path, html_path, (plot,))


def decision_text(decision: Sequence[str]) -> str:
    """("scale_workers", '{"count": 3, "host": "w1"}', "allow") -> "scale_workers count=3 host=w1 (allow)"."""
    action, args, verdict = decision
    try:
        parsed = json.loads(args)
    except json.JSONDecodeError:
        parsed = args
    shown = " ".join(f"{k}={v}" for k, v in parsed.items()) if isinstance(parsed, dict) else str(parsed)
    return f"{action}{' ' + shown if shown else ''} ({verdict})"


REPLAY_ROWS = 200  # differing ticks listed in the Markdown (the JSON has them all)


def _replay_markdown(data: Mapping[str, Any], planner: str, policy: str, plot: Path) -> str:
    compared, differ, missing = data["compared"], data["differ"], data["missing_observations"]
    if not compared:
        verdict = "no recorded tick could be replayed"
    elif differ:
        verdict = f"**{differ} of {compared} replayed ticks decide differently**"
    else:
        verdict = f"all {compared} replayed ticks decide the same"
    lines = [
        "# brainops eval replay",
        "",
        f"planner `{planner}`, policy `{policy}`; {data['ticks']} ticks in the decision log.",
        "",
        f"{verdict}; {len(missing)} without an archived observation.",
        "",
        "| ticks | replayed | same | differ | no observation |",
        "|--:|--:|--:|--:|--:|",
        f"| {data['ticks']} | {compared} | {data['same']} | {differ} | {len(missing)} |",
        "",
        f"![{plot.stem}]({plot.name})",
        "",
        "## Ticks that decide differently",
        "",
        "| tick | recorded | replayed |",
        "|---|---|---|",
    ]
    for diff in data["diffs"][:REPLAY_ROWS]:
        recorded = "; ".join(decision_text(d) for d in diff["recorded"]) or "-"
        replayed = "; ".join(decision_text(d) for d in diff["replayed"]) or "-"
        lines.append(f"| {diff['tick_id']} | {_cell(recorded, 400)} | {_cell(replayed, 400)} |")
    if not data["diffs"]:
        lines.append("| (none) | | |")
    elif len(data["diffs"]) > REPLAY_ROWS:
        lines += ["", f"{len(data['diffs']) - REPLAY_ROWS} more in replay.json."]
    if missing:
        shown = ", ".join(missing[:50]) + (f" and {len(missing) - 50} more" if len(missing) > 50 else "")
        lines += ["", "## Ticks without an archived observation", "", shown]
    return "\n".join(lines) + "\n"
