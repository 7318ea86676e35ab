"""The suite report's figures, drawn from run dicts (`SuiteRun.to_dict()` or a loaded eval-*.json), so a
comparison run read from disk is drawn beside this one: pass^k, action precision/recall, forbidden actions,
approval correctness, tokens and cost per category, and the planner latency histogram.

Every figure is per scenario category; with a second run its bars stand hatched beside this run's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.report_html import pyplot

Run = Mapping[str, Any]
Segment = tuple[str, str, Callable[[Mapping[str, Any]], float]]  # (label, colour, value of one run)
THIS, OTHER = "#1f77b4", "#ff7f0e"
DPI = 100


def suite_plots(data: Run, other: Run | None, out_dir: Path) -> list[Path]:
    """Every figure of the suite report, in the order the report shows them."""
    return [
        plot_pass(data, other, out_dir),
        plot_precision_recall(data, other, out_dir),
        plot_forbidden(data, other, out_dir),
        plot_approvals(data, other, out_dir),
        plot_tokens_cost(data, other, out_dir),
        plot_latency(data, other, out_dir),
    ]


# ---------------------------------------------------------------- per category


def _units_by_category(data: Run, over: str) -> dict[str, list[Mapping[str, Any]]]:
    """Category -> its runs (over="runs") or its scenarios (over="scenarios")."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for sc in data["scenarios"]:
        out.setdefault(sc["category"], []).extend(sc["runs"] if over == "runs" else [sc])
    return out


def _categories(data: Run, other: Run | None) -> list[str]:
    names = {sc["category"] for sc in data["scenarios"]}
    return sorted(names | ({sc["category"] for sc in other["scenarios"]} if other else set()))


def _score(key: str) -> Callable[[Mapping[str, Any]], float]:
    return lambda r: float(r["score"][key])


def _per_category(
    data: Run, cats: Sequence[str], value: Callable[[Mapping[str, Any]], float], mean: bool, over: str = "runs"
) -> list[float]:
    grouped = _units_by_category(data, over)
    out = []
    for cat in cats:
        values = [value(r) for r in grouped.get(cat, [])]
        out.append((sum(values) / len(values) if mean else sum(values)) if values else 0.0)
    return out


def _runs(data: Run, other: Run | None) -> list[Run]:
    return [data] if other is None else [data, other]


def _bars(
    ax: Any,
    cats: Sequence[str],
    runs: Sequence[Run],
    segments: Sequence[Segment],
    *,
    mean: bool = False,
    over: str = "runs",
) -> None:
    """Per category one bar per run, its segments stacked; the second run's bars hatched. The legend sits in
    headroom above the bars (shares: the axis runs past 1, its ticks stop there), never over them."""
    from matplotlib.patches import Patch

    width = 0.8 / len(runs)
    top = 0.0
    for j, run in enumerate(runs):
        xs = [x - 0.4 + width * (j + 0.5) for x in range(len(cats))]
        bottom = [0.0] * len(cats)
        for label, color, value in segments:
            heights = _per_category(run, cats, value, mean, over)
            ax.bar(xs, heights, width * 0.9, bottom=bottom, color=color, label=label if j == 0 else None)
            if j:
                ax.bar(xs, heights, width * 0.9, bottom=bottom, color="none", hatch="///", edgecolor="white", lw=0)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        top = max([top, *bottom])
    handles = list(ax.get_legend_handles_labels()[0])
    if len(runs) > 1:
        handles += [
            Patch(facecolor="#9a9a9a", label=str(runs[0]["label"])),
            Patch(facecolor="#9a9a9a", hatch="///", edgecolor="white", label=f"{runs[1]['label']} (hatched)"),
        ]
    ncol = min(len(handles), 3) or 1
    rows = -(-len(handles) // ncol)
    scale = 1.0 if mean or top <= 0 else top
    ax.set_ylim(0, scale * (1.06 + 0.14 * rows))
    if mean:
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    if handles:
        ax.legend(handles=handles, loc="upper center", ncol=ncol, fontsize=8, frameon=False)
    ax.set_xticks(list(range(len(cats))), cats, rotation=35, ha="right", fontsize=8)
    ax.grid(axis="y", alpha=0.3, linewidth=0.5)
    ax.set_axisbelow(True)


def _note_if_empty(ax: Any, values: Sequence[float], text: str) -> None:
    if not any(values):
        ax.text(0.5, 0.4, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="#555555")


def _save(fig: Any, out_dir: Path, name: str) -> Path:
    path = out_dir / name
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    pyplot().close(fig)
    return path


def _total(data: Run, key: str, section: str = "score") -> float:
    return float(sum(r[section][key] for sc in data["scenarios"] for r in sc["runs"]))


def _count(data: Run) -> int:
    return sum(len(sc["runs"]) for sc in data["scenarios"])


# ---------------------------------------------------------------- the figures


def plot_pass(data: Run, other: Run | None, out_dir: Path) -> Path:
    plt = pyplot()
    cats = _categories(data, other)
    k = data["repeat"]
    fig, ax = plt.subplots(figsize=(7.6, 3.8))
    passed: Segment = (f"pass^{k}" if other else "", THIS, lambda sc: float(sc["passed_all"]))
    _bars(ax, cats, _runs(data, other), [passed], mean=True, over="scenarios")
    ax.set_ylabel(f"pass^{k} (share of scenarios)")
    ax.set_title(f"pass^{k} per category: {data['summary'][f'pass_hat_{k}']:.3f} overall", fontsize=10)
    return _save(fig, out_dir, "pass_by_category.png")


def plot_precision_recall(data: Run, other: Run | None, out_dir: Path) -> Path:
    plt = pyplot()
    cats = _categories(data, other)
    runs = _runs(data, other)
    fig, axes = plt.subplots(2, 1, figsize=(7.6, 5.6), sharex=True)
    for ax, key, color in zip(axes, ("precision", "recall"), ("#1f77b4", "#2ca02c"), strict=True):
        _bars(ax, cats, runs, [("", color, _score(key))], mean=True)
        ax.set_ylabel(f"action {key}")
        ax.set_title(
            f"action {key} per category: mean {data['summary'][key]:.3f} over {_count(data)} runs", fontsize=10
        )
    axes[0].tick_params(labelbottom=False)
    return _save(fig, out_dir, "precision_recall.png")


def plot_forbidden(data: Run, other: Run | None, out_dir: Path) -> Path:
    plt = pyplot()
    cats = _categories(data, other)
    runs = _runs(data, other)
    fig, axes = plt.subplots(2, 1, figsize=(7.6, 5.6), sharex=True)
    forbidden: list[Segment] = [
        ("forbidden, not executed", "#ff9f40", lambda r: r["score"]["forbidden"] - r["score"]["forbidden_executed"]),
        ("forbidden, executed", "#d62728", lambda r: r["score"]["forbidden_executed"]),
    ]
    _bars(axes[0], cats, runs, forbidden)
    proposed, executed = _total(data, "forbidden"), _total(data, "forbidden_executed")
    axes[0].set_title(f"forbidden actions proposed: {proposed:g}, executed: {executed:g}", fontsize=10)
    axes[0].set_ylabel("proposals")
    _note_if_empty(axes[0], [_total(r, "forbidden") for r in runs], "none proposed")
    denied: list[Segment] = [("denied by policy", "#7f7f7f", lambda r: r["score"]["policy_violations"])]
    _bars(axes[1], cats, runs, denied)
    axes[1].set_title(f"policy-violating proposals (denied): {_total(data, 'policy_violations'):g}", fontsize=10)
    axes[1].set_ylabel("proposals")
    _note_if_empty(axes[1], [_total(r, "policy_violations") for r in runs], "none")
    for ax in axes:
        ax.yaxis.get_major_locator().set_params(integer=True)
    return _save(fig, out_dir, "forbidden.png")


def plot_approvals(data: Run, other: Run | None, out_dir: Path) -> Path:
    plt = pyplot()
    cats = _categories(data, other)
    fig, ax = plt.subplots(figsize=(7.6, 3.8))

    def case(asked: bool, ok: bool) -> Callable[[Mapping[str, Any]], float]:
        return lambda r: float(r["score"]["approval_requested"] == asked and r["score"]["approval_ok"] == ok)

    segments: list[Segment] = [
        ("asked, as expected", "#2ca02c", case(True, True)),
        ("not asked, as expected", "#98df8a", case(False, True)),
        ("asked, not expected", "#ff9896", case(True, False)),
        ("not asked, but required", "#d62728", case(False, False)),
    ]
    _bars(ax, cats, _runs(data, other), segments)
    ax.set_ylabel("runs")
    wrong = _count(data) - _total(data, "approval_ok")
    ax.set_title(
        f"approval correctness: {data['summary']['approval_accuracy']:.3f} ({wrong:g} of {_count(data)} runs wrong)",
        fontsize=10,
    )
    ax.yaxis.get_major_locator().set_params(integer=True)
    return _save(fig, out_dir, "approvals.png")


def plot_tokens_cost(data: Run, other: Run | None, out_dir: Path) -> Path:
    """Tokens in and out, and dollars, per category; one line of text when neither run called a model."""
    plt = pyplot()
    cats = _categories(data, other)
    runs = _runs(data, other)
    s = data["summary"]
    spent = sum(float(r["summary"][k] or 0) for r in runs for k in ("tokens_in", "tokens_out", "cost"))
    if not spent:
        fig, ax = plt.subplots(figsize=(7.6, 1.6))
        planners = " and ".join(f"{r['label']} ({r['planner']} planner)" for r in runs)
        ax.text(0.5, 0.5, f"no model calls: {planners} spent 0 tokens, \\$0", ha="center", va="center", fontsize=11)
        ax.set_axis_off()
        ax.set_title(f"tokens and cost over {_count(data)} runs", fontsize=10)
        return _save(fig, out_dir, "tokens_cost.png")
    fig, axes = plt.subplots(2, 1, figsize=(7.6, 5.6), sharex=True)
    tokens: list[Segment] = [
        ("tokens in", "#9467bd", lambda r: r["planner"]["tokens_in"]),
        ("tokens out", "#c5b0d5", lambda r: r["planner"]["tokens_out"]),
    ]
    _bars(axes[0], cats, runs, tokens)
    axes[0].set_title(f"tokens: {s['tokens_in']:,} in, {s['tokens_out']:,} out over {_count(data)} runs", fontsize=10)
    axes[0].set_ylabel("tokens")
    _bars(axes[1], cats, runs, [("", "#8c564b", lambda r: r["planner"]["cost"])])
    axes[1].set_title(
        f"model cost: \\${s['cost']:.4f} in all, \\${s['cost'] / max(1, _count(data)):.5f} a run", fontsize=10
    )
    axes[1].set_ylabel("\\$")  # escaped: a bare $ starts matplotlib mathtext
    axes[0].tick_params(labelbottom=False)
    return _save(fig, out_dir, "tokens_cost.png")


# ---------------------------------------------------------------- latency


def _latencies_ms(data: Run) -> list[float]:
    return [float(r["latency_s"]) * 1000.0 for sc in data["scenarios"] for r in sc["runs"]]


def latency_bins(ms: Sequence[float], most: int = 40) -> tuple[list[float], bool]:
    """Bin edges in ms for a latency histogram and whether the axis is logarithmic: log-spaced bins when the
    values span more than 20x (a model call next to sub-millisecond rule ticks), else about sqrt(n) equal
    bins over the values' own range, so sub-millisecond ticks never all fall into one bin at 0."""
    floor = 1e-3  # 1 us: a latency rounded to 0 still has a place on a log axis
    values = [max(floor, v) for v in ms] or [floor]
    lo, hi = min(values), max(values)
    if hi <= lo * 1.0001:
        return [lo * 0.95, lo * 1.05], False
    n = max(8, min(most, round(math.sqrt(len(values)) * 1.5)))
    if hi / lo > 20:
        steps = max(n, min(most, math.ceil(math.log10(hi / lo) * 10)))
        a, b = math.log10(lo / 1.05), math.log10(hi * 1.05)
        return [10 ** (a + (b - a) * i / steps) for i in range(steps + 1)], True
    pad = (hi - lo) * 0.02
    return [lo - pad + (hi - lo + 2 * pad) * i / n for i in range(n + 1)], False


def histogram(ms: Sequence[float], edges: Sequence[float]) -> list[int]:
    import numpy as np

    counts, _ = np.histogram([max(1e-3, v) for v in ms], bins=list(edges))
    return [int(c) for c in counts]


def plot_latency(data: Run, other: Run | None, out_dir: Path) -> Path:
    plt = pyplot()
    mine = _latencies_ms(data)
    theirs = _latencies_ms(other) if other is not None else []
    edges, log = latency_bins(mine + theirs)
    fig, ax = plt.subplots(figsize=(7.6, 3.4))
    ax.hist([max(1e-3, v) for v in mine], bins=edges, color=THIS, alpha=0.85, label=str(data["label"]))
    if other is not None:
        ax.hist(
            [max(1e-3, v) for v in theirs],
            bins=edges,
            histtype="step",
            color=OTHER,
            linewidth=1.6,
            label=str(other["label"]),
        )
    if log:
        ax.set_xscale("log")
    for q, style in ((50, "--"), (95, ":")):  # the summary's own percentiles, so figure and table agree
        value = float(data["summary"].get(f"latency_p{q}_s") or 0.0) * 1000.0
        ax.axvline(max(1e-3, value), color="black", linestyle=style, linewidth=1, label=f"p{q} {_ms(value)}")
    ax.set_xlabel("planner latency per tick (ms" + (", log scale)" if log else ")"))
    ax.set_ylabel("runs")
    ax.set_title(
        f"planner latency: {len(mine)} runs, {_ms(min(mine, default=0))} to {_ms(max(mine, default=0))}", fontsize=10
    )
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3, linewidth=0.5)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, out_dir, "latency.png")


def _ms(value: float) -> str:
    return f"{value:.3g} ms" if value < 1000 else f"{value / 1000:.3g} s"


# ---------------------------------------------------------------- replay


def plot_replay(data: Mapping[str, Any], out_dir: Path) -> Path:
    """Left: the replayed ticks, same / differ / no observation. Right: in the ticks that differ, how often
    each action (with its verdict) was recorded and how often the replay decided it."""
    from collections import Counter

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1, 2]})
    parts = (
        ("same", data["same"], "#2ca02c"),
        ("differ", data["differ"], "#d62728"),
        ("no observation", len(data["missing_observations"]), "#7f7f7f"),
    )
    left.bar([p[0] for p in parts], [p[1] for p in parts], color=[p[2] for p in parts])
    for x, (_, count, _) in enumerate(parts):
        left.annotate(f"{count}", (x, count), ha="center", va="bottom", fontsize=9)
    left.set_title(f"{data['ticks']} recorded ticks", fontsize=10)
    left.set_ylabel("ticks")
    left.yaxis.get_major_locator().set_params(integer=True)
    recorded = Counter(f"{d[0]} ({d[2]})" for diff in data["diffs"] for d in diff["recorded"])
    replayed = Counter(f"{d[0]} ({d[2]})" for diff in data["diffs"] for d in diff["replayed"])
    keys = sorted(set(recorded) | set(replayed))
    if keys:
        xs = range(len(keys))
        right.bar([x - 0.18 for x in xs], [recorded[k] for k in keys], 0.34, color=THIS, label="recorded")
        right.bar([x + 0.18 for x in xs], [replayed[k] for k in keys], 0.34, color=OTHER, label="replayed")
        right.set_xticks(
            list(xs), keys, rotation=25 if len(keys) > 3 else 0, ha="right" if len(keys) > 3 else "center", fontsize=8
        )
        right.set_xlim(-0.5 - 0.5 * (len(keys) < 3), len(keys) - 0.5 + 0.5 * (len(keys) < 3))
        right.set_ylabel("decisions")
        right.legend(fontsize=8)
        right.yaxis.get_major_locator().set_params(integer=True)
    else:
        right.text(0.5, 0.5, "no tick decided differently", transform=right.transAxes, ha="center", fontsize=11)
        right.set_xticks([])
        right.set_yticks([])
    right.set_title("decisions in the ticks that differ: action (verdict)", fontsize=10)
    for ax in (left, right):
        ax.grid(axis="y", alpha=0.3, linewidth=0.5)
        ax.set_axisbelow(True)
    return _save(fig, out_dir, "replay.png")
