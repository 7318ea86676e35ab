"""The simulator across seeds: per scenario and controller the median and the worst of each metric, and the
agent's targets against the HPA and fixed-worker baselines of the same run.

Every metric here is lower-is-better, so "worst" is the largest value over the seeds. Targets compare medians,
except the ones that must hold on every seed (flaps, reaction, lost items, budget overshoot): those take the
worst seed. Pure functions over anything shaped like `evals.sim_metrics.SimMetrics`.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Stat = Literal["median", "worst"]
CONTROLLER_ORDER = ("agent", "hpa", "fixed")
CONTROLLER_LABEL = {"agent": "agent", "hpa": "HPA", "fixed": "fixed"}


@dataclass(frozen=True)
class MetricSpec:
    key: str  # the SimMetrics field
    label: str
    unit: str  # "s", "$", "tokens", ... ("" for a count named by its label)
    higher_is_better: bool = False  # then "worst" is the smallest value over the seeds


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("p95_wait_s", "p95 wait (extract)", "s"),
    MetricSpec("worker_seconds", "worker-seconds", ""),
    MetricSpec("idle_worker_seconds", "idle worker-seconds", ""),
    MetricSpec("compute_cost", "compute cost", "$"),
    MetricSpec("llm_cost", "LLM cost", "$"),
    MetricSpec("scale_changes", "scale changes", ""),
    MetricSpec("flaps", "flaps", ""),
    MetricSpec("reaction_ticks", "reaction", "ticks"),
    MetricSpec("lost_items", "lost items", ""),
    MetricSpec("budget_overshoot_tokens", "budget overshoot", "tokens"),
)
# Shown next to the judged metrics for context; a run without one of these fields just has no value for it.
CONTEXT_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("fault_lost_items", "items lost to host faults", ""),
    MetricSpec("mean_backlog", "mean extract backlog", "items"),
    MetricSpec("host_overload_s", "host overload", "s"),
    MetricSpec("throttled_items", "throttled items", ""),
    MetricSpec("wall_s", "wall time per run", "s"),
    # done actions later observed to do what they expected (evals/sim_verify.py); worst is the lowest
    MetricSpec("verified_share", "share of actions verified", "", higher_is_better=True),
)
SPEC = {m.key: m for m in (*METRICS, *CONTEXT_METRICS)}


class RunMetrics(Protocol):
    """What the summary reads from a run: SimMetrics, or a stand-in with the same fields."""

    @property
    def controller(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def trace(self) -> str: ...  # the scenario name


@dataclass(frozen=True)
class Spread:
    median: float | None
    worst: float | None
    runs: int  # values behind the two (reaction_ticks skips runs whose scenario has no load rise)

    def get(self, stat: Stat) -> float | None:
        return self.median if stat == "median" else self.worst

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "worst": self.worst, "runs": self.runs}


# scenario -> controller -> metric key -> spread over seeds
Summary = dict[str, dict[str, dict[str, Spread]]]


def spread(values: Iterable[float | None], higher_is_better: bool = False) -> Spread:
    present = [float(v) for v in values if v is not None]
    if not present:
        return Spread(None, None, 0)
    worst = min(present) if higher_is_better else max(present)
    return Spread(float(statistics.median(present)), worst, len(present))


def ordered_controllers(names: Iterable[str]) -> list[str]:
    unique = list(dict.fromkeys(names))
    return [c for c in CONTROLLER_ORDER if c in unique] + [c for c in unique if c not in CONTROLLER_ORDER]


def summarize_runs(runs: Iterable[RunMetrics]) -> Summary:
    """Scenarios in the order they first appear, controllers agent, hpa, fixed, then any others."""
    grouped: dict[str, dict[str, list[RunMetrics]]] = {}
    for m in runs:
        grouped.setdefault(m.trace, {}).setdefault(m.controller, []).append(m)
    return {
        scenario: {
            c: {
                spec.key: spread((getattr(m, spec.key, None) for m in by_controller[c]), spec.higher_is_better)
                for spec in (*METRICS, *CONTEXT_METRICS)
            }
            for c in ordered_controllers(by_controller)
        }
        for scenario, by_controller in grouped.items()
    }


def summary_to_dict(summary: Summary) -> dict[str, Any]:
    return {s: {c: {k: v.to_dict() for k, v in ms.items()} for c, ms in by_c.items()} for s, by_c in summary.items()}


# ---------------------------------------------------------------- targets


@dataclass(frozen=True)
class Rule:
    """The agent's `stat` of `metric` must be <= factor x the baseline's same stat, or <= bound."""

    metric: str
    stat: Stat
    baseline: str | None = None
    factor: float = 1.0
    bound: float = 0.0


@dataclass(frozen=True)
class TargetSpec:
    name: str
    rules: tuple[Rule, ...]


TARGETS: tuple[TargetSpec, ...] = (
    TargetSpec("vs HPA", (Rule("p95_wait_s", "median", "hpa", 0.5), Rule("worker_seconds", "median", "hpa", 1.0))),
    TargetSpec(
        "vs fixed", (Rule("p95_wait_s", "median", "fixed", 1.0), Rule("worker_seconds", "median", "fixed", 0.7))
    ),
    TargetSpec("no flaps", (Rule("flaps", "worst", bound=0),)),
    TargetSpec("scale changes vs HPA", (Rule("scale_changes", "median", "hpa", 1 / 3),)),
    TargetSpec("reaction", (Rule("reaction_ticks", "worst", bound=1),)),
    TargetSpec("nothing lost", (Rule("lost_items", "worst", bound=0),)),
    TargetSpec("budget kept", (Rule("budget_overshoot_tokens", "worst", bound=0),)),
)
TARGET_NAMES = tuple(t.name for t in TARGETS)


@dataclass(frozen=True)
class Check:
    metric: str
    stat: Stat
    value: float
    limit: float  # met when value <= limit
    baseline: str | None = None
    baseline_value: float | None = None
    factor: float | None = None

    @property
    def met(self) -> bool:
        return self.value <= self.limit

    def ratio(self) -> float | None:
        if self.baseline_value is None or self.baseline_value <= 0:
            return None
        return self.value / self.baseline_value

    def describe(self) -> str:
        spec = SPEC.get(self.metric, MetricSpec(self.metric, self.metric, ""))
        value = fmt(self.value, spec.unit)
        if self.baseline is None or self.baseline_value is None:
            prefix = "worst " if self.stat == "worst" else ""
            limit = fmt(self.limit, spec.unit)
            target = f"target {limit}" if self.limit == 0 else f"target <= {limit}"
            return f"{prefix}{spec.label} {value} ({target})"
        ratio = self.ratio()
        if ratio is not None:
            shown = f"{ratio:.2f}x"
        else:
            shown = "both 0" if self.value == 0 else f"{CONTROLLER_LABEL.get(self.baseline, self.baseline)} is 0"
        return (
            f"{spec.label} {value} vs {CONTROLLER_LABEL.get(self.baseline, self.baseline)} "
            f"{fmt(self.baseline_value, spec.unit)} ({shown}, target <= {self.factor:.2g}x)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "stat": self.stat,
            "value": self.value,
            "limit": self.limit,
            "baseline": self.baseline,
            "baseline_value": self.baseline_value,
            "factor": self.factor,
            "ratio": self.ratio(),
            "met": self.met,
        }


@dataclass(frozen=True)
class Target:
    scenario: str
    name: str
    checks: tuple[Check, ...]

    @property
    def met(self) -> bool:
        return all(c.met for c in self.checks)

    @property
    def verdict(self) -> str:
        return "; ".join(c.describe() for c in self.checks) + (": met" if self.met else ": not met")

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "name": self.name,
            "met": self.met,
            "verdict": self.verdict,
            "checks": [c.to_dict() for c in self.checks],
        }


def _check(rule: Rule, by_controller: Mapping[str, Mapping[str, Spread]], candidate: str) -> Check | None:
    value = by_controller[candidate][rule.metric].get(rule.stat)
    if value is None:
        return None
    if rule.baseline is None:
        return Check(rule.metric, rule.stat, value, rule.bound)
    reference = by_controller.get(rule.baseline, {}).get(rule.metric)
    base = reference.get(rule.stat) if reference is not None else None
    if base is None:
        return None
    return Check(rule.metric, rule.stat, value, rule.factor * base, rule.baseline, base, rule.factor)


def judge(summary: Summary, candidate: str = "agent", specs: tuple[TargetSpec, ...] = TARGETS) -> list[Target]:
    """Each scenario's targets for `candidate`; a target is left out where its baseline did not run or the
    metric has no value (reaction in a scenario without a load rise)."""
    targets = []
    for scenario, by_controller in summary.items():
        if candidate not in by_controller:
            continue
        for spec in specs:
            checks = [_check(rule, by_controller, candidate) for rule in spec.rules]
            if checks and all(c is not None for c in checks):
                targets.append(Target(scenario, spec.name, tuple(c for c in checks if c is not None)))
    return targets


def targets_met(targets: Iterable[Target]) -> tuple[int, int]:
    listed = list(targets)
    return sum(t.met for t in listed), len(listed)


# ---------------------------------------------------------------- numbers as text


def fmt(value: float | None, unit: str = "") -> str:
    """212 s, 1,340 s, $12.3, 0.16, 41,200; "-" for no value."""
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.3g}"
    if unit == "$":
        return f"-${text[1:]}" if text.startswith("-") else f"${text}"
    if unit.endswith("s") and len(unit) > 1 and text == "1":
        unit = unit[:-1]  # 1 tick, 1 token
    return f"{text} {unit}" if unit else text
