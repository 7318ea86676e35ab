"""The kind and action registries are complete: every list of kinds or actions is derived from them, and a
declaration missing a part (a worker command, a tool, an effect, a policy entry) fails here."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest
import typer
from typer.main import get_command

from core.actions import ACTION_ARGS, ACTION_SPECS, ACTIONS, MUTATING_ACTIONS, ActionSpec, ReasonArgs, action
from core.domain import Proposal
from core.kinds import KINDS, SCALABLE_KINDS, STAGES, WORKER_KINDS, WorkerKindSpec
from fleet.hosts import WorkerOptions

OPTION_FIELDS = frozenset(WorkerOptions.__dataclass_fields__)


def kind_problems(kinds: Iterable[WorkerKindSpec], worker_app: typer.Typer) -> list[str]:
    """What is missing for each declared kind: its `brainops worker KIND` command and the options it declares."""
    commands = get_command(worker_app).commands  # type: ignore[attr-defined]
    out: list[str] = []
    for spec in kinds:
        command = commands.get(spec.name)
        if command is None:
            out.append(f"{spec.name}: no `brainops worker {spec.name}` command in agent/cli/worker.py")
            continue
        takes = {p.name for p in command.params} & OPTION_FIELDS
        if takes != spec.options:
            out.append(f"{spec.name}: the command takes {sorted(takes)}, the declaration says {sorted(spec.options)}")
        if spec.stage not in STAGES:
            out.append(f"{spec.name}: stage {spec.stage!r} is not a stage")
    return out


def action_problems(specs: Iterable[ActionSpec], tool_names: set[str], policy_actions: set[str]) -> list[str]:
    out: list[str] = []
    for spec in specs:
        if spec.name not in tool_names:
            out.append(f"{spec.name}: no tool in tools/actions.py (ACTION_TOOLS)")
        if spec.mutates != (spec.effect is not None):
            out.append(f"{spec.name}: a mutating action needs an effect, and only one that mutates has one")
        if spec.name not in policy_actions:
            out.append(f"{spec.name}: no entry under `actions:` in policies/default.yaml (it would always be denied)")
        if spec.mutates and spec.expect is None:
            out.append(f"{spec.name}: a mutating action declares what it expects (`expect=`, core/expectations.py)")
    return out


def _worker_app() -> typer.Typer:
    from agent.cli.worker import app

    return app


def _tools() -> dict[str, object]:
    from tools.actions import ACTION_TOOLS

    return {t.name: t for t in ACTION_TOOLS}


def _policy_actions() -> set[str]:
    from policies.loader import load_policy

    return set(load_policy("policies/default.yaml").actions)


def test_every_declared_kind_is_complete() -> None:
    assert kind_problems(KINDS, _worker_app()) == []


def test_an_incomplete_kind_is_reported() -> None:
    from dataclasses import replace

    extract = next(k for k in KINDS if k.name == "extract")
    missing = replace(extract, name="translate")
    wrong_options = replace(extract, options=extract.options | {"table"})
    problems = kind_problems([missing, wrong_options], _worker_app())
    assert len(problems) == 2
    assert "no `brainops worker translate` command" in problems[0]
    assert "'table'" in problems[1]


def test_every_declared_action_is_complete() -> None:
    assert action_problems(ACTION_SPECS, set(_tools()), _policy_actions()) == []
    assert set(_tools()) == set(ACTIONS)  # no tool without a declaration either


def test_an_incomplete_action_is_reported() -> None:
    orphan = ActionSpec("reindex", ReasonArgs, mutates=True, effect=None)
    problems = action_problems([orphan], set(_tools()), _policy_actions())
    assert [p.split(":")[0] for p in problems] == ["reindex"] * 4
    assert "expects" in problems[-1]


# One sensible argument set per declared action; a new mutating action without one fails below.
SAMPLE_ARGS: dict[str, dict[str, object]] = {
    "scale_workers": {"kind": "extract", "host": "worker1", "count": 3},
    "start_embedding": {"host": "brain", "shards": 2, "table": "records"},
    "run_dedup": {"expected_merges": 12},
    "run_recluster": {},
    "set_model_routing": {"weights": {"routine": 0.7, "analysis": 0.3}},
    "restart_worker": {"worker_id": "extract-worker1-1"},
    "stop_worker": {"worker_id": "extract-worker1-1"},
    "prune_versions": {"older_than_days": 7},
    "rotate_logs": {"keep": 5},
    "archive_decisions": {"older_than_days": 30},
    "set_reasoning_tier": {"tier": "analysis"},
    "run_query_analysis": {},
    "optimize_index": {"reason": "search p95 over the policy's limit"},
    "undo_dedup": {"run": "a" * 64, "merges": 12},
    "drop_index": {"reason": "search p95 up 40% after the build"},
}


def test_every_mutating_action_expects_something_a_later_tick_can_read() -> None:
    from support.observations import extract_backlog

    obs = extract_backlog()
    for name in sorted(MUTATING_ACTIONS):
        assert name in SAMPLE_ARGS, f"add sample arguments for {name} to SAMPLE_ARGS"
        spec = action(name)
        assert spec.expect is not None
        made = spec.expect(obs, Proposal(action=name, args=spec.complete(SAMPLE_ARGS[name])))
        assert made is not None and made.checks and made.horizon_s > 0, name
        for check in made.checks:
            head = check.metric.split(".")[0]
            assert head in {"brain", "budget", "worker_up", "storage", "reasoning_yield", "index"}, (
                f"{name}: {check.metric} is not an observed figure"
            )


def test_a_tool_whose_parameters_differ_from_its_action_is_refused_at_import() -> None:
    from tools.actions import action_tool

    def stop_worker(worker: str, rationale: str) -> Proposal:
        """Stop one worker.

        Args:
            worker: the worker.
            rationale: why.
        """
        return Proposal(action="stop_worker")

    with pytest.raises(TypeError, match="its action declares"):
        action_tool(stop_worker)


def test_derived_lists_follow_the_declarations() -> None:
    from core.settings import WORKER_OPTIONS
    from evals.baselines import HPA_KINDS
    from evals.sim_model import DEFAULT_KINDS, HOME_HOST, LLM_STAGES
    from policies.engine import MUTATING_ACTIONS as ENGINE_MUTATING

    assert tuple(k.name for k in KINDS) == WORKER_KINDS
    assert set(HPA_KINDS) == set(SCALABLE_KINDS) and set(LLM_STAGES) == {"extract", "wisdom", "reasoning"}
    assert {k.kind for k in DEFAULT_KINDS} == set(WORKER_KINDS) == set(HOME_HOST) == set(WORKER_OPTIONS)
    assert ENGINE_MUTATING is MUTATING_ACTIONS and "noop" not in MUTATING_ACTIONS
    assert ACTION_ARGS["start_embedding"] == ("host", "shards", "table")
    assert action("start_embedding").optional_args == {"shards", "table"}


def test_tool_schemas_are_the_action_argument_models() -> None:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    for name, tool in _tools().items():
        params = convert_to_openai_tool(tool)["function"]["parameters"]["properties"]  # type: ignore[arg-type]
        model = action(name).args.model_json_schema()["properties"]
        for arg, schema in model.items():
            shown = {k: v for k, v in params[arg].items() if k not in ("description", "default")}
            assert shown == {k: v for k, v in schema.items() if k not in ("title", "default")}, (name, arg)


def test_scenario_schema_file_lists_the_declared_actions() -> None:
    from evals.scenario import SCHEMA_PATH, load_schema

    on_disk = json.loads(SCHEMA_PATH.read_text())["$defs"]["ActionExpectation"]["properties"]["action"]["enum"]
    assert on_disk == list(ACTIONS), "run `python -m evals.scenario` to rewrite the schema file"
    assert load_schema()["$defs"]["ActionExpectation"]["properties"]["action"]["enum"] == list(ACTIONS)
