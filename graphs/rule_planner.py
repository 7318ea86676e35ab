"""The deterministic rule planner: a real controller, the default when no model is configured.

Scaling follows Kubernetes' HPA: desired = ceil(current * metric / target) with a tolerance band, bounded
steps up and down, and a scale-down stabilization window (the highest recommendation of the window wins, so
a noisy backlog does not flap the worker count). Activation (KEDA) decides when to go from zero to one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace

from core.domain import BudgetState, Observation, PlannerInfo, Proposal
from graphs import data_jobs, rules_index, rules_reasoning
from graphs.capacity import CapacityMeters, KindMeter, Objective, Sizing, budget_workers, predict, size
from graphs.plan_facts import awaiting_scale, crash_loop, held_back, in_cooldown, no_room, pending_scale, refused
from graphs.planners import PlanContext, PlanResult
from graphs.remediation import restart_proposals
from graphs.rule_params import RuleParams
from graphs.rules_cost import cost_routing
from graphs.rules_storage import storage_proposals
from graphs.scaling import (
    KindPlan,
    RecommendationHistory,
    ScalingParams,
    gather,
    hpa_desired,
    scale_proposals,
    spread_down,
    spread_up,
)

# A kind goes to zero between bursts only when its objective is this many stabilization windows long: a
# shorter cycle would read as flapping.
IDLE_OBJECTIVE = 4.0
EARLY_RELEASE_MIN = 2  # idle workers released before the window ends only this many at a time or more
DRAINED_HOLD_S = 180.0  # a queue drained this long lets idle workers go before the stabilization window ends
LASTING = 1.25  # arrivals alone need this much more than the approval-free workers: worth asking a human
# Whether the policy would let a proposal run without a human (the engine's verdict is not needs_approval).
ApprovalFree = Callable[[Proposal, Observation, float], bool]

__all__ = ["RecommendationHistory", "RuleParams", "RulePlanner", "ScalingParams", "hpa_desired"]


class RulePlanner:
    def __init__(
        self,
        params: RuleParams,
        history: RecommendationHistory | None = None,
        meters: CapacityMeters | None = None,
        approval_free: ApprovalFree | None = None,
        project: Callable[[Proposal, Observation], Observation] | None = None,
        corrections: Callable[[], Mapping[tuple[str, str], float]] | None = None,
    ) -> None:
        self.params = params
        self.history = history or RecommendationHistory()
        self.meters = meters or CapacityMeters()
        self.approval_free = approval_free
        self.project = project  # the fleet after a proposal, as the policy engine projects it
        # (kind, host) -> factor on measured throughput, learnt from verified and missed scaling actions
        self.corrections = corrections
        self.last_up: dict[str, float] = {}  # kind -> when this planner last proposed more workers
        self.holds: list[str] = []

    def _settled(self, kind: str, now: float, window_s: float) -> bool:
        """No scale-up of the kind within the window: a scale-down now would not read as a flap."""
        return now - self.last_up.get(kind, -math.inf) >= window_s

    def plan(self, ctx: PlanContext) -> PlanResult:
        obs, now = ctx.observation, ctx.now
        if obs.brain.error:  # zeros from an unreadable brain would read as "all stages within targets"
            why = f"{obs.brain.error}; nothing is planned on brain figures until it can be read"
            return PlanResult(proposals=(Proposal(action="noop", rationale=why),), planner=PlannerInfo(kind="rules"))
        self.measure(obs)
        self.holds = []  # why each action due this tick is held back, for an honest noop
        p, holds = self.params, self.holds
        dedup = data_jobs.dedup(p, obs, now, holds)
        scaling, after = self._scaling(obs, now)
        proposals = [
            *scaling,
            *data_jobs.embedding(p, after, now, holds),
            *dedup,
            *data_jobs.recluster(p, obs, now, holds, dedup_planned=bool(dedup)),
            *(data_jobs.routing(p, obs, now, holds) or cost_routing(p, obs, now, holds)),
            *rules_reasoning.proposals(p.insight, obs, now, holds),
            *restart_proposals(obs, now, p.restart, p.host_ceilings),
            *storage_proposals(p.storage, obs, now, holds),
            *rules_index.optimize_index(p.index, obs, now, holds),
        ]
        if not proposals:
            proposals.append(Proposal(action="noop", rationale=self._why_nothing(obs)))
        return PlanResult(proposals=tuple(proposals), planner=PlannerInfo(kind="rules"))

    def measure(self, obs: Observation) -> None:
        """Feed the capacity meters (once per observation, whoever plans this tick)."""
        scaled = self.params.scaling.items()
        llm = frozenset(kind for kind, p in scaled if p.llm_bound)
        self.meters.update(obs, {kind: p.stage for kind, p in scaled}, llm)

    def with_prediction(self, obs: Observation, proposal: Proposal) -> Proposal:
        """A scale_workers proposal from any planner, with its predicted effect (when it has none yet)."""
        kind, host, count = (proposal.args.get(k) for k in ("kind", "host", "count"))
        if proposal.action != "scale_workers" or proposal.prediction or not isinstance(kind, str):
            return proposal
        p = self.params.scaling.get(kind)
        if p is None or not isinstance(count, int):
            return proposal
        plan = gather(obs, kind, p)
        if not isinstance(host, str) or host not in plan.counts:
            return proposal
        added = count - plan.counts[host]
        cost = (self.params.cost, host, added, p.est_cpu_percent)
        change = (plan.current, plan.current + added)
        guess = predict(obs, self._meter(kind, plan.counts), kind, p.stage, change, cost, p.max_wait_s)
        return proposal.model_copy(update={"prediction": guess})

    def _meter(self, kind: str, counts: Mapping[str, int]) -> KindMeter | None:
        """The kind's meter, its per-worker throughput corrected by what verified scaling showed on the hosts
        running it (weighted by their workers; all of its hosts alike when none runs it)."""
        meter = self.meters.get(kind)
        factors = self.corrections() if self.corrections else {}
        if meter is None or meter.per_worker is None or not factors:
            return meter
        weights = {h: n for h, n in counts.items() if n > 0} or dict.fromkeys(counts, 1)
        total = sum(weights.values())
        factor = sum(factors.get((kind, h), 1.0) * n for h, n in weights.items()) / total if total else 1.0
        return meter if factor == 1.0 else replace(meter, per_worker=meter.per_worker * factor)

    # ------------------------------------------------------------ scaling

    def _scaling(self, obs: Observation, now: float) -> tuple[list[Proposal], Observation]:
        """Kinds in turn against one headroom per host: each kind sees the hosts as the kinds before it leave
        them (the guard judges the tick the same way). Returns the proposals and the fleet they leave."""
        out: list[Proposal] = []
        for kind, p in self.params.scaling.items():
            proposals = self._scale_kind(obs, now, kind, p)
            out += proposals
            for proposal in proposals:
                obs = self.project(proposal, obs) if self.project else obs
        return out, obs

    def _scale_kind(self, obs: Observation, now: float, kind: str, p: ScalingParams) -> list[Proposal]:
        plan = gather(obs, kind, p)
        if not plan.counts:
            return []
        current = plan.current
        top = p.max_workers * len(plan.counts)
        meter = self._meter(kind, plan.counts)
        sizing = self._objective(obs, kind, p, plan, meter)
        if sizing is None:
            raw = hpa_desired(current, plan.backlog, p, max_total=top)
            if current > 0 and plan.backlog > 0:
                raw = max(raw, 1)  # never idle a kind to zero while its queue still holds work
            why = f"{p.stage} backlog {plan.backlog} over {current} worker(s), target {p.target_per_worker:g}/worker"
        else:
            step = (current - p.max_step_down, max(current + p.max_step_up, current * 2))
            raw = max(p.min_workers, step[0], min(top, sizing.desired, step[1]))
            why = f"{p.stage} backlog {plan.backlog}, ~{sizing.arrivals:.0f}/min arriving: {sizing.why}"
        last_change = max(
            (t for k, t in obs.recent_actions.items() if k.startswith(f"scale_workers:{kind}@")), default=None
        )
        seed = (last_change, current) if last_change is not None else None
        stabilized = self.history.add(kind, now, raw, p.stabilization_s, seed)
        desired = raw if raw > current else min(current, stabilized)
        quiet = (
            meter is not None
            and meter.drained_for(now) >= DRAINED_HOLD_S
            and self._settled(kind, now, p.stabilization_s)
            # a burst's excess, or a kind going to zero between bursts (its restart waits for its objective);
            # one worker at the margin waits the window
            and (current - raw >= EARLY_RELEASE_MIN or raw == 0)
        )
        if sizing is not None and sizing.drained and raw < current and quiet:
            desired = raw  # idle workers on a drained queue, not just scaled up: nothing in hand to lose
        idle_all = plan.backlog <= 0 and all(w.idle for w in obs.workers if w.kind == kind and w.state == "running")
        waiting = meter is not None and meter.measuring(now) and not idle_all
        if sizing is None and desired < current and (plan.rate < 0 or waiting):
            # growing, or busy and about to be measured against its objective: it could flap back
            state = "its backlog is growing" if plan.rate < 0 else "its workers are being measured"
            self.holds.append(f"{kind} stays at {current} (the backlog alone says {desired}) while {state}")
            return []
        looping = crash_loop(obs, kind) if desired > current else None
        if looping:
            why = f"{looping}: one cause, so {kind} is not scaled up on any host; an operator must look"
            return [Proposal(action="noop", rationale=why)]
        short = self._budget_short(obs) if desired > current and p.llm_bound else None
        if short:
            return [Proposal(action="noop", rationale=f"{kind} not scaled up to {desired}: {short}")]
        recently_idled = current == 0 and last_change is not None and now - last_change < p.stabilization_s
        if sizing is None and desired > current and recently_idled and plan.backlog < p.target_per_worker:
            # hysteresis: a trickle right after scaling to zero waits for a worker's worth of work
            self.holds.append(f"{kind}: {plan.backlog} queued, under a worker's worth just after going to zero")
            return []
        backoff = self.params.refusal_backoff_s
        cooling = [
            h
            for h in plan.counts
            if in_cooldown(obs, f"scale_workers:{kind}@{h}", now, p.cooldown_s)
            or (desired > current and refused(obs, f"scale_workers:{kind}@{h}", now, backoff))
            or awaiting_scale(obs, kind, h)  # a human is already asked about this kind here: no second prompt
        ]
        if desired != current:
            self.last_up[kind] = now if desired > current else self.last_up.get(kind, -math.inf)
        if desired > current:
            ran = [h for h in cooling if plan.counts[h] or f"{kind}@{h}" in obs.desired]
            if sizing is not None and any(plan.counts[h] < p.max_workers for h in ran):
                # a host running the kind has room once its cooldown ends: no spill onto another
                self.holds.append(f"{why}: {current} -> {desired} waits, {self._held_hosts(obs, now, plan, ran)}")
                return []
            crashing = {w.host for w in obs.workers if w.kind == kind and w.state == "fatal"}
            blocked = [*cooling, *crashing]
            new = self._spread_up(obs, now, plan, desired - current, blocked, sizing)
            added = sum(n - plan.counts[h] for h, n in new.items())
            if added < desired - current:  # say what keeps the rest off, the decision shows a partial step
                why = f"{why}; {desired - current - added} of {desired - current} not placed: "
                why += self._why_unplaced(obs, now, plan, blocked)
            if not new:
                self.holds.append(why)
            return self._with_predictions(obs, plan, new, f"{why}: scale up to {current + added} in total", meter)
        if desired < current:
            new = spread_down(plan, current - desired, cooling, obs)
            if not new:
                self.holds.append(f"{why}: {current} -> {desired} waits, {self._held_hosts(obs, now, plan, cooling)}")
            return self._with_predictions(obs, plan, new, f"{why}: scale down to {desired} in total", meter)
        return []

    def _held_hosts(self, obs: Observation, now: float, plan: KindPlan, hosts: list[str]) -> str:
        p = plan.p
        out = []
        for host in hosts:
            key = f"scale_workers:{plan.kind}@{host}"
            backoff = self.params.refusal_backoff_s
            held = held_back(obs, key, now, cooldown_s=p.cooldown_s, backoff_s=backoff, asked=False)
            pending = pending_scale(obs, plan.kind, host)
            held = f"awaiting approval {pending.id}" if pending else held
            out.append(f"{host} {held or 'held'}")
        return ", ".join(out) or "no host"

    def _why_unplaced(self, obs: Observation, now: float, plan: KindPlan, blocked: list[str]) -> str:
        held = [h for h in blocked if h in plan.counts]
        at_max = [h for h in plan.counts if h not in held and plan.counts[h] >= plan.p.max_workers]
        full = [h for h in plan.counts if h not in held and h not in at_max]
        parts = [self._held_hosts(obs, now, plan, held)] if held else []
        parts += [f"{h} at the policy's max {plan.p.max_workers} {plan.kind} workers" for h in at_max]
        if full:
            parts.append(no_room(obs, full, self.params.host_ceilings))
        return ", ".join(parts)

    def _spread_up(
        self, obs: Observation, now: float, plan: KindPlan, add: int, blocked: list[str], sizing: Sizing | None
    ) -> dict[str, int]:
        """Under the objective, what the policy allows without a human goes first: on the hosts running the
        kind, then on others (a burst gets workers this tick). More is asked for, through the approval the
        policy names, only for a lasting load: a prompt answered after a burst would only over-scale."""
        ceilings = self.params.host_ceilings
        if self.approval_free is None or sizing is None:
            return spread_up(plan, add, obs, ceilings, blocked)
        free = {h: self._free_cap(obs, now, plan, h) for h in plan.counts}
        running = {h: cap for h, cap in free.items() if plan.counts[h] > 0}
        new: dict[str, int] = {}
        for caps in (running, free):
            new = spread_up(plan, add, obs, ceilings, blocked, {**dict.fromkeys(plan.counts, 0), **caps})
            if sum(n - plan.counts[h] for h, n in new.items()) >= add:
                return new
        if sizing.sustained <= LASTING * sum(free.values()):
            return new
        return spread_up(plan, add, obs, ceilings, blocked)

    def _free_cap(self, obs: Observation, now: float, plan: KindPlan, host: str) -> int:
        """The highest count of the kind on `host` the policy lets run without an approval."""
        assert self.approval_free is not None
        count = plan.counts[host]
        while count < plan.p.max_workers:
            args = {"kind": plan.kind, "host": host, "count": count + 1}
            if not self.approval_free(Proposal(action="scale_workers", args=args), obs, now):
                break
            count += 1
        return count

    def _objective(
        self, obs: Observation, kind: str, p: ScalingParams, plan: KindPlan, meter: KindMeter | None
    ) -> Sizing | None:
        """The wait-time objective's sizing, capped by what the token window can pay for; None: HPA decides."""
        if p.max_wait_s is None or meter is None:
            return None
        idle = sum(1 for w in obs.workers if w.kind == kind and w.state == "running" and w.idle)
        goal = Objective(p.max_wait_s, p.tolerance, may_idle=p.max_wait_s >= IDLE_OBJECTIVE * p.stabilization_s)
        sizing = size(meter, plan.backlog, plan.current, idle, goal)
        if sizing is None or not p.llm_bound or meter.tokens_per_item is None or meter.per_worker is None:
            return sizing
        affordable = budget_workers(obs, meter, p.max_wait_s)
        if sizing.desired > max(plan.current, affordable):
            why = f"{sizing.why}; the token window pays for {affordable}"
            return Sizing(max(plan.current, affordable), sizing.need, sizing.arrivals, why)
        return sizing

    def _with_predictions(
        self, obs: Observation, plan: KindPlan, new: dict[str, int], why: str, meter: KindMeter | None
    ) -> list[Proposal]:
        after = plan.current + sum(n - plan.counts[h] for h, n in new.items())
        out = []
        for proposal in scale_proposals(plan, new, why):
            host, count = proposal.args["host"], proposal.args["count"]
            cost = (self.params.cost, host, count - plan.counts[host], plan.p.est_cpu_percent)
            guess = predict(obs, meter, plan.kind, plan.p.stage, (plan.current, after), cost, plan.p.max_wait_s)
            out.append(proposal.model_copy(update={"prediction": guess, "rationale": f"{guess.summary()}; {why}"}))
        return out

    def _budget_short(self, obs: Observation) -> str | None:
        """Why the budget cannot pay for more LLM-bound workers: the day's dollar cap nearly spent, the token
        window below the floor, or the burn (measured across ticks; else the window's average, from its pace)
        emptying it within the projection horizon."""
        b = obs.budget
        if b.daily_cost_cap and b.cost_today + b.reserved_cost >= (1 - self.params.budget_floor) * b.daily_cost_cap:
            spent = b.cost_today + b.reserved_cost
            return f"${spent:.2f} of the ${b.daily_cost_cap:.2f} daily cost cap is spent or held"
        if b.window_tokens <= 0:
            return None
        if b.remaining_tokens < self.params.budget_floor * b.window_tokens:
            return f"{b.remaining_tokens:,} tokens left is under {self.params.budget_floor:.0%} of the window"
        burn = self.meters.burn_per_min if self.meters.burn_per_min else _average_burn(b)
        left = b.remaining_tokens / burn if burn else None
        if left is not None and left < self.params.budget_horizon_min:
            rate = f"{burn:,.0f} tokens/min"
            return f"at the recent burn ({rate}) the window's {b.remaining_tokens:,} tokens run out in ~{left:.0f} min"
        return None
        if b.remaining_tokens < self.params.budget_floor * b.window_tokens:
            return f"{b.remaining_tokens:,} tokens left is under {self.params.budget_floor:.0%} of the window"
        left = self.meters.minutes_of_budget_left(b.remaining_tokens)
        if left is not None and left < self.params.budget_horizon_min:
            burn = f"{self.meters.burn_per_min or 0.0:,.0f} tokens/min"
            return f"at the recent burn ({burn}) the window's {b.remaining_tokens:,} tokens run out in ~{left:.0f} min"
        return None

    def _why_nothing(self, obs: Observation) -> str:
        fatal = [w.id for w in obs.workers if w.state == "fatal"]
        down = [h.host for h in obs.hosts if not h.reachable]
        parts = [f"nothing done: {'; '.join(self.holds)}" if self.holds else "all stages within targets"]
        if fatal:
            parts.append(f"crash-looping workers need an operator: {', '.join(fatal)}")
        if down:
            parts.append(f"unreachable hosts skipped: {', '.join(down)}")
        return "; ".join(parts)


def _average_burn(b: BudgetState) -> float | None:
    """Tokens per minute over the window so far, from its pace (used share / elapsed share): a planner that
    has not yet seen two ticks still projects the window to its end."""
    if b.pace <= 0 or b.used_tokens <= 0:
        return None
    elapsed_min = (b.used_tokens / b.window_tokens) / b.pace * b.window_s / 60.0
    return b.used_tokens / elapsed_min if elapsed_min > 0 else None
