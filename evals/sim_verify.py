"""The simulator's check of each controller's actions against what they expected (core/expectations.py): the
same builders and verdicts the agent records, so "verified share" compares controllers on one footing. The
agent's proposals carry their planner's expectations; a baseline's actions get the ones their declarations
derive (from the observation they were taken on)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.actions import with_expectation
from core.domain import Observation, Proposal
from core.expectation_types import Expectation
from core.expectations import judge


@dataclass
class VerifyTally:
    pending: list[tuple[float, Expectation]] = field(default_factory=list)
    verdicts: dict[str, int] = field(default_factory=dict)  # verified / missed / inconclusive -> count

    def note(self, proposal: Proposal, now: float, obs: Observation | None = None) -> None:
        """A done action: its expectation, or the one derived from `obs` when its planner stated none."""
        if proposal.expectation is None and obs is not None:
            proposal = with_expectation(obs, proposal, "derived")
        if proposal.expectation is not None:
            self.pending.append((now, proposal.expectation))

    def check(self, obs: Observation, now: float) -> None:
        if not self.pending:
            return
        dumped = obs.model_dump(mode="json")
        waiting = []
        for since, expectation in self.pending:
            verdict = judge(expectation, since, obs, now, dumped)
            if verdict is None:
                waiting.append((since, expectation))
            else:
                self.verdicts[verdict.verdict] = self.verdicts.get(verdict.verdict, 0) + 1
        self.pending = waiting

    def share(self) -> float | None:
        """Verified actions over judged ones (those still inside their horizon at the end are not judged)."""
        judged = sum(self.verdicts.values())
        return round(self.verdicts.get("verified", 0) / judged, 4) if judged else None
