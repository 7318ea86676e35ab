"""The agent, wired from settings: the one object the CLI, the scheduler and the Slack app talk to.

Heavy parts (LanceDB, langgraph, litellm) are built on first use, so `brainops status` stays fast.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from core.domain import Observation, Outcome, PlannerInfo, Proposal
from core.ports import ApprovalRequest
from graphs.planners import PlanContext, PlanResult

if TYPE_CHECKING:
    from agent.state.approvals import AnswerResult, Approval, ApprovalStore
    from agent.state.decisions import DecisionLog
    from core.settings import Settings
    from policies.engine import PolicyEngine
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


@dataclass(frozen=True)
class RequestedPlanner:
    """A human's chat or CLI request as a planner: the proposal still goes through guard, act and record."""

    proposal: Proposal

    def plan(self, ctx: PlanContext) -> PlanResult:
        return PlanResult(proposals=(self.proposal,), planner=PlannerInfo(kind="human"))


Notifier = Callable[[str, dict[str, Any]], None]  # (event, payload): "approval_opened", "approval_closed", "tick"


@dataclass
class Agent:
    settings: Settings
    clock: Callable[[], float] = time.time
    notifiers: list[Notifier] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # ------------------------------------------------------------ pause

    @property
    def _pause_file(self) -> Any:
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
    def policy(self) -> Policy:
        from policies.loader import load_policy

        return load_policy(self.settings.policy_path)

    @cached_property
    def engine(self) -> PolicyEngine:
        from policies.engine import PolicyEngine

        return PolicyEngine(self.policy, known_hosts=[h.name for h in self.settings.hosts])

    @cached_property
    def decisions(self) -> DecisionLog:
        from agent.state.decisions import DecisionLog

        return DecisionLog(self.settings.state_db)

    @cached_property
    def approvals(self) -> ApprovalStore:
        from agent.state.approvals import ApprovalStore

        return ApprovalStore(self.settings.state_db)

    @cached_property
    def fleet(self) -> Any:
        from agent.service.effects import Fleet

        return Fleet.from_settings(self.settings)

    @cached_property
    def runs(self) -> Any:
        from agent.service.actor import ActionRuns

        return ActionRuns(self.settings.state_db)

    @cached_property
    def actor(self) -> Any:
        from agent.service.actor import Actor

        return Actor(effects=self.fleet, runs=self.runs, clock=self.clock)

    @cached_property
    def observer(self) -> Any:
        from agent.service.observer import FleetObserver

        return FleetObserver(settings=self.settings, fleet=self.fleet, approvals=self.approvals, runs=self.runs)

    @cached_property
    def planner(self) -> Any:
        from agent.service.build import build_planner

        return build_planner(self.settings, self.policy, self.engine)

    @cached_property
    def checkpointer(self) -> Any:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.settings.ensure_dirs()
        conn = sqlite3.connect(self.settings.checkpoint_db, check_same_thread=False)
        return SqliteSaver(conn)

    def _tick_graph(self, planner: Any) -> Any:
        from graphs.tick import build_tick_graph

        return build_tick_graph(
            observer=self.observer,
            planner=planner,
            guard=self.engine.evaluate,
            actor=self.actor,
            desk=self,
            recorder=self.decisions,
            recent_decisions=lambda n: [r.to_dict() for r in self.decisions.last(n)],
            policy_summary=self._policy_summary,
            checkpointer=self.checkpointer,
            clock=self.clock,
        )

    @cached_property
    def approval_graph(self) -> Any:
        from graphs.approval import build_approval_graph

        return build_approval_graph(
            actor=self.actor, recorder=self.decisions, checkpointer=self.checkpointer, clock=self.clock
        )

    @cached_property
    def approval_threads(self) -> Any:
        from agent.service.approval_threads import ApprovalThreads

        return ApprovalThreads(
            graph=self.approval_graph,
            store=self.approvals,
            lock=self._lock,
            clock=self.clock,
            notify=self._notify,
            policy_blocks=lambda: "the policy is now read-only" if self.policy.read_only else None,
        )

    def _policy_summary(self) -> dict[str, Any]:
        return self.policy.model_dump(mode="json", include={"dry_run", "read_only", "hosts", "workers", "scaling"})

    # ------------------------------------------------------------ ticks

    def tick(self, *, dry_run: bool = False, planner: Any = None, tick_id: str | None = None) -> TickReport:
        """One observe -> plan -> guard -> act -> record pass. Approvals it opens wait in their own threads."""
        started = self.clock()
        tick_id = tick_id or f"t{time.strftime('%Y%m%d%H%M%S', time.gmtime(started))}-{uuid.uuid4().hex[:6]}"
        with self._lock:
            self.expire_due()
            self.approval_threads.settle()
            self.supervise(started)
            dry = dry_run or self.policy.dry_run
            graph = self._tick_graph(planner or self.planner)
            state = graph.invoke(
                {"tick_id": tick_id, "now": started, "dry_run": dry}, {"configurable": {"thread_id": tick_id}}
            )
            self.approval_threads.start_from_tick(state)
            self.checkpointer.delete_thread(tick_id)  # the tick is recorded; its checkpoints would only pile up
        report = TickReport(
            tick_id=tick_id,
            proposals=tuple(Proposal.model_validate(p) for p in state["proposals"]),
            outcomes=tuple(Outcome.model_validate(o) for o in state["outcomes"]),
            verdicts=tuple(state["verdicts"]),
            planner=PlannerInfo.model_validate(state["planner"]),
            rejected=tuple(state.get("rejected", [])),
            duration_s=self.clock() - started,
        )
        self._notify("tick", {"report": report})
        return report

    def supervise(self, now: float) -> Any:
        """Restart crashed workers and converge to desired counts; its events become observation notes."""
        from agent.service.observer import supervise_notes

        report = self.fleet.reconcile(now)
        self.observer.notes = supervise_notes(report)
        return report

    def request(self, action: str, args: dict[str, Any], requester: str) -> TickReport:
        """A human asks for an action (Slack or CLI): same guard, approvals and decision log as the loop."""
        proposal = Proposal(action=action, args=args, rationale=f"requested by {requester}")
        return self.tick(planner=RequestedPlanner(proposal))

    def observe(self) -> Observation:
        return self.observer(self.clock())

    # ------------------------------------------------------------ approvals

    def open(self, request: ApprovalRequest, now: float) -> float:
        """ApprovalDesk port: the durable approval record (idempotent on id), then a prompt to humans."""
        requested_by = "planner:" + (request.planner.tier or request.planner.kind)
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
        )
        if approval.message_ts is None:
            self._notify("approval_opened", {"approval": approval})
        return approval.expires_at

    def answer(self, approval_id: str, approve: bool, by: str, reason: str = "") -> AnswerResult:
        """Answer once (listed approvers only, before expiry); an approval resumes its graph and acts once."""
        result = self.approvals.answer(approval_id, approve, by, self.policy.approvers, reason, self.clock())
        if result.approval is not None and (result.ok or result.status == "expired"):
            self.resume_answered(result.approval)  # a late answer still closes the thread, as expired
        return result

    def resume_answered(self, approval: Approval) -> None:
        """Resume the approval's waiting graph with the stored answer. The action runs under the approval id."""
        self.approval_threads.resume(approval)

    def expire_due(self) -> list[Approval]:
        """Overdue approvals become denials: their threads resume as expired and record it."""
        return self.approval_threads.expire_due()

    def maintain(self) -> None:
        """What must go on even while autonomous ticks are paused: expiries, answers, crashed workers."""
        with self._lock:
            now = self.clock()
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
