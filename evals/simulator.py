"""Closed-loop fleet simulator: the unchanged tick graph (rule planner + real PolicyEngine + real Actor)
drives a seeded simulated fleet through the same ports the agent uses (an Observer that builds
Observations, an `Effects` for `agent.service.actor.Actor`). Baselines (evals/baselines.py) act on the same fleet
through the same Actor but without the policy engine, on the same seeds and traces.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from core.domain import (
    BrainStats,
    BudgetState,
    DedupPlanSummary,
    GpuInfo,
    HostMetrics,
    Observation,
    PendingApproval,
    WorkerInfo,
)
from core.ports import ApprovalRequest, ApprovalTicket
from evals.runner import fast_tmp_dir
from evals.sim_metrics import CountingRecorder, SimMetrics, Timeline, summarize
from evals.sim_model import HOME_HOST, FleetState, SimConfig, SimWorker, TokenWindow, arrival_series
from evals.sim_work import advance
from graphs.planners import PlanContext, Planner, PlanResult

if TYPE_CHECKING:
    from agent.service.actor import ActionRuns, Actor
    from policies.engine import PolicyEngine
    from policies.model import Policy

DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


class SimFault(RuntimeError):
    """An effect the simulated fleet refuses (host down, unknown worker): the Actor records it as failed."""


# ---------------------------------------------------------------- ports


@dataclass
class SimEffects:
    """`agent.service.actor.Effects` over the simulated fleet."""

    state: FleetState
    timeline: Timeline
    calls: int = 0  # effects applied so far; observers re-read the action log only when it moved

    def _require_up(self, host: str) -> None:
        self.calls += 1
        if not self.state.host_up(host):
            raise SimFault(f"host {host} is unreachable")

    def scale(self, kind: str, host: str, count: int) -> str:
        self._require_up(host)
        key = f"{kind}@{host}"
        before = self.state.desired.get(key, 0)
        self.state.desired[key] = count
        self.state.reconcile(kind, host)
        self.timeline.scaled(self.state.now, key, before, count)
        return f"desired {key} = {count}"

    def start_embedding(self, host: str, shards: int, table: str, job_key: str) -> str:
        self._require_up(host)
        started = [self.state.new_worker("embed", host, job=True).id for _ in range(shards)]
        return f"embedding {table} on {host}: started {', '.join(started)}"

    def run_job(
        self,
        kind: str,
        host: str | None,
        job_key: str,
        dry_run: bool = False,
        plan: str | None = None,
        max_merges: int | None = None,
    ) -> str:
        target = host or HOME_HOST[kind]
        self._require_up(target)
        s = self.state
        if dry_run and kind == "dedup":  # the plan is there at once (a real dry run takes a job's time)
            found = int(s.duplicate_estimate * s.entities)
            digest = hashlib.sha256(f"{s.now}:{s.entities}:{found}".encode()).hexdigest()
            s.dedup_plan = DedupPlanSummary(
                hash=digest, absorbed=found, merges=found, created_at=s.now, entities_version=s.entities
            )
            return f"dedup dry run on {target}: plan {digest[:12]} merges {found}"
        if dry_run:
            return f"{kind} dry run on {target}: nothing changed"
        if plan is not None and (s.dedup_plan is None or s.dedup_plan.hash != plan):
            raise SimFault(f"dedup plan {plan[:12]} is no longer current")
        return f"{kind} job {s.new_worker(kind, target, job=True).id} started on {target}"

    def set_routing(self, weights: Mapping[str, float]) -> str:
        self.calls += 1
        self.state.routing = dict(weights)
        return f"routing {dict(weights)}"

    def set_task_tier(self, task: str, tier: str) -> str:
        self.calls += 1  # the simulated fleet has no reasoning stage: the call is counted, nothing moves
        return f"{task} tier {tier}"

    def restart_worker(self, worker_id: str) -> str:
        self.calls += 1
        worker = next((w for w in self.state.live() if w.id == worker_id), None)
        if worker is None:
            raise SimFault(f"no worker {worker_id}")
        self.state.drop_batch(worker)  # a restart does not wait for the batch in hand
        worker.ready_at = self.state.now + self.state.cfg.kind(worker.kind).start_delay_s
        return f"{worker_id} restarted"

    def stop_worker(self, worker_id: str) -> str:
        self.calls += 1
        worker = next((w for w in self.state.live() if w.id == worker_id), None)
        if worker is None:
            raise SimFault(f"no worker {worker_id}")
        self.state.stop(worker)  # drains: finishes its batch within the grace
        return f"{worker_id} stopped"

    def reclaim_disk(self, target: str, *, older_than_days: float, keep: int) -> str:
        self.calls += 1  # the simulated fleet has no disk to fill: the call is recorded, nothing changes
        return f"reclaim {target}: nothing to free in the simulator"

    def undo_dedup(self, run: str) -> str:
        self.calls += 1  # the simulated brain keeps no merges: the call is recorded, nothing changes
        return f"undo dedup run {run[:12]}: no merges in the simulator"

    def drop_index(self, table: str) -> str:
        self.calls += 1  # the simulated brain has no vector index
        return f"drop index on {table}: no index in the simulator"


@dataclass
class SimDesk:
    """ApprovalDesk: a simulated human answers every request after `approve_after_s` (or never)."""

    ttl_s: float
    approve_after_s: float | None
    waiting: dict[str, tuple[ApprovalRequest, float]] = field(default_factory=dict)
    opened: int = 0

    def open(self, request: ApprovalRequest, now: float) -> ApprovalTicket:
        if request.approval_id not in self.waiting:
            self.waiting[request.approval_id] = (request, now)
            self.opened += 1
        return ApprovalTicket(request.approval_id, now + self.ttl_s)

    def pending(self) -> tuple[PendingApproval, ...]:
        return tuple(
            PendingApproval(id=i, action=r.proposal.action, args=r.proposal.args, expires_at=t + self.ttl_s)
            for i, (r, t) in self.waiting.items()
        )

    def answer_due(self, now: float, actor: Actor) -> None:
        """Approved actions run under their approval id (as the approval graph does); overdue ones expire."""
        for approval_id, (request, opened_at) in list(self.waiting.items()):
            if self.approve_after_s is not None and now - opened_at >= self.approve_after_s:
                actor.execute(request.proposal, approval_id)
                del self.waiting[approval_id]
            elif now - opened_at >= self.ttl_s:
                del self.waiting[approval_id]


@dataclass
class SimObserver:
    """The Observation the agent would build from this fleet (same shape FleetObserver produces)."""

    state: FleetState
    runs: ActionRuns
    desk: SimDesk
    effects: SimEffects
    _recent: tuple[int, dict[str, float]] = (-1, {})

    def recent_actions(self) -> dict[str, float]:
        """ActionRuns.last_done(), as the agent's observer reads it, re-read only after new effects."""
        if self._recent[0] != self.effects.calls:
            self._recent = (self.effects.calls, self.runs.last_done())
        return dict(self._recent[1])

    def __call__(self, now: float) -> Observation:
        s = self.state
        return Observation(
            time=now,
            hosts=tuple(self._host(h.name) for h in s.cfg.hosts),
            workers=tuple(self._worker(w) for w in s.live() if s.host_up(w.host)),
            brain=BrainStats(
                records=s.entities * 2,
                entities=s.entities,
                relationships=s.relationships,
                communities=max(1, s.entities // 60),
                pending={k: int(v) for k, v in s.backlog.items()},
                duplicate_estimate=round(s.duplicate_estimate, 6),
                duplicate_candidates=int(s.duplicate_estimate * s.entities),
                dedup_plan=s.dedup_plan.model_copy(update={"stale": s.dedup_plan.entities_version != s.entities})
                if s.dedup_plan
                else None,
                relationships_changed_since_recluster=s.relationships_changed,
                community_age_s=now - s.community_built_at,
            ),
            rates=self._rates(),
            budget=self._budget(now),
            pending_approvals=self.desk.pending(),
            desired={k: v for k, v in s.desired.items() if s.host_up(k.split("@", 1)[1]) or v},
            recent_actions=self.recent_actions(),
            notes=self._notes(),
        )

    def _host(self, name: str) -> HostMetrics:
        s = self.state
        spec = s.host_specs[name]
        if not s.host_up(name):
            return HostMetrics(host=name, reachable=False, error="ssh: connect timed out")
        cpu, mem = s.load(spec)
        util = 90.0 if s.live("embed", name) else 2.0
        gpu = GpuInfo(index=0, name="sim-gpu", util_percent=util, mem_used_mb=2000.0, mem_total_mb=24576.0)
        gpus = (gpu,) if spec.gpu else ()
        return HostMetrics(
            host=name, cpu_percent=min(cpu, 100.0), mem_percent=min(mem, 100.0), cpu_count=spec.cpu_count, gpus=gpus
        )

    def _worker(self, w: SimWorker) -> WorkerInfo:
        spec = self.state.specs[w.kind]
        ready = w.ready_at <= self.state.now
        cpu = spec.cpu_share * self.state.host_specs[w.host].cpu_count if ready else 0.0  # psutil-style per-core
        return WorkerInfo(
            id=w.id,
            kind=w.kind,
            host=w.host,
            state="draining" if w.draining else "running" if ready else "starting",
            started_at=w.started_at,
            cpu_percent=cpu,
            processed=int(w.processed),
            idle=w.idle,
            busy_s=round(w.busy_reported, 3),
        )

    def _rates(self) -> dict[str, float]:
        """Items/min drained over the rate window (negative: the backlog grows)."""
        if len(self.state.history) < 2:
            return {}
        (t0, first), (t1, last) = self.state.history[0], self.state.history[-1]
        minutes = max(1e-9, (t1 - t0) / 60.0)
        return {k: round((first[k] - last[k]) / minutes, 2) for k in last}

    def _budget(self, now: float) -> BudgetState:
        s, cfg = self.state, self.state.cfg
        used = cfg.window_tokens - s.tokens.room(now)
        elapsed_share = min(1.0, max(600.0, s.elapsed) / cfg.window_s)
        return BudgetState(
            window_s=cfg.window_s,
            window_tokens=cfg.window_tokens,
            used_tokens=used,
            pace=round(used / cfg.window_tokens / elapsed_share, 4),
            cost_today=round(s.cost, 4),
            routing=dict(s.routing),
        )

    def _notes(self) -> tuple[str, ...]:
        s = self.state
        notes = [f"unreachable hosts: {h.name}" for h in s.cfg.hosts if not s.host_up(h.name)]
        if s.fault_active("provider_outage"):
            notes.append("llm provider errors: 503 Service Unavailable on every tier")
        return tuple(notes)


# ---------------------------------------------------------------- controllers


class Controller(Protocol):
    name: str

    def tick(self, now: float, tick_no: int) -> None: ...


@dataclass
class AgentController:
    """The unchanged tick graph (no checkpointer) with the given planner and the real PolicyEngine."""

    graph: Any
    desk: SimDesk
    actor: Actor
    recorder: CountingRecorder
    tokens: TokenWindow
    name: str = "agent"

    def tick(self, now: float, tick_no: int) -> None:
        self.desk.answer_due(now, self.actor)
        before = self.recorder.planner_tokens
        self.graph.invoke({"tick_id": f"sim-{tick_no}", "now": now, "dry_run": False})
        self.tokens.charge(now, self.recorder.planner_tokens - before)  # a model planner spends the same budget


@dataclass
class DirectController:
    """A baseline planner whose proposals run straight through the Actor: no policy, no approvals."""

    planner: Planner
    observer: SimObserver
    actor: Actor
    recorder: CountingRecorder
    name: str

    def tick(self, now: float, tick_no: int) -> None:
        obs = self.observer(now)
        result = self.planner.plan(PlanContext(obs, now))
        if not isinstance(result, PlanResult):
            return
        for index, proposal in enumerate(result.proposals):
            if proposal.action != "noop":
                status = self.actor.execute(proposal, f"{self.name}-{tick_no}:{index}").status
                self.recorder.outcomes[status] = self.recorder.outcomes.get(status, 0) + 1
                if status == "done":
                    self.recorder.verify.note(proposal, now, obs)


PlannerMaker = Callable[["Policy", "PolicyEngine"], Planner]  # as agent.service.build.build_planner


@dataclass(frozen=True)
class SimResult:
    metrics: SimMetrics
    timeline: Timeline


def run_simulation(
    cfg: SimConfig,
    controller: str = "agent",
    policy_path: Path = DEFAULT_POLICY,
    planner_maker: PlannerMaker | None = None,
    workdir: Path | None = None,
) -> SimResult:
    """Run one controller ("agent", "hpa" or "fixed") over the config's trace; deterministic per seed."""
    from policies.loader import load_policy

    policy = load_policy(policy_path)
    with tempfile.TemporaryDirectory(dir=workdir or fast_tmp_dir()) as tmp:
        return _run(cfg, controller, policy, planner_maker, Path(tmp))


def _run(cfg: SimConfig, controller_name: str, policy: Policy, maker: PlannerMaker | None, tmp: Path) -> SimResult:
    from agent.service.actor import ActionRuns, Actor

    policy = with_host_prices(policy, cfg)
    state = FleetState(cfg=cfg, now=cfg.start_time, tokens=TokenWindow(cfg.window_s, cfg.window_tokens))
    state.community_built_at = cfg.start_time
    for key, count in cfg.initial_desired:
        state.desired[key] = count
        state.reconcile(*key.split("@", 1))
    timeline = Timeline()
    effects = SimEffects(state, timeline)
    runs = ActionRuns(tmp / "runs.db")
    actor = Actor(effects=effects, runs=runs, clock=lambda: state.now)
    desk = SimDesk(ttl_s=policy.approval_ttl_s, approve_after_s=cfg.approve_after_s)
    observer = SimObserver(state, runs, desk, effects)
    recorder = CountingRecorder()
    controller = _controller(controller_name, policy, maker, observer, actor, desk, recorder, state)
    arrivals = arrival_series(cfg)
    ceilings = {h.name: policy.host_limits(h.name) for h in cfg.hosts}
    started = time.perf_counter()
    ticks_every = max(1, round(cfg.tick_s / cfg.step_s))
    for step, arrived in enumerate(arrivals):
        if step % ticks_every == 0:
            recorder.verify.check(observer(state.now), state.now)  # earlier actions against what they expected
            controller.tick(state.now, step // ticks_every)
            timeline.sample(state)
        advance(state, float(arrived))
        timeline.overload(state, ceilings)
    timeline.sample(state)
    wall = time.perf_counter() - started
    return SimResult(summarize(controller.name, cfg, state, timeline, recorder, desk.opened, wall), timeline)


def with_host_prices(policy: Policy, cfg: SimConfig) -> Policy:
    """The policy the controllers see: each simulated host's limits (its own entry or "*") with its price."""
    hosts = dict(policy.hosts)
    for h in cfg.hosts:
        hosts[h.name] = policy.host_limits(h.name).model_copy(update={"cost_per_hour": h.cost_per_hour})
    return policy.model_copy(update={"hosts": hosts})


def _controller(
    name: str,
    policy: Policy,
    maker: PlannerMaker | None,
    observer: SimObserver,
    actor: Actor,
    desk: SimDesk,
    recorder: CountingRecorder,
    state: FleetState,
) -> Controller:
    from evals.baselines import FixedWorkers, HpaBaseline

    if name == "agent":
        from agent.service.build import TickPorts, build_tick
        from policies.engine import PolicyEngine

        engine = PolicyEngine(policy, known_hosts=[h.name for h in state.cfg.hosts])
        ports = TickPorts(observer=observer, actor=actor, desk=desk, recorder=recorder, clock=lambda: state.now)
        graph = build_tick(ports, (maker or rules_planner)(policy, engine), policy, engine)
        return AgentController(graph, desk, actor, recorder, state.tokens)
    if name == "hpa":
        return DirectController(HpaBaseline.from_policy(policy), observer, actor, recorder, "hpa")
    if name == "fixed":
        return DirectController(FixedWorkers(), observer, actor, recorder, "fixed")
    raise ValueError(f"unknown controller {name!r}; use agent, hpa or fixed")


def rules_planner(policy: Policy, engine: PolicyEngine) -> Planner:
    """The planner `brainops tick` builds without a model, with the default planner settings."""
    from agent.service.build import build_planner
    from core.settings import PlannerConfig

    return build_planner(policy, engine, PlannerConfig())
