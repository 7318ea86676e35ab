"""What a mutating action is expected to do, in a shape a later tick can check against what it observes.

An `Expectation` is a few `Check`s (an observed metric, a comparator, a target, the value when the action was
proposed), a horizon, and what would show the action made things worse (`harm`) with the action that reverses it
(`rollback`). Each action in core/actions.py declares a builder (`ActionSpec.expect`) from the observation and
the proposal; `judge` compares a later observation with it: verified (every check holds, possibly before the
horizon), missed (a check fails at the horizon, with the numbers), inconclusive (a metric could not be read).

Metrics are dotted paths into the Observation's JSON (`brain.pending.extract`, `brain.duplicate_estimate`,
`budget.routing.cheap`), so a new figure added to the Observation can be expected with no code here
(`metrics_expectation`), plus `worker_up.<id>` (1 while that worker runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

from core.domain import Observation, Proposal
from core.expectation_types import Check, CheckResult, Comparator, Expectation, Judgement, _num

MIN_HORIZON_S = 60.0
MAX_HORIZON_S = 3600.0
DEFAULT_HORIZON_S = 600.0
DRAIN_TOLERANCE = 0.1  # a drain is on track when at most this share of the backlog (plus a minute's arrivals) is left


# ---------------------------------------------------------------- reading and judging


def read_metric(obs: Observation, metric: str, dumped: Mapping[str, Any] | None = None) -> float | None:
    """The metric's value in this observation; None when it is not there (or the brain could not be read)."""
    head, _, rest = metric.partition(".")
    if head == "worker_up":
        return float(any(w.id == rest and w.state in ("starting", "running") for w in obs.workers))
    if head == "brain" and obs.brain.error:
        return None
    if head == "reasoning_yield":  # one tier's share of valid reasoning answers in the yield window
        judged = obs.brain.reasoning.tier(rest)
        return judged.valid / judged.attempts if judged.attempts and not obs.brain.error else None
    value: Any = dumped if dumped is not None else obs.model_dump(mode="json")
    for part in metric.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool | int | float) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None


def judge(
    expectation: Expectation, since: float, obs: Observation, now: float, dumped: Mapping[str, Any] | None = None
) -> Judgement | None:
    """The verdict on an action taken at `since`, from `obs` (`dumped`: its JSON, when the caller has it); None
    while it is too early to tell."""
    dumped = dumped if dumped is not None else obs.model_dump(mode="json")
    values = [read_metric(obs, c.metric, dumped) for c in expectation.checks]
    results = tuple(
        CheckResult(
            metric=c.metric,
            op=c.op,
            target=round(c.target, 4),
            observed=v,
            baseline=c.baseline,
            held=v is not None and c.holds(v),
        )
        for c, v in zip(expectation.checks, values, strict=True)
    )
    elapsed = max(0.0, now - since)
    failing = any(v is not None and not r.held for v, r in zip(values, results, strict=True))
    if expectation.hold and elapsed < expectation.horizon_s and not failing:
        return None  # so far so good: it must hold until the horizon
    if all(r.held for r in results):
        horizon = _dur(expectation.horizon_s)
        early = "" if elapsed >= expectation.horizon_s else f" within {_dur(elapsed)} of a {horizon} horizon"
        shown = "; ".join(c.describe(v) for c, v in zip(expectation.checks, values, strict=True))
        return Judgement(verdict="verified", detail=f"{shown}{early}", results=results, elapsed_s=elapsed)
    if elapsed < expectation.horizon_s and not (expectation.hold and failing):
        return None
    unread = [c.metric for c, v in zip(expectation.checks, values, strict=True) if v is None]
    if unread and not failing:
        why = obs.brain.error if obs.brain.error else "not in the observation"
        detail = f"{', '.join(unread)} could not be read after {_dur(elapsed)}: {why}"
        return Judgement(verdict="inconclusive", detail=detail, results=results, elapsed_s=elapsed)
    failed = [c.describe(v) for c, v, r in zip(expectation.checks, values, results, strict=True) if not r.held]
    harmed = any(v is not None and h.holds(v) for h in expectation.harm for v in [read_metric(obs, h.metric, dumped)])
    detail = f"after {_dur(elapsed)}: " + "; ".join(failed)
    return Judgement(verdict="missed", detail=detail, results=results, elapsed_s=elapsed, harmed=harmed)


# ---------------------------------------------------------------- builders (one per action, in core/actions.py)

ExpectBuilder = Callable[[Observation, Proposal], "Expectation | None"]


def metrics_expectation(*checks: tuple[str, Comparator, float], horizon_s: float, subject: str) -> ExpectBuilder:
    """A builder for fixed targets on observed metrics: `metrics_expectation(("brain.search_p95_ms", "<=", 10),
    ("brain.search_recall", ">=", 0.95), horizon_s=600, subject="index")`."""

    def build(obs: Observation, proposal: Proposal) -> Expectation:
        made = tuple(Check(metric=m, op=op, target=t, baseline=read_metric(obs, m)) for m, op, t in checks)
        return Expectation(checks=made, horizon_s=horizon_s, summary=_summary(made), subject=subject)

    return build


def no_worse(*metrics: tuple[str, Literal["lower", "higher"]], horizon_s: float, subject: str) -> ExpectBuilder:
    """A builder that expects each metric to be at least as good as when the action was proposed (lower or higher
    is better), and calls any one worse by more than 10% harm: e.g. an index's latency and recall."""

    def build(obs: Observation, proposal: Proposal) -> Expectation | None:
        checks, harm = [], []
        for metric, better in metrics:
            base = read_metric(obs, metric)
            if base is None:
                continue
            op: Comparator = "<=" if better == "lower" else ">="
            checks.append(Check(metric=metric, op=op, target=base, baseline=base))
            worse: Comparator = ">=" if better == "lower" else "<="
            margin = 1.1 if better == "lower" else 0.9
            harm.append(Check(metric=metric, op=worse, target=base * margin, baseline=base))
        if not checks:
            return None
        return Expectation(
            checks=tuple(checks), horizon_s=horizon_s, summary=_summary(checks), subject=subject, harm=tuple(harm)
        )

    return build


def _summary(checks: list[Check] | tuple[Check, ...]) -> str:
    return "; ".join(f"{c.metric} {c.op} {_num(c.target)}" for c in checks)


def _dur(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def clamp_horizon(seconds: float) -> float:
    return min(MAX_HORIZON_S, max(MIN_HORIZON_S, seconds))
