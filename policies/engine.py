"""The policy engine: one proposal + one observation -> allow / deny / needs_approval, with rule ids.

Order of judgement: unknown action, noop, read-only mode, action allowed at all, arguments, limits
(worker min/max, host capacity and ceilings, step size, cooldown, duplicate approval), risk conditions,
dry-run mode, default allow. Every deny carries reasons precise enough for the model to correct itself.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.actions import ACTION_ARGS, ACTIONS, MUTATING_ACTIONS
from core.actions import action as action_spec
from core.domain import Observation, PolicyDecision, Proposal, Verdict
from core.kinds import STAGES
from policies.args import ArgContext, Finding, check_args, with_purpose_shares
from policies.model import RISK_ORDER, ActionPolicy, Op, Policy

SCALE_ACTIONS: tuple[str, ...] = ("scale_workers", "start_embedding")
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "in": lambda value, options: value in options,
}


def recent_action_key(action: str, kind: str, host: str) -> str:
    """Key of `Observation.recent_actions`; whoever records an executed action must use this format."""
    return f"{action}:{kind}@{host}"


@dataclass(frozen=True)
class ScaleTarget:
    kind: str
    host: str
    count: int


class PolicyEngine:
    def __init__(
        self, policy: Policy, known_hosts: Iterable[str] = (), tier_ranks: Mapping[str, str] | None = None
    ) -> None:
        """`tier_ranks`: each configured model tier's purpose (llm.routing.TierMap.rank), so routing rules may
        name a purpose ("strategic") for the tiers that serve it as well as a tier itself."""
        self.policy = policy
        self.known_hosts = frozenset(known_hosts)
        self.tier_ranks = dict(tier_ranks or {})

    def evaluate(self, proposal: Proposal, obs: Observation, now: float) -> PolicyDecision:
        action = proposal.action
        if action not in ACTION_ARGS:
            return _deny([Finding("action.unknown", f"unknown action {action!r}; valid actions: {', '.join(ACTIONS)}")])
        if action not in MUTATING_ACTIONS:
            return self._allow(["action.noop"], ["noop is always allowed"], "low")
        if self.policy.read_only:
            return _deny([Finding("mode.read_only", f"policy is read-only: {action} changes the fleet")])
        act = self.policy.action_policy(action)
        if act is None:
            return _deny([Finding("action.not_allowed", f"action {action} is not allowed by policy")])
        known = self.known_hosts | {h.host for h in obs.hosts}
        context = ArgContext(self.policy, obs, known, _known_tiers(self.tier_ranks, obs), self.tier_ranks)
        arg_findings = check_args(action, proposal.args, context)
        if arg_findings:
            return _deny(arg_findings, act.risk)
        target = _scale_target(proposal)
        if target is not None and target.count == _effective(obs, target.kind, target.host):
            unchanged = self._limits(target, obs)
            if unchanged:
                return _deny(unchanged, act.risk)
            reason = f"{target.kind}@{target.host} is already at {target.count}"
            return self._allow(["scale.unchanged"], [reason], act.risk)
        denials = self._limit_findings(proposal, target, obs, now)
        if denials:
            return _deny(denials, act.risk)
        return self._risk_verdict(_with_observed_facts(proposal, obs, self.tier_ranks), act)

    def project(self, proposal: Proposal, obs: Observation) -> Observation:
        """The fleet as it will be once `proposal` (allowed, or waiting for a human) has run: its desired count,
        and its host's CPU and memory with the added workers' shares (the same estimates `_capacity` uses). The
        tick judges each later proposal against this, so proposals that fit one by one cannot over-commit a
        host together. Scale-downs free nothing until their workers have drained."""
        target = _scale_target(proposal)
        if target is None:
            return obs
        added = target.count - _effective(obs, target.kind, target.host)
        desired = {**obs.desired, f"{target.kind}@{target.host}": target.count}
        if added <= 0:
            return obs.model_copy(update={"desired": desired})
        lim = self.policy.worker_limits(target.kind)
        cpu_each = obs.worker_cpu_share(target.kind, target.host) or lim.est_cpu_percent
        hosts = tuple(
            h.model_copy(
                update={
                    "cpu_percent": h.cpu_percent + added * cpu_each,
                    "mem_percent": h.mem_percent + added * lim.est_mem_percent,
                }
            )
            if h.host == target.host
            else h
            for h in obs.hosts
        )
        return obs.model_copy(update={"desired": desired, "hosts": hosts})

    # ---- verdict helpers

    def _allow(self, rule_ids: list[str], reasons: list[str], risk: str) -> PolicyDecision:
        if self.policy.dry_run:
            rule_ids = ["mode.dry_run", *rule_ids]
            reasons = ["policy is in dry-run mode: record, do not execute", *reasons]
        return PolicyDecision(
            verdict=Verdict.ALLOW,
            rule_ids=tuple(rule_ids),
            reasons=tuple(reasons),
            risk=risk,
            dry_run=self.policy.dry_run,
        )

    def _risk_verdict(self, proposal: Proposal, act: ActionPolicy) -> PolicyDecision:
        fired = _fired_rules(proposal, act)
        risk = max([act.risk, *(r for _, _, r in fired)], key=RISK_ORDER.__getitem__)
        if not fired:
            return self._allow(["default.allow"], [f"{proposal.action} is within policy"], risk)
        rule_ids = [rule_id for rule_id, _, _ in fired]
        reasons = [reason for _, reason, _ in fired]
        if self.policy.dry_run:  # nothing executes, so there is nothing for a human to approve
            return self._allow(rule_ids, [f"would need approval: {r}" for r in reasons], risk)
        return PolicyDecision(
            verdict=Verdict.NEEDS_APPROVAL, rule_ids=tuple(rule_ids), reasons=tuple(reasons), risk=risk
        )

    # ---- limits

    def _limit_findings(
        self, proposal: Proposal, target: ScaleTarget | None, obs: Observation, now: float
    ) -> list[Finding]:
        findings: list[Finding] = []
        if target is not None:
            findings += self._limits(target, obs)
            findings += self._step(target, obs)
            findings += self._capacity(target, obs)
        if proposal.action == "stop_worker":
            findings += self._stop_below_min(proposal.args["worker_id"], obs)
        findings += self._cooldown(proposal, target, obs, now)
        findings += _pending_duplicate(proposal, obs)
        return findings

    def _limits(self, t: ScaleTarget, obs: Observation) -> list[Finding]:
        lim = self.policy.worker_limits(t.kind)
        out: list[Finding] = []
        if t.count > lim.max:
            out.append(Finding(f"worker.{t.kind}.max", f"{t.count} {t.kind} workers > max {lim.max} per host"))
        if t.count < lim.min:
            out.append(Finding(f"worker.{t.kind}.min", f"{t.count} {t.kind} workers < min {lim.min} per host"))
        if lim.max_total is not None and t.count > _effective(obs, t.kind, t.host):
            others = sum(_effective(obs, t.kind, h) for h in _hosts_in(obs) if h != t.host)
            if others + t.count > lim.max_total:
                reason = f"{others} {t.kind} workers elsewhere + {t.count} here > fleet max_total {lim.max_total}"
                out.append(Finding(f"worker.{t.kind}.max_total", reason))
        return out

    def _step(self, t: ScaleTarget, obs: Observation) -> list[Finding]:
        current = _effective(obs, t.kind, t.host)
        scaling = self.policy.scaling
        up, down = scaling.max_up_from(current), scaling.max_step_down
        if t.count - current > up:
            reason = f"{t.kind}@{t.host} from {current} to {t.count} exceeds the max step up of {up}"
            return [Finding("scale.max_step_up", f"{reason}; propose at most {current + up}")]
        if current - t.count > down:
            reason = f"{t.kind}@{t.host} from {current} to {t.count} exceeds the max step down of {down}"
            return [Finding("scale.max_step_down", f"{reason}; propose at least {current - down}")]
        return []

    def _capacity(self, t: ScaleTarget, obs: Observation) -> list[Finding]:
        current = _effective(obs, t.kind, t.host)
        added = t.count - current
        if added <= 0:
            return []
        limits = self.policy.host_limits(t.host)
        out: list[Finding] = []
        total = _host_total(obs, t.host) - current + t.count
        if total > limits.max_workers:
            reason = f"host {t.host} would run {total} workers (all kinds), max_workers is {limits.max_workers}"
            out.append(Finding(f"host.{t.host}.max_workers", reason))
        metrics = next((h for h in obs.hosts if h.host == t.host), None)
        if metrics is None:
            return out
        if not metrics.reachable:
            return [*out, Finding(f"host.{t.host}.unreachable", f"host {t.host} is unreachable: {metrics.error}")]
        lim = self.policy.worker_limits(t.kind)
        cpu_each = obs.worker_cpu_share(t.kind, t.host) or lim.est_cpu_percent
        checks = (
            ("cpu", metrics.cpu_percent, cpu_each, limits.cpu_ceiling_percent),
            ("mem", metrics.mem_percent, lim.est_mem_percent, limits.mem_ceiling_percent),
        )
        for name, now_pct, each, ceiling in checks:
            # Utilisation saturates at 100%, so a ceiling of 100 switches the check off.
            projected = min(100.0, now_pct + added * each)
            if projected > ceiling:
                fits = max(0, math.floor((ceiling - now_pct) / each)) if each > 0 else 0
                reason = (
                    f"host {t.host} {name} would reach {now_pct + added * each:.0f}% ({now_pct:.0f}% now + {added} x "
                    f"{each:.0f}%), ceiling {ceiling:.0f}%; at most {fits} more {t.kind} workers fit"
                )
                out.append(Finding(f"host.{t.host}.{name}_ceiling", reason))
        return out

    def _stop_below_min(self, worker_id: str, obs: Observation) -> list[Finding]:
        worker = next(w for w in obs.workers if w.id == worker_id)
        if worker.state not in ("starting", "running"):
            return []
        lim = self.policy.worker_limits(worker.kind)
        left = obs.running(worker.kind, worker.host) - 1
        if left < lim.min:
            reason = f"stopping {worker_id} leaves {left} {worker.kind} workers on {worker.host} < min {lim.min}"
            return [Finding(f"worker.{worker.kind}.min", reason)]
        return []

    def _cooldown(self, proposal: Proposal, t: ScaleTarget | None, obs: Observation, now: float) -> list[Finding]:
        action = proposal.action
        cooldown = self.policy.cooldown_for(action)
        if cooldown <= 0:
            return []
        if t is not None:
            keys = [recent_action_key(a, t.kind, t.host) for a in SCALE_ACTIONS]
            subject = f"{t.kind}@{t.host}"
        else:
            # Runs under the proposal's own cooldown key, and plain runs of the action: a dedup dry run
            # waits out a live run, but the live run a dry run planned does not wait for the dry run.
            keys = list(dict.fromkeys([action_spec(action).cooldown_key(proposal.args), action]))
            subject = action
        times = [obs.recent_actions[k] for k in keys if k in obs.recent_actions]
        if not times:
            return []
        elapsed = now - max(times)
        if elapsed >= cooldown:
            return []
        reason = f"last change of {subject} was {elapsed:.0f}s ago; cooldown is {cooldown:.0f}s, retry in "
        return [Finding(f"cooldown.{action}", f"{reason}{cooldown - elapsed:.0f}s")]


# ---- pure helpers


def _deny(findings: list[Finding], risk: str = "low") -> PolicyDecision:
    return PolicyDecision(
        verdict=Verdict.DENY,
        rule_ids=tuple(dict.fromkeys(f.rule_id for f in findings)),
        reasons=tuple(f.reason for f in findings),
        risk=risk,
    )


def _scale_target(proposal: Proposal) -> ScaleTarget | None:
    args = proposal.args
    if proposal.action == "scale_workers":
        return ScaleTarget(args["kind"], args["host"], args["count"])
    if proposal.action == "start_embedding":
        # The n shards i/n only cover the table together, so the embed workers on the host become exactly n.
        return ScaleTarget("embed", args["host"], action_spec("start_embedding").complete(args)["shards"])
    return None


def _effective(obs: Observation, kind: str, host: str) -> int:
    """What the dispatcher is converging to: the desired count when one is set, else what runs."""
    return obs.desired.get(f"{kind}@{host}", obs.running(kind, host))


def _hosts_in(obs: Observation) -> set[str]:
    return {h.host for h in obs.hosts} | {w.host for w in obs.workers} | {k.split("@", 1)[1] for k in obs.desired}


def host_total(obs: Observation, host: str) -> int:
    """Workers of every kind the host is converging to."""
    return _host_total(obs, host)


def _host_total(obs: Observation, host: str) -> int:
    kinds = set(STAGES) | {w.kind for w in obs.workers if w.host == host}
    return sum(_effective(obs, kind, host) for kind in kinds)


def _known_tiers(ranks: Mapping[str, str], obs: Observation) -> frozenset[str]:
    budget = obs.budget
    return frozenset(ranks) | set(budget.per_tier) | set(budget.routing) | set(budget.routed_calls)


def _with_observed_facts(proposal: Proposal, obs: Observation, ranks: Mapping[str, str]) -> Proposal:
    """Risk rules judge what will happen, not what the proposer claims: a dedup merges at least the
    candidates the brain reports and the count of the brain's dedup plan (a dry run's real count), whatever
    `expected_merges` says (or if it is left out). A live run naming the current plan is held to the approved
    count by the job itself; one without a plan, or naming another, is judged on the plan's count all the same."""
    if proposal.action == "set_model_routing" and isinstance(proposal.args.get("weights"), dict):
        weights = with_purpose_shares(proposal.args["weights"], ranks)  # "weights.strategic" names a purpose too
        return proposal.model_copy(update={"args": {**proposal.args, "weights": weights}})
    if proposal.action == "restart_worker":
        hour_ago = obs.time - 3600.0
        restarts = sum(1 for k, t in obs.recent_actions.items() if k.startswith("restart_worker:") and t >= hour_ago)
        args = {**proposal.args, "restarts_last_hour": max(int(proposal.args.get("restarts_last_hour", 0)), restarts)}
        return proposal.model_copy(update={"args": args})
    if proposal.action != "run_dedup":
        return proposal
    claimed = proposal.args.get("expected_merges", 0)
    plan = obs.brain.dedup_plan
    args = {
        **proposal.args,
        "dry_run": proposal.args.get("dry_run", False),
        "expected_merges": max(int(claimed), obs.brain.duplicate_candidates, plan.absorbed if plan else 0),
    }
    return proposal.model_copy(update={"args": args})


def _fired_rules(proposal: Proposal, act: ActionPolicy) -> list[tuple[str, str, str]]:
    """(rule id, reason, risk) of every approval condition the proposal meets."""
    fired: list[tuple[str, str, str]] = []
    if act.destructive:
        fired.append((f"risk.{proposal.action}.destructive", f"{proposal.action} is destructive", act.risk))
    for rule in act.approval_when:
        if all(_holds(proposal.args, arg, cond) for arg, cond in rule.when.items()):
            reason = rule.reason or f"{proposal.action} meets condition {rule.id}"
            fired.append((f"risk.{proposal.action}.{rule.id}", reason, rule.risk or act.risk))
    return fired


def _holds(args: dict[str, Any], path: str, cond: Mapping[Op, Any]) -> bool:
    value: Any = args
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    try:
        return all(COMPARISONS[op](value, expected) for op, expected in cond.items())
    except TypeError:  # a condition we cannot evaluate must not wave the action through
        return True


def _pending_duplicate(proposal: Proposal, obs: Observation) -> list[Finding]:
    for pending in obs.pending_approvals:
        if pending.action == proposal.action and pending.args == proposal.args:
            reason = f"an identical {proposal.action} is already awaiting approval ({pending.id})"
            return [Finding("approval.already_pending", reason)]
    return []
