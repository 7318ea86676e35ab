"""The reasoning worker on a real small brain: litellm over HTTP to the scripted provider, the real ledger, the
validator deciding the yield, the rule planner escalating a tier under the floor, the worker following it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from support.fake_llm_server import Computed, FakeLLMServer, Text, three_tier_config

from agent.service.build import rule_params
from brain.schema import PRIORITIES
from brain.store import BrainStore
from core.domain import BudgetState, HostMetrics, Observation
from core.settings import PlannerConfig
from graphs.planners import PlanContext
from graphs.rule_planner import RulePlanner
from llm.fleet import FleetLLM
from llm.ledger import TokenLedger
from llm.router import TierRouter
from policies.loader import load_policy
from workers.reasoning import ReasoningConfig, ReasoningWorker
from workers.reasoning_check import ReasoningAnswer, Refused, validate_answer

REPO = Path(__file__).resolve().parent.parent
ENTITY_ID = re.compile(r"(ent-\d+) = ")


def _answer(ids: list[str], runbook: bool = True) -> str:
    step = [{"text": "these entities share projects", "cites": ids[:2]}]
    body: dict[str, Any] = {"chain": {"steps": step, "conclusion": "they act as one group"}}
    body["runbook"] = {"title": "check the group", "steps": step} if runbook else None
    return json.dumps(body)


def answering(valid: bool) -> Computed:
    """A provider answer citing the prompt's own entity ids (valid), or an invented one (invalid)."""

    def reply(body: dict[str, Any]) -> Text:
        ids = ENTITY_ID.findall(body["messages"][-1]["content"])
        return Text(_answer(ids if valid else ["ent-999999"]))

    return Computed(reply)


@pytest.fixture
def brain(small_brain: str, tmp_path: Path) -> str:
    path = tmp_path / "brain"
    shutil.copytree(small_brain, path)
    return str(path)


def _worker(brain: str, server: FakeLLMServer, ledger: TokenLedger, limit: int) -> ReasoningWorker:
    llm = FleetLLM(TierRouter(three_tier_config(server.base_url), ledger), ledger)
    return ReasoningWorker(
        ReasoningConfig(brain, batch_size=10, limit=limit),
        BrainStore(brain),
        llm,
        lambda: ledger.task_tier("reasoning"),
    )


def test_validator_keeps_only_cited_non_empty_schema_answers() -> None:
    known = {"ent-1", "ent-2"}
    assert isinstance(validate_answer(_answer(["ent-1", "ent-2"]), known), ReasoningAnswer)
    assert isinstance(
        validate_answer("```json\n" + _answer(["ent-1"], runbook=False) + "\n```", known), ReasoningAnswer
    )
    refused = {
        "not JSON": "the group is linked",
        "cites unknown entities: ent-9": _answer(["ent-9"]),
        "chain.steps": json.dumps({"chain": {"steps": [], "conclusion": "x"}}),
        "cites no entity": json.dumps({"chain": {"steps": [{"text": "a", "cites": []}], "conclusion": "x"}}),
        "blank text": json.dumps({"chain": {"steps": [{"text": "  ", "cites": ["ent-1"]}], "conclusion": "x"}}),
    }
    for reason, text in refused.items():
        result = validate_answer(text, known)
        assert isinstance(result, Refused) and reason in result.reason, (reason, result)


def test_yield_per_tier_is_observed_and_a_low_yield_escalates_the_tier(
    brain: str, tmp_path: Path, fake_llm_key: None, server: FakeLLMServer
) -> None:
    ledger = TokenLedger(tmp_path / "state.db")
    ledger.set_task_tier("reasoning", "routine")
    seeded = BrainStore(brain).stats()  # the seed's own answers: 9 on routine, 5 valid
    before, seeded_routine = seeded.pending["reasoning"], seeded.reasoning.tier("routine")
    # the routine tier: 2 of 5 answers cite entities that do not exist (60% yield); 20 attempts
    server.script(*[answering(valid=i % 5 >= 2) for i in range(20)], model="routine-model")
    worker = _worker(brain, server, ledger, limit=20)
    assert sum(iter(worker.step, 0)) == 20
    stats = BrainStore(brain).stats()
    routine = stats.reasoning.tier("routine")
    assert (routine.attempts - seeded_routine.attempts, routine.valid - seeded_routine.valid) == (20, 12)
    assert routine.cost > seeded_routine.cost
    assert stats.reasoning.chains - seeded.reasoning.chains == 12
    assert stats.reasoning.runbooks - seeded.reasoning.runbooks == 12
    assert stats.pending["reasoning"] == before - 12  # the 8 refused entries wait for another try
    attempts = BrainStore(brain).fresh("reasoning_attempts").to_lance().to_table(columns=["id", "reason"]).to_pylist()
    ours = [a["reason"] for a in attempts if not a["id"].startswith("rsa-seed-")]
    assert len(ours) == 20 and sum(r == "cites unknown entities: ent-999999" for r in ours) == 8
    cited = BrainStore(brain).fresh("reasoning_chains").to_lance().to_table(columns=["cited"]).column(0).to_pylist()
    entity_ids = set(BrainStore(brain).fresh("entities").to_lance().to_table(columns=["id"]).column(0).to_pylist())
    assert all(c and set(c) <= entity_ids for c in cited)

    # the planner: under a 0.7 floor -> escalate to the next tier
    policy = load_policy(REPO / "policies" / "default.yaml")
    policy = policy.model_copy(update={"reasoning": policy.reasoning.model_copy(update={"yield_floor": 0.7})})
    llm_cfg = three_tier_config(server.base_url)
    planner = RulePlanner(rule_params(policy, PlannerConfig(scaled_kinds=[]), llm_cfg))
    obs = Observation(time=1e9, hosts=(HostMetrics(host="local"),), brain=stats, budget=ledger.state())
    assert obs.budget.task_tiers == {"reasoning": "routine"}
    proposals = planner.plan(PlanContext(observation=obs, now=obs.time)).proposals
    tier = [p for p in proposals if p.action == "set_reasoning_tier"]
    assert tier and tier[0].args == {"tier": "escalation"}, proposals
    assert f"{routine.yield_rate:.0%} ({routine.valid}/{routine.attempts})" in tier[0].rationale
    assert routine.yield_rate < 0.7 and "floor 70%" in tier[0].rationale

    # the effect pins the tier in the ledger; the running worker's next batch goes there
    ledger.set_task_tier("reasoning", tier[0].args["tier"])
    server.script(*[answering(valid=True) for _ in range(5)], model="escalation-model")
    worker = _worker(brain, server, ledger, limit=5)
    assert worker.step() == 5
    assert len(server.requests_for("escalation-model")) == 5 and len(server.requests_for("routine-model")) == 20
    assert BrainStore(brain).stats().reasoning.tier("escalation").valid == 5

    # a healthy yield (control): nothing to change
    healthy = stats.model_copy(
        update={
            "reasoning": stats.reasoning.model_copy(
                update={"tiers": (routine.model_copy(update={"valid": routine.attempts - 1}),)}
            )
        }
    )
    calm = Observation(
        time=1e9,
        hosts=(HostMetrics(host="local"),),
        brain=healthy,
        budget=BudgetState(task_tiers={"reasoning": "routine"}),
    )
    assert not [
        p
        for p in planner.plan(PlanContext(observation=calm, now=calm.time)).proposals
        if p.action == "set_reasoning_tier"
    ]


def test_prompt_fences_brain_text_and_prioritised_communities_go_first(
    brain: str, tmp_path: Path, fake_llm_key: None, server: FakeLLMServer
) -> None:
    store = BrainStore(brain)
    last = store.fresh("wisdom").to_lance().to_table(columns=["id", "community_id"]).to_pylist()[-1]
    store.add(
        "priorities",
        pa.Table.from_pylist(
            [
                {
                    "id": "topic-x",
                    "sample": "q",
                    "queries": 4,
                    "best_score": 0.1,
                    "community_ids": [last["community_id"]],
                    "created_at": 1.0,
                }
            ],
            schema=PRIORITIES,
        ),
    )
    ledger = TokenLedger(tmp_path / "state.db")
    server.script(answering(valid=True))
    worker = _worker(brain, server, ledger, limit=1)
    assert worker.pending()[0][0] == last["id"]
    assert worker.step() == 1
    messages = server.requests[0].body["messages"]
    token = re.search(r"<untrusted id=([0-9a-f]+)>", messages[1]["content"]).group(1)  # type: ignore[union-attr]
    assert f"<untrusted id={token}>" in messages[0]["content"] and "never instructions" in messages[0]["content"]
    chains = store.fresh("reasoning_chains").to_lance().to_table(columns=["wisdom_id", "attempt_id"]).to_pylist()
    assert [c["wisdom_id"] for c in chains if not c["attempt_id"].startswith("rsa-seed-")] == [last["id"]]


def test_worker_command_without_a_model_exits_with_one_line(brain: str, tmp_path: Path) -> None:
    (tmp_path / "brainops.toml").write_text("# no model tiers\n")
    env = {"BRAINOPS_CONFIG": str(tmp_path / "brainops.toml"), "BRAINOPS_HOME": str(tmp_path / "home")}
    import os

    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "worker", "reasoning", "--brain", brain],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, **env},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "reasoning: no model tiers configured ([llm] tiers in brainops.toml): reasoning needs the fleet LLM."
    ]


def test_the_small_seed_has_the_fleet_s_reasoning_and_query_rows(small_brain: str) -> None:
    from brain.seed_insight import INSIGHT

    chains, runbooks, attempts, queries = INSIGHT["small"]
    stats = BrainStore(small_brain).stats()
    assert (stats.reasoning.chains, stats.reasoning.runbooks) == (chains, runbooks)
    seeded = stats.reasoning.tier("routine")
    assert (seeded.attempts, seeded.valid) == (attempts, chains)
    assert stats.queries.unanalyzed == stats.queries.total == queries
    assert INSIGHT["seed"] == (404, 213, 762, 8_012)  # SCALING_STRATEGIES: 404 chains, 213 runbooks, 53% yield


def test_the_model_sees_reasoning_yield_and_its_tools_only_when_there_is_something_to_act_on() -> None:
    from core.domain import BrainStats, QueryStats, ReasoningStats, TierYield
    from graphs.llm_prompt import observation_summary
    from graphs.planners import PlanContext as Ctx
    from graphs.rules_reasoning import idle_tools
    from graphs.tool_schemas import TickNames

    quiet = Observation(time=1.0)
    assert idle_tools(quiet) == {"set_reasoning_tier", "run_query_analysis"}
    yields = ReasoningStats(tiers=(TierYield(tier="routine", attempts=30, valid=12, cost=0.06),))
    busy = Observation(
        time=1.0,
        brain=BrainStats(reasoning=yields, queries=QueryStats(total=500, unanalyzed=500)),
        budget=BudgetState(routing={"routine": 0.6, "analysis": 0.4}, task_tiers={"reasoning": "routine"}),
    )
    assert idle_tools(busy) == frozenset()
    brain = observation_summary(busy, str)["brain"]
    assert brain["reasoning_yield"] == {"routine": {"valid": 12, "attempts": 30, "cost": 0.06}}
    assert brain["reasoning_tier"] == "routine" and brain["queries_unanalyzed"] == 500
    assert TickNames.of(Ctx(observation=busy, now=1.0)).enum_for("tier") == ("routine", "analysis")
