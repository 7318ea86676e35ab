"""Money safety of every LLM call: the daily dollar cap holds under concurrency, the seed's split is kept by
purpose, fallbacks never climb past the cost ceiling, and a refusal names the limit that tripped.
Real litellm over real HTTP to the scripted stand-in, the real SQLite ledger, real OS processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import threading
from pathlib import Path

import pytest
from support.fake_llm_server import FakeLLMServer, HttpError, Slow, Text, seed_tier_config

from core.settings import DeploymentConfig, LLMConfig, TierConfig
from llm.fleet import FleetLLM, FleetReply
from llm.ledger import TokenLedger
from llm.router import LLMFailure, LLMReply, TierRouter

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
pytestmark = pytest.mark.usefixtures("fake_llm_key")
PROMPT = [{"role": "user", "content": "Write one sentence on what links these entities."}]
CALL_COST = 0.10  # $1000 per million output tokens, 100 tokens a call, prompts free
CAP = 1.0
THREADS_PER_PROCESS = 16
PROCESSES = 4  # 64 concurrent callers


def priced_tier(base_url: str, timeout_s: float = 10.0) -> LLMConfig:
    tier = TierConfig(
        name="glm",
        model="openai/glm-model",
        api_base=base_url,
        api_key_env="FAKE_LLM_KEY",
        max_tokens=100,
        input_cost_per_mtok=0.0,
        output_cost_per_mtok=1000.0,
        timeout_s=timeout_s,
    )
    return LLMConfig(tiers=[tier])


def _callers(base_url: str, db: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    router = TierRouter(priced_tier(base_url), TokenLedger(db, daily_cost_cap=CAP))
    start = threading.Barrier(THREADS_PER_PROCESS)
    results: list[str] = []

    def one() -> None:
        start.wait()
        result = router.complete(PROMPT)
        results.append("reply" if isinstance(result, LLMReply) else ",".join(result.budget_limits) or result.kind)

    threads = [threading.Thread(target=one) for _ in range(THREADS_PER_PROCESS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(results)


@pytest.mark.slow
def test_the_daily_cap_is_hard_at_64_concurrent_callers(server: FakeLLMServer, tmp_path: Path) -> None:
    # every answer is slow, so all 64 calls are in flight before the first one settles: checking the cap
    # after spending (the old ledger) let every one of them through, $6.40 against a $1 cap
    server.script(*[Slow(0.3, Text("x" * 400))] * (PROCESSES * THREADS_PER_PROCESS))
    db = str(tmp_path / "state.db")
    TokenLedger(db, daily_cost_cap=CAP)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_callers, args=(server.base_url, db, out)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    results = [r for _ in procs for r in out.get(timeout=120)]
    for proc in procs:
        proc.join(timeout=30)

    state = TokenLedger(db, daily_cost_cap=CAP).state()
    assert state.cost_today <= CAP + 1e-9
    assert results.count("reply") == round(CAP / CALL_COST)  # the cap is spent, not left idle
    assert results.count("daily_cost") == len(results) - results.count("reply")
    assert len(server.requests) == results.count("reply")  # a refused call makes no request
    assert state.reserved_cost == 0


def test_a_refusal_names_the_limit_that_tripped(server: FakeLLMServer, tmp_path: Path) -> None:
    ledger = TokenLedger(tmp_path / "state.db", daily_cost_cap=0.05)
    router = TierRouter(priced_tier(server.base_url), ledger)
    server.script(Text("never sent"))

    result = router.complete(PROMPT)

    assert isinstance(result, LLMFailure) and result.kind == "budget_exhausted"
    assert result.budget_limits == ("daily_cost",)
    assert "daily cost cap $0.05" in result.detail and "$0.1000" in result.detail
    assert server.requests == []


def test_an_unpriced_model_is_not_called_under_a_cap(server: FakeLLMServer, tmp_path: Path) -> None:
    # litellm's bundled map lists claude-opus-4-1 at $0: its spend would never reach the cap
    tier = TierConfig(
        name="opus", model="anthropic/claude-opus-4-1", api_base=server.base_url, api_key_env="FAKE_LLM_KEY"
    )
    router = TierRouter(LLMConfig(tiers=[tier]), TokenLedger(tmp_path / "state.db", daily_cost_cap=5.0))
    server.script(Text("never sent"))

    result = router.complete(PROMPT, purpose="strategic")

    assert isinstance(result, LLMFailure) and "has no price" in result.detail
    assert server.requests == []


def _fleet(server: FakeLLMServer, tmp_path: Path, **config: object) -> tuple[FleetLLM, TokenLedger]:
    ledger = TokenLedger(tmp_path / "state.db")
    caps = {"opus": 0.05}
    return FleetLLM(
        TierRouter(seed_tier_config(server.base_url, **config), ledger), ledger, share_caps=lambda: caps
    ), ledger


@pytest.mark.slow
def test_the_seed_split_is_kept_over_1000_calls_and_opus_serves_only_strategic_ones(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    llm, ledger = _fleet(server, tmp_path)
    server.script(*[Text("ok")] * 1000)
    rng = random.Random(7)
    purposes = ["routine"] * 650 + ["analysis"] * 300 + ["strategic"] * 50
    rng.shuffle(purposes)
    served: dict[str, list[str]] = {}
    for i, purpose in enumerate(purposes):
        reply = llm.try_complete([{"role": "user", "content": f"item {i}"}], "wisdom", purpose=purpose)  # type: ignore[arg-type]
        assert isinstance(reply, FleetReply)
        served.setdefault(reply.tier, []).append(purpose)

    shares = {tier: len(p) / 1000 for tier, p in served.items()}
    assert shares == pytest.approx({"glm-air": 0.60, "glm": 0.35, "opus": 0.05}, abs=0.02)
    assert set(served["opus"]) == {"strategic"}
    assert "analysis" not in served["glm-air"]  # analysis is the mid tier's work
    assert sum(ledger.routed_calls().values()) == 1000


def test_max_share_caps_each_call_even_when_only_strategic_calls_come(server: FakeLLMServer, tmp_path: Path) -> None:
    llm, _ledger = _fleet(server, tmp_path, routing={"glm-air": 0.0, "glm": 0.5, "opus": 0.5})
    server.script(*[Text("ok")] * 100)

    tiers = []
    for i in range(100):
        reply = llm.try_complete([{"role": "user", "content": f"decide {i}"}], "plan", purpose="strategic")
        assert isinstance(reply, FleetReply)
        tiers.append(reply.tier)

    # the split asks for half on Opus; the policy's max_share 5% wins, call by call
    assert tiers.count("opus") == 5 and set(tiers) == {"glm", "opus"}
    assert all(tiers[: n + 1].count("opus") <= 0.05 * (n + 1) + 1e-9 for n in range(100))


def test_an_outage_of_both_cheap_tiers_never_climbs_past_the_ceiling(server: FakeLLMServer, tmp_path: Path) -> None:
    llm, ledger = _fleet(server, tmp_path, fallback_cost_ceiling=0.01)
    for model in ("glm-air-model", "glm-model"):
        server.script(*[HttpError(500, "down")] * 20, model=model)
    server.script(*[Text("opus answer")] * 20, model="opus-model")

    results = [llm.try_complete([{"role": "user", "content": f"doc {i}"}], "extract") for i in range(10)]

    assert all(isinstance(r, LLMFailure) and r.kind == "provider_failed" for r in results)
    assert server.requests_for("opus-model") == []  # 15x the price: never reached by a routine call
    assert ledger.state().cost_today == 0
    strategic = llm.try_complete(PROMPT, "plan", purpose="strategic")
    assert isinstance(strategic, LLMFailure)  # Opus's estimate ($0.02) is over the ceiling even for strategic
    assert "over the fallback ceiling $0.0100" in strategic.detail or "cooling down" in strategic.detail


def test_a_backup_deployment_of_the_same_model_serves_before_any_other_tier(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    config = seed_tier_config(server.base_url)
    backup = DeploymentConfig(
        model="openai/glm-via-openrouter",
        api_base=server.base_url,
        api_key_env="FAKE_LLM_KEY",
        input_cost_per_mtok=0.6,
        output_cost_per_mtok=2.2,
    )
    config.tiers[1].backups = [backup]
    ledger = TokenLedger(tmp_path / "state.db")
    router = TierRouter(config, ledger)
    server.script(HttpError(503, "z.ai down"), model="glm-model")
    server.script(Text("from openrouter"), Text("again"), model="glm-via-openrouter")

    first = router.complete(PROMPT, purpose="analysis")
    second = router.complete(PROMPT, purpose="analysis")

    assert isinstance(first, LLMReply) and (first.tier, first.model) == ("glm", "openai/glm-via-openrouter")
    assert [(a.deployment, a.error is None) for a in first.attempts] == [
        ("openai/glm-model", False),
        ("openai/glm-via-openrouter", True),
    ]
    assert isinstance(second, LLMReply) and second.attempts[0].skipped  # the primary cools down, shared
    assert len(server.requests_for("glm-model")) == 1
    assert router.cooling_down() == {}  # a tier with a healthy deployment is not cooling down
