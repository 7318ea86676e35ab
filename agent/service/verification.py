"""Each tick checks the actions done earlier against what they expected (core/expectations.py).

For every done action with an expectation and no verification yet: once the observation shows it met (or its
horizon passed) one `verify` record is appended, chained to the action by its id (`extra.verifies`), recorded once
across processes (the decision log's idempotency key `verify:<id>`, claimed inside the append's write lock).
A scaling verdict corrects the rule planner's throughput estimate for that kind and host; a miss that made
things worse proposes the action's reversal (run by the agent through the same guard and approvals); repeated
misses of one action kind are an anomaly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.state import decision_links as links
from core.domain import Observation, Outcome, PlannerInfo, Proposal
from core.expectation_types import Expectation, Judgement
from core.expectations import judge

if TYPE_CHECKING:
    from agent.state.corrections import CorrectionStore
    from agent.state.decisions import DecisionLog, DecisionRecord
    from graphs.planners import Planner
    from policies.model import Verification


@dataclass(frozen=True)
class Verified:
    action_id: str
    action: str
    judgement: Judgement
    record_id: str
    rollback: Proposal | None = None

    def row(self) -> dict[str, str]:
        """What a tick report shows of it."""
        j = self.judgement
        return {"action_id": self.action_id, "action": self.action, "verdict": j.verdict, "detail": j.detail}


@dataclass(frozen=True)
class Verifier:
    decisions: DecisionLog
    corrections: CorrectionStore
    policy: Verification

    def check(self, obs: Observation, now: float, tick_id: str) -> list[Verified]:
        """Judge what is due on this observation; returns the verdicts this process recorded."""
        pending = links.awaiting_verification(self.decisions, now - self.policy.max_age_s)
        out: list[Verified] = []
        for record in pending:
            expectation = Expectation.model_validate(record.extra["expectation"])
            judgement = judge(expectation, record.time, obs, now)
            if judgement is None or judgement.verdict != "verified":
                later = _superseded_by(record, expectation, self.decisions, now)
                if later is not None and (judgement is None or judgement.verdict == "missed"):
                    why = f"superseded by {later.action} {later.id} before its horizon: its effect is mixed in"
                    judgement = Judgement(verdict="inconclusive", detail=why, results=(), elapsed_s=now - record.time)
            if judgement is None:
                continue
            done = self._record(record, expectation, judgement, tick_id, now)
            if done is not None:
                out.append(done)
        return out

    def rollbacks_due(self, now: float) -> list[Proposal]:
        """Reversals verdicts asked for that no decision has proposed yet (once each, whoever crashed when)."""
        return [
            Proposal(
                action=str(back["action"]),
                args=dict(back["args"]),
                rationale=str(back.get("rationale", "")),
                rollback_of=str(record.extra["verifies"]),
            )
            for record in links.unanswered_rollbacks(self.decisions, now - self.policy.max_age_s)
            if isinstance(back := record.outcome.data.get("rollback"), dict)
        ]

    def anomalies(self) -> list[str]:
        """Action kinds whose last `miss_anomaly_after` verdicts were all misses."""
        from core.actions import MUTATING_ACTIONS

        n = self.policy.miss_anomaly_after
        return [
            f"{action} missed its expectation {n} times in a row"
            for action in sorted(MUTATING_ACTIONS)
            if links.verdicts(self.decisions, action, n) == ["missed"] * n
        ]

    def _record(
        self, record: DecisionRecord, expectation: Expectation, judgement: Judgement, tick_id: str, now: float
    ) -> Verified | None:
        rollback = self._rollback(record, expectation, judgement)
        detail = judgement.detail + (_drain_line(expectation, judgement) if expectation.drain else "")
        mine = uuid.uuid4().hex
        data = {
            "results": [r.model_dump(mode="json") for r in judgement.results],
            "expected": expectation.summary,
            "horizon_s": expectation.horizon_s,
            "elapsed_s": round(judgement.elapsed_s, 1),
            "harmed": judgement.harmed,
            "source": expectation.source,
        }
        if rollback is not None:
            data["rollback"] = {"action": rollback.action, "args": rollback.args, "rationale": rollback.rationale}
        written = self.decisions.append(
            tick_id=tick_id,
            action="verify",
            args={"action_id": record.id, "action": record.action},
            rationale=f"{record.action} expected {expectation.summary}: {judgement.verdict}",
            planner=PlannerInfo(kind="rules"),
            outcome=Outcome(status=judgement.verdict, detail=detail, data=data),
            idempotency_key=f"verify:{record.id}",
            extra={"verifies": record.id},
            record_id=mine,
            now=now,
            once=True,
        )
        if written.id != mine:
            return None  # another process judged it first
        self._learn(record, expectation, judgement, now)
        return Verified(record.id, record.action, judgement, written.id, rollback)

    def _rollback(self, record: DecisionRecord, expectation: Expectation, judgement: Judgement) -> Proposal | None:
        from graphs.verifying import rollback_for

        return rollback_for(record.id, record.action, expectation, judgement) if self.policy.rollback else None

    def _learn(self, record: DecisionRecord, expectation: Expectation, judgement: Judgement, now: float) -> None:
        """observed / predicted drain, as a throughput ratio for the kind on the action's host."""
        ratio = drain_ratio(expectation, judgement)
        kind, host = record.args.get("kind"), record.args.get("host")
        if ratio is not None and isinstance(kind, str) and isinstance(host, str):
            self.corrections.learn(kind, host, ratio, now)


def drain_ratio(expectation: Expectation, judgement: Judgement) -> float | None:
    """Per-worker throughput seen over the interval against the one predicted; a drain that emptied the queue
    early shows at least the predicted rate."""
    drain = expectation.drain
    observed = judgement.results[0].observed if judgement.results else None
    if not drain or observed is None or judgement.elapsed_s <= 0 or judgement.verdict == "inconclusive":
        return None
    minutes = judgement.elapsed_s / 60.0
    seen = (drain["backlog"] - observed) / minutes + drain["arrivals_per_min"]  # items/min the workers did
    predicted = drain["after"] * drain["per_worker_per_min"]
    if predicted <= 0:
        return None
    ratio = max(0.0, seen) / predicted
    return max(1.0, ratio) if judgement.verdict == "verified" else ratio


def _drain_line(expectation: Expectation, judgement: Judgement) -> str:
    drain = expectation.drain or {}
    observed = judgement.results[0].observed if judgement.results else None
    if observed is None or judgement.elapsed_s <= 0:
        return ""
    rate = (drain.get("backlog", 0.0) - observed) / (judgement.elapsed_s / 60.0)
    return f"; drained {rate:,.1f}/min net, expected {drain.get('rate_per_min', 0.0):,.1f}/min"


def _superseded_by(
    record: DecisionRecord, expectation: Expectation, decisions: DecisionLog, now: float
) -> DecisionRecord | None:
    """A later action (another tick) on the same subject, done before this one's horizon."""
    end = record.time + expectation.horizon_s
    for other in links.done_after(decisions, record.seq, min(end, now)):
        theirs = other.extra.get("expectation")
        if (
            other.tick_id != record.tick_id
            and isinstance(theirs, dict)
            and theirs.get("subject") == expectation.subject
        ):
            return other
    return None


def verifying(planner: Planner, verifier: Verifier, tick_id: str, checked: list[Verified]) -> Planner:
    """`planner` with the tick's check of earlier actions first (its verdicts collected in `checked`) and the
    reversals due in its plan, inside the measuring planner (graphs/measured.py)."""
    from graphs.measured import inside_measured
    from graphs.verifying import VerifyingPlanner

    def check(obs: Observation, now: float) -> list[Proposal]:
        checked.extend(verifier.check(obs, now, tick_id))
        return verifier.rollbacks_due(now)

    return inside_measured(planner, lambda inner: VerifyingPlanner(inner, check))
