"""The agent, wired from settings: the one object the CLI, the scheduler and the Slack app talk to.

Heavy parts (LanceDB, langgraph, litellm) are built on first use, so `brainops status` stays fast.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from core.domain import Observation, Outcome, PlannerInfo, Proposal
from core.ports import ApprovalRequest, ApprovalTicket
from graphs.planners import RejectedCall, RequestedPlanner

if TYPE_CHECKING:
    from pathlib import Path

    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph.state import CompiledStateGraph

    from agent.service.actor import ActionRuns, Actor
    from agent.service.approval_threads import ApprovalThreads
    from agent.service.effects import Fleet
    from agent.service.locks import HomeLock
    from agent.service.observer import FleetObserver
    from agent.service.policy_state import PolicyInForce
    from agent.service.verification import Verified, Verifier
    from agent.state.approvals import AnswerResult, Approval, ApprovalStore
    from agent.state.corrections import CorrectionStore
    from agent.state.decisions import DecisionLog
    from core.settings import Settings
    from fleet.dispatcher import ReconcileReport
    from graphs.planners import Planner
    from policies.engine import PolicyEngine
    from policies.live import PolicyFailure
    from policies.model import Policy


@dataclass(frozen=True)
class TickReport:
    tick_id: str
    proposals: tuple[Proposal, ...]
    outcomes: tuple[Outcome, ...]
    verdicts: tuple[dict[str, Any], ...]
    planner: PlannerInfo
    rejected: tuple[dict[str, Any], ...] = ()
    duration_s: float = 0.0
    decision_ids: tuple[str, ...] = ()  # the records of `rejected`, then one per proposal
    verifications: tuple[dict[str, Any], ...] = ()  # verdicts this tick recorded on earlier actions


Notifier = Callable[[str, dict[str, Any]], None]  # (event, payload): "approval_opened", "approval_closed", "tick"


@dataclass
class Agent:
    settings: Settings
    clock: Callable[[], float] = time.time
    notifiers: list[Notifier] = field(default_factory=list)

    # ------------------------------------------------------------ pause

    @property
    def _pause_file(self) -> Path:
        return self.settings.home / "paused.json"

    def pause(self, by: str) -> None:
        """Stop autonomous ticks (durable: every brainops process on this home sees it). Chat, CLI and
        approvals keep working."""
        import json

        self.settings.ensure_dirs()
        self._pause_file.write_text(json.dumps({"by": by, "at": self.clock()}))

    def resume(self) -> None:
        self._pause_file.unlink(missing_ok=True)

    def paused_by(self) -> str | None:
        import json

        try:
            return str(json.loads(self._pause_file.read_text())["by"])
        except (OSError, ValueError, KeyError):
            return None

    # ------------------------------------------------------------ parts

    @cached_property
    def lock(self) -> HomeLock:
        """Held by whatever changes state on this home, in any process: ticks, approval answers, supervision."""
        from agent.service.locks import HomeLock

        return HomeLock(self.settings.home / "tick.lock")

    @cached_property
    def in_force(self) -> PolicyInForce:
        from agent.service.build import ModelSetup, build_planner
        from agent.service.policy_state import PolicyInForce
        from graphs.capacity import CapacityMeters
        from graphs.scaling import RecommendationHistory
        from llm.routing import tier_ranks
        from policies.live import live_policy

        history, meters, model = RecommendationHistory(), CapacityMeters(), ModelSetup.from_settings(self.settings)
        corrections = self.corrections.factors
        return PolicyInForce(
            live=live_policy(self.settings, on_failure=self._policy_failed, clock=self.clock),
            known_hosts=[h.name for h in self.settings.hosts],
            make_planner=lambda policy, engine: build_planner(
                policy, engine, self.settings.planner, model, history, meters, self.settings.llm, corrections
            ),
            tier_ranks=tier_ranks(self.settings.llm),
        )

    @property
    def policy(self) -> Policy:
        """The policy file as it is now (the last good version while the file fails to load)."""
        return self.in_force.policy()

    @property
    def engine(self) -> PolicyEngine:
        return self.in_force.engine()

    @property
    def policy_failure(self) -> PolicyFailure | None:
        self.in_force.policy()
        return self.in_force.live.failure

    def _policy_failed(self, failure: PolicyFailure) -> None:
        """A policy edit that does not load: the error log, a decision record, a notification (Slack)."""
        import logging

        logging.getLogger("brainops").error(
            "policy %s fails to load; the last good policy stays in force: %s", failure.where, failure.error
        )
        self.decisions.append(
            tick_id="policy",
            action="policy.reload_failed",
            args={"file": failure.where},
            rationale="the policy file fails to load; the last good policy stays in force",
            outcome=Outcome(status="failed", detail=str(failure.error)),
            now=failure.since,
        )
        self._notify("policy_reload_failed", {"failure": failure})

    @cached_property
    def decisions(self) -> DecisionLog:
        from agent.state.decisions import DecisionLog

        return DecisionLog.from_settings(self.settings)

    @cached_property
    def corrections(self) -> CorrectionStore:
        from agent.state.corrections import CorrectionStore

        return CorrectionStore(self.settings.state_db)

    @property
    def verifier(self) -> Verifier:
        from agent.service.verification import Verifier

        return Verifier(self.decisions, self.corrections, self.policy.verification)

    @cached_property
    def approvals(self) -> ApprovalStore:
        from agent.state.approvals import ApprovalStore

        return ApprovalStore(self.settings.state_db)

    @cached_property
    def fleet(self) -> Fleet:
        from agent.service.effects import Fleet

        fleet = Fleet.from_settings(self.settings)
        fleet.policy_source = lambda: self.policy
        return fleet

    @cached_property
    def runs(self) -> ActionRuns:
        from agent.service.actor import ActionRuns

        return ActionRuns(self.settings.state_db)

    @cached_property
    def actor(self) -> Actor:
        from agent.service.actor import Actor

        return Actor(effects=self.fleet, runs=self.runs, clock=self.clock)

    @cached_property
    def observer(self) -> FleetObserver:
        from agent.service.observer import FleetObserver

        return FleetObserver(
            settings=self.settings,
            fleet=self.fleet,
            approvals=self.approvals,
            runs=self.runs,
            policy=lambda: self.policy,
            index_rules=lambda: self.policy.index,
        )

    @property
    def planner(self) -> Planner:
        return self.in_force.planner()

    @cached_property
    def checkpointer(self) -> SqliteSaver:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.settings.ensure_dirs()
        conn = sqlite3.connect(self.settings.checkpoint_db, check_same_thread=False)
        return SqliteSaver(conn)

    def _tick_graph(self, planner: Planner) -> CompiledStateGraph:
        from agent.service.build import TickPorts, build_tick

        ports = TickPorts(
            observer=self.observer,
            actor=self.actor,
            desk=self,
            recorder=self.decisions,
            recent_decisions=lambda n: [r.to_dict() for r in self.decisions.last(n)],
            checkpointer=self.checkpointer,
            clock=self.clock,
        )
        return build_tick(ports, planner, self.policy, self.engine)

    @cached_property
    def approval_graph(self) -> CompiledStateGraph:
        from graphs.approval import build_approval_graph

        return build_approval_graph(
            actor=self.actor, recorder=self.decisions, checkpointer=self.checkpointer, clock=self.clock
        )

    @cached_property
    def approval_threads(self) -> ApprovalThreads:
        from agent.service.approval_threads import ApprovalThreads

        return ApprovalThreads(
            graph=self.approval_graph,
            store=self.approvals,
            lock=self.lock,
            clock=self.clock,
            notify=self._notify,
            policy_blocks=lambda: "the policy is now read-only" if self.policy.read_only else None,
        )

    # ------------------------------------------------------------ ticks

    def tick(self, *, dry_run: bool = False, planner: Planner | None = None, tick_id: str | None = None) -> TickReport:
        """One observe -> plan -> guard -> act -> record pass; before planning, earlier actions are checked against
        what they expected (a harmful miss adds its reversal to the plan). Approvals wait in their own threads."""
        from core import telemetry

        started = self.clock()
        tick_id = tick_id or f"t{time.strftime('%Y%m%d%H%M%S', time.gmtime(started))}-{uuid.uuid4().hex[:6]}"
        with telemetry.agent_span(tick_id) as span:
            state, checked = self._tick_locked(tick_id, started, dry_run, planner)
            span.set(
                {
                    "brainops.planner": PlannerInfo.model_validate(state["planner"]).label,
                    "brainops.proposals": len(state["proposals"]),
                }
            )
        report = TickReport(
            tick_id=tick_id,
            proposals=tuple(Proposal.model_validate(p) for p in state["proposals"]),
            outcomes=tuple(Outcome.model_validate(o) for o in state["outcomes"]),
            verdicts=tuple(state["verdicts"]),
            planner=PlannerInfo.model_validate(state["planner"]),
            rejected=tuple(state.get("rejected", [])),
            duration_s=self.clock() - started,
            decision_ids=tuple(state.get("decision_ids", [])),
            verifications=tuple(v.row() for v in checked),
        )
        rollbacks = [f"proposed {p['rationale']}" for p in state["proposals"] if p.get("rollback_of")]
        alerts = [*_alerts(state), *(f"verification: {a}" for a in [*self.observer.missed, *rollbacks])]
        self._notify("tick", {"report": report, "alerts": alerts})
        return report

    def _tick_locked(
        self, tick_id: str, started: float, dry_run: bool, planner: Planner | None
    ) -> tuple[dict[str, Any], list[Verified]]:
        with self.lock:
            budget = self.settings.schedule.tick_deadline_s  # from here: supervise, observe, plan, act share it
            deadline = time.monotonic() + budget
            dry = dry_run or self.policy.dry_run
            if dry:  # records only: no finished crashed tick, no resumed approval, no restarted worker
                self.fleet.look()
                self.observer.notes = []
            else:
                self.recover()
                self.expire_due()
                self.approval_threads.settle()
                self.supervise(started)
            from agent.service.verification import verifying

            verifier = self.verifier
            checked: list[Verified] = []
            self.observer.missed = verifier.anomalies()
            planner = planner or self.planner
            if not dry:  # judged before planning; rollbacks get predictions and expectations like any proposal
                planner = verifying(planner, verifier, tick_id, checked)
            graph = self._tick_graph(planner)
            # Each step's checkpoint is on disk before the next runs, so a crash mid-act can be finished later.
            state = graph.invoke(
                {"tick_id": tick_id, "now": started, "dry_run": dry, "deadline": deadline, "deadline_s": budget},
                {"configurable": {"thread_id": tick_id}},
                durability="sync",
            )
            self.approval_threads.start_from_tick(state)
            if not dry:  # an index job that finished since: its measured effect, recorded once
                _record_index_effect(self.decisions, state, tick_id, self.clock())
            self.checkpointer.delete_thread(tick_id)  # the tick is recorded; its checkpoints would only pile up
        return dict(state), checked

    def _measured(self, inner: Planner) -> Planner:
        """`inner` with the running planner's predictions and expectations (the rules' estimator)."""
        from graphs.measured import inside_measured

        return inside_measured(self.planner, lambda _running: inner)

    def recover(self) -> int:
        """Finish ticks a crashed process left half done (agent/service/recovery.py); how many there were."""
        from agent.service.recovery import recover_ticks

        with self.lock:
            return recover_ticks(self.checkpointer, lambda: self._tick_graph(self.planner), self._started_approvals)

    def _started_approvals(self, state: dict[str, Any]) -> None:
        self.approval_threads.start_from_tick(state)

    def supervise(self, now: float) -> ReconcileReport:
        """Restart crashed workers and converge to desired counts; its events become observation notes."""
        from agent.service.observer import supervise_notes

        report = self.fleet.reconcile(now)
        rows = {w: self.fleet.dispatcher.registry.get(w) for w in report.crashed}
        exits = {w: row.last_exit for w, row in rows.items() if row is not None}
        self.observer.notes = supervise_notes(report, exits)
        return report

    def request(self, action: str, args: dict[str, Any], requester: str, why: str = "") -> TickReport:
        """A human asks for an action (Slack, CLI, cron): same guard, approvals and decision log as the loop.
        Its record says so: planner "human", rationale "requested by REQUESTER" (": WHY" when given)."""
        rationale = f"requested by {requester}" + (f": {why}" if why else "")
        proposal = Proposal(action=action, args=args, rationale=rationale)
        return self.tick(planner=self._measured(RequestedPlanner(proposal)))

    def propose(self, proposal: Proposal | RejectedCall, client: str, call_id: str | None = None) -> TickReport:
        """An MCP client's proposal (or its call that did not validate): the same guard, approvals and decision
        log as the planner's; recorded as planner "mcp" with the client's name (`PlannerInfo.label`)."""
        info = PlannerInfo(kind="mcp", client=client)
        return self.tick(planner=self._measured(RequestedPlanner(proposal, info, call_id)))

    def record_operator(
        self, action: str, args: dict[str, Any], requester: str, why: str, outcome: Outcome, **decision: Any
    ) -> str:
        """An operator's action that is no agent action (`dedup.undo`, `workers.stop`): one decision record in
        the same log, planner "human", tick id "operator-...", rationale "requested by REQUESTER: WHY";
        `decision` adds verdict, rule_ids, reasons. Returns the record id."""
        now = self.clock()
        tick_id = f"operator-{time.strftime('%Y%m%d%H%M%S', time.gmtime(now))}-{uuid.uuid4().hex[:6]}"
        rationale = f"requested by {requester}" + (f": {why}" if why else "")
        planner = PlannerInfo(kind="human")
        record = self.decisions.append(
            tick_id=tick_id,
            action=action,
            args=args,
            rationale=rationale,
            planner=planner,
            outcome=outcome,
            now=now,
            **decision,
        )
        return record.id

    def observe(self) -> Observation:
        return self.observer(self.clock())

    # ------------------------------------------------------------ approvals

    def open(self, request: ApprovalRequest, now: float) -> ApprovalTicket:
        """ApprovalDesk port: the durable approval record (idempotent on id), then a prompt to humans."""
        requested_by = "planner:" + (request.planner.tier or request.planner.label)
        approval = self.approvals.create(
            request.approval_id,
            request.tick_id,
            request.proposal.action,
            request.proposal.args,
            request.proposal.rationale,
            request.decision.risk,
            request.decision.rule_ids,
            requested_by,
            self.policy.approval_ttl_s,
            now,
            context=request.context,
            prediction=request.proposal.prediction,
            reasons=request.decision.reasons,
        )
        existing = approval.id != request.approval_id
        if approval.message_ts is None and not existing:
            self._notify("approval_opened", {"approval": approval})
        return ApprovalTicket(approval.id, approval.expires_at, existing)

    def answer(self, approval_id: str, approve: bool, by: str, reason: str = "") -> AnswerResult:
        """Answer once (listed approvers only, before expiry); an approval resumes its graph and acts once."""
        result = self.approvals.answer(approval_id, approve, by, self.policy.approvers, reason, self.clock())
        if result.approval is not None and (result.ok or result.status == "expired"):
            self.resume_answered(result.approval)  # a late answer still closes the thread, as expired
        return result

    def resume_answered(self, approval: Approval) -> Outcome | None:
        """Resume the approval's waiting graph with the stored answer; the action runs under the approval id.
        Returns what it did (None when another process had already resumed it)."""
        return self.approval_threads.resume(approval)

    def expire_due(self) -> list[Approval]:
        """Overdue approvals become denials: their threads resume as expired and record it."""
        return self.approval_threads.expire_due()

    def maintain(self) -> None:
        """What must go on even while autonomous ticks are paused: expiries, answers, crashed workers."""
        with self.lock:
            now = self.clock()
            self.recover()
            self.expire_due()
            self.approval_threads.settle()
            self.supervise(now)

    def _notify(self, event: str, payload: dict[str, Any]) -> None:
        for notify in self.notifiers:
            try:
                notify(event, payload)
            except Exception as exc:  # a broken notifier (Slack down) must not break the loop
                import logging

                logging.getLogger("brainops").warning("notifier failed on %s: %s", event, exc)


def _record_index_effect(decisions: DecisionLog, state: dict[str, Any], tick_id: str, now: float) -> None:
    from agent.service.index_watch import record_index_effect
    from core.domain import Observation

    if raw := state.get("observation"):
        record_index_effect(decisions, Observation.model_validate(raw), tick_id, now)


def _alerts(state: dict[str, Any]) -> list[str]:
    """What a human must look at after this tick: crash loops with one cause (no worker count fixes them)."""
    from core.domain import Observation
    from graphs.plan_facts import crash_loops

    raw = state.get("observation")
    return crash_loops(Observation.model_validate(raw)) if raw else []
