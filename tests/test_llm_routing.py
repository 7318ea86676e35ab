"""Which tiers may serve a call, by purpose; the default split; fallbacks that never climb by themselves."""

from __future__ import annotations

import pytest

from core.settings import LLMConfig, TierConfig
from llm.routing import TierMap, configured_split, share_caps_by_tier, tier_ranks


def tiers(*names: str, **config: object) -> TierMap:
    return TierMap.from_config(LLMConfig(tiers=[TierConfig(name=n, model=f"openai/{n}") for n in names], **config))


def test_three_tiers_follow_the_seed() -> None:
    seed = tiers("glm-air", "glm", "opus")
    assert seed.default_split() == pytest.approx({"glm-air": 0.60, "glm": 0.35, "opus": 0.05})
    assert seed.eligible("routine") == ("glm-air", "glm")
    assert seed.eligible("analysis") == ("glm",)
    assert seed.eligible("strategic") == ("glm", "opus")
    assert seed.fallbacks("glm", "analysis") == (("glm-air",), ())  # Opus is strategic-only
    assert seed.fallbacks("glm-air", "routine") == ((), ("glm",))
    assert seed.fallbacks("glm", "strategic") == (("glm-air",), ("opus",))


def test_two_tiers_keep_the_dear_one_for_strategic_calls() -> None:
    pair = tiers("glm-air", "opus")
    assert pair.purpose_tier == {"routine": "glm-air", "analysis": "glm-air", "strategic": "opus"}
    assert pair.eligible("routine") == pair.eligible("analysis") == ("glm-air",)
    assert pair.default_split() == pytest.approx({"glm-air": 0.60 / 0.65, "opus": 0.05 / 0.65})


def test_one_tier_serves_every_purpose() -> None:
    only = tiers("local")
    assert {only.eligible(p) for p in ("routine", "analysis", "strategic")} == {("local",)}
    assert only.default_split() == {"local": 1.0}


def test_four_tiers_and_configured_names() -> None:
    four = tiers("a", "b", "c", "d", analysis_tier="c")
    assert four.eligible("routine") == ("a", "b", "c")
    assert four.eligible("analysis") == ("c",)
    assert four.default_split() == pytest.approx({"a": 0.30, "b": 0.30, "c": 0.35, "d": 0.05})
    assert tier_ranks(LLMConfig(tiers=[TierConfig(name="x", model="m")])) == {"x": "routine"}


def test_configured_split_and_share_caps_by_purpose_or_tier() -> None:
    config = LLMConfig(
        tiers=[TierConfig(name=n, model=f"openai/{n}") for n in ("glm-air", "glm", "opus")],
        routing={"glm-air": 70, "glm": 30},
    )
    seed = TierMap.from_config(config)
    assert configured_split(config, seed) == pytest.approx({"glm-air": 0.7, "glm": 0.3})
    assert share_caps_by_tier({"strategic": 0.05, "glm": 0.5}, seed) == {"opus": 0.05, "glm": 0.5}


def test_bad_routing_names_fail_at_load() -> None:
    with pytest.raises(ValueError, match=r"llm.routing names \['gpt'\]"):
        LLMConfig(tiers=[TierConfig(name="glm", model="zai/glm-4.6")], routing={"gpt": 1.0})
    with pytest.raises(ValueError, match="analysis_tier = 'nope'"):
        LLMConfig(tiers=[TierConfig(name="glm", model="zai/glm-4.6")], escalation_tier="nope")  # the old name
