"""The tool schemas the planning model is offered: trimmed once per planner, names filled in per tick.

`trimmed_schema` turns a tool into a compact OpenAI function schema: no null branches or null defaults, no
titles, no arguments the policy engine observes itself (ActionSpec.observed), one-line descriptions.
`tick_schemas` fills in what only the tick knows, by parameter name, as enums: `host` takes a host of the
observation, `worker_id` one of its workers, `tier` (set_reasoning_tier) and the `weights` of set_model_routing
a tier the policy allows (its allowed_tiers; when it lists none, the configured tiers of the policy summary and
the tiers the budget has seen, as the engine reads it). So the model picks from the names instead of
spelling them, and a misspelt one fails the schema rather than the policy.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.actions import BY_NAME
from graphs.planners import PlanContext
from graphs.rules_reasoning import idle_tools

ROUTING_TOOL, ROUTING_ARG = "set_model_routing", "weights"
# Offered only when they can matter this tick (each costs prompt tokens): the reclaim actions while the brain
# host's disk is at or over the policy's storage.act_at_percent, the read tool once storage or cost is measured.
DISK_TOOLS = frozenset({"prune_versions", "rotate_logs", "archive_decisions"})
STORAGE_COST_TOOL = "get_storage_and_cost"
# Rollbacks: the verifier proposes them for an action that made things worse (agent/service/verification.py);
# the model is not offered them, which keeps the prompt small.
ROLLBACK_TOOLS = frozenset({"undo_dedup", "drop_index"})
DEFAULT_ACT_AT_PERCENT = 75.0


def is_decision_tool(name: str) -> bool:
    """Action tools (named after an action) decide; the others only read."""
    return name in BY_NAME


@dataclass(frozen=True)
class TickNames:
    """The names one tick's tool arguments may take."""

    hosts: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    disk_pressure: bool = False  # the disk tools are offered
    measured: bool = False  # storage or cost figures exist: the read tool is offered
    hidden: frozenset[str] = frozenset()  # tools with nothing to act on this tick (graphs/rules_reasoning.py)

    @classmethod
    def of(cls, ctx: PlanContext) -> TickNames:
        obs, budget = ctx.observation, ctx.observation.budget
        routing = ctx.policy_summary.get("routing")
        routing = routing if isinstance(routing, Mapping) else {}
        allowed = list(routing.get("allowed_tiers") or ())  # empty: every configured tier, as the engine reads it
        seen = [*(routing.get("tiers") or {}), *budget.routing, *budget.per_tier, *budget.routed_calls]
        tiers = allowed or list(dict.fromkeys(seen))
        storage = ctx.policy_summary.get("storage")
        act_at = storage.get("act_at_percent") if isinstance(storage, Mapping) else None
        disk = obs.storage.disk_percent
        return cls(
            hosts=tuple(dict.fromkeys(h.host for h in obs.hosts)),
            workers=tuple(dict.fromkeys(w.id for w in obs.workers)),
            tiers=tuple(str(t) for t in tiers),
            disk_pressure=disk is not None and disk >= float(act_at or DEFAULT_ACT_AT_PERCENT),
            measured=disk is not None or obs.cost.month is not None,
            hidden=idle_tools(obs),
        )

    def offers(self, tool: str) -> bool:
        if tool in ROLLBACK_TOOLS:
            return False
        if tool in DISK_TOOLS:
            return self.disk_pressure
        return self.measured if tool == STORAGE_COST_TOOL else True

    def enum_for(self, param: str) -> tuple[str, ...]:
        return {"host": self.hosts, "worker_id": self.workers, "tier": self.tiers}.get(param, ())


def trimmed_schema(tool: Any) -> dict[str, Any]:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    schema = convert_to_openai_tool(tool)
    function = schema["function"]
    observed = BY_NAME[tool.name].observed if is_decision_tool(tool.name) else frozenset()
    params = function.get("parameters") or {}
    props = {
        name: _trim_property(prop) for name, prop in (params.get("properties") or {}).items() if name not in observed
    }
    trimmed: dict[str, Any] = {"type": "object", "properties": props}
    required = [r for r in params.get("required", ()) if r in props]
    if required:
        trimmed["required"] = required
    description = " ".join(str(function.get("description", "")).split())
    return {"type": "function", "function": {"name": tool.name, "description": description, "parameters": trimmed}}


def declared_args(schema: Mapping[str, Any]) -> list[str]:
    return list(schema["function"]["parameters"]["properties"])


def tick_schemas(schemas: Sequence[dict[str, Any]], names: TickNames) -> list[dict[str, Any]]:
    """Copies of `schemas` with this tick's names as enums (a parameter with no names known stays free text)."""
    out = []
    for schema in schemas:
        if not names.offers(schema["function"]["name"]) or schema["function"]["name"] in names.hidden:
            continue
        filled = copy.deepcopy(schema)
        function = filled["function"]
        props = function["parameters"]["properties"]
        for param, prop in props.items():
            wanted = names.enum_for(param)
            if wanted and "enum" not in prop and prop.get("type") == "string":
                prop["enum"] = list(wanted)
        if function["name"] == ROUTING_TOOL and ROUTING_ARG in props and names.tiers:
            prop = props[ROUTING_ARG]
            prop["properties"] = {tier: {"type": "number"} for tier in names.tiers}
            prop["additionalProperties"] = False
        out.append(filled)
    return out


def _trim_property(prop: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in prop.items() if k != "title" and not (k == "default" and v is None)}
    branches = out.pop("anyOf", None)
    if branches is not None:
        kept = [b for b in branches if b.get("type") != "null"]
        if len(kept) == 1:
            out = {**kept[0], **out}
        else:
            out["anyOf"] = kept
    if "description" in out:
        out["description"] = " ".join(str(out["description"]).split()).rstrip(".")
    return out
