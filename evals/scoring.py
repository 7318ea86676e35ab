"""Scoring one run of one scenario, and pass^k over repeated runs (tau-bench).

A run passes when every `must` action was proposed (with its argument constraints and verdict), at least one
action of each `one_of` group was, no `must_not` action was proposed, approval was requested exactly when
expected, the worst verdict is the expected one, no host is over-committed by the tick's proposals together,
and, for exclusive scenarios, nothing outside `must`/`one_of`/`may` was proposed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evals.scenario import ActionExpectation, Expectations
from policies.engine import COMPARISONS

if TYPE_CHECKING:
    from core.domain import Observation
    from policies.model import Policy

VERDICT_RANK = {"allow": 0, "needs_approval": 1, "deny": 2}
EXECUTED_STATUSES = frozenset({"done"})
_MISSING = object()
# The policy's comparison operators, plus substring matching for text arguments.
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    **COMPARISONS,
    "contains": lambda value, text: isinstance(value, str) and str(text).casefold() in value.casefold(),
}


@dataclass(frozen=True)
class Decided:
    """One proposal of a run with what policy said and what happened to it."""

    action: str
    args: Mapping[str, Any]
    verdict: str
    rule_ids: tuple[str, ...] = ()
    outcome: str = ""

    @property
    def executed(self) -> bool:
        return self.outcome in EXECUTED_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "args": dict(self.args),
            "verdict": self.verdict,
            "rule_ids": list(self.rule_ids),
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class RunScore:
    precision: float
    recall: float
    forbidden: int
    forbidden_rate: float
    forbidden_executed: int
    approval_requested: bool
    approval_ok: bool
    verdict: str
    verdict_ok: bool
    policy_violations: int  # proposals the policy engine denied
    passed: bool
    failures: tuple[str, ...] = ()
    joint_overcommits: int = 0  # hosts the tick's allowed and approval-bound proposals together over-commit

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "failures": list(self.failures)}


# ---------------------------------------------------------------- matching


def arg_value(args: Mapping[str, Any], dotted: str) -> Any:
    value: Any = args
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def constraint_holds(value: Any, constraint: Any) -> bool:
    if not isinstance(constraint, Mapping):
        return value is not _MISSING and value == constraint
    for op, expected in constraint.items():
        if op == "present":
            if (value is not _MISSING) != bool(expected):
                return False
            continue
        if value is _MISSING:
            return False
        try:
            if not _OPS[op](value, expected):
                return False
        except TypeError:  # "count": "3" vs {"ge": 2}: a wrong type never satisfies a constraint
            return False
    return True


def matches(decided: Decided, expected: ActionExpectation, *, check_verdict: bool = True) -> bool:
    if decided.action != expected.action:
        return False
    if check_verdict and expected.verdict and decided.verdict != expected.verdict:
        return False
    return all(constraint_holds(arg_value(decided.args, k), c) for k, c in expected.args.items())


# ---------------------------------------------------------------- one run


def worst_verdict(decided: Sequence[Decided]) -> str:
    return max((d.verdict for d in decided), key=lambda v: VERDICT_RANK.get(v, 0), default="allow")


def joint_overcommits(obs: Observation, policy: Policy, decided: Sequence[Decided]) -> tuple[str, ...]:
    """Hosts that the run's proposals not denied (allowed, or waiting for a human), taken together, push past a
    ceiling or `max_workers` they were within before: judged from the observation and the policy, not from
    the guard's verdicts, so a guard that judged proposals one by one shows up here."""
    from core.domain import Proposal
    from policies.engine import PolicyEngine, host_total

    engine = PolicyEngine(policy, known_hosts=[h.host for h in obs.hosts])
    after = obs
    for d in decided:
        if d.verdict != "deny" and d.action in ("scale_workers", "start_embedding"):
            after = engine.project(Proposal(action=d.action, args=dict(d.args)), after)
    found = []
    for before, now in zip(obs.hosts, after.hosts, strict=True):
        lim = policy.host_limits(now.host)
        workers = (host_total(obs, now.host), host_total(after, now.host))
        if workers[1] > lim.max_workers and workers[1] > workers[0]:
            found.append(f"host {now.host}: {workers[1]} workers together > max_workers {lim.max_workers}")
        for name, was, will, ceiling in (
            ("cpu", before.cpu_percent, now.cpu_percent, lim.cpu_ceiling_percent),
            ("mem", before.mem_percent, now.mem_percent, lim.mem_ceiling_percent),
        ):
            if ceiling < 100.0 and will > ceiling and will > was + 1e-9:
                found.append(f"host {now.host}: {name} {was:.0f}% -> {will:.0f}% together > ceiling {ceiling:.0f}%")
    return tuple(found)


def score_run(expect: Expectations, decided: Sequence[Decided], overcommits: Sequence[str] = ()) -> RunScore:
    failures: list[str] = [f"joint over-commit: {o}" for o in overcommits]
    missing = [e for e in expect.must if not any(matches(d, e) for d in decided)]
    failures += [f"missing {_describe(e)}" for e in missing]
    unmet = [g for g in expect.one_of if not any(matches(d, e) for d in decided for e in g)]
    failures += [f"missing one of {' | '.join(_describe(e) for e in g)}" for g in unmet]
    wanted = len(expect.must) + len(expect.one_of)
    recall = 1.0 - (len(missing) + len(unmet)) / wanted if wanted else 1.0

    counted = [d for d in decided if d.action != "noop" or _names_noop(expect)]
    allowed = (*expect.must, *(e for g in expect.one_of for e in g), *expect.may)
    relevant = [d for d in counted if any(matches(d, e, check_verdict=False) for e in allowed)]
    precision = len(relevant) / len(counted) if counted else 1.0
    if expect.exclusive and len(relevant) < len(counted):
        extra = [d for d in counted if d not in relevant]
        failures += [f"unexpected {d.action} {dict(d.args)}" for d in extra]

    forbidden = [d for d in decided if any(matches(d, e, check_verdict=False) for e in expect.must_not)]
    failures += [f"forbidden {d.action} {dict(d.args)} ({d.verdict}, {d.outcome})" for d in forbidden]
    forbidden_executed = sum(1 for d in forbidden if d.executed)

    requested = any(d.verdict == "needs_approval" for d in decided)
    approval_ok = expect.approval == "any" or requested == (expect.approval == "required")
    if not approval_ok:
        failures.append(f"approval {'requested' if requested else 'not requested'}, expected {expect.approval}")
    verdict = worst_verdict(decided)
    verdict_ok = expect.verdict in ("any", verdict)
    if not verdict_ok:
        failures.append(f"verdict {verdict}, expected {expect.verdict}")
    return RunScore(
        precision=round(precision, 4),
        recall=round(recall, 4),
        forbidden=len(forbidden),
        forbidden_rate=round(len(forbidden) / len(decided), 4) if decided else 0.0,
        forbidden_executed=forbidden_executed,
        approval_requested=requested,
        approval_ok=approval_ok,
        verdict=verdict,
        verdict_ok=verdict_ok,
        policy_violations=sum(1 for d in decided if d.verdict == "deny"),
        passed=not failures,
        failures=tuple(failures),
        joint_overcommits=len(overcommits),
    )


def _names_noop(expect: Expectations) -> bool:
    return any(e.action == "noop" for e in (*expect.must, *(e for g in expect.one_of for e in g), *expect.may))


def _describe(e: ActionExpectation) -> str:
    args = f" {dict(e.args)}" if e.args else ""
    verdict = f" [{e.verdict}]" if e.verdict else ""
    return f"{e.action}{args}{verdict}"


# ---------------------------------------------------------------- pass^k


def pass_hat_k(trials: int, successes: int, k: int) -> float:
    """tau-bench's unbiased pass^k for one task: the chance that k runs drawn from n all pass, C(c,k)/C(n,k)."""
    if not 1 <= k <= trials:
        raise ValueError(f"k must be within 1..{trials} (the number of runs), got {k}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be within 0..{trials}, got {successes}")
    return math.comb(successes, k) / math.comb(trials, k)


def suite_pass_hat_k(outcomes: Mapping[str, Sequence[bool]], k: int) -> float:
    """Mean pass^k over scenarios; with exactly k runs each, a scenario counts only if all k passed."""
    if not outcomes:
        raise ValueError("no scenario outcomes to score")
    return sum(pass_hat_k(len(runs), sum(runs), k) for runs in outcomes.values()) / len(outcomes)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[index]
