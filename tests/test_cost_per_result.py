"""Cost per result on a real brain and a real ledger: `brainops budget`, STATUS.json from a real tick."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from support.agent_rig import cli, copy_brain, kill_workers, make_settings, write_policy, write_toml

from agent.service.agent import Agent
from agent.state.production import ProductionSnapshots
from brain.store import BrainStore
from core.domain import PRODUCED
from llm.ledger import TokenLedger

NO_SCALING = {"extract": {"max": 0}, "wisdom": {"max": 0}, "embed": {"max": 0}}


def _spend(settings, dollars: dict[str, float]) -> None:  # type: ignore[no-untyped-def]
    ledger = TokenLedger.from_settings(settings)
    for tier, cost in dollars.items():
        reservation = ledger.reserve(tier, 500)
        ledger.settle(reservation, 100, 20, cost)  # type: ignore[arg-type]


def _setup(tmp_path: Path, small_brain: str, **policy: object):  # type: ignore[no-untyped-def]
    brain = copy_brain(small_brain, tmp_path)
    hosts = {"*": {"cost_per_hour": 0.5}}
    policy_file = write_policy(tmp_path / "policy.yaml", hosts=hosts, workers=NO_SCALING, **policy)
    settings = make_settings(tmp_path, brain, policy_file)
    now = time.time()
    start = now - min(1800.0, now % 86_400)  # earlier today (UTC): the day's and month's first snapshot
    ProductionSnapshots(settings.state_db).record(start, dict.fromkeys(PRODUCED, 0))
    return settings, start


def test_budget_reports_cost_per_result_from_the_brain_and_the_ledger(tmp_path: Path, small_brain: str) -> None:
    settings, start = _setup(tmp_path, small_brain)
    _spend(settings, {"routine": 0.30, "analysis": 0.20})
    config = write_toml(settings, tmp_path / "brainops.toml")
    stats = BrainStore(settings.brain_path).stats()
    processed = stats.records - stats.pending["extract"]
    assert processed > 0 and stats.wisdom > 0

    out = cli(config, "budget", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["cost_per_result"]
    month = report["month"]
    assert report["produced_total"]["records"] == processed and report["absent_tables"] == []
    assert report["produced_total"]["chains"] == stats.reasoning.chains > 0  # the seed's reasoning_chains table
    assert month["produced"]["records"] == processed and month["produced"]["wisdom"] == stats.wisdom
    assert month["llm_cost_by_tier"] == {"analysis": 0.2, "routine": 0.3} and month["llm_cost"] == pytest.approx(0.5)
    hours = (time.time() - start) / 3600
    assert month["compute_cost"] == pytest.approx(0.5 * hours, rel=0.05, abs=1e-4)  # one host at $0.50/h
    total = month["llm_cost"] + month["compute_cost"]
    assert month["per_1k_records"] == pytest.approx(total / processed * 1000, rel=1e-3)
    assert month["per_wisdom"] == pytest.approx(total / stats.wisdom, rel=1e-3)
    assert month["per_chain"] == pytest.approx(total / month["produced"]["chains"], rel=1e-3)
    assert report["day"]["llm_cost"] == pytest.approx(0.5)

    text = cli(config, "budget")
    assert text.returncode == 0, text.stderr
    assert "per 1,000 records $" in text.stdout and "per chain $" in text.stdout
    assert "routine $0.3000" in text.stdout


def test_budget_before_any_tick_says_there_is_no_window(tmp_path: Path, small_brain: str) -> None:
    settings = make_settings(tmp_path, copy_brain(small_brain, tmp_path), write_policy(tmp_path / "policy.yaml"))
    TokenLedger.from_settings(settings)  # a state DB, but no tick has run
    out = cli(write_toml(settings, tmp_path / "brainops.toml"), "budget")
    assert out.returncode == 0, out.stderr
    assert "today: no production snapshot yet" in out.stdout


def test_a_tick_writes_status_json_with_the_cost_figures(tmp_path: Path, small_brain: str) -> None:
    settings, _ = _setup(tmp_path, small_brain)
    _spend(settings, {"routine": 0.25})
    try:
        Agent(settings).tick()
    finally:
        kill_workers(settings.run_dir)
    status = json.loads(settings.status_path.read_text())
    assert status["version"] == 1 and status["generated_at"] > 0
    month = status["cost"]["month"]
    assert month["llm_cost"] == pytest.approx(0.25) and month["produced"]["records"] > 0
    assert month["per_1k_records"] == pytest.approx(month["total_cost"] / month["produced"]["records"] * 1000, rel=1e-3)
    assert status["produced_total"]["wisdom"] == BrainStore(settings.brain_path).stats().wisdom
    assert status["storage"]["disk_percent"] > 0 and set(status["storage"]["reclaimable_bytes"]) == {
        "versions",
        "logs",
        "decisions",
    }
    assert not list(settings.status_path.parent.glob(".STATUS.json.*.tmp"))  # written atomically, nothing left


def test_cost_over_the_policy_target_routes_cheap_in_a_real_tick(tmp_path: Path, small_brain: str) -> None:
    settings, _ = _setup(tmp_path, small_brain, cost={"max_llm_per_1k_records": 0.01})
    # far over $0.01 per 1,000 of the seed's processed records, on tiers named by purpose (no tiers configured)
    _spend(settings, {"routine": 3.0, "analysis": 1.5, "strategic": 0.5})
    with sqlite3.connect(settings.state_db) as conn:  # a ledger a whole window old: the token pace is low
        started = time.time() - settings.budget.window_s
        conn.execute("INSERT OR REPLACE INTO ledger_meta(key, value) VALUES ('started_at', ?)", (str(started),))
    try:
        report = Agent(settings).tick()
    finally:
        kill_workers(settings.run_dir)
    routed = [(p, o) for p, o in zip(report.proposals, report.outcomes, strict=True) if p.action == "set_model_routing"]
    assert routed and routed[0][1].status == "done", [p.action for p in report.proposals]
    assert "per 1,000 records is over the policy's target" in routed[0][0].rationale
    assert TokenLedger.from_settings(settings).routing() == routed[0][0].args["weights"]
