"""Eval scenarios: JSON files checked against evals/scenario.schema.json at load.

A scenario is one observation snapshot (exactly `core.domain.Observation`), optional policy and planner
overrides, and what a good decision looks like. A file that breaks the schema raises `ScenarioError`
naming the file and the JSON path of the bad field.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.actions import ACTIONS
from core.domain import Observation
from core.expectation_types import Verification
from evals.verify_eval import RecordedAction

SCHEMA_PATH = Path(__file__).resolve().parent / "scenario.schema.json"
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
# The held-out split: scenarios the planner's authors do not tune against (evals/SCENARIOS.md, "Splits").
HELDOUT_DIR = Path(__file__).resolve().parent / "scenarios_heldout"
SPLITS: dict[str, Path] = {"tuned": SCENARIO_DIR, "heldout": HELDOUT_DIR}

CATEGORIES: tuple[str, ...] = (
    "backlog_scale_up",
    "backlog_scale_down",
    "host_overload",
    "gpu_idle_embedding",
    "duplicates",
    "stale_communities",
    "budget",
    "provider_outage",
    "crash_loop",
    "host_unreachable",
    "conflicting_signals",
    "control",
    "prompt_injection",
    "joint_headroom",
    "pending_approval",
    "remediation",
    "budget_projection",
    "burst_draining",
    "verification",
    "storage",
    "cost",
    "reasoning_yield",
    "query_patterns",
    "vector_index",
)
CONSTRAINT_OPS: tuple[str, ...] = ("eq", "ne", "gt", "ge", "lt", "le", "in", "contains", "present")
VERDICTS: tuple[str, ...] = ("allow", "needs_approval", "deny")
Approval = Literal["required", "forbidden", "any"]


class ScenarioError(ValueError):
    """A scenario file that cannot be used: `str()` reads `file: json.path: reason`."""

    def __init__(self, source: str, path: str, reason: str) -> None:
        self.source, self.path, self.reason = source, path, reason
        super().__init__(f"{source}: {path or '<root>'}: {reason}")


@dataclass(frozen=True)
class ActionExpectation:
    """An action with argument constraints: {arg (dotted path): scalar (== value) or {op: value}}."""

    action: str
    args: Mapping[str, Any] = field(default_factory=dict)
    verdict: str | None = None  # the policy verdict the matching proposal must get, when set

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action}
        if self.args:
            out["args"] = dict(self.args)
        if self.verdict:
            out["verdict"] = self.verdict
        return out


@dataclass(frozen=True)
class Expectations:
    must: tuple[ActionExpectation, ...] = ()
    one_of: tuple[tuple[ActionExpectation, ...], ...] = ()  # each group: at least one of its actions
    may: tuple[ActionExpectation, ...] = ()
    must_not: tuple[ActionExpectation, ...] = ()
    exclusive: bool = False  # proposals outside must/may (noop aside) fail the run
    approval: Approval = "any"
    verdict: str = "any"  # worst verdict over the tick's proposals: deny > needs_approval > allow
    verifications: Mapping[str, Verification | None] = field(default_factory=dict)  # trajectory id -> verdict


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    category: str
    observation: Observation
    expect: Expectations
    description: str = ""
    policy_overrides: Mapping[str, Any] = field(default_factory=dict)
    planner_overrides: Mapping[str, Any] = field(default_factory=dict)
    rules_known_wrong: str | None = None  # why the rule planner is expected to fail this one
    source: str = ""
    control: bool = False  # a "nothing is wrong" variant of its category
    trajectory: tuple[RecordedAction, ...] = ()  # earlier actions, judged on the observation (evals/verify_eval.py)


# ---------------------------------------------------------------- schema


def observation_json_schema() -> dict[str, Any]:
    """Observation's JSON Schema as pydantic generates it; the schema file embeds it under $defs."""
    return Observation.model_json_schema(ref_template="#/$defs/{model}")


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    return with_actions(json.loads(path.read_text(encoding="utf-8")))


def with_actions(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema with the action names of core/actions.py, the declaration they belong to. The file keeps
    a copy for editors; `python -m evals.scenario` rewrites it."""
    out = copy.deepcopy(dict(schema))
    out["$defs"]["ActionExpectation"]["properties"]["action"]["enum"] = list(ACTIONS)
    return out


def write_schema(path: Path = SCHEMA_PATH) -> None:
    """Rewrite the parts of the schema file other declarations own: Observation's models and the actions."""
    schema = load_schema(path)
    generated = observation_json_schema()
    schema["$defs"].update(generated["$defs"])
    schema["$defs"]["Observation"]["properties"] = generated["properties"]
    recorded = RecordedAction.model_json_schema(ref_template="#/$defs/{model}")
    schema["$defs"].update(recorded.pop("$defs"))
    schema["$defs"]["RecordedAction"] = recorded
    path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")


def _validator(schema: Mapping[str, Any]) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema)


def _json_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _first_error(validator: Any, data: Any) -> tuple[str, str] | None:
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    if not errors:
        return None
    deepest = max(errors, key=lambda e: len(e.absolute_path))
    best = deepest.context[0] if deepest.context else deepest
    return _json_path(best.absolute_path), best.message


# ---------------------------------------------------------------- loading


def parse_scenario(data: Any, source: str, validator: Any | None = None) -> Scenario:
    """Validate one parsed JSON document and build the Scenario; ScenarioError names the bad field."""
    validator = validator or _validator(load_schema())
    problem = _first_error(validator, data)
    if problem is not None:
        raise ScenarioError(source, *problem)
    try:
        obs = Observation.model_validate(data["observation"])
    except ValueError as exc:  # pydantic checks what JSON Schema cannot (e.g. frozen model invariants)
        raise ScenarioError(source, "observation", str(exc)) from None
    try:
        trajectory = tuple(RecordedAction.model_validate(step) for step in data.get("trajectory", []))
    except ValueError as exc:
        raise ScenarioError(source, "trajectory", str(exc)) from None
    exp = data["expect"]
    return Scenario(
        id=data["id"],
        title=data["title"],
        category=data["category"],
        description=data.get("description", ""),
        observation=obs,
        expect=Expectations(
            must=_actions(exp.get("must", [])),
            one_of=tuple(_actions(group) for group in exp.get("one_of", [])),
            may=_actions(exp.get("may", [])),
            must_not=_actions(exp.get("must_not", [])),
            exclusive=exp.get("exclusive", False),
            approval=exp.get("approval", "any"),
            verdict=exp.get("verdict", "any"),
            verifications={
                v["id"]: None if v["verdict"] == "pending" else v["verdict"] for v in exp.get("verifications", [])
            },
        ),
        policy_overrides=data.get("policy_overrides", {}),
        planner_overrides=data.get("planner_overrides", {}),
        rules_known_wrong=data.get("rules_known_wrong"),
        source=source,
        control=data.get("control", False),
        trajectory=trajectory,
    )


def _actions(items: list[dict[str, Any]]) -> tuple[ActionExpectation, ...]:
    return tuple(ActionExpectation(i["action"], i.get("args", {}), i.get("verdict")) for i in items)


def load_scenario(path: Path, validator: Any | None = None) -> Scenario:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(str(path), "", f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    return parse_scenario(data, str(path), validator)


def load_scenarios(directory: Path = SCENARIO_DIR) -> list[Scenario]:
    """Every *.json in the directory, sorted by id; duplicate ids are an error."""
    if not directory.is_dir():
        raise ScenarioError(str(directory), "", "scenario directory does not exist")
    validator = _validator(load_schema())
    scenarios = [load_scenario(p, validator) for p in sorted(directory.glob("*.json"))]
    if not scenarios:
        raise ScenarioError(str(directory), "", "no *.json scenario files found")
    return _unique(scenarios)


def load_split(name: str) -> list[Scenario]:
    """One split by name (tuned, heldout), or "all": both, with ids unique across them."""
    if name == "all":
        return _unique([s for split in SPLITS.values() for s in load_scenarios(split)])
    if name not in SPLITS:
        raise ScenarioError(name, "", f"unknown split {name!r}; known: {', '.join([*SPLITS, 'all'])}")
    return load_scenarios(SPLITS[name])


def _unique(scenarios: list[Scenario]) -> list[Scenario]:
    seen: dict[str, str] = {}
    for s in scenarios:
        if s.id in seen:
            raise ScenarioError(s.source, "id", f"duplicate id {s.id!r} (also in {seen[s.id]})")
        seen[s.id] = s.source
    return sorted(scenarios, key=lambda s: s.id)


# ---------------------------------------------------------------- policy overrides


def merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


if __name__ == "__main__":
    write_schema()
