"""TierRouter over real litellm and real HTTP against the scripted server, with the real SQLite ledger."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from support.fake_llm_server import FakeLLMServer, HttpError, Slow, Text, three_tier_config

from core.settings import LLMConfig, TierConfig
from llm.ledger import TokenLedger
from llm.router import LLMFailure, LLMReply, TierRouter

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
SECRET = "sk-test-never-log-me"
MESSAGES = [{"role": "user", "content": "summarise the fleet"}]


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LLM_KEY", SECRET)


def make_router(
    server: FakeLLMServer, tmp_path: Path, window_tokens: int = 1_000_000, **config: object
) -> tuple[TierRouter, TokenLedger, Clock]:
    clock = Clock()
    ledger = TokenLedger(tmp_path / "state.db", window_tokens=window_tokens)
    router = TierRouter(three_tier_config(server.base_url, **config), ledger, degrade_at=0.8, clock=clock)
    return router, ledger, clock


def test_reply_settles_real_usage_and_configured_cost(server: FakeLLMServer, tmp_path: Path) -> None:
    router, ledger, clock = make_router(server, tmp_path)
    server.script(Text("all good"), model="routine-model")

    reply = router.complete(MESSAGES, purpose="routine")

    assert isinstance(reply, LLMReply)
    assert (reply.text, reply.tier, reply.model) == ("all good", "routine", "openai/routine-model")
    assert reply.tokens_in > 0 and reply.tokens_out > 0
    assert reply.cost == pytest.approx((reply.tokens_in * 0.5 + reply.tokens_out * 1.5) / 1e6)
    state = ledger.state(clock())
    assert state.used_tokens == reply.tokens_in + reply.tokens_out
    assert state.reserved_tokens == 0
    assert state.cost_today == pytest.approx(reply.cost, abs=1e-6)
    sent = server.requests[0]
    assert sent.body["max_tokens"] == 256
    assert sent.headers["authorization"] == f"Bearer {SECRET}"


def test_429_storm_falls_back_and_cools_down_the_tier(
    server: FakeLLMServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    router, ledger, clock = make_router(server, tmp_path, cooldown_s=30.0, fallback_cost_ceiling=1.0)
    server.script(*[HttpError(429, "rate limited", retry_after=45)] * 5, model="routine-model")
    server.script(Text("first"), Text("second"), model="escalation-model")

    with caplog.at_level(logging.DEBUG):
        first = router.complete(MESSAGES, purpose="routine")
    assert isinstance(first, LLMReply) and first.tier == "escalation"
    assert [a.tier for a in first.attempts] == ["routine", "escalation"]
    assert "RateLimitError" in (first.attempts[0].error or "")
    assert len(server.requests_for("routine-model")) == 1  # no retry storm against a 429ing provider
    assert router.cooling_down() == {"routine": pytest.approx(clock() + 45)}  # Retry-After beats cooldown_s

    second = router.complete(MESSAGES, purpose="routine")
    assert isinstance(second, LLMReply) and second.text == "second"
    assert second.attempts[0].skipped and second.attempts[0].tier == "routine"
    assert len(server.requests_for("routine-model")) == 1  # the cooled-down tier got no request
    assert ledger.state(clock()).reserved_tokens == 0  # the failed attempt's reservation was released
    assert SECRET not in caplog.text

    assert server.remaining("routine-model") == 4
    clock.now += 46
    server.clear("routine-model")
    server.script(Text("recovered"), model="routine-model")
    third = router.complete(MESSAGES, purpose="routine")
    assert isinstance(third, LLMReply) and (third.tier, third.text) == ("routine", "recovered")


def test_timeout_and_500_fall_through_to_a_typed_failure(server: FakeLLMServer, tmp_path: Path) -> None:
    config = three_tier_config(server.base_url, fallback_cost_ceiling=1.0)
    config.tiers[0].timeout_s = 0.5
    ledger = TokenLedger(tmp_path / "state.db")
    router = TierRouter(config, ledger)
    server.script(Slow(5.0, Text("too late")), model="routine-model")
    server.script(HttpError(500, "boom"), model="escalation-model")
    server.script(HttpError(503, "down"), model="strategic-model")

    result = router.complete(MESSAGES, purpose="routine")

    assert isinstance(result, LLMFailure) and result.kind == "provider_failed"
    errors = [a.error or "" for a in result.attempts]
    # a routine call may climb under the ceiling, but never to the strategic-only tier
    assert [a.tier for a in result.attempts] == ["routine", "escalation"]
    assert "Timeout" in errors[0] and "InternalServerError" in errors[1]
    assert set(router.cooling_down()) == {"routine", "escalation"}
    assert server.requests_for("strategic-model") == []
    assert ledger.state().reserved_tokens == 0 and ledger.state().used_tokens == 0


def test_exhausted_budget_makes_no_http_call(server: FakeLLMServer, tmp_path: Path) -> None:
    router, ledger, _clock = make_router(server, tmp_path, window_tokens=200)
    server.script(Text("should not be sent"))

    result = router.complete(MESSAGES, purpose="routine")

    assert isinstance(result, LLMFailure) and result.kind == "budget_exhausted"
    assert server.requests == []
    assert all(a.skipped for a in result.attempts)
    assert (ledger.state().used_tokens, ledger.state().reserved_tokens) == (0, 0)


def test_near_the_limit_degrades_to_cheaper_tiers(server: FakeLLMServer, tmp_path: Path) -> None:
    router, ledger, clock = make_router(server, tmp_path, window_tokens=100_000)
    spent = ledger.reserve("escalation", 85_000, clock())
    ledger.settle(spent, 80_000, 5_000, 0.5, clock())  # type: ignore[arg-type]
    server.script(Text("cheap answer"), model="routine-model")

    reply = router.complete(MESSAGES, purpose="analysis")

    assert isinstance(reply, LLMReply)
    assert (reply.tier, reply.degraded) == ("routine", True)
    assert server.requests_for("escalation-model") == []
    assert router.chain("escalation", "analysis", degraded=True) == (["routine", "escalation"], [])
    assert router.chain("escalation", "analysis") == (["escalation", "routine"], [])  # no ceiling: never up


def test_missing_key_env_skips_tier_without_a_request(
    server: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = three_tier_config(server.base_url, fallback_cost_ceiling=1.0)
    config.tiers[0].api_key_env = "UNSET_KEY_FOR_TEST"
    monkeypatch.delenv("UNSET_KEY_FOR_TEST", raising=False)
    router = TierRouter(config, TokenLedger(tmp_path / "state.db"))
    server.script(Text("from escalation"), model="escalation-model")

    reply = router.complete(MESSAGES, purpose="routine")

    assert isinstance(reply, LLMReply) and reply.tier == "escalation"
    assert "UNSET_KEY_FOR_TEST is not set" in (reply.attempts[0].error or "")
    assert server.requests_for("routine-model") == []


def test_config_errors_are_clear(tmp_path: Path) -> None:
    ledger = TokenLedger(tmp_path / "state.db")
    tier = TierConfig(name="a", model="openai/a")
    with pytest.raises(ValueError, match="analysis_tier = 'nope'"):
        TierRouter(LLMConfig(tiers=[tier], analysis_tier="nope"), ledger)
    with pytest.raises(ValueError, match="unique"):
        TierRouter(LLMConfig(tiers=[tier, tier]), ledger)
    empty = TierRouter(LLMConfig(), ledger)
    result = empty.complete(MESSAGES)
    assert isinstance(result, LLMFailure) and result.kind == "no_model"


def test_tiers_load_from_brainops_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import Settings

    config = tmp_path / "brainops.toml"
    config.write_text(
        """
[llm]
routine_tier = "glm"
escalation_tier = "claude"
cooldown_s = 20

[[llm.tiers]]
name = "glm"
model = "openai/glm-4.5-air"
api_base = "https://api.z.ai/api/paas/v4"
api_key_env = "ZAI_API_KEY"
input_cost_per_mtok = 0.2
output_cost_per_mtok = 1.1

[[llm.tiers]]
name = "claude"
model = "anthropic/claude-sonnet-4-5"
api_key_env = "ANTHROPIC_API_KEY"

[budget]
degrade_at = 0.7
"""
    )
    monkeypatch.setenv("BRAINOPS_CONFIG", str(config))
    settings = Settings(home=tmp_path)
    router = TierRouter.from_settings(settings, TokenLedger(tmp_path / "state.db"))
    assert router.tier_names == ("glm", "claude")
    assert (router.tier_for("routine"), router.tier_for("analysis"), router.tier_for("strategic")) == (
        "glm",
        "claude",
        "claude",
    )
    assert router.degrade_at == 0.7 and router.config.cooldown_s == 20


def test_bad_request_moves_on_without_cooling_the_tier(server: FakeLLMServer, tmp_path: Path) -> None:
    router, _ledger, _clock = make_router(server, tmp_path, fallback_cost_ceiling=1.0)
    server.script(HttpError(400, "context length exceeded"), model="routine-model")
    server.script(Text("bigger context"), model="escalation-model")

    reply = router.complete(MESSAGES, purpose="routine")

    assert isinstance(reply, LLMReply) and reply.tier == "escalation"
    assert "BadRequestError" in (reply.attempts[0].error or "")
    assert router.cooling_down() == {}
