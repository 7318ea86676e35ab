"""Action tools. Calling one only PROPOSES the action: the policy guard (and maybe a human) decides if it runs.

Each tool's argument schema is its action's argument model (core/actions.py) plus the rationale; the
docstrings are the model's tool descriptions, and their "Args:" sections describe each parameter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, cast

from langchain_core.tools import BaseTool, StructuredTool, tool
from pydantic import BaseModel, Field, create_model
from pydantic_core import PydanticUndefined

from core.actions import Count, Days, EmbedTable, Keep, Merges, PlanHash, ScalableKind, Shards, action
from core.domain import Proposal

EXTRA_PARAMS = frozenset({"rationale"})  # what a tool takes beyond its action's arguments
# Added to every mutating action's tool (never an action argument): the model's own expectation, "metric<=target@s"
# (core/stated_expectation.py checks it; the derived one stands when it is unusable).
STATED = "expect"


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
    if spec.mutates:
        fields[STATED] = (str | None, Field(None))
    schema = create_model(fn.__name__, __base__=spec.args, **fields)
    run = _stating(fn) if spec.mutates else fn
    return StructuredTool.from_function(run, name=fn.__name__, description=parsed.description, args_schema=schema)


def _stating(fn: Callable[..., Proposal]) -> Callable[..., Proposal]:
    """`fn` taking the model's stated expectation too, carried on the proposal unchecked."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Proposal:
        stated = kwargs.pop(STATED, None)
        made = fn(*args, **kwargs)
        return made if stated is None else made.model_copy(update={"stated": str(stated)})

    return run


@action_tool
def scale_workers(kind: ScalableKind, host: str, count: Count, rationale: str) -> Proposal:
    """Set the desired count of one worker kind on one host (scale-down drains).

    Args:
        count: total of this kind on this host.
    """
    return Proposal(action="scale_workers", args={"kind": kind, "host": host, "count": count}, rationale=rationale)


@action_tool
def start_embedding(host: str, rationale: str, shards: Shards = 1, table: EmbedTable = "records") -> Proposal:
    """One-shot job filling missing vectors: a large embed backlog and no embed worker.

    Args:
        host: prefer an idle GPU.
        shards: parallel processes.
    """
    return Proposal(
        action="start_embedding", args={"host": host, "shards": shards, "table": table}, rationale=rationale
    )


@action_tool
def run_dedup(
    rationale: str, expected_merges: Merges = 0, dry_run: bool = False, plan: PlanHash | None = None
) -> Proposal:
    """Merge duplicate entities. No current dedup_plan (none or stale): dry_run (stores one). A current plan:
    live run with its hash and absorbed count.

    Args:
        expected_merges: the plan's absorbed count (else the candidates).
        plan: the dedup_plan hash, for a live run.
    """
    args: dict[str, object] = {"dry_run": dry_run, "expected_merges": expected_merges}
    if plan is not None:
        args["plan"] = plan
    return Proposal(action="run_dedup", args=args, rationale=rationale)


@action_tool
def run_recluster(reason: str) -> Proposal:
    """Recompute communities: many relationships changed since the last recluster, or communities are old.

    Args:
        reason: cite changed relationships or community age.
    """
    return Proposal(action="run_recluster", args={"reason": reason}, rationale=reason)


@action_tool
def set_model_routing(weights: dict[str, float], rationale: str) -> Proposal:
    """Set the share of fleet LLM calls per tier (cheaper tiers when the budget pace is high).

    Args:
        weights: shares summing to 1.
    """
    return Proposal(action="set_model_routing", args={"weights": weights}, rationale=rationale)


@action_tool
def restart_worker(worker_id: str, rationale: str) -> Proposal:
    """Restart a fatal worker once the crash cause is gone, or one far above its siblings' memory or CPU.

    Args:
        rationale: why it should work now.
    """
    return Proposal(action="restart_worker", args={"worker_id": worker_id}, rationale=rationale)


@action_tool
def stop_worker(worker_id: str, rationale: str) -> Proposal:
    """Drain and stop one misbehaving worker (to change counts, scale_workers).

    Args:
        rationale: why it must stop.
    """
    return Proposal(action="stop_worker", args={"worker_id": worker_id}, rationale=rationale)


@action_tool
def noop(reason: str) -> Proposal:
    """Do nothing this tick: everything is within targets.

    Args:
        reason: why, citing the numbers.
    """
    return Proposal(action="noop", args={}, rationale=reason)


@action_tool
def optimize_index(reason: str, rationale: str) -> Proposal:
    """Build or refresh the records' vector index, compact, prune (a job): `index` over policy `index` limits.

    Args:
        reason: the figure over its limit.
    """
    return Proposal(action="optimize_index", args={"reason": reason}, rationale=rationale)


@action_tool
def prune_versions(older_than_days: Days, rationale: str) -> Proposal:
    """Free brain-host disk near the storage ceiling: drop old LanceDB versions (never the current one).

    Args:
        older_than_days: at least storage.min_version_age_days.
    """
    return Proposal(action="prune_versions", args={"older_than_days": older_than_days}, rationale=rationale)


@action_tool
def rotate_logs(rationale: str, keep: Keep = 5) -> Proposal:
    """Free brain-host disk near the storage ceiling: gzip worker logs.

    Args:
        keep: generations kept per live log.
    """
    return Proposal(action="rotate_logs", args={"keep": keep}, rationale=rationale)


@action_tool
def archive_decisions(older_than_days: Days, rationale: str) -> Proposal:
    """Free brain-host disk near the storage ceiling: move old decision records to verified segment files.

    Args:
        older_than_days: at least storage.archive_decisions_after_days.
    """
    return Proposal(action="archive_decisions", args={"older_than_days": older_than_days}, rationale=rationale)


@action_tool
def set_reasoning_tier(tier: str, rationale: str) -> Proposal:
    """Pin reasoning calls to one tier: when a tier's reasoning yield is under the policy floor, or another
    tier yields more valid answers per dollar (brain.reasoning.tiers).

    Args:
        tier: a configured tier.
    """
    return Proposal(action="set_reasoning_tier", args={"tier": tier}, rationale=rationale)


@action_tool
def run_query_analysis(reason: str) -> Proposal:
    """One-shot job clustering unanalyzed queries (brain.queries.unanalyzed); poorly answered topics become
    priorities for wisdom and reasoning.

    Args:
        reason: why now, citing the numbers.
    """
    return Proposal(action="run_query_analysis", args={"reason": reason}, rationale=reason)


@action_tool
def undo_dedup(run: PlanHash, rationale: str, merges: Merges = 0) -> Proposal:
    """Undo every merge of one live dedup run, when it made the duplicate estimate worse (a rollback).

    Args:
        run: the plan hash that run merged.
        merges: the entities it absorbed.
    """
    return Proposal(action="undo_dedup", args={"run": run, "merges": merges}, rationale=rationale)


@action_tool
def drop_index(rationale: str, reason: str = "") -> Proposal:
    """Drop the records' vector index, when a new one made search slower or less right (a rollback).

    Args:
        reason: the figure that got worse.
    """
    return Proposal(action="drop_index", args={"reason": reason}, rationale=rationale)


ACTION_TOOLS: tuple[BaseTool, ...] = (
    scale_workers,
    start_embedding,
    run_dedup,
    run_recluster,
    set_model_routing,
    restart_worker,
    stop_worker,
    noop,
    prune_versions,
    rotate_logs,
    archive_decisions,
    set_reasoning_tier,
    run_query_analysis,
    optimize_index,
    undo_dedup,
    drop_index,
)
