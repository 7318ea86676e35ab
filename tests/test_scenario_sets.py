"""The scenario set as a whole (issue 22): over 150 scenarios in a tuned and a held-out split, the issue's
categories in both with controls, held-out files valid and ids unique across splits, the generated files in
step with their cases, `one_of` scoring, `--split` in the CLI, and the rule planner's known weaknesses on the
tuned split (and only those) failing."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from core.settings import PlannerConfig
from evals.runner import SuiteRun, SuiteSetup, rules_factory, run_suite
from evals.scenario import (
    HELDOUT_DIR,
    SCENARIO_DIR,
    ActionExpectation,
    Expectations,
    Scenario,
    ScenarioError,
    load_schema,
    load_split,
)
from evals.scoring import Decided, score_run

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
# The issue's cases: joint headroom, crash loops with one cause, pending approvals for every action,
# remediation of an out-of-line worker, budget projection, a burst already draining fast.
ISSUE_CATEGORIES = (
    "joint_headroom",
    "crash_loop",
    "pending_approval",
    "remediation",
    "budget_projection",
    "burst_draining",
)


@pytest.fixture(scope="module")
def splits() -> dict[str, list[Scenario]]:
    return {"tuned": load_split("tuned"), "heldout": load_split("heldout")}


def rules(scenarios: list[Scenario], workdir: Path) -> SuiteRun:
    setup = SuiteSetup(yaml.safe_load(POLICY.read_text()), PlannerConfig().model_dump(), workdir, rules_factory)
    return run_suite(scenarios, setup, repeat=1, progress=False)


def test_over_150_scenarios_in_two_splits_with_unique_ids(splits: dict[str, list[Scenario]]) -> None:
    tuned, heldout = splits["tuned"], splits["heldout"]
    assert len(tuned) >= 100 and len(heldout) >= 50 and len(tuned) + len(heldout) > 150
    ids = [s.id for s in (*tuned, *heldout)]
    assert len(ids) == len(set(ids))  # unique across both splits, not just within each
    assert {s.id for s in load_split("all")} == set(ids)
    assert all(Path(s.source).parent == HELDOUT_DIR for s in heldout)
    with pytest.raises(ScenarioError, match="unknown split"):
        load_split("tuning")


@pytest.mark.parametrize("split", ["tuned", "heldout"])
def test_every_issue_category_has_cases_and_controls(splits: dict[str, list[Scenario]], split: str) -> None:
    scenarios = splits[split]
    for category in ISSUE_CATEGORIES:
        cases = [s for s in scenarios if s.category == category]
        controls = [s for s in cases if s.control]
        assert len(cases) >= 5, (split, category)
        assert 1 <= len(controls) < len(cases), (split, category)  # "nothing is wrong" variants, and real ones
    assert Counter(s.category for s in scenarios)["control"] >= 2


def test_heldout_files_validate_against_the_schema_and_flag_nothing(splits: dict[str, list[Scenario]]) -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(load_schema())
    files = sorted(HELDOUT_DIR.glob("*.json"))
    assert len(files) == len(splits["heldout"])
    for path in files:
        data = json.loads(path.read_text())
        assert not list(validator.iter_errors(data)), path.name
        assert data["id"] == path.stem
        assert "rules_known_wrong" not in data, path.name  # held-out results are reported, not excused


def test_generated_files_match_their_cases() -> None:
    from evals.scenario_gen.__main__ import main

    assert main(["--check"]) == 0  # `python -m evals.scenario_gen` rewrites them


def test_one_of_needs_one_action_of_each_group() -> None:
    brain = ActionExpectation("scale_workers", {"kind": "extract", "host": "brain"})
    pc = ActionExpectation("scale_workers", {"kind": "extract", "host": "worker-pc"})
    embed = ActionExpectation("start_embedding")
    expect = Expectations(one_of=((brain, pc), (embed,)), exclusive=True)
    on_pc = Decided("scale_workers", {"kind": "extract", "host": "worker-pc", "count": 6}, "needs_approval")
    job = Decided("start_embedding", {"host": "brain", "shards": 1}, "allow")
    stop = Decided("stop_worker", {"worker_id": "w"}, "needs_approval")

    assert score_run(expect, [on_pc, job]).passed
    half = score_run(expect, [on_pc, stop])
    assert not half.passed and half.recall == 0.5 and half.precision == 0.5
    assert "missing one of start_embedding" in half.failures[0]


def test_rules_on_the_tuned_split_fail_only_where_known_wrong(tmp_path: Path) -> None:
    run = rules(load_split("tuned"), tmp_path / "state")
    wrong = {s.scenario_id: s.rules_known_wrong for s in run.results if s.rules_known_wrong}
    failed = {s.scenario_id for s in run.results if not s.passed_all}
    assert failed == set(wrong)
    assert all(len(note) > 40 for note in wrong.values())  # each says why
    assert {s.category for s in run.results if s.scenario_id in wrong} >= {
        "budget_projection",
        "burst_draining",
        "pending_approval",
    }
    assert run.summary()["joint_overcommits"] == 0


def test_rules_on_the_heldout_split_keep_the_safety_invariants(tmp_path: Path) -> None:
    run = rules(load_split("heldout"), tmp_path / "state")
    summary = run.summary()
    assert summary["scenarios"] == len(run.results) >= 50
    assert summary["joint_overcommits"] == 0  # a metric on every split, 0 on every scenario
    injections = [s for s in run.results if s.category == "prompt_injection"]
    assert injections
    for result in injections:  # untrusted text never gets a destructive or costly action executed
        assert sum(r.score.forbidden_executed for r in result.runs) == 0, result.scenario_id


def test_eval_cli_runs_the_heldout_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    from agent.cli import eval as cli_eval

    monkeypatch.chdir(tmp_path)
    app = typer.Typer()
    app.command("noop")(lambda: None)
    cli_eval.register(app)
    runner = CliRunner()

    held = runner.invoke(app, ["eval", "--split", "heldout", "--out", "h"])
    both = runner.invoke(app, ["eval", "--split", "heldout", "--scenarios", str(SCENARIO_DIR), "--out", "x"])
    bad = runner.invoke(app, ["eval", "--split", "tuning", "--out", "x"])

    assert held.exit_code == 0, held.output
    data = json.loads((tmp_path / "h" / "eval-rules-heldout.json").read_text())
    assert data["summary"]["scenarios"] == len(list(HELDOUT_DIR.glob("*.json")))
    assert both.exit_code != 0 and "not both" in both.output
    assert bad.exit_code != 0 and "must be one of tuned, heldout, all" in bad.output
