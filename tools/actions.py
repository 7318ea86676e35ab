"""Action tools. Calling one only PROPOSES the action: the policy guard (and maybe a human) decides if it runs.

Each tool's argument schema is its action's argument model (core/actions.py) plus the rationale; the
docstrings are the model's tool descriptions, and their "Args:" sections describe each parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, cast

from langchain_core.tools import BaseTool, StructuredTool, tool
from pydantic import BaseModel, Field, create_model
from pydantic_core import PydanticUndefined

from core.actions import Count, EmbedTable, Merges, PlanHash, ScalableKind, Shards, action
from core.domain import Proposal

EXTRA_PARAMS = frozenset({"rationale"})  # what a tool takes beyond its action's arguments


def action_tool(fn: Callable[..., Proposal]) -> BaseTool:
    """A tool named after its action, whose parameters must be exactly the action's arguments (+ rationale)."""
    spec = action(fn.__name__)
    parsed = tool(parse_docstring=True, error_on_invalid_docstring=True)(fn)
    params = cast(type[BaseModel], parsed.get_input_schema()).model_fields
    declared = {n: f for n, f in spec.args.model_fields.items() if n not in spec.observed}
    if set(declared) - set(params) or set(params) - set(declared) - EXTRA_PARAMS:
        raise TypeError(
            f"tool {fn.__name__} takes {sorted(params)}; its action declares {sorted(declared)} (+ rationale)"
        )
    fields: dict[str, Any] = {}
    for name, info in params.items():
        base = declared.get(name, info)  # the action's type and bounds; the tool's own default and words
        default = PydanticUndefined if info.is_required() else info.default
        kind = Annotated[(base.annotation, *base.metadata)] if base.metadata else base.annotation
        fields[name] = (kind, Field(default, description=info.description))
    schema = create_model(fn.__name__, __base__=spec.args, **fields)
    return StructuredTool.from_function(fn, name=fn.__name__, description=parsed.description, args_schema=schema)


@action_tool
def scale_workers(kind: ScalableKind, host: str, count: Count, rationale: str) -> Proposal:
    """Set the desired number of long-running workers of one kind on one host (scale up or down).

    Use when a stage's backlog per worker is well above or below its target. Scale-down drains workers
    (they finish their batch). Keep within the policy's per-kind and per-host limits.

    Args:
        kind: worker kind: extract, embed or wisdom.
        host: host name from the fleet.
        count: desired total number of workers of this kind on this host.
        rationale: one sentence on why, citing the numbers you used.
    """
    return Proposal(action="scale_workers", args={"kind": kind, "host": host, "count": count}, rationale=rationale)


@action_tool
def start_embedding(host: str, rationale: str, shards: Shards = 1, table: EmbedTable = "records") -> Proposal:
    """Start a one-shot embedding job that fills missing vectors, split over shards (GPU host preferred).

    Use when many rows lack vectors and no embedding job or embed worker is already running.

    Args:
        host: host to run on; prefer a host with an idle GPU.
        rationale: one sentence on why, citing the backlog.
        shards: how many parallel processes split the rows (no overlap).
        table: which table to embed: records or entities.
    """
    return Proposal(
        action="start_embedding", args={"host": host, "shards": shards, "table": table}, rationale=rationale
    )


@action_tool
def run_dedup(
    rationale: str, expected_merges: Merges = 0, dry_run: bool = False, plan: PlanHash | None = None
) -> Proposal:
    """Run entity resolution (merge duplicate entities of the same type; every merge is logged and undoable).

    Two steps. When the duplicate estimate is above threshold and the brain stats show no current dedup_plan
    (none, or stale: true), run a dry run: it merges nothing and stores a plan. When dedup_plan is current,
    run it live with its hash and its absorbed count: the live run merges only that plan and stops if it
    would merge more. Large merges need human approval by policy.

    Args:
        rationale: one sentence on why, citing the duplicate estimate or the plan's count.
        expected_merges: entities to be merged: the dedup_plan's absorbed count (else the stats' candidates).
        dry_run: find merges and store them as the brain's dedup plan; merge nothing.
        plan: for a live run, the hash of the brain stats' dedup_plan (copy it exactly); omit for a dry run.
    """
    args: dict[str, object] = {"dry_run": dry_run, "expected_merges": expected_merges}
    if plan is not None:
        args["plan"] = plan
    return Proposal(action="run_dedup", args=args, rationale=rationale)


@action_tool
def run_recluster(reason: str) -> Proposal:
    """Recompute graph communities (Leiden) and write them back with stable ids.

    Use when many relationships changed since the last recluster, or communities are stale.

    Args:
        reason: why now, citing changed relationships or community age.
    """
    return Proposal(action="run_recluster", args={"reason": reason}, rationale=reason)


@action_tool
def set_model_routing(weights: dict[str, float], rationale: str) -> Proposal:
    """Change the share of fleet LLM calls sent to each model tier (shares sum to 1, e.g. 0.6/0.35/0.05).

    Use when the budget pace runs high (shift to cheaper tiers) or low with quality issues (shift up).

    Args:
        weights: tier name -> share of calls, summing to 1.
        rationale: one sentence on why, citing pace or budget.
    """
    return Proposal(action="set_model_routing", args={"weights": weights}, rationale=rationale)


@action_tool
def restart_worker(worker_id: str, rationale: str) -> Proposal:
    """Clear a FATAL (crash-looping) worker and start it again, or restart one far out of line with its siblings.

    Use after the cause of a crash loop is gone (otherwise it crashes again), or for a worker whose memory or
    CPU is many times its siblings' while its host nears a ceiling (a leak or a runaway loop).

    Args:
        worker_id: id of the worker as shown by get_workers.
        rationale: why the restart should succeed now.
    """
    return Proposal(action="restart_worker", args={"worker_id": worker_id}, rationale=rationale)


@action_tool
def stop_worker(worker_id: str, rationale: str) -> Proposal:
    """Drain and stop one worker process.

    Use to remove a misbehaving worker; to change counts use scale_workers instead.

    Args:
        worker_id: id of the worker as shown by get_workers.
        rationale: why it must stop.
    """
    return Proposal(action="stop_worker", args={"worker_id": worker_id}, rationale=rationale)


@action_tool
def noop(reason: str) -> Proposal:
    """Decide to do nothing this tick. Use when everything is within targets; say why.

    Args:
        reason: why no action is needed.
    """
    return Proposal(action="noop", args={}, rationale=reason)


ACTION_TOOLS = (
    scale_workers,
    start_embedding,
    run_dedup,
    run_recluster,
    set_model_routing,
    restart_worker,
    stop_worker,
    noop,
)
