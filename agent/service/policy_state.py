"""The policy in force and what is built from it: the engine and the planner follow every edit of the file
(within one tick; answers read it at once), and a file that fails to load keeps the last good one, loudly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graphs.planners import Planner
    from policies.engine import PolicyEngine
    from policies.live import LivePolicy
    from policies.model import Policy


@dataclass
class PolicyInForce:
    live: LivePolicy
    known_hosts: list[str]
    make_planner: Callable[[Policy, PolicyEngine], Planner]
    tier_ranks: dict[str, str] = field(default_factory=dict)  # configured model tiers by purpose
    _built_for: Policy | None = field(default=None)
    _engine: PolicyEngine | None = None
    _planner: Planner | None = None

    def policy(self) -> Policy:
        return self.live.current()

    def engine(self) -> PolicyEngine:
        self._rebuild_if_changed()
        assert self._engine is not None
        return self._engine

    def planner(self) -> Planner:
        self._rebuild_if_changed()
        if self._planner is None:
            assert self._engine is not None
            self._planner = self.make_planner(self._built_for, self._engine)  # type: ignore[arg-type]
        return self._planner

    def _rebuild_if_changed(self) -> None:
        from policies.engine import PolicyEngine

        policy = self.live.current()
        if policy is not self._built_for:
            self._built_for = policy
            self._engine = PolicyEngine(policy, known_hosts=self.known_hosts, tier_ranks=self.tier_ranks)
            self._planner = None  # built on first use; the rule planner's history survives (make_planner's)
