"""Builds one tick's Observation from the fleet's last snapshots, the brain, the ledger and the approvals.

Hosts are not contacted here: the supervise step right before (Fleet.reconcile) took one snapshot per host,
in parallel and bounded by timeouts, and the observation reuses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.state.archive import ObservationArchive
from core.domain import (
    BrainStats,
    BudgetState,
    CostStats,
    HostMetrics,
    IndexHealth,
    IndexRun,
    Observation,
    PendingApproval,
    StorageStats,
)

if TYPE_CHECKING:
    from agent.service.actor import ActionRuns
    from agent.service.effects import Fleet
    from agent.service.history import StageHistory
    from agent.state.approvals import ApprovalStore
    from core.settings import Settings
    from policies.model import IndexPolicy, Policy

log = logging.getLogger("brainops.observe")


@dataclass
class FleetObserver:
    settings: Settings
    fleet: Fleet
    approvals: ApprovalStore
    runs: ActionRuns
    history: StageHistory | None = None
    notes: list[str] = field(default_factory=list)  # events from the last supervise step
    missed: list[str] = field(default_factory=list)  # verification anomalies (agent/service/verification.py)
    policy: Callable[[], Policy] | None = None  # the policy in force: storage limits, host costs
    index_rules: Callable[[], IndexPolicy] | None = None  # the policy's `index` section now; None: no probe

    def __post_init__(self) -> None:
        if self.history is None:
            from agent.service.history import StageHistory

            self.history = StageHistory(self.settings.state_db)

    def __call__(self, now: float) -> Observation:
        brain, brain_note = self._brain(now)
        assert self.history is not None
        self.history.add(now, brain.pending)
        index, index_run, index_note = self._index(brain)
        notes = [*self.notes, *(note for note in (brain_note, index_note) if note)]
        obs = Observation(
            time=now,
            hosts=self._hosts(),
            workers=tuple(self.fleet.dispatcher.workers()),
            brain=brain,
            rates=self.history.rates(now),
            budget=self._budget(now),
            pending_approvals=tuple(
                PendingApproval(id=a.id, action=a.action, args=a.args, expires_at=a.expires_at)
                for a in self.approvals.pending(now)
            ),
            desired=self.fleet.dispatcher.desired(),
            recent_actions=self._recent_actions(),
            notes=tuple(notes),
            missed_expectations=tuple(self.missed),
            storage=self._storage(now),
            cost=self._cost(now, brain),
            index=index,
            index_run=index_run,
        )
        save_last_observation(self.settings, obs)
        self._write_status(obs, now)
        ObservationArchive(self.settings.state_db).put(obs)  # `brainops eval replay` re-plans on it by digest
        return obs

    def _recent_actions(self) -> dict[str, float]:
        """Last done time per cooldown key, plus "refused:<key>" for actions a human denied or let expire,
        so the planner does not ask the same question again every tick."""
        from core.actions import cooldown_key

        recent = self.runs.last_done()
        for approval in self.approvals.recent(50):
            if approval.status in ("denied", "expired") and approval.decided_at is not None:
                key = "refused:" + cooldown_key(approval.action, approval.args)
                recent[key] = max(recent.get(key, 0.0), approval.decided_at)
        return recent

    def _hosts(self) -> tuple[HostMetrics, ...]:
        snaps = self.fleet.dispatcher.last_snapshots
        out = []
        for cfg in self.settings.hosts:
            snap = snaps.get(cfg.name)
            fresh = cfg.name not in self.fleet.last_unreachable
            if snap is not None and fresh:
                out.append(snap.metrics)
            else:
                error = self.fleet.last_unreachable.get(cfg.name) or "no snapshot yet"
                out.append(HostMetrics(host=cfg.name, reachable=False, error=error))
        return tuple(out)

    def _brain(self, now: float) -> tuple[BrainStats, str | None]:
        from brain.store import BrainStore

        store = BrainStore(self.settings.brain_path)
        try:
            if not store.exists():
                missing = f"no brain at {self.settings.brain_path}"
                return BrainStats(error=missing), missing
            return store.stats(now), None
        except Exception as exc:  # a broken store degrades the tick; the planner sees the note
            log.warning("brain stats failed: %s", exc)
            broken = f"brain unreadable: {type(exc).__name__}: {exc}"
            return BrainStats(error=broken[:500]), broken

    def _policy(self) -> Policy:
        from policies.model import Policy

        return self.policy() if self.policy is not None else Policy()

    def _storage(self, now: float) -> StorageStats:
        from agent.service.storage import observe_storage

        return observe_storage(self.settings, self.fleet.brain_host, self._policy().storage, now)

    def _cost(self, now: float, brain: BrainStats) -> CostStats:
        from agent.service.cost_report import cost_stats

        policy = self._policy()
        host_costs = {h.name: policy.host_limits(h.name).cost_per_hour for h in self.settings.hosts}
        try:
            return cost_stats(self.settings, brain, host_costs, now)
        except Exception as exc:  # cost figures must not break a tick
            log.warning("cost per result failed: %s", exc)
            return CostStats(error=f"{type(exc).__name__}: {exc}"[:300])

    def _write_status(self, obs: Observation, now: float) -> None:
        from agent.service.cost_report import status_document, write_status

        try:
            write_status(self.settings.status_path, status_document(obs, now))
        except OSError as exc:  # a full disk must not stop the tick that could free it
            log.warning("STATUS.json not written to %s: %s", self.settings.status_path, exc)

    def _index(self, brain: BrainStats) -> tuple[IndexHealth, IndexRun | None, str | None]:
        if self.index_rules is None or brain.error:
            return IndexHealth(skipped=brain.error or "no index policy"), None, None
        from agent.service.index_watch import observe_index
        from brain.store import BrainStore

        return observe_index(BrainStore(self.settings.brain_path), self.index_rules())

    def _budget(self, now: float) -> BudgetState:
        try:
            return self.fleet.ledger.state(now)
        except Exception as exc:
            log.warning("budget state failed: %s", exc)
            return BudgetState()


def supervise_notes(report: Any, exits: Mapping[str, int | None] | None = None) -> list[str]:
    """Dispatcher events worth the planner's attention, as short trusted notes. `exits` (worker id -> exit
    code) names what a one-shot job's exit meant, e.g. a dedup job that refused its no longer current plan."""
    from workers.runtime import EXIT_MEANINGS, EXIT_REFUSED

    exits = exits or {}
    notes = []
    refused = [w for w in report.crashed if exits.get(w) == EXIT_REFUSED]
    crashed = [w for w in report.crashed if w not in refused]
    if crashed:
        notes.append(f"crashed workers: {', '.join(crashed)}")
    for worker_id in refused:
        notes.append(f"job {worker_id} stopped with exit {EXIT_REFUSED}: {EXIT_MEANINGS[EXIT_REFUSED]}")
    if report.fatal:
        notes.append(f"workers gone FATAL (crash loop): {', '.join(report.fatal)}")
    if report.unreachable:
        notes.append(f"unreachable hosts: {', '.join(report.unreachable)}")
    if report.orphans:
        notes.append(f"orphan worker processes stopped (no registry row): {', '.join(report.orphans)}")
    return notes


def save_last_observation(settings: Settings, obs: Observation) -> None:
    """`brainops status` reads this instead of opening the brain, so it stays instant."""
    path = settings.home / "last_observation.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(obs.model_dump_json())
    tmp.replace(path)


def load_last_observation(settings: Settings) -> Observation | None:
    path = settings.home / "last_observation.json"
    try:
        return Observation.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None
