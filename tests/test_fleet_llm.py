"""FleetLLM: tier by purpose and split, disk cache in front of the ledger and the provider."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.fake_llm_server import FakeLLMServer, HttpError, Text, three_tier_config

from core.settings import Settings
from llm.cache import DiskResponseCache
from llm.fleet import FleetLLM, FleetLLMUnavailable, FleetReply, fleet_llm_from_settings
from llm.ledger import TokenLedger
from llm.router import LLMFailure, TierRouter
from llm.routing import pick_by_deficit

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
pytestmark = pytest.mark.usefixtures("fake_llm_key")
PROMPT = [{"role": "user", "content": "Extract entities from: Ada Lovelace met Charles Babbage."}]


def fleet(server: FakeLLMServer, tmp_path: Path) -> tuple[FleetLLM, TokenLedger, DiskResponseCache]:
    ledger = TokenLedger(tmp_path / "state.db")
    cache = DiskResponseCache(tmp_path / "cache")
    return FleetLLM(TierRouter(three_tier_config(server.base_url), ledger), ledger, cache), ledger, cache


def test_cache_hit_costs_no_tokens_and_no_request(server: FakeLLMServer, tmp_path: Path) -> None:
    llm, ledger, cache = fleet(server, tmp_path)
    server.script(Text('["Ada Lovelace", "Charles Babbage"]'))

    first = llm.try_complete(PROMPT, "extract")
    spent = ledger.state()
    second = llm.try_complete(PROMPT, "extract")

    assert isinstance(first, FleetReply) and not first.cached and first.tokens_in > 0
    assert isinstance(second, FleetReply) and second.cached
    assert second.text == first.text and (second.tokens_in, second.cost) == (0, 0.0)
    assert len(server.requests) == 1
    after = ledger.state()
    # the hit touched neither the window nor the day's cost (pace alone moves with the clock)
    assert after.model_dump(exclude={"pace"}) == spent.model_dump(exclude={"pace"})
    assert spent.used_tokens == first.tokens_in + first.tokens_out

    cache.close()
    reopened = FleetLLM(llm.router, ledger, DiskResponseCache(tmp_path / "cache"))
    assert reopened.complete(PROMPT, "extract") == first.text  # survives a worker restart
    assert len(server.requests) == 1


def test_routing_weights_choose_the_tier(server: FakeLLMServer, tmp_path: Path) -> None:
    llm, ledger, _cache = fleet(server, tmp_path)
    ledger.set_routing({"routine": 0.0, "escalation": 1.0})
    server.script(Text("from escalation"), model="escalation-model")

    reply = llm.try_complete(PROMPT, "wisdom")

    assert isinstance(reply, FleetReply) and reply.tier == "escalation"
    assert [r.model for r in server.requests] == ["escalation-model"]
    assert set(ledger.state().per_tier) == {"escalation"}


def test_pick_by_deficit_tracks_the_weights_within_one_call() -> None:
    weights = {"cheap": 0.6, "mid": 0.35, "top": 0.05}
    calls: dict[str, int] = {}
    for n in range(1, 1001):
        tier = pick_by_deficit(("cheap", "mid", "top"), weights, calls)
        assert tier is not None
        calls[tier] = calls.get(tier, 0) + 1
        assert all(abs(calls.get(t, 0) - w * n) <= 1 for t, w in weights.items())
    assert pick_by_deficit(("cheap",), {"mid": 1.0}, {}) is None  # no weighted tier eligible: the caller decides
    assert pick_by_deficit(("cheap", "mid"), {"cheap": 0.5, "mid": 0.5}, {}) == "cheap"  # ties: the cheaper


def test_failure_is_typed_and_not_cached(server: FakeLLMServer, tmp_path: Path) -> None:
    llm, _ledger, _cache = fleet(server, tmp_path)
    for model in ("routine-model", "escalation-model", "strategic-model"):
        server.script(HttpError(500, "down"), model=model)

    failed = llm.try_complete(PROMPT, "extract")
    assert isinstance(failed, LLMFailure) and failed.kind == "provider_failed"
    first = {r.model for r in server.requests}
    with pytest.raises(FleetLLMUnavailable, match="provider_failed"):
        llm.complete(PROMPT, "extract")  # the tiers tried are cooling down now: no further requests to them
    # no ceiling configured: a routine call never climbs, so each call reached only its own tier or cheaper
    assert "strategic-model" not in {r.model for r in server.requests}
    assert len(server.requests) <= 2 and first <= {"routine-model", "escalation-model"}
    with pytest.raises(ValueError, match="task"):
        llm.try_complete(PROMPT, "")


def test_wiring_from_settings(server: FakeLLMServer, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", llm=three_tier_config(server.base_url))
    settings.ensure_dirs()
    ledger = TokenLedger.from_settings(settings)
    llm = fleet_llm_from_settings(settings, ledger)
    server.script(Text("ok"))

    assert llm.complete(PROMPT, "extract", max_tokens=32) == "ok"
    assert server.requests[0].body["max_tokens"] == 32
    assert (tmp_path / "home" / "llm_cache").is_dir()


def test_a_cascade_asks_the_next_tier_only_when_the_cheap_answer_fails_the_check(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    from workers.dedup_adjudicate import decisive

    llm, ledger, _cache = fleet(server, tmp_path)
    server.script(Text("UNSURE"), Text("SAME"), model="routine-model")
    server.script(Text("DIFFERENT"), model="escalation-model")

    escalated = llm.try_complete([{"role": "user", "content": "pair 1"}], "dedup", accept=decisive)
    settled = llm.try_complete([{"role": "user", "content": "pair 2"}], "dedup", accept=decisive)

    assert isinstance(escalated, FleetReply) and (escalated.text, escalated.tier) == ("DIFFERENT", "escalation")
    assert escalated.tried == ("routine", "escalation") and escalated.accepted
    assert escalated.cost == pytest.approx(ledger.state().cost_today - settled.cost)  # type: ignore[union-attr]
    assert isinstance(settled, FleetReply) and settled.tried == ("routine",) and settled.text == "SAME"
    assert [r.model for r in server.requests] == ["routine-model", "escalation-model", "routine-model"]
    assert not decisive("SAME, probably") and decisive("different.")
