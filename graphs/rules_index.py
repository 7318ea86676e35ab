"""The rule planner's optimize_index rule: the records' vector search measured slow, wrong or fragmented.

Thresholds are the policy's `index` section (`IndexRule.from_policy`). Nothing is proposed on a skipped probe
(a small table, an unreadable brain), while an index job runs, or while one is cooling down or was refused;
then the tick's noop says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.domain import IndexHealth, Observation, Proposal
from graphs.plan_facts import busy, held_back

if TYPE_CHECKING:
    from policies.model import IndexPolicy


@dataclass(frozen=True)
class IndexRule:
    p95_ms_max: float = 100.0
    recall_min: float = 0.95
    max_small_fragments: int = 32
    max_unindexed_share: float = 0.1
    cooldown_s: float = 1800.0
    refusal_backoff_s: float = 3600.0

    @classmethod
    def from_policy(cls, rules: IndexPolicy, cooldown_s: float, refusal_backoff_s: float) -> IndexRule:
        return cls(
            p95_ms_max=rules.p95_ms_max,
            recall_min=rules.recall_min,
            max_small_fragments=rules.max_small_fragments,
            max_unindexed_share=rules.max_unindexed_share,
            cooldown_s=cooldown_s,
            refusal_backoff_s=refusal_backoff_s,
        )


def index_findings(rule: IndexRule, ix: IndexHealth) -> list[str]:
    """Each figure of the probe that crossed its threshold, in words."""
    if ix.skipped or ix.rows == 0:
        return []
    found = []
    if ix.p95_ms is not None and ix.p95_ms > rule.p95_ms_max:
        kind = ix.index_type or "no index"
        found.append(f"search p95 {ix.p95_ms:.0f} ms > {rule.p95_ms_max:g} ms ({kind}, {ix.rows:,} rows)")
    if ix.recall_at_10 is not None and ix.recall_at_10 < rule.recall_min:
        found.append(f"recall@10 {ix.recall_at_10:.3f} < {rule.recall_min:g}: the index is retrained")
    if ix.small_fragments > rule.max_small_fragments:
        found.append(f"{ix.small_fragments} small fragments > {rule.max_small_fragments}")
    if ix.indexed and ix.unindexed_rows > rule.max_unindexed_share * ix.rows:
        share = ix.unindexed_rows / ix.rows
        found.append(f"{ix.unindexed_rows:,} rows ({share:.0%}) not in the index > {rule.max_unindexed_share:.0%}")
    return found


def optimize_index(rule: IndexRule, obs: Observation, now: float, holds: list[str]) -> list[Proposal]:
    findings = index_findings(rule, obs.index)
    if not findings or busy(obs, "index"):
        return []  # nothing crossed a threshold, or the running job is the answer
    due = "; ".join(findings)
    held = held_back(obs, "optimize_index", now, cooldown_s=rule.cooldown_s, backoff_s=rule.refusal_backoff_s)
    if held:
        holds.append(f"{due}: optimize_index {held}")
        return []
    return [Proposal(action="optimize_index", args={"reason": due}, rationale=f"{due}: optimize the records' index")]
