"""Scenarios with a recorded trajectory: actions done before the scenario's observation, with the expectations
their records carry. The run judges each one on the observation (core/expectations.py, as the agent's verifier
does), puts any rollback a harmful miss asks for into the tick (graphs/verifying.py), and fails when a verdict
differs from the one the scenario expects (`expect.verifications`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.domain import Observation, Proposal
from core.expectation_types import Expectation, Judgement, Verification
from core.expectations import judge
from graphs.verifying import rollback_for


class RecordedAction(BaseModel):
    """One earlier action as the decision log records it (done, with its expectation)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    action: str
    args: dict[str, Any]
    time: float
    expectation: Expectation


def judge_trajectory(
    trajectory: Sequence[RecordedAction], obs: Observation, rollback: bool
) -> tuple[dict[str, Judgement | None], list[Proposal]]:
    """Each recorded action's verdict on `obs` (None: too early), and the rollbacks due (when the policy lets)."""
    verdicts: dict[str, Judgement | None] = {}
    rollbacks: list[Proposal] = []
    for step in trajectory:
        verdict = verdicts[step.id] = judge(step.expectation, step.time, obs, obs.time)
        back = rollback_for(step.id, step.action, step.expectation, verdict) if verdict and rollback else None
        rollbacks += [back] if back else []
    return verdicts, rollbacks


def verification_failures(wanted: dict[str, Verification | None], got: dict[str, Judgement | None]) -> list[str]:
    out = []
    for action_id, verdict in wanted.items():
        seen = got.get(action_id)
        if (seen.verdict if seen else None) != verdict:
            shown = f"{seen.verdict} ({seen.detail})" if seen else "not judged yet"
            out.append(f"verification of {action_id}: {shown}, expected {verdict or 'not judged yet'}")
    return out
