"""Which tier serves a call: its purpose decides the eligible tiers, the split decides among them, and a
fallback never climbs to a pricier tier unless the call stays under the configured cost ceiling.

The three purposes name the seed's split (docs/LLM.md): `routine` work (extraction, coordination) on the
cheap tier, `analysis` (scoring, insight writing) on the mid tier, `strategic` decisions on the top tier.
Tiers are configured cheapest first; `routine_tier`, `analysis_tier` and `strategic_tier` name the tier of
each purpose (defaults: the first, the second (the first when there are only two), the last). The strategic
tier serves strategic calls only, unless it is also the tier of another purpose (a one-tier setup).

| purpose   | eligible for the split            | fallback after the picked tier                          |
|-----------|-----------------------------------|---------------------------------------------------------|
| routine   | tiers up to the analysis tier     | cheaper tiers; pricier non-strategic ones under ceiling |
| analysis  | analysis tier and pricier ones    | cheaper tiers; pricier non-strategic ones under ceiling |
| strategic | analysis tier and pricier ones    | cheaper tiers; pricier ones under ceiling               |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.llm_types import Purpose
from core.settings import LLMConfig

PURPOSES: tuple[Purpose, ...] = ("routine", "analysis", "strategic")
# The seed's split (SCALING_STRATEGIES: GLM-4.5 60% of load, GLM-4.7 35%, Opus 5%), by purpose rank.
DEFAULT_SPLIT: dict[str, float] = {"routine": 0.60, "analysis": 0.35, "strategic": 0.05}


@dataclass(frozen=True)
class TierMap:
    """The configured tiers seen by purpose: built once from LLMConfig."""

    order: tuple[str, ...]  # cheapest first
    purpose_tier: dict[Purpose, str]

    @classmethod
    def from_config(cls, config: LLMConfig) -> TierMap:
        """From a validated config: LLMConfig has already refused duplicate names and unknown purpose tiers."""
        order = tuple(t.name for t in config.tiers)
        if not order:
            return cls((), {})
        # two tiers: the cheap one also does the analysis, the dear one is kept for strategic calls
        defaults: dict[Purpose, str] = {"routine": order[0], "analysis": order[1 if len(order) >= 3 else 0]}
        defaults["strategic"] = order[-1]
        chosen: dict[Purpose, str] = {}
        for purpose in PURPOSES:
            chosen[purpose] = getattr(config, f"{purpose}_tier") or defaults[purpose]
        return cls(order, chosen)

    @property
    def strategic_only(self) -> frozenset[str]:
        tier = self.purpose_tier.get("strategic")
        others = {self.purpose_tier.get("routine"), self.purpose_tier.get("analysis")}
        return frozenset() if tier is None or tier in others else frozenset({tier})

    def rank(self, tier: str) -> Purpose:
        """The purpose a tier's share of the default split comes from."""
        if tier == self.purpose_tier["routine"]:
            return "routine"
        if tier in self.strategic_only:
            return "strategic"
        return "analysis" if self.order.index(tier) >= self._analysis_index else "routine"

    def eligible(self, purpose: Purpose) -> tuple[str, ...]:
        """Tiers the split may pick for a call of this purpose, cheapest first."""
        cut = self._analysis_index
        picked = self.order[: cut + 1] if purpose == "routine" else self.order[cut:]
        if purpose != "strategic":
            picked = tuple(t for t in picked if t not in self.strategic_only)
        return picked

    def fallbacks(self, tier: str, purpose: Purpose) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """After `tier`: the cheaper tiers (dearest first), then the pricier ones (cheapest first) that a
        call may climb to only under the cost ceiling. The strategic-only tier only for strategic calls."""
        index = self.order.index(tier)
        allowed = [t for t in self.order if purpose == "strategic" or t not in self.strategic_only]
        cheaper = tuple(t for t in reversed(self.order[:index]) if t in allowed)
        pricier = tuple(t for t in self.order[index + 1 :] if t in allowed)
        return cheaper, pricier

    def default_split(self) -> dict[str, float]:
        """DEFAULT_SPLIT spread over the tiers of each rank, renormalised over the ranks that have tiers."""
        return self.spread(DEFAULT_SPLIT)

    def spread(self, by_purpose: Mapping[str, float]) -> dict[str, float]:
        """Weights by purpose as weights by tier: each purpose's weight shared by the tiers of its rank."""
        ranks = {tier: self.rank(tier) for tier in self.order}
        weights: dict[str, float] = {}
        for tier, rank in ranks.items():
            same = sum(1 for r in ranks.values() if r == rank)
            weights[tier] = by_purpose.get(rank, 0.0) / same
        return normalise_weights(weights)

    @property
    def _analysis_index(self) -> int:
        return self.order.index(self.purpose_tier["analysis"])


def configured_split(config: LLMConfig, tiers: TierMap) -> dict[str, float]:
    """`[llm.routing]` when set (LLMConfig checked its names), else the default split."""
    return normalise_weights(config.routing) if config.routing else tiers.default_split()


def normalise_weights(weights: Mapping[str, float]) -> dict[str, float]:
    if not weights:
        raise ValueError("routing weights must name at least one tier")
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"routing weights must be non-negative: {dict(weights)}")
    total = float(sum(weights.values()))
    if total <= 0:
        raise ValueError("routing weights must not all be zero")
    return {str(tier): float(w) / total for tier, w in sorted(weights.items())}


def share_caps_by_tier(caps: Mapping[str, float], tiers: TierMap) -> dict[str, float]:
    """The policy's routing.max_share per tier: a key that names a purpose caps each tier of that rank."""
    out: dict[str, float] = {}
    for name, cap in caps.items():
        if name in tiers.order:
            out[name] = min(cap, out.get(name, cap))
            continue
        for tier in tiers.order:
            if tiers.rank(tier) == name and name not in tiers.order:
                out[tier] = min(cap, out.get(tier, cap))
    return out


def tier_ranks(config: LLMConfig) -> dict[str, str]:
    """Each configured tier's purpose rank, for the policy engine's routing rules."""
    tiers = TierMap.from_config(config)
    return {tier: tiers.rank(tier) for tier in tiers.order}


def pick_by_deficit(eligible: Sequence[str], weights: Mapping[str, float], calls: Mapping[str, int]) -> str | None:
    """The eligible tier furthest below its weight in the window's routed calls (ties: the cheaper one).

    Counting, not hashing: over any run the shares track the weights within one call per tier, and since
    the counts live in the shared ledger, every process of the fleet steers the same split together.
    """
    weighted = [t for t in eligible if weights.get(t, 0.0) > 0]
    if not weighted:
        return None
    total = sum(calls.values()) + 1  # the share each tier would have after this call
    return max(weighted, key=lambda t: (weights[t] - calls.get(t, 0) / total, -eligible.index(t)))
