"""The simulator's report: sim.json (every run, the summary across seeds, the targets), sim.md and sim.html
(the targets missed; per scenario one verdict line per metric against its target, met or not with the numbers,
and a median (worst) table of agent / hpa / fixed), and per scenario two figures: the extract backlog and the
workers over time, one panel per controller, the median over seeds as a line in a min-max band."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evals.report_html import ReportFiles, html_page, pyplot
from evals.sim_summary import (
    CONTEXT_METRICS,
    CONTROLLER_LABEL,
    METRICS,
    TARGET_NAMES,
    Spread,
    Summary,
    Target,
    fmt,
    judge,
    ordered_controllers,
    summarize_runs,
    summary_to_dict,
    targets_met,
)

if TYPE_CHECKING:
    from evals.sim_metrics import Timeline
    from evals.simulator import SimResult

PLOT_POINTS = 480  # a 24 h timeline has 2,880 samples; plots show at most this many buckets
COLORS = {"agent": "#1f77b4", "hpa": "#ff7f0e", "fixed": "#6e6e6e"}
WORKER_KINDS = ("extract", "wisdom", "embed")


def write_sim_report(
    results: Sequence[SimResult],
    out_dir: Path,
    title: str = "fleet simulation",
    timeline_stride: int = 1,
) -> ReportFiles:
    """sim.json/.md/.html and the PNGs into out_dir. `timeline_stride` keeps every n-th timeline sample in the
    JSON (a 20-seed, 6-scenario grid is hundreds of runs); the plots always use every sample."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize_runs([r.metrics for r in results])
    targets = judge(summary)
    met, total = targets_met(targets)
    payload = {
        "title": title,
        "timeline_stride": timeline_stride,
        "runs": [
            {"metrics": r.metrics.to_dict(), "timeline": _timeline_dict(r.timeline, timeline_stride)} for r in results
        ],
        "summary": summary_to_dict(summary),
        "targets": [t.to_dict() for t in targets],
        "targets_met": {"met": met, "total": total},
    }
    json_path = out_dir / "sim.json"
    json_path.write_text(json.dumps(payload) + "\n")
    plots: dict[str, tuple[Path, ...]] = {}
    for scenario, by_controller in summary.items():
        runs = [r for r in results if r.metrics.trace == scenario]
        plots[scenario] = tuple(_plot_band(runs, by_controller, scenario, w, out_dir) for w in ("backlog", "workers"))
    md = _sim_markdown(results, title, summary, targets, plots)
    md_path = out_dir / "sim.md"
    md_path.write_text(md)
    html_path = out_dir / "sim.html"
    html_path.write_text(html_page(title, md))
    return ReportFiles(json_path, md_path, html_path, tuple(p for pair in plots.values() for p in pair))


def _timeline_dict(timeline: Timeline, stride: int) -> dict[str, Any]:
    data = timeline.to_dict()
    if stride <= 1:
        return data
    samples = len(data.get("t", []))

    def thin(value: Any) -> Any:
        if isinstance(value, list) and len(value) == samples:
            return value[::stride]
        if isinstance(value, dict):
            return {k: thin(v) for k, v in value.items()}
        return value

    return {k: thin(v) for k, v in data.items()}


# ---------------------------------------------------------------- plots


def _series(result: SimResult, what: str) -> tuple[list[float], list[float]]:
    """(primary, secondary): extract backlog and nothing, or all workers and the extract workers."""
    tl = result.timeline
    if what == "backlog":
        return list(tl.backlog.get("extract", [])), []
    kinds = [tl.workers[k] for k in WORKER_KINDS if k in tl.workers] or list(tl.workers.values())
    total = [float(sum(values)) for values in zip(*kinds, strict=True)] if kinds else []
    return total, [float(v) for v in tl.workers.get("extract", [])]


def _bands(series: list[list[float]], points: int) -> tuple[Any, Any, Any, Any]:
    """Median, min and max across seeds per sample, then bucketed to at most `points`: the median averaged,
    the band's edges kept (min of the mins, max of the maxes) so a short peak still shows."""
    import numpy as np

    length = min(len(s) for s in series)
    stack = np.array([s[:length] for s in series], dtype=float)
    med, lo, hi = np.median(stack, axis=0), stack.min(axis=0), stack.max(axis=0)
    step = max(1, -(-length // points))
    starts = np.arange(0, length, step)
    counts = np.diff(np.append(starts, length))
    return (
        starts,
        np.add.reduceat(med, starts) / counts,
        np.minimum.reduceat(lo, starts),
        np.maximum.reduceat(hi, starts),
    )


def _plot_band(
    runs: Sequence[SimResult], summary: Mapping[str, Mapping[str, Spread]], scenario: str, what: str, out_dir: Path
) -> Path:
    plt = pyplot()
    by_controller: dict[str, list[SimResult]] = {}
    for r in runs:
        by_controller.setdefault(r.metrics.controller, []).append(r)
    controllers = ordered_controllers(by_controller)
    fig, axes = plt.subplots(
        1, len(controllers), figsize=(4.4 * len(controllers) + 0.6, 3.6), sharex=True, sharey=True, squeeze=False
    )
    seeds = max(len(v) for v in by_controller.values())
    hours_total = runs[0].metrics.duration_s / 3600.0
    faults = _faults(scenario, runs[0].metrics.duration_s)
    for ax, controller in zip(axes[0], controllers, strict=True):
        group = by_controller[controller]
        color = COLORS.get(controller, "#2ca02c")
        primary = [_series(r, what)[0] for r in group]
        t_all = group[0].timeline.t
        idx, med, lo, hi = _bands(primary, PLOT_POINTS)
        hours = [t_all[int(i)] / 3600.0 for i in idx]
        label = "all workers" if what == "workers" else "extract backlog"
        ax.fill_between(hours, lo, hi, color=color, alpha=0.22, linewidth=0, label=f"min-max, {len(group)} seeds")
        ax.plot(hours, med, color=color, linewidth=1.4, label=f"{label}: median")
        if what == "workers":
            _, ext, _, _ = _bands([_series(r, what)[1] for r in group], PLOT_POINTS)
            ax.plot(hours, ext, color="black", linewidth=0.9, linestyle="--", label="extract workers: median")
        for start, end, fault in faults:
            ax.axvspan(start, end, color="#d62728", alpha=0.08, linewidth=0, label=fault)
        ax.set_title(_panel_title(summary[controller], controller, what), fontsize=10)
        ax.set_xlabel("hours")
        ax.set_xlim(0, hours_total)
        ax.grid(alpha=0.3, linewidth=0.5)
        ax.legend(fontsize=7.5, loc="best")
    axes[0][0].set_ylabel("extract backlog (items)" if what == "backlog" else "workers running")
    axes[0][0].set_ylim(bottom=0)
    what_text = "extract backlog" if what == "backlog" else "workers (all kinds, and extract alone)"
    fig.suptitle(f"{scenario}: {what_text}, {hours_total:g} h, {seeds} seed(s) per controller", fontsize=11)
    fig.tight_layout(w_pad=2.5)  # room between panels: the last hour label of one, the first of the next
    path = out_dir / f"sim_{_slug(scenario)}_{what}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _faults(scenario: str, duration_s: float) -> list[tuple[float, float, str]]:
    """The scenario's fault windows in hours, to shade; none for a name evals.sim_model does not know."""
    from evals.sim_model import scenario_config

    try:
        cfg = scenario_config(scenario, 1, hours=duration_s / 3600.0)
    except ValueError:
        return []
    return [
        (f.start_s / 3600.0, f.end_s / 3600.0, f"{f.kind.replace('_', ' ')}{f' ({f.host})' if f.host else ''}")
        for f in cfg.faults
    ]


def _panel_title(spreads: Mapping[str, Spread], controller: str, what: str) -> str:
    value = spreads["p95_wait_s" if what == "backlog" else "worker_seconds"].median
    shown = f"median p95 wait {fmt(value, 's')}" if what == "backlog" else f"median {fmt(value)} worker-seconds"
    return f"{CONTROLLER_LABEL.get(controller, controller)}: {shown}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text) or "scenario"


# ---------------------------------------------------------------- markdown


def _seeds_text(seeds: Sequence[int]) -> str:
    ordered = sorted(set(seeds))
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]} ({len(ordered)})"
    return ", ".join(str(s) for s in ordered)


def _metric_table(by_controller: Mapping[str, Mapping[str, Any]]) -> list[str]:
    controllers = list(by_controller)
    lines = [
        "| metric | " + " | ".join(CONTROLLER_LABEL.get(c, c) for c in controllers) + " |",
        "|---|" + "--:|" * len(controllers),
    ]
    for spec in (*METRICS, *CONTEXT_METRICS):
        unit = "$" if spec.unit == "$" else ""  # other units go once, in the row's name
        cells = []
        for c in controllers:
            s = by_controller[c][spec.key]
            cells.append("-" if s.median is None else f"{fmt(s.median, unit)} ({fmt(s.worst, unit)})")
        if all(cell == "-" for cell in cells) and spec in CONTEXT_METRICS:
            continue
        name = f"{spec.label}, {spec.unit}" if spec.unit and not unit else spec.label
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def verdict_lines(targets: Sequence[Target]) -> list[str]:
    """One Markdown list item per metric a target checks, met or not, with the numbers: "- **met** · vs HPA:
    p95 wait (extract) 100 s vs HPA 400 s (0.25x, target <= 0.5x)"."""
    return [
        f"- **{'met' if check.met else 'not met'}** · {t.name}: {check.describe()}"
        for t in targets
        for check in t.checks
    ]


def _missed_line(targets: Sequence[Target]) -> str:
    missed = [t for t in targets if not t.met]
    if not targets:
        return "No target judged: the agent or its baselines did not run."
    if not missed:
        return "Every target met."
    return "**not met**: " + ", ".join(f"{t.scenario} {t.name}" for t in missed) + "."


def _mark(target: Target | None) -> str:
    return "n/a" if target is None else ("met" if target.met else "**not met**")


def _sim_markdown(
    results: Sequence[SimResult],
    title: str,
    summary: Summary,
    targets: Sequence[Target],
    plots: Mapping[str, Sequence[Path]],
) -> str:
    metrics = [r.metrics for r in results]
    controllers = ordered_controllers(m.controller for m in metrics)
    hours = sorted({m.duration_s / 3600.0 for m in metrics})
    met, total = targets_met(targets)
    lines = [
        f"# {title}",
        "",
        f"{len(metrics)} runs: scenarios {', '.join(summary)}; controllers {', '.join(controllers)}; "
        f"seeds {_seeds_text([m.seed for m in metrics])}; {', '.join(f'{h:g}' for h in hours)} h simulated each.",
        "",
        "Cells are **median (worst)** over the seeds; every metric but the share of actions verified is "
        "lower-is-better, so worst is the largest (for the verified share: the smallest). "
        "Targets compare the agent's medians with the baselines' medians of this same run; flaps, reaction, "
        "lost items and budget overshoot must hold on the worst seed. n/a: not judged (no baseline run, or a "
        "scenario without a load rise for reaction).",
        "",
        f"**Targets met: {met}/{total}**",
        "",
        _missed_line(targets),
        "",
    ]
    by_scenario = {(t.scenario, t.name): t for t in targets}
    lines += ["| scenario | " + " | ".join(TARGET_NAMES) + " |", "|---|" + ":-:|" * len(TARGET_NAMES)]
    for scenario in summary:
        marks = [_mark(by_scenario.get((scenario, name))) for name in TARGET_NAMES]
        lines.append(f"| {scenario} | " + " | ".join(marks) + " |")
    for scenario, by_controller in summary.items():
        mine = [t for t in targets if t.scenario == scenario]
        lines += ["", f"## {scenario}", ""]
        if mine:
            lines += [f"**{sum(t.met for t in mine)} of {len(mine)} targets met**", "", *verdict_lines(mine), ""]
        lines += [*_metric_table(by_controller), ""]
        for p in plots.get(scenario, ()):  # one figure a row: each is a panel per controller, wide
            lines += [f"![{p.stem}]({p.name})", ""]
    return "\n".join(lines) + "\n"
