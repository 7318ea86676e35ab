"""bench/REPORT.md from the results of one `make bench` run: per benchmark a figure, its baseline beside it.

A benchmark's result dict is turned into `Comparison`s: bars of the candidate next to the baseline measured
in the same run (fp32 next to the chosen dtype, serial next to parallel, HPA and fixed workers next to the
agent). A new benchmark gets figures without touching this file by returning
`"comparisons": [{"title", "unit", "values": {label: number}, "baseline": label, "better": "lower"|"higher"}]`;
the known ones are adapted below. Plots are matplotlib (Agg) PNGs under bench/out/, linked relatively.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Better = Literal["lower", "higher"]


@dataclass(frozen=True)
class Comparison:
    title: str
    unit: str
    values: tuple[tuple[str, float], ...]  # (label, value); the candidate first
    baseline: str | None = None  # label of the baseline among values; None = no baseline measured
    better: Better = "lower"

    def ratio(self) -> float | None:
        """Candidate over baseline, oriented so that > 1 means the candidate is better."""
        if self.baseline is None:
            return None
        values = dict(self.values)
        candidate, base = self.values[0][1], values.get(self.baseline)
        if base is None or candidate <= 0 or base <= 0:
            return None
        return base / candidate if self.better == "lower" else candidate / base


@dataclass(frozen=True)
class BenchOutcome:
    name: str
    status: Literal["ok", "skipped", "failed"]
    seconds: float
    result: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""
    doc: str = ""


# ---------------------------------------------------------------- adapters: result dict -> comparisons


def _embed(r: Mapping[str, Any]) -> list[Comparison]:
    chosen = r["chosen"]
    label = f"brainops ({chosen.get('device', '?')} {chosen.get('dtype', '?')}, {chosen.get('backend', '?')})"
    base = "fp32 sentence-transformers (baseline)"
    out = []
    for key, title in (("sentences_per_s", "embedding: sentences/s"), ("names_per_s", "embedding: names/s")):
        values = [(label, chosen[key])]
        if "bf16_sentence_transformers" in r:
            values.append(("bf16 sentence-transformers", r["bf16_sentence_transformers"][key]))
        if "chosen_1_thread" in r:
            values.append(("brainops, 1 thread", r["chosen_1_thread"][key]))
        values.append((base, r["fp32"][key]))
        out.append(Comparison(title, "items/s", tuple(values), base, "higher"))
    load = r.get("load_s_in_a_fresh_process")
    if load:
        st = "sentence-transformers (baseline)"
        load_values = (("brainops", load["chosen"]), (st, load["sentence_transformers"]))
        out.append(Comparison("embedder import + load in a new process", "s", load_values, st))
    return out


def _observe(r: Mapping[str, Any]) -> list[Comparison]:
    out = [
        Comparison(
            f"observe {size} host(s): median wall",
            "s",
            (("parallel", s["parallel"]["median_s"]), ("serial (baseline)", s["serial"]["median_s"])),
            "serial (baseline)",
        )
        for size, s in sorted(r.get("sizes", {}).items(), key=lambda kv: int(kv[0]))
    ]
    hung = r.get("hung_host")
    if hung:
        out.append(
            Comparison(
                "observe with 1 frozen host",
                "s",
                (("wall", hung["wall_s"]), ("timeout (bound)", hung["timeout_s"])),
                "timeout (bound)",
            )
        )
    return out


def _stats(r: Mapping[str, Any]) -> list[Comparison]:
    lat = r["stats_latency"]
    records = (r.get("seed") or {}).get("records") or lat.get("stats", {}).get("records", "?")
    values = (("p50", lat["p50_ms"]), ("p95", lat["p95_ms"]), ("max", lat["max_ms"]))
    return [Comparison(f"brain stats latency ({records} records)", "ms", values)]


def _dedup(r: Mapping[str, Any]) -> list[Comparison]:
    cold, base = r["cold"], r["baselines"]
    refs = [
        ("exact name, same type", base["exact_name_same_type"]),
        ("exact name, any type", base["exact_name_any_type"]),
    ]
    baseline = "exact name, same type"
    out = [
        Comparison(
            f"dedup {r.get('entities', '?')} entities: {key}",
            "share",
            (("brainops dedup", cold[key]), *((label, b[key]) for label, b in refs)),
            baseline,
            "higher",
        )
        for key in ("precision", "recall")
    ]
    timings: tuple[tuple[str, float], ...] = (
        ("cold: embeds every name", cold["seconds"]),
        ("warm: vectors stored", r["warm"]["seconds"]),
    )
    first = r.get("first_run_on_a_new_host")
    if first:
        timings += (("cold, on a host never prepared", first["seconds"]),)
    out.append(Comparison("dedup wall time", "s", (*timings, ("target", 15.0)), "target"))
    return out


def _recluster(r: Mapping[str, Any]) -> list[Comparison]:
    leiden, louvain = r["igraph_leiden"], r["networkx_louvain"]
    names = ("igraph Leiden", "networkx Louvain (baseline)")
    title = f"recluster {r.get('nodes', '?')} nodes"
    return [
        Comparison(f"{title}: seconds", "s", ((names[0], leiden["seconds"]), (names[1], louvain["seconds"])), names[1]),
        Comparison(
            f"{title}: NMI vs planted",
            "NMI",
            ((names[0], leiden["nmi_vs_planted"]), (names[1], louvain["nmi_vs_planted"])),
            names[1],
            "higher",
        ),
        Comparison(
            f"{title}: modularity",
            "Q",
            ((names[0], leiden["modularity"]), (names[1], louvain["modularity"]), ("planted", r["planted_modularity"])),
            names[1],
            "higher",
        ),
    ]


SIM_METRICS: tuple[tuple[str, str], ...] = (
    ("mean_backlog", "items"),
    ("p95_backlog", "items"),
    ("flaps", "count"),
    ("host_overload_s", "s"),
    ("cost", "$"),
    ("budget_overshoot_tokens", "tokens"),
)


def _simulator(r: Mapping[str, Any]) -> list[Comparison]:
    metrics = r["metrics"]
    order = ["agent", *[c for c in metrics if c != "agent"]]
    return [
        Comparison(
            f"simulator {r.get('hours', '?')} h: {key}",
            unit,
            tuple((c if c == "agent" else f"{c} (baseline)", float(metrics[c][key])) for c in order),
            "hpa (baseline)" if "hpa" in metrics else None,
        )
        for key, unit in SIM_METRICS
        if all(key in metrics[c] for c in order)
    ]


def _declared(r: Mapping[str, Any]) -> list[Comparison]:
    out = []
    for c in r.get("comparisons", []):
        values = tuple((str(k), float(v)) for k, v in c["values"].items())
        out.append(Comparison(c["title"], c.get("unit", ""), values, c.get("baseline"), c.get("better", "lower")))
    return out


ADAPTERS: dict[str, Callable[[Mapping[str, Any]], list[Comparison]]] = {
    "bench_embed": _embed,
    "bench_observe": _observe,
    "bench_stats": _stats,
    "bench_simulator": _simulator,
    "bench_dedup": _dedup,
    "bench_recluster": _recluster,
}


def comparisons(name: str, result: Mapping[str, Any]) -> list[Comparison]:
    """The figures for one benchmark; a result shape the adapter does not know yields none (table only)."""
    if "comparisons" in result:
        return _declared(result)
    adapter = ADAPTERS.get(name)
    if adapter is None:
        return []
    try:
        return adapter(result)
    except (KeyError, TypeError, ValueError):
        return []


# ---------------------------------------------------------------- plots and markdown


def plot(name: str, comps: list[Comparison], out_dir: Path) -> Path:
    """One PNG per benchmark: a panel per comparison; the candidate blue, its baseline dark grey, others light."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(comps))
    rows = -(-len(comps) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 2.6 * rows), squeeze=False)
    for ax, comp in zip(axes.flat, comps, strict=False):
        labels = [label for label, _ in comp.values]
        values = [v for _, v in comp.values]
        colors = ["#1f77b4", *("#6e6e6e" if label == comp.baseline else "#bdbdbd" for label in labels[1:])]
        bars = ax.barh(labels[::-1], values[::-1], color=colors[::-1])
        ax.bar_label(bars, labels=[_short(v) for v in values[::-1]], padding=2, fontsize=8)
        ax.set_title(f"{comp.title}\n({comp.better} is better)" if comp.baseline else comp.title, fontsize=9)
        ax.set_xlabel(comp.unit, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.margins(x=0.25)
    for ax in list(axes.flat)[len(comps) :]:
        ax.axis("off")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"fig_{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _short(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _comparison_table(comps: list[Comparison]) -> list[str]:
    lines = ["| figure | candidate | baseline | candidate vs baseline |", "|---|---|---|---|"]
    for c in comps:
        label, value = c.values[0]
        base = dict(c.values).get(c.baseline) if c.baseline else None
        ratio = c.ratio()
        base_text = f"{c.baseline}: {base:.4g} {c.unit}" if base is not None else "none measured"
        ratio_text = f"{ratio:.2f}x better" if ratio and ratio >= 1 else (f"{1 / ratio:.2f}x worse" if ratio else "-")
        if base == 0 and value > 0:
            ratio_text = "baseline is 0"
        lines.append(f"| {c.title} | {label}: {value:.4g} {c.unit} | {base_text} | {ratio_text} |")
    return lines


def _numbers(result: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Flattened scalar leaves (for benchmarks without figures, and as raw numbers)."""
    out: list[tuple[str, Any]] = []
    for key, value in result.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.extend(_numbers(value, path))
        elif value is None or isinstance(value, int | float | str | bool):
            out.append((path, value))
    return out


def bench_section(outcome: BenchOutcome, out_dir: Path, report_dir: Path) -> list[str]:
    lines = [f"## {outcome.name}", ""]
    if outcome.doc:
        lines += [outcome.doc, ""]
    if outcome.status != "ok":
        reason = outcome.error or str(outcome.result.get("skipped", ""))
        return [*lines, f"**{outcome.status.upper()}** after {outcome.seconds:.1f} s: {reason}", ""]
    lines += [f"Wall time {outcome.seconds:.1f} s.", ""]
    comps = comparisons(outcome.name, outcome.result)
    if comps:
        figure = plot(outcome.name, comps, out_dir)
        rel = figure.relative_to(report_dir) if figure.is_relative_to(report_dir) else figure
        lines += [f"![{outcome.name}]({rel.as_posix()})", "", *_comparison_table(comps), ""]
    else:
        lines += ["No figure: this result has no known shape and declares no `comparisons`.", ""]
        lines += ["| number | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in _numbers(outcome.result)[:40]]
        lines.append("")
    return lines


def load_outcomes(out_dir: Path) -> list[BenchOutcome]:
    """The outcomes a previous run saved in <out>/run_all.json (to re-render the report without re-measuring)."""
    rows = json.loads((out_dir / "run_all.json").read_text())
    return [
        BenchOutcome(r["name"], r["status"], r["seconds"], r["result"], r.get("error", ""), r.get("doc", ""))
        for r in rows
    ]


def write_report(outcomes: list[BenchOutcome], out_dir: Path, report: Path, *, quick: bool, machine: str) -> Path:
    """REPORT.md with a summary table, then one section per benchmark; results also saved as JSON."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# brainops benchmarks",
        "",
        f"Generated by `make bench` (`python -m bench.run_all{' --quick' if quick else ''}`) on {stamp}.",
        f"Machine: {machine}. Every figure shows the candidate (blue) beside its baseline (dark grey) and other "
        "references (light grey), all measured in this same run. Figures and raw results live in bench/out/ "
        "(`make bench` regenerates them, `--report-only` re-renders this file from them; "
        "the run logs in bench/out/logs/ stay out of git).",
        "",
        "| benchmark | status | wall s |",
        "|---|---|---|",
        *[f"| [{o.name}](#{o.name}) | {o.status} | {o.seconds:.1f} |" for o in outcomes],
        "",
    ]
    for outcome in outcomes:
        lines += bench_section(outcome, out_dir, report.parent)
    report.write_text("\n".join(lines))
    summary = [
        {"name": o.name, "status": o.status, "seconds": o.seconds, "error": o.error, "doc": o.doc, "result": o.result}
        for o in outcomes
    ]
    (out_dir / "run_all.json").write_text(json.dumps(summary, indent=2, default=str))
    return report
