"""The typed expectation a mutating action carries (core/expectations.py explains and judges it). Plain values
with no dependency on the Observation, so core/domain.py's Proposal can hold one."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Comparator = Literal["<=", ">="]
Verification = Literal["verified", "missed", "inconclusive"]
ExpectationSource = Literal["rules", "model", "derived"]  # derived: filled in by the rules' estimator


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Check(Frozen):
    metric: str
    op: Comparator
    target: float
    baseline: float | None = None  # the metric when the action was proposed

    def holds(self, value: float) -> bool:
        return value <= self.target if self.op == "<=" else value >= self.target

    def describe(self, value: float | None) -> str:
        seen = "not observed" if value is None else _num(value)
        was = "" if self.baseline is None else f", was {_num(self.baseline)}"
        return f"{self.metric} {seen} (expected {self.op} {_num(self.target)}{was})"


class Rollback(Frozen):
    action: str
    args: dict[str, Any]
    why: str = ""


class Expectation(Frozen):
    checks: tuple[Check, ...]
    horizon_s: float
    summary: str
    subject: str  # what the action changes; a later action on the same subject confounds the check
    source: ExpectationSource = "rules"
    harm: tuple[Check, ...] = ()  # any of these holding at a miss: the action made things worse
    rollback: Rollback | None = None  # proposed (through the guard) when it did
    hold: bool = False  # the checks must hold through the horizon (verified at its end, missed the tick one fails)
    drain: dict[str, float] | None = None  # scaling: stage backlog and the drain rate expected, for learning
    stated_refused: str | None = None  # why the planner's own statement was not used (this one was derived)


class CheckResult(Frozen):
    metric: str
    op: Comparator
    target: float
    observed: float | None
    baseline: float | None
    held: bool


class Judgement(Frozen):
    verdict: Verification
    detail: str
    results: tuple[CheckResult, ...]
    elapsed_s: float
    harmed: bool = False


def _num(value: float) -> str:
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"
