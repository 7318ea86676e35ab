"""Values shared by every part of brainops: what is observed, what is proposed, what policy says.

Observations and proposals cross process and storage boundaries (graph checkpoints, the decision
log, eval scenario files, LLM tool calls), so they are frozen pydantic models that round-trip
through JSON. Verdicts and outcomes never leave the process in any other shape than JSON either,
so they follow the same rule.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from core.expectation_types import Expectation


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


# ---------------------------------------------------------------- observation


class GpuInfo(Frozen):
    index: int
    name: str
    util_percent: float
    mem_used_mb: float
    mem_total_mb: float


class RayActorCount(Frozen):
    kind: str
    state: str  # Ray's actor state: ALIVE, PENDING_CREATION, RESTARTING, DEPENDENCIES_UNREADY
    count: int


class RayFigures(Frozen):
    """A Ray-backed host's share of the cluster, as its snapshot read it (fleet/ray_host.py)."""

    nodes: int = 0  # alive nodes carrying the resource host:<name>
    pending_actors: int = 0  # its worker actors Ray has not placed: no node with room (the autoscaler's demand)
    actors: tuple[RayActorCount, ...] = ()  # its live worker actors per kind and Ray state


class HostMetrics(Frozen):
    host: str
    reachable: bool = True
    error: str | None = None
    cpu_percent: float = 0.0
    mem_percent: float = 0.0
    disk_percent: float = 0.0
    load1: float = 0.0
    cpu_count: int = 1
    gpus: tuple[GpuInfo, ...] = ()
    observed_in_ms: float = 0.0
    ray: RayFigures | None = None  # a host whose workers are Ray actors; None for a machine


WorkerState = Literal["starting", "running", "draining", "stopped", "crashed", "backoff", "fatal"]


class WorkerInfo(Frozen):
    id: str
    kind: str
    host: str
    pid: int | None = None
    state: WorkerState = "running"
    started_at: float | None = None
    restarts: int = 0
    last_exit: int | None = None
    cpu_percent: float = 0.0
    rss_mb: float = 0.0
    processed: int | None = None  # items it finished since it started, from its own status counters
    idle: bool = False  # its last batch found nothing to do: stopping it loses no work in hand
    busy_s: float | None = None  # seconds spent on batches, by its own clock: throughput = processed / busy_s


EMBED_DIM = 384  # the embedder's vector size (all-MiniLM-L6-v2); brain/schema.py types the vector columns with it
PLAN_HASH = r"[0-9a-f]{64}"  # a dedup plan's name: sha256 hex of its merges (workers/dedup_plan.plan_hash)


def is_plan_hash(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(PLAN_HASH, value) is not None


class DedupPairSample(Frozen):
    kept: str  # the surviving entity's name
    absorbed: str  # the name of an entity merged into it
    score: float  # the merge's score (its weakest pair)


class DedupPlanSummary(Frozen):
    """The dedup plan the last dry run stored in the brain (workers/dedup_plan.py), as the planner and approvers
    see it. A live run given its hash merges only the plan's merges, and stops if it would merge more."""

    hash: str  # sha256 of the planned merges: what a live run_dedup names in its `plan` argument
    absorbed: int  # entities the plan merges away
    merges: int = 0  # surviving entities (one per merge group)
    created_at: float = 0.0
    entities_version: int = 0  # the entities table version the plan was computed on
    stale: bool = False  # the entities changed since the plan was made
    sample: tuple[DedupPairSample, ...] = ()  # strongest pairs first, then the weakest

    def lines(self) -> list[str]:
        """What an approver reads: the planned count, whether it is current, and the sample with scores."""
        state = "STALE: the entities changed since this dry run" if self.stale else "current"
        head = f"dedup plan {self.hash[:12]}: {self.absorbed} entities merged into {self.merges} survivors ({state})"
        pairs = [f"  {p.absorbed!r} -> {p.kept!r} (score {p.score:.3f})" for p in self.sample]
        return [head, *pairs]


def approval_context_lines(context: dict[str, Any]) -> list[str]:
    """The facts an approval was opened with (graphs/tick.py), as lines for the CLI and Slack prompts."""
    lines: list[str] = []
    plan = context.get("dedup_plan")
    if isinstance(plan, dict):
        lines += DedupPlanSummary.model_validate(plan).lines()
    unknown = context.get("dedup_plan_unknown")
    if isinstance(unknown, str):
        lines.append(f"dedup plan {unknown[:12]} is not the brain's current plan: the job will refuse to run")
    return lines


class TierYield(Frozen):
    """Reasoning answers from one tier in the yield window: how many the validator kept, and what they cost."""

    tier: str
    attempts: int = 0
    valid: int = 0
    cost: float = 0.0  # dollars the ledger settled for these calls

    @property
    def yield_rate(self) -> float:
        return self.valid / self.attempts if self.attempts else 0.0

    @property
    def valid_per_dollar(self) -> float | None:
        """Valid answers per dollar; None when the tier cost nothing (cache hits, a free tier)."""
        return self.valid / self.cost if self.cost > 0 else None


class ReasoningStats(Frozen):
    chains: int = 0
    runbooks: int = 0
    window_s: float = 86_400.0  # the window `tiers` counts attempts over
    tiers: tuple[TierYield, ...] = ()  # per tier that answered in the window, by name

    @property
    def attempts(self) -> int:
        return sum(t.attempts for t in self.tiers)

    @property
    def yield_rate(self) -> float:
        return sum(t.valid for t in self.tiers) / self.attempts if self.attempts else 0.0

    def tier(self, name: str) -> TierYield:
        return next((t for t in self.tiers if t.tier == name), TierYield(tier=name))


class QueryStats(Frozen):
    total: int = 0
    unanalyzed: int = 0  # imported, not yet put in a topic by analyze_queries
    topics_without_coverage: int = 0  # priorities: poorly answered topics with no wisdom near them


class BrainStats(Frozen):
    error: str | None = None  # the brain could not be read: every figure below is unknown, not zero
    records: int = 0
    entities: int = 0
    relationships: int = 0
    communities: int = 0
    wisdom: int = 0
    pending: dict[str, int] = Field(default_factory=dict)  # stage -> items waiting
    duplicate_estimate: float = 0.0  # fraction of live entities that look duplicated
    duplicate_candidates: int = 0  # the current dedup plan's count; without one, an estimate from name collisions
    relationships_changed_since_recluster: int = 0
    community_age_s: float | None = None
    wisdom_coverage: float = 0.0
    relationship_density: float = 0.0
    dedup_plan: DedupPlanSummary | None = None  # the last dry run's plan, None when there is none
    reasoning: ReasoningStats = Field(default_factory=ReasoningStats)
    queries: QueryStats = Field(default_factory=QueryStats)
    live_entities: int = 0  # entities not merged into another (what a dedup lowers and its undo restores)


class BudgetState(Frozen):
    window_s: int = 5 * 3600
    window_tokens: int = 800_000_000
    used_tokens: int = 0
    reserved_tokens: int = 0
    pace: float = 0.0  # used share of the window divided by elapsed share; >1 burns too fast
    cost_today: float = 0.0
    reserved_cost: float = 0.0  # dollars held by calls in flight, counted against the daily cap
    daily_cost_cap: float | None = None
    per_tier: dict[str, int] = Field(default_factory=dict)
    routing: dict[str, float] = Field(default_factory=dict)  # fleet tier weights, sum 1; empty: the configured split
    routed_calls: dict[str, int] = Field(default_factory=dict)  # fleet calls per tier in the window
    task_tiers: dict[str, str] = Field(default_factory=dict)  # task -> the tier its calls are pinned to (reasoning)

    @property
    def remaining_tokens(self) -> int:
        return max(0, self.window_tokens - self.used_tokens - self.reserved_tokens)


class PendingApproval(Frozen):
    id: str
    action: str
    args: dict[str, Any]
    expires_at: float


# Disk pressure (docs/OPERATIONS.md, "Disk pressure"): what each reclaim action would free on the brain host.
RECLAIM_TARGETS = ("versions", "logs", "decisions")  # prune_versions, rotate_logs, archive_decisions


class ReclaimTarget(Frozen):
    bytes: int | None = None  # what the action would free; None: not measurable here (an object-store brain)
    items: int = 0  # old table versions, log files, or decision records it covers
    oldest_age_s: float | None = None  # age of the oldest of them


class StorageStats(Frozen):
    """The disk holding the brain and the agent's state (the brain host's), and what could be reclaimed."""

    host: str = ""
    path: str = ""
    disk_percent: float | None = None  # None: not measured (a scenario or a tick that could not look)
    total_bytes: int = 0
    used_bytes: int = 0
    reclaimable: dict[str, ReclaimTarget] = Field(default_factory=dict)  # RECLAIM_TARGETS -> what it frees
    error: str | None = None


PRODUCED = ("records", "entities", "wisdom", "chains", "runbooks")  # what the pipeline produces, counted


class CostWindow(Frozen):
    """What the pipeline produced and what it cost over one window (today, this month), measured from the
    window's first production snapshot to now (agent/service/cost_report.py)."""

    since: float
    hours: float
    produced: dict[str, int] = Field(default_factory=dict)  # PRODUCED -> items made in the window
    llm_cost: float = 0.0
    llm_cost_by_tier: dict[str, float] = Field(default_factory=dict)
    compute_cost: float = 0.0  # hosts' cost_per_hour (policy) x the window's hours

    @property
    def total_cost(self) -> float:
        return self.llm_cost + self.compute_cost

    def cost_per(self, item: str, unit: int = 1) -> float | None:
        """Dollars per `unit` items of `item` made in the window; None when none were made."""
        made = self.produced.get(item, 0)
        return round(self.total_cost / made * unit, 6) if made > 0 else None


class CostStats(Frozen):
    totals: dict[str, int] = Field(default_factory=dict)  # PRODUCED -> items in the brain now
    day: CostWindow | None = None
    month: CostWindow | None = None
    absent_tables: tuple[str, ...] = ()  # produced kinds whose brain table does not exist (counted 0)
    error: str | None = None


class Observation(Frozen):
    """Everything one tick knows. Eval scenarios store exactly this shape."""

    time: float
    hosts: tuple[HostMetrics, ...] = ()
    workers: tuple[WorkerInfo, ...] = ()
    brain: BrainStats = Field(default_factory=BrainStats)
    rates: dict[str, float] = Field(default_factory=dict)  # stage -> items/min over recent history
    budget: BudgetState = Field(default_factory=BudgetState)
    pending_approvals: tuple[PendingApproval, ...] = ()
    desired: dict[str, int] = Field(default_factory=dict)  # "kind@host" -> desired worker count
    recent_actions: dict[str, float] = Field(default_factory=dict)  # "action:kind@host" -> last time
    notes: tuple[str, ...] = ()  # free text seen during observation (log lines, alerts): untrusted
    missed_expectations: tuple[str, ...] = ()  # action kinds that missed their expectation repeatedly (anomalies)
    storage: StorageStats = Field(default_factory=StorageStats)  # disk pressure on the brain host
    cost: CostStats = Field(default_factory=CostStats)  # cost per result
    index: IndexHealth = Field(default_factory=lambda: IndexHealth())  # the records' vector search (probe)
    index_run: IndexRun | None = None  # the last optimize_index job's result, as it recorded it

    def digest(self) -> str:
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def worker_cpu_share(self, kind: str, host: str) -> float | None:
        """Mean host-CPU share of one running worker of this kind there (psutil reports per-core percent).

        The planner sizes scale-ups with it and the policy engine projects load with it, so they agree."""
        metrics = next((h for h in self.hosts if h.host == host), None)
        cores = max(1, metrics.cpu_count) if metrics else 1
        shares = [
            w.cpu_percent / cores
            for w in self.workers
            if w.kind == kind and w.host == host and w.state == "running" and w.cpu_percent > 0
        ]
        return sum(shares) / len(shares) if shares else None

    def running(self, kind: str, host: str | None = None) -> int:
        return sum(
            1
            for w in self.workers
            if w.kind == kind and w.state in ("starting", "running") and (host is None or w.host == host)
        )


# ---------------------------------------------------------------- proposals


class ScalePrediction(Frozen):
    """What a scaling decision is expected to do, from what the planner measured: the figures behind
    "4 -> 7 extract: backlog 6,200 drains in ~22 min, +$0.41/h compute". Recorded with the decision and shown
    in approval prompts; the proposal's key (its identity) does not include it."""

    kind: str
    before: int  # workers of the kind, all hosts, before the change
    after: int  # ... and after it
    backlog: int
    arrival_per_min: float  # forecast arrivals over the next minutes
    per_worker_per_min: float  # one worker's throughput
    basis: Literal["measured", "unmeasured"]  # per-worker throughput from the workers' counters, or not yet
    drain_s: float | None  # time until the backlog is worked off at `after` workers; None: it never drains
    wait_objective_s: float | None = None  # the stage's policy objective, when it has one
    compute_per_hour_delta: float = 0.0  # dollars per hour this change adds (negative: saves)

    def summary(self) -> str:
        if self.basis == "unmeasured":
            drains = f"backlog {self.backlog:,}, throughput not measured yet"
        elif self.drain_s is None:
            drains = f"backlog {self.backlog:,} keeps growing"
        elif self.backlog <= 0:
            drains = "no backlog"
        else:
            drains = f"backlog {self.backlog:,} drains in ~{_duration(self.drain_s)}"
        sign = "+" if self.compute_per_hour_delta >= 0 else "-"
        cost = f"{sign}${abs(self.compute_per_hour_delta):.2f}/h compute"
        return f"{self.before} -> {self.after} {self.kind}: {drains}, {cost}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class Proposal(Frozen):
    """One action the planner wants. Only policy or a human turns it into an action."""

    action: str  # scale_workers | start_embedding | run_dedup | run_recluster | set_model_routing |
    #              restart_worker | stop_worker | noop
    args: dict[str, Any] = Field(default_factory=dict)
    rationale: str = ""
    prediction: ScalePrediction | None = None  # scale_workers: the expected effect
    expectation: Expectation | None = None  # what a mutating action should do, checked on later ticks
    rollback_of: str | None = None  # the decision id this proposal reverses (a verified harm)
    stated: str | None = None  # the model's own expectation, as it wrote it ("metric<=target@seconds"), unchecked

    def key(self) -> str:
        blob = json.dumps({"a": self.action, "args": self.args}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    NEEDS_APPROVAL = "needs_approval"


class PolicyDecision(Frozen):
    verdict: Verdict
    rule_ids: tuple[str, ...]
    reasons: tuple[str, ...] = ()
    risk: str = "low"
    dry_run: bool = False


class Outcome(Frozen):
    status: Literal[
        "done",
        "skipped",
        "failed",
        "noop",
        "denied",
        "expired",
        "pending",
        "dry_run",
        "verified",
        "missed",
        "inconclusive",
    ]  # the last three: a `verify` record's verdict on an earlier action
    detail: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class PlannerInfo(Frozen):
    kind: Literal["rules", "model", "human", "mcp"] = "rules"  # mcp: an MCP client's call (agent/mcp/)
    model: str | None = None
    tier: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    fallback_reason: str | None = None
    client: str | None = None  # kind "mcp": the client's name, from its MCP initialize (clientInfo.name)

    @model_serializer(mode="wrap")
    def _without_empty_client(self, handler: Any) -> Any:
        """Records of every other planner keep the shape (and hash input) they had before `client` existed."""
        data = handler(self)
        if isinstance(data, dict) and data.get("client") is None:
            data.pop("client", None)
        return data

    @property
    def label(self) -> str:
        """How a record names the planner: "rules", "human", "model", or "mcp:<client>"."""
        return f"mcp:{self.client or 'unknown'}" if self.kind == "mcp" else self.kind


# ---------------------------------------------------------------- the records' vector index


class IndexHealth(Frozen):
    """How fast and how right vector search over the records is, from the probe (brain/index_probe.py): a
    fixed sample of the brain's own records searched through the serving path (the ANN index when there is
    one), timed, and compared with exact search. Figures are None when they were not measured."""

    skipped: str | None = None  # why nothing was measured (tiny table, no vectors, unreadable): then no action
    rows: int = 0  # rows of the records table
    indexed: bool = False  # a vector index exists on records.vector
    index_type: str | None = None
    indexed_rows: int = 0
    unindexed_rows: int = 0  # rows appended since the index was last built or refreshed: searched flat
    fragments: int = 0
    small_fragments: int = 0  # fragments with few rows (many small appends): compaction merges them
    versions: int = 0  # table versions still on disk
    queries: int = 0  # sample queries timed this time (within the probe's time budget)
    p50_ms: float | None = None
    p95_ms: float | None = None
    recall_at_10: float | None = None  # mean share of the exact top 10 the serving path returned
    recall_queries: int = 0  # queries whose exact answer is current (recall is over these)
    probe_ms: float = 0.0

    @property
    def measured(self) -> bool:
        return self.skipped is None and self.queries > 0

    def summary(self) -> str:
        if self.skipped:
            return f"index probe skipped: {self.skipped}"
        recall = "recall n/a" if self.recall_at_10 is None else f"recall@10 {self.recall_at_10:.3f}"
        p95 = "n/a" if self.p95_ms is None else f"{self.p95_ms:.1f} ms"
        index = self.index_type or "no index"
        return (
            f"search p95 {p95}, {recall} ({self.queries} queries, {index}, {self.fragments} fragments, "
            f"{self.unindexed_rows:,} unindexed rows)"
        )


class IndexRun(Frozen):
    """What one optimize_index job did and measured before and after (workers/index.py writes it to the brain's
    meta table; the next tick records it as the job's effect)."""

    run_id: str
    worker_id: str | None = None
    started_at: float
    finished_at: float
    steps: tuple[str, ...] = ()  # "built IVF_PQ (59 partitions, 48 sub-vectors)", "compacted 40 -> 1 fragments", ...
    versions_pruned: int = 0
    before: IndexHealth
    after: IndexHealth

    def summary(self) -> str:
        def ms(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.1f}"

        def rc(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        b, a = self.before, self.after
        return (
            f"search p95 {ms(b.p95_ms)} -> {ms(a.p95_ms)} ms, p50 {ms(b.p50_ms)} -> {ms(a.p50_ms)} ms, "
            f"recall@10 {rc(b.recall_at_10)} -> {rc(a.recall_at_10)}, fragments {b.fragments} -> {a.fragments}, "
            f"{self.versions_pruned} old versions pruned; {'; '.join(self.steps) or 'nothing to do'}"
        )
