"""Exactly one HTTP attempt per tier and call, for every provider path: real litellm over real HTTP.

The fallback across tiers plus the cooldown is the retry policy, so an SDK retry only multiplies a failing
or hanging provider's cost. litellm's `zai/` path drops `max_retries` and the OpenAI SDK then retried twice
(3 requests per call, 3 timeouts per hang); `openai/` and `anthropic/` made one. The stand-in serves the
OpenAI format on .../chat/completions (openai/, zai/) and the Anthropic Messages format on .../messages.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from support.fake_llm_server import FakeLLMServer, Hang, HttpError, Scripted, Text, tool_calls

from core.settings import LLMConfig, TierConfig
from llm.ledger import TokenLedger
from llm.router import LLMFailure, LLMReply, TierRouter

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
pytestmark = pytest.mark.usefixtures("fake_llm_key")  # before any call: warm_up needs the key too
PROVIDERS = ("openai", "anthropic", "zai")
ROUTE = {"openai": "/chat/completions", "anthropic": "/messages", "zai": "/chat/completions"}
MESSAGES = [{"role": "user", "content": "summarise the fleet"}]
NOOP_TOOL = {
    "type": "function",
    "function": {
        "name": "noop",
        "description": "do nothing",
        "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"]},
    },
}


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def one_tier(server: FakeLLMServer, tmp_path: Path, provider: str, timeout_s: float = 5.0) -> TierRouter:
    tier = TierConfig(
        name="only",
        model=f"{provider}/only-model",
        api_base=server.base_url,
        api_key_env="FAKE_LLM_KEY",
        max_tokens=64,
        input_cost_per_mtok=1.0,
        output_cost_per_mtok=2.0,
        timeout_s=timeout_s,
    )
    return TierRouter(LLMConfig(tiers=[tier], cooldown_s=5.0), TokenLedger(tmp_path / "state.db"), clock=Clock())


def fail_fast(*replies: Scripted) -> list[Scripted]:
    """Enough of the same reply for any number of retries, so a retry shows up as an extra request."""
    return list(replies) * 5


def warm_up(server: FakeLLMServer, tmp_path: Path, provider: str) -> None:
    """One quick call first, so litellm's first-use imports are not counted in a measured one."""
    server.script(Text("warm"))
    assert isinstance(one_tier(server, tmp_path, provider).complete(MESSAGES), LLMReply)
    server.clear()
    server.clear_requests()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_reply_takes_one_request_in_the_providers_format(
    server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    router = one_tier(server, tmp_path, provider)
    server.script(tool_calls(("noop", {"reason": "idle"}), content="nothing to do"))

    reply = router.complete(MESSAGES, tools=[NOOP_TOOL])

    assert isinstance(reply, LLMReply), reply
    assert [(c.name, c.arguments.replace(" ", "")) for c in reply.tool_calls] == [("noop", '{"reason":"idle"}')]
    assert reply.tokens_in > 0 and reply.tokens_out > 0
    assert len(server.requests) == 1
    sent = server.requests[0]
    assert sent.path.endswith(ROUTE[provider]) and sent.model == "only-model"
    assert "max_retries" not in sent.body  # an SDK setting, never part of the provider's request


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("error", "cooldown"),
    [(HttpError(500, "boom"), 5.0), (HttpError(429, "slow down", retry_after=7), 7.0)],
    ids=["500", "429-retry-after"],
)
def test_a_failing_provider_gets_exactly_one_request_per_call(
    server: FakeLLMServer, tmp_path: Path, provider: str, error: HttpError, cooldown: float
) -> None:
    router = one_tier(server, tmp_path, provider)
    server.script(*fail_fast(error))

    result = router.complete(MESSAGES)

    assert isinstance(result, LLMFailure) and result.kind == "provider_failed"
    assert len(server.requests) == 1, [r.path for r in server.requests]
    assert router.cooling_down() == {"only": pytest.approx(Clock.now + cooldown)}  # Retry-After beats cooldown_s
    assert isinstance(router.complete(MESSAGES), LLMFailure)
    assert len(server.requests) == 1  # the cooled-down tier gets no second request either


@pytest.mark.slow
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_hanging_provider_costs_one_timeout(server: FakeLLMServer, tmp_path: Path, provider: str) -> None:
    warm_up(server, tmp_path, provider)
    router = one_tier(server, tmp_path, provider, timeout_s=0.5)
    server.script(*fail_fast(Hang()))

    started = time.monotonic()
    result = router.complete(MESSAGES)
    elapsed = time.monotonic() - started

    assert isinstance(result, LLMFailure) and "Timeout" in (result.attempts[0].error or "")
    assert len(server.requests) == 1
    assert elapsed < 0.5 + 0.6  # one timeout and some slack; a retried call took three (about 3 s)


def test_a_server_error_then_success_is_never_retried_within_a_call(server: FakeLLMServer, tmp_path: Path) -> None:
    """The zai path again, with a good reply queued behind the error: a retry would have fetched it."""
    router = one_tier(server, tmp_path, "zai")
    server.script(HttpError(503, "down"), Text("second try"))

    result = router.complete(MESSAGES)

    assert isinstance(result, LLMFailure)
    assert server.remaining() == 1 and len(server.requests) == 1
