"""Policy schema: guardrails as data. Every field is documented in policies/SCHEMA.md.

The schema is strict (unknown keys are errors) because a typo in a guardrail file must never silently
loosen a limit. Cross-field checks (min <= max, conditions naming real arguments) raise `PolicyProblems`
with the exact location of the offending field, so the loader can point at the YAML line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator, model_validator
from pydantic import Strict as StrictMark

from core.actions import ACTION_ARGS, ACTIONS
from core.kinds import STAGES

DEFAULT_HOST = "*"

Risk = Literal["low", "medium", "high"]
RISK_ORDER: dict[str, int] = {"low": 0, "medium": 1, "high": 2}
Op = Literal["eq", "ne", "gt", "ge", "lt", "le", "in"]


@dataclass(frozen=True)
class PolicyProblem:
    loc: tuple[str | int, ...]
    reason: str


class PolicyProblems(Exception):
    """Cross-field errors; deliberately not a ValueError so pydantic lets it through with its locations."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{_dotted(p.loc)}: {p.reason}" for p in problems))


def _dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in loc) or "<root>"


# Scalars are strict (YAML "8" must not pass as 8, nor "yes" as a count); containers stay lax so YAML
# lists become tuples.
SInt = StrictInt
SFloat = Annotated[float, StrictMark()]
SBool = StrictBool
SStr = StrictStr


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class HostLimits(Strict):
    max_workers: SInt = Field(default=8, ge=0)
    cpu_ceiling_percent: SFloat = Field(default=90.0, gt=0, le=100)
    mem_ceiling_percent: SFloat = Field(default=85.0, gt=0, le=100)
    # What the host costs per hour at full load (on-prem: electricity; cloud: the instance or spot price). A
    # worker costs its CPU share of it; scaling predictions show the difference.
    cost_per_hour: SFloat = Field(default=0.0, ge=0)


class WorkerLimits(Strict):
    min: SInt = Field(default=0, ge=0)
    max: SInt = Field(default=4, ge=0)
    max_total: SInt | None = Field(default=None, ge=0)  # across all hosts; None = no fleet-wide cap
    target_backlog_per_worker: SInt = Field(default=500, gt=0)
    activation_backlog: SInt = Field(default=1, ge=0)
    est_cpu_percent: SFloat = Field(default=25.0, ge=0, le=100)  # host share one more worker adds, if unmeasured
    est_mem_percent: SFloat = Field(default=5.0, ge=0, le=100)
    # Wait-time objective: an item waits at most this long before a worker takes it. With it the planner
    # sizes workers from measured throughput and forecast arrivals; without it, HPA rules on the target backlog.
    max_wait_s: SFloat | None = Field(default=None, gt=0)


class Scaling(Strict):
    max_step_up: SInt = Field(default=4, ge=1)
    max_step_up_percent: SFloat = Field(default=100.0, ge=0)
    max_step_down: SInt = Field(default=2, ge=1)
    tolerance: SFloat = Field(default=0.1, ge=0, lt=1)
    cooldown_s: SFloat = Field(default=60.0, ge=0)
    scale_down_stabilization_s: SFloat = Field(default=300.0, ge=0)

    def max_up_from(self, current: int) -> int:
        """HPA-style: the larger of the absolute step and the percentage step."""
        by_percent = int(current * self.max_step_up_percent / 100.0)
        return max(self.max_step_up, by_percent)


class Remediation(Strict):
    """When the rule planner restarts a worker (a leak, a runaway): far out of line with its siblings of the same
    kind while its host nears a ceiling."""

    memory_outlier_ratio: SFloat = Field(default=4.0, gt=1)  # its RSS over the siblings' median
    cpu_outlier_ratio: SFloat = Field(default=4.0, gt=1)
    min_rss_mb: SFloat = Field(default=512.0, ge=0)  # below this no worker counts as leaking
    host_margin_percent: SFloat = Field(default=10.0, ge=0, le=100)  # "near": within this of the ceiling


class Storage(Strict):
    """Disk pressure on the brain host: when the planner reclaims space and the least each action may keep."""

    act_at_percent: SFloat = Field(default=75.0, gt=0, le=100)  # disk use from which space is reclaimed
    ceiling_percent: SFloat = Field(default=85.0, gt=0, le=100)  # at or over it: every target at once
    min_reclaim_mb: SFloat = Field(default=64.0, ge=0)  # a target freeing less is not worth an action
    min_version_age_days: SFloat = Field(default=7.0, ge=0)  # prune_versions keeps every younger version
    keep_rotated_logs: SInt = Field(default=5, ge=1)  # compressed generations per live worker log
    rotate_log_mb: SFloat = Field(default=64.0, gt=0)  # a live worker log over this is rotated
    archive_decisions_after_days: SFloat = Field(default=30.0, ge=0)  # decision records older go to segments


class Cost(Strict):
    """Cost per result: a target the rule planner holds the month's figures to (None: report, do not act)."""

    max_llm_per_1k_records: SFloat | None = Field(default=None, gt=0)  # LLM dollars per 1,000 records


class IndexPolicy(Strict):
    """The records' vector index: when the planner proposes optimize_index, how the probe measures, how the
    serving path searches and how the job builds and prunes (policies/SCHEMA.md, "index")."""

    p95_ms_max: SFloat = Field(default=100.0, gt=0)  # search p95 above this: optimize
    recall_min: SFloat = Field(default=0.95, gt=0, le=1)  # recall@10 below this: the job retrains the index
    max_small_fragments: SInt = Field(default=32, ge=0)  # more small fragments than this: compact
    max_unindexed_share: SFloat = Field(default=0.1, ge=0, le=1)  # rows appended since the build, over all rows
    min_rows: SInt = Field(default=5_000, ge=256)  # under this no probe and no index (PQ trains on >= 256 rows)
    probe_queries: SInt = Field(default=32, ge=1, le=200)
    probe_budget_s: SFloat = Field(default=2.0, gt=0, le=60)  # per tick
    job_probe_budget_s: SFloat = Field(default=120.0, gt=0, le=3600)  # the job's before and after measurements
    nprobes: SInt = Field(default=20, ge=1)
    refine_factor: SInt = Field(default=10, ge=1)
    rows_per_partition: SInt = Field(default=4_096, ge=256)
    num_sub_vectors: SInt = Field(default=48, ge=1)
    max_iterations: SInt = Field(default=50, ge=1)
    rebuild_growth: SFloat = Field(default=4.0, gt=1)
    keep_versions_s: SFloat = Field(default=3600.0, ge=60)  # pruning never removes a version younger than this

    @field_validator("num_sub_vectors")
    @classmethod
    def _sub_vectors_divide(cls, value: int) -> int:
        from core.domain import EMBED_DIM

        if EMBED_DIM % value:
            raise ValueError(f"must divide the vector size {EMBED_DIM}")
        return value

    def probe_settings(self, job: bool = False) -> Any:
        from brain.index_probe import ProbeSettings

        budget = self.job_probe_budget_s if job else self.probe_budget_s
        return ProbeSettings(queries=self.probe_queries, budget_s=budget, min_rows=self.min_rows)

    def search_settings(self) -> Any:
        from brain.index_probe import SearchSettings

        return SearchSettings(nprobes=self.nprobes, refine_factor=self.refine_factor)

    def build_settings(self) -> Any:
        from brain.vector_index import BuildSettings

        return BuildSettings(
            rows_per_partition=self.rows_per_partition,
            num_sub_vectors=self.num_sub_vectors,
            max_iterations=self.max_iterations,
            recall_min=self.recall_min,
            rebuild_growth=self.rebuild_growth,
            keep_versions_s=self.keep_versions_s,
        )


class ApprovalRule(Strict):
    id: SStr = Field(pattern=r"^[a-z0-9_]+$")
    # arg (or dotted path into a dict arg, e.g. "weights.strategic") -> {op: value}; all must hold
    when: dict[str, dict[Op, Any]] = Field(min_length=1)
    reason: SStr = ""
    risk: Risk | None = None


class ActionPolicy(Strict):
    enabled: SBool = True
    risk: Risk = "low"
    destructive: SBool = False  # destructive actions always need a human
    cooldown_s: SFloat | None = Field(default=None, ge=0)  # for scale actions this overrides scaling.cooldown_s
    approval_when: tuple[ApprovalRule, ...] = ()


class Routing(Strict):
    # model tiers set_model_routing may name; empty: every configured tier (brainops.toml [[llm.tiers]])
    allowed_tiers: tuple[SStr, ...] = ()
    # most of the fleet's calls a tier, or the tiers of a purpose (routine, analysis, strategic), may take: checked
    # on routing proposals and on every fleet call over the ledger's window
    max_share: dict[str, SFloat] = Field(default_factory=lambda: {"strategic": 0.2})
    sum_tolerance: SFloat = Field(default=0.01, ge=0, lt=0.5)


class Verification(Strict):
    """Checking each action against its expectation (agent/service/verification.py)."""

    miss_anomaly_after: SInt = Field(default=3, ge=1)  # consecutive misses of one action kind: an anomaly
    rollback: SBool = True  # a miss that made things worse proposes its reversal (through guard and approvals)
    max_age_s: SFloat = Field(default=6 * 3600.0, gt=0)  # actions older than this are no longer checked


class ReasoningPolicy(Strict):
    # a tier whose share of valid reasoning answers is under this is escalated away from
    yield_floor: SFloat = Field(default=0.6, ge=0, le=1)
    # attempts a tier needs in the yield window before its yield counts (fewer: too few to judge)
    min_attempts: SInt = Field(default=20, ge=1)


class QueriesPolicy(Strict):
    # unanalyzed queries that make an analyze_queries job worth running
    analyze_backlog: SInt = Field(default=200, ge=1)


class Policy(Strict):
    version: Literal[1] = 1
    dry_run: SBool = False
    read_only: SBool = False
    approvers: tuple[SStr, ...] = ()
    approval_ttl_s: SFloat = Field(default=900.0, gt=0)
    hosts: dict[str, HostLimits] = Field(default_factory=lambda: {DEFAULT_HOST: HostLimits()})
    workers: dict[str, WorkerLimits] = Field(default_factory=dict)
    scaling: Scaling = Field(default_factory=lambda: Scaling())
    routing: Routing = Field(default_factory=lambda: Routing())
    remediation: Remediation = Field(default_factory=lambda: Remediation())
    verification: Verification = Field(default_factory=lambda: Verification())
    reasoning: ReasoningPolicy = Field(default_factory=lambda: ReasoningPolicy())
    queries: QueriesPolicy = Field(default_factory=lambda: QueriesPolicy())
    index: IndexPolicy = Field(default_factory=lambda: IndexPolicy())
    actions: dict[str, ActionPolicy] = Field(default_factory=lambda: {"noop": ActionPolicy()})
    storage: Storage = Field(default_factory=lambda: Storage())
    cost: Cost = Field(default_factory=lambda: Cost())

    @model_validator(mode="after")
    def _cross_checks(self) -> Policy:
        problems = [*self._worker_problems(), *self._action_problems(), *self._routing_problems()]
        if self.storage.act_at_percent > self.storage.ceiling_percent:
            why = f"act_at_percent ({self.storage.act_at_percent:g}) is above ceiling_percent"
            problems.append(PolicyProblem(("storage", "act_at_percent"), why))
        if problems:
            raise PolicyProblems(problems)
        return self

    def _worker_problems(self) -> list[PolicyProblem]:
        out: list[PolicyProblem] = []
        for kind, lim in self.workers.items():
            if kind not in STAGES:
                out.append(PolicyProblem(("workers", kind), f"unknown worker kind; known: {', '.join(STAGES)}"))
            if lim.min > lim.max:
                out.append(PolicyProblem(("workers", kind, "max"), f"min ({lim.min}) > max ({lim.max})"))
            if lim.max_total is not None and lim.max_total < lim.min:
                reason = f"max_total ({lim.max_total}) < min ({lim.min})"
                out.append(PolicyProblem(("workers", kind, "max_total"), reason))
        return out

    def _action_problems(self) -> list[PolicyProblem]:
        out: list[PolicyProblem] = []
        for name, act in self.actions.items():
            if name not in ACTION_ARGS:
                out.append(PolicyProblem(("actions", name), f"unknown action; known: {', '.join(ACTIONS)}"))
                continue
            seen: set[str] = set()
            for i, rule in enumerate(act.approval_when):
                loc: tuple[str | int, ...] = ("actions", name, "approval_when", i)
                if rule.id in seen:
                    out.append(PolicyProblem((*loc, "id"), f"duplicate rule id {rule.id!r}"))
                seen.add(rule.id)
                for arg in rule.when:
                    if arg.split(".")[0] not in ACTION_ARGS[name]:
                        known = ", ".join(ACTION_ARGS[name])
                        out.append(
                            PolicyProblem((*loc, "when", arg), f"{name} has no argument {arg!r}; known: {known}")
                        )
        return out

    def _routing_problems(self) -> list[PolicyProblem]:
        out: list[PolicyProblem] = []
        purposes = ("routine", "analysis", "strategic")
        for tier, share in self.routing.max_share.items():
            if self.routing.allowed_tiers and tier not in (*self.routing.allowed_tiers, *purposes):
                out.append(PolicyProblem(("routing", "max_share", tier), "tier is not in allowed_tiers"))
            if not 0.0 <= share <= 1.0:
                out.append(PolicyProblem(("routing", "max_share", tier), f"share {share} is not within [0, 1]"))
        return out

    # ---- lookups used by the engine and the rule planner

    def host_limits(self, host: str) -> HostLimits:
        return self.hosts.get(host) or self.hosts.get(DEFAULT_HOST) or HostLimits()

    def worker_limits(self, kind: str) -> WorkerLimits:
        return self.workers.get(kind) or WorkerLimits()

    def action_policy(self, action: str) -> ActionPolicy | None:
        """None means the action is not allowed at all (not listed, or enabled: false)."""
        act = self.actions.get(action)
        return act if act is not None and act.enabled else None

    def cooldown_for(self, action: str) -> float:
        act = self.actions.get(action)
        if act is not None and act.cooldown_s is not None:
            return act.cooldown_s
        return self.scaling.cooldown_s if action in ("scale_workers", "start_embedding") else 0.0

    def is_approver(self, name: str) -> bool:
        wanted = name.strip().casefold()
        return bool(wanted) and any(a.strip().casefold() == wanted for a in self.approvers)
