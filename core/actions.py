"""The actions: the one declaration every other list of actions is derived from.

Each action declares its argument model (the tool schema the model sees, the policy's argument shape check
and the eval scenario schema are derived from it), whether it changes anything, the key its cooldown is
counted under, and its effect in terms of the `Effects` port. Adding an action: docs/ARCHITECTURE.md,
"Adding an action"; tests/test_registries.py fails while a declaration is incomplete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from core import expect_actions as expect
from core.domain import PLAN_HASH, Observation, Proposal
from core.expectation_types import ExpectationSource
from core.expectations import ExpectBuilder
from core.kinds import EMBED_TABLES, SCALABLE_KINDS
from core.ports import Effects
from core.stated_expectation import stated_expectation


def _one_of(names: tuple[str, ...]) -> Any:
    """A string that must be one of `names`, shown to the model (and in JSON Schema) as an enum."""

    def check(value: str) -> str:
        if value not in names:
            raise ValueError(f"must be one of {', '.join(names)}, got {value!r}")
        return value

    return Annotated[str, AfterValidator(check), WithJsonSchema({"enum": list(names), "type": "string"})]


# Argument types shared by the models below and the tool functions in tools/actions.py.
if TYPE_CHECKING:
    ScalableKind = str
    EmbedTable = str
else:
    ScalableKind = _one_of(SCALABLE_KINDS)
    EmbedTable = _one_of(EMBED_TABLES)
Count = Annotated[int, Field(ge=0, le=256)]
Shards = Annotated[int, Field(ge=1, le=16)]
Merges = Annotated[int, Field(ge=0)]
PlanHash = Annotated[str, Field(pattern=f"^{PLAN_HASH}$")]  # a dedup dry run's plan (workers/dedup_plan.py)


class ActionArgs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class ScaleWorkersArgs(ActionArgs):
    kind: ScalableKind
    host: str
    count: Count


class StartEmbeddingArgs(ActionArgs):
    host: str
    shards: Shards = 1
    table: EmbedTable = "records"


class RunDedupArgs(ActionArgs):
    dry_run: bool = False
    expected_merges: Merges = 0
    plan: PlanHash | None = None  # live runs: merge only this dry run's plan, stop above expected_merges


class ReasonArgs(ActionArgs):
    reason: str = ""


class SetModelRoutingArgs(ActionArgs):
    weights: dict[str, float]


class WorkerRefArgs(ActionArgs):
    worker_id: str


class RestartWorkerArgs(WorkerRefArgs):
    # Observed, not claimed: the engine sets it to the workers restarted in the past hour (approval rules use it).
    restarts_last_hour: int = 0


Days = Annotated[float, Field(ge=0, le=3650)]
Keep = Annotated[int, Field(ge=1, le=100)]


class PruneVersionsArgs(ActionArgs):
    older_than_days: Days  # the policy's storage.min_version_age_days is the least it accepts


class RotateLogsArgs(ActionArgs):
    keep: Keep = 5  # compressed generations kept per live worker log


class ArchiveDecisionsArgs(ActionArgs):
    older_than_days: Days  # the policy's storage.archive_decisions_after_days is the least it accepts


class SetReasoningTierArgs(ActionArgs):
    tier: str  # a configured tier: the reasoning workers' calls go there from their next batch


class UndoDedupArgs(ActionArgs):
    run: PlanHash  # a live dedup run, named by the dry-run plan it merged (known before it runs)
    merges: Merges = 0  # the entities that run absorbed: what the undo should bring back


class DropIndexArgs(ActionArgs):
    reason: str = ""


def restart_cooldown_key(a: Mapping[str, Any]) -> str:
    """Per worker: a remediation cools down for the worker it restarted, not for every other one."""
    return f"restart_worker:{a.get('worker_id', '')}"


Effect = Callable[[Effects, Mapping[str, Any], str], str]  # (effects, complete args, job key) -> detail


@dataclass(frozen=True)
class ActionSpec:
    name: str
    args: type[ActionArgs]
    mutates: bool
    effect: Effect | None  # None: nothing to do (the rationale is the record)
    cooldown: Callable[[Mapping[str, Any]], str] | None = None  # None: counted under the action's name
    observed: frozenset[str] = (
        frozenset()
    )  # arguments the policy engine fills from the observation (no tool takes them)
    # What it should do to what later ticks observe (core/expectations.py); every mutating action declares one.
    expect: ExpectBuilder | None = None

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(self.args.model_fields)

    @property
    def optional_args(self) -> frozenset[str]:
        return frozenset(n for n, f in self.args.model_fields.items() if not f.is_required())

    def complete(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments with every default this declaration gives filled in (the values are not checked)."""
        defaults = {n: f.default for n, f in self.args.model_fields.items() if not f.is_required()}
        return {**defaults, **args}

    def cooldown_key(self, args: Mapping[str, Any]) -> str:
        return self.cooldown(args) if self.cooldown else self.name


def _scale(fx: Effects, a: Mapping[str, Any], job_key: str) -> str:
    return fx.scale(str(a["kind"]), str(a["host"]), int(a["count"]))


def _embed(fx: Effects, a: Mapping[str, Any], job_key: str) -> str:
    return fx.start_embedding(str(a["host"]), int(a["shards"]), str(a["table"]), job_key)


def _job(kind: str) -> Effect:
    def run(fx: Effects, a: Mapping[str, Any], job_key: str) -> str:
        return fx.run_job(kind, a.get("host"), job_key, dry_run=bool(a.get("dry_run", False)))

    return run


def _dedup(fx: Effects, a: Mapping[str, Any], job_key: str) -> str:
    """A dry run stores a plan; a live run naming one is held to it and to the approved count."""
    if a.get("dry_run") or a.get("plan") is None:
        return fx.run_job("dedup", a.get("host"), job_key, dry_run=bool(a.get("dry_run", False)))
    plan, most = str(a["plan"]), int(a.get("expected_merges", 0))
    return fx.run_job("dedup", a.get("host"), job_key, plan=plan, max_merges=most)


def dedup_cooldown_key(a: Mapping[str, Any]) -> str:
    """Dry runs cool down apart from live runs, so the live run a dry run planned need not wait for it."""
    return "run_dedup:dry_run" if a.get("dry_run") else "run_dedup"


def _routing(fx: Effects, a: Mapping[str, Any], job_key: str) -> str:
    return fx.set_routing({str(k): float(v) for k, v in dict(a["weights"]).items()})


def _restart(fx: Effects, a: Mapping[str, Any], job_key: str) -> str:
    return fx.restart_worker(str(a["worker_id"]))


def _stop(fx: Effects, a: Mapping[str, Any], job_key: str) -> str:
    return fx.stop_worker(str(a["worker_id"]))


def _reclaim(target: str) -> Effect:
    """Disk pressure: free space on the brain host (docs/OPERATIONS.md, "Disk pressure")."""

    def run(fx: Effects, a: Mapping[str, Any], job_key: str) -> str:
        days = float(a.get("older_than_days", 0.0))
        return fx.reclaim_disk(target, older_than_days=days, keep=int(a.get("keep", 5)))

    return run


def _reasoning_tier(fx: Effects, a: Mapping[str, Any], job_key: str) -> str:
    return fx.set_task_tier("reasoning", str(a["tier"]))


def _undo_dedup(fx: Effects, a: Mapping[str, Any], job_key: str) -> str:
    return fx.undo_dedup(str(a["run"]))


def _drop_index(fx: Effects, a: Mapping[str, Any], job_key: str) -> str:
    return fx.drop_index("records")


ACTION_SPECS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "scale_workers",
        ScaleWorkersArgs,
        mutates=True,
        effect=_scale,
        cooldown=lambda a: f"scale_workers:{a.get('kind')}@{a.get('host')}",
        expect=expect.expect_scale,
    ),
    ActionSpec(
        "start_embedding",
        StartEmbeddingArgs,
        mutates=True,
        effect=_embed,
        cooldown=lambda a: f"start_embedding:embed@{a.get('host')}",
        expect=expect.expect_embedding,
    ),
    ActionSpec(
        "run_dedup", RunDedupArgs, mutates=True, effect=_dedup, cooldown=dedup_cooldown_key, expect=expect.expect_dedup
    ),
    ActionSpec("run_recluster", ReasonArgs, mutates=True, effect=_job("recluster"), expect=expect.expect_recluster),
    ActionSpec("set_model_routing", SetModelRoutingArgs, mutates=True, effect=_routing, expect=expect.expect_routing),
    ActionSpec(
        "restart_worker",
        RestartWorkerArgs,
        mutates=True,
        effect=_restart,
        cooldown=restart_cooldown_key,
        observed=frozenset({"restarts_last_hour"}),
        expect=expect.expect_worker(running=True),
    ),
    ActionSpec("stop_worker", WorkerRefArgs, mutates=True, effect=_stop, expect=expect.expect_worker(running=False)),
    ActionSpec("noop", ReasonArgs, mutates=False, effect=None),
    ActionSpec(
        "prune_versions",
        PruneVersionsArgs,
        mutates=True,
        effect=_reclaim("versions"),
        expect=expect.expect_reclaim("versions"),
    ),
    ActionSpec(
        "rotate_logs", RotateLogsArgs, mutates=True, effect=_reclaim("logs"), expect=expect.expect_reclaim("logs")
    ),
    ActionSpec(
        "archive_decisions",
        ArchiveDecisionsArgs,
        mutates=True,
        effect=_reclaim("decisions"),
        expect=expect.expect_reclaim("decisions"),
    ),
    ActionSpec(
        "set_reasoning_tier",
        SetReasoningTierArgs,
        mutates=True,
        effect=_reasoning_tier,
        expect=expect.expect_reasoning_tier,
    ),
    ActionSpec(
        "run_query_analysis",
        ReasonArgs,
        mutates=True,
        effect=_job("analyze_queries"),
        expect=expect.expect_query_analysis,
    ),
    ActionSpec("optimize_index", ReasonArgs, mutates=True, effect=_job("index"), expect=expect.expect_index),
    ActionSpec(
        "undo_dedup",
        UndoDedupArgs,
        mutates=True,
        effect=_undo_dedup,
        cooldown=lambda a: f"undo_dedup:{a.get('run')}",
        expect=expect.expect_undo_dedup,
    ),
    ActionSpec("drop_index", DropIndexArgs, mutates=True, effect=_drop_index, expect=expect.expect_drop_index),
)

BY_NAME: dict[str, ActionSpec] = {a.name: a for a in ACTION_SPECS}
ACTIONS: tuple[str, ...] = tuple(BY_NAME)
MUTATING_ACTIONS: frozenset[str] = frozenset(a.name for a in ACTION_SPECS if a.mutates)
ACTION_ARGS: dict[str, tuple[str, ...]] = {a.name: a.arg_names for a in ACTION_SPECS}


def action(name: str) -> ActionSpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown action {name!r}; known: {', '.join(ACTIONS)}") from None


def cooldown_key(name: str, args: Mapping[str, Any]) -> str:
    """Where an action's cooldown is counted: "scale_workers:kind@host", "start_embedding:embed@host",
    "run_dedup:dry_run", or its name."""
    spec = BY_NAME.get(name)
    return spec.cooldown_key(args) if spec else name


def with_expectation(obs: Observation, proposal: Proposal, source: ExpectationSource) -> Proposal:
    """The proposal with what its action declares it should do, unless its planner already said (`source`:
    "rules" for the rule planner's own, "derived" for the estimate filled in for another planner's)."""
    spec = BY_NAME.get(proposal.action)
    if proposal.expectation is not None or spec is None or spec.expect is None:
        return proposal
    made = spec.expect(obs, proposal)
    refused = None
    if proposal.stated is not None:  # the model said what it expects: used when sane (core/stated_expectation.py)
        own = stated_expectation(obs, proposal, made.subject if made else proposal.action)
        if not isinstance(own, str):  # what harm looks like and its reversal stay the action's own
            kept = {"harm": made.harm, "rollback": made.rollback} if made else {}
            return proposal.model_copy(update={"expectation": own.model_copy(update=kept)})
        refused = own
    if made is None:
        return proposal
    return proposal.model_copy(
        update={"expectation": made.model_copy(update={"source": source, "stated_refused": refused})}
    )
