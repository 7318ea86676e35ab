"""Prometheus metrics for the agent: one CollectorRegistry, updated after every tick, served on loopback.

Fleet state (queues, workers, hosts, budget) is a snapshot: each tick builds a fresh set of gauge families
and swaps it in atomically, so a worker or host that disappeared also disappears from /metrics and a scrape
never sees a half-updated tick. Decisions, ticks and failures are real counters and a histogram.
The Grafana dashboard (grafana/brainops-dashboard.json) is built on exactly the names in METRIC_NAMES.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.domain import Observation, RayFigures

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from agent.service.agent import Agent, TickReport
    from agent.state.decisions import ChainHead

P = "brainops_"
TICK_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
WORKER_STATES = ("starting", "running", "draining", "stopped", "crashed", "backoff", "fatal")

# name -> (type, help). Counters are listed without the `_total` suffix prometheus_client appends.
METRICS: dict[str, tuple[str, str]] = {
    "queue_depth": ("gauge", "Items waiting per pipeline stage."),
    "processing_rate_per_minute": ("gauge", "Net items drained per minute per stage over the last 5 minutes."),
    "stage_items_per_worker_minute": ("gauge", "Processing rate per running worker of the stage's kind."),
    "brain_items": ("gauge", "Rows per brain table."),
    "brain_duplicate_estimate": ("gauge", "Share of live entities that look duplicated."),
    "workers": ("gauge", "Worker processes per kind, host and state."),
    "workers_desired": ("gauge", "Desired worker count per kind and host."),
    "worker_restarts": ("gauge", "Restarts of live workers, summed per kind and host."),
    "worker_cpu_percent": ("gauge", "CPU percent of running workers, summed per kind and host."),
    "worker_rss_bytes": ("gauge", "Resident memory of running workers, summed per kind and host."),
    "host_up": ("gauge", "1 when the host answered its last snapshot, else 0."),
    "host_cpu_percent": ("gauge", "Host CPU utilisation percent."),
    "host_memory_percent": ("gauge", "Host memory utilisation percent."),
    "host_disk_percent": ("gauge", "Host disk utilisation percent."),
    "host_load1": ("gauge", "Host 1-minute load average."),
    "host_observe_seconds": ("gauge", "Wall time of the host's last snapshot."),
    "host_gpu_utilization_percent": ("gauge", "GPU utilisation percent per host and GPU."),
    "host_gpu_memory_used_bytes": ("gauge", "GPU memory in use per host and GPU."),
    "host_gpu_memory_total_bytes": ("gauge", "GPU memory size per host and GPU."),
    "llm_tokens": ("gauge", "Settled LLM tokens in the budget window per tier and direction (in/out)."),
    "llm_reserved_tokens": ("gauge", "LLM tokens reserved by calls in flight per tier."),
    "llm_cost_dollars": ("gauge", "LLM cost in the budget window per tier."),
    "llm_routing_weight": ("gauge", "Fleet share of LLM calls routed to each tier."),
    "budget_window_tokens": ("gauge", "Token budget of the rolling window."),
    "budget_used_tokens": ("gauge", "Tokens used in the rolling window."),
    "budget_remaining_tokens": ("gauge", "Tokens left in the rolling window (after reservations)."),
    "budget_pace": ("gauge", "Used share of the window over elapsed share; above 1 burns too fast."),
    "budget_cost_today_dollars": ("gauge", "LLM cost since UTC midnight."),
    "budget_daily_cost_cap_dollars": ("gauge", "Daily cost cap (absent when none is set)."),
    "approvals_pending": ("gauge", "Approvals waiting for a human."),
    "policy_stale": ("gauge", "1 while the policy file fails to load and its last good version is in force."),
    "last_tick_timestamp_seconds": ("gauge", "Unix time the last tick finished."),
    "decision_chain_seq": ("gauge", "Seq of the decision log's newest record (the chain head)."),
    "decision_chain_head": (
        "gauge",
        "Always 1; labels seq and hash (32 hex of the head record's hmac) name the chain head, for "
        "`brainops decisions verify --expect-head SEQ:HASH`.",
    ),
    "index_search_latency_seconds": ("gauge", "Records vector search latency from the tick's probe, by quantile."),
    "index_recall_at_10": ("gauge", "Share of the exact top 10 the records' search returned (probe sample)."),
    "index_indexed": ("gauge", "1 when the records' vector column has an ANN index, else 0."),
    "index_unindexed_rows": ("gauge", "Records appended since the vector index was built (searched flat)."),
    "index_fragments": ("gauge", "Fragments of the records table, all and small (many small appends)."),
    "index_versions": ("gauge", "Versions of the records table still on disk."),
    "index_probe_seconds": ("gauge", "Wall time of the tick's vector search probe."),
    "ray_nodes": ("gauge", "Alive Ray nodes carrying the host's resource host:<name> ([ray] hosts only)."),
    "ray_pending_actors": ("gauge", "The host's worker actors Ray has not placed yet: no node with room."),
    "ray_actors": ("gauge", "The host's live worker actors per kind and Ray state (ALIVE, PENDING_CREATION, ...)."),
    "decisions": ("counter", "Decisions by action and policy verdict."),
    "decision_outcomes": ("counter", "Decisions by action and outcome status."),
    "ticks": ("counter", "Ticks finished, by planner kind."),
    "tick_failures": ("counter", "Ticks that raised instead of finishing."),
    "tick_duration_seconds": ("histogram", "Wall time of one tick."),
    "storage_disk_percent": ("gauge", "Use of the disk holding the brain and the agent's state, per host."),
    "storage_reclaimable_bytes": ("gauge", "Bytes each reclaim target would free (versions, logs, decisions)."),
    "produced_items": ("gauge", "Items the pipeline produced per window (day, month) and item kind."),
    "cost_llm_dollars": ("gauge", "Settled LLM dollars per window (day, month) and tier."),
    "cost_compute_dollars": ("gauge", "Compute dollars per window: hosts' cost_per_hour x the window's hours."),
    "cost_total_dollars": ("gauge", "LLM plus compute dollars per window."),
    "cost_per_result_dollars": ("gauge", "Dollars per result per window: per 1k_records, wisdom, chain."),
    "reasoning_outputs": ("gauge", "Reasoning chains and runbooks in the brain (kind=chains|runbooks)."),
    "reasoning_attempts": ("gauge", "Reasoning answers per tier in the yield window (valid or not)."),
    "reasoning_yield_ratio": ("gauge", "Share of a tier's reasoning answers the validator kept, over the window."),
    "reasoning_valid_per_dollar": ("gauge", "Valid reasoning answers per dollar per tier (tiers that cost something)."),
    "reasoning_tier_pinned": ("gauge", "Always 1; label tier: the tier reasoning calls are pinned to (absent: split)."),
    "queries_unanalyzed": ("gauge", "Imported queries analyze_queries has not put in a topic yet."),
    "query_topics_without_coverage": ("gauge", "Poorly answered query topics with no wisdom near them (priorities)."),
}
METRIC_NAMES: tuple[str, ...] = tuple(P + name for name in METRICS)


@dataclass(frozen=True)
class TierUsage:
    tier: str
    tokens_in: int = 0
    tokens_out: int = 0
    reserved: int = 0
    cost: float = 0.0


def tier_usage(state_db: Path, now: float, window_s: float) -> tuple[TierUsage, ...]:
    """Per-tier tokens and cost in the window, read-only from the token ledger's table (none yet: empty)."""
    if not state_db.exists():
        return ()
    try:
        with sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=5.0) as conn:
            rows = conn.execute(
                "SELECT tier,"
                " SUM(CASE WHEN status = 'settled' AND settled_at > ? THEN tokens_in ELSE 0 END),"
                " SUM(CASE WHEN status = 'settled' AND settled_at > ? THEN tokens_out ELSE 0 END),"
                " SUM(CASE WHEN status = 'reserved' AND expires_at > ? THEN reserved_tokens ELSE 0 END),"
                " SUM(CASE WHEN status = 'settled' AND settled_at > ? THEN cost ELSE 0 END)"
                " FROM ledger_entries GROUP BY tier ORDER BY tier",
                (now - window_s, now - window_s, now, now - window_s),
            ).fetchall()
    except sqlite3.OperationalError:  # ledger table not created yet: nothing spent
        return ()
    return tuple(TierUsage(r[0], int(r[1] or 0), int(r[2] or 0), int(r[3] or 0), float(r[4] or 0.0)) for r in rows)


class _Families:
    """Builds labelled gauge families for one snapshot."""

    def __init__(self) -> None:
        self.families: dict[str, GaugeMetricFamily] = {}

    def set(self, name: str, value: float, /, **labels: str) -> None:
        family = self.families.get(name)
        if family is None:
            family = GaugeMetricFamily(P + name, METRICS[name][1], labels=sorted(labels))
            self.families[name] = family
        family.add_metric([labels[k] for k in sorted(labels)], float(value))

    def add(self, sums: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
        for (name, labels), value in sorted(sums.items()):
            self.set(name, value, **dict(labels))


class _SnapshotCollector(Collector):
    def __init__(self) -> None:
        self._families: list[Metric] = []

    def swap(self, families: Iterable[Metric]) -> None:
        self._families = list(families)  # one reference assignment: scrapes see the old or the new set

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)

    def describe(self) -> Iterator[Metric]:
        return iter(())


class BrainopsMetrics:
    """Every brainops metric in its own registry. Thread-safe: ticks update, the HTTP server scrapes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._snapshot = _SnapshotCollector()
        self.registry.register(self._snapshot)
        self.decisions = Counter(
            P + "decisions", METRICS["decisions"][1], ["action", "verdict"], registry=self.registry
        )
        self.outcomes = Counter(
            P + "decision_outcomes", METRICS["decision_outcomes"][1], ["action", "status"], registry=self.registry
        )
        self.ticks = Counter(P + "ticks", METRICS["ticks"][1], ["planner"], registry=self.registry)
        self.tick_failures = Counter(P + "tick_failures", METRICS["tick_failures"][1], registry=self.registry)
        self.tick_duration = Histogram(
            P + "tick_duration_seconds",
            METRICS["tick_duration_seconds"][1],
            buckets=TICK_BUCKETS,
            registry=self.registry,
        )
        self._lock = threading.Lock()

    # ------------------------------------------------------------ updates

    def record_tick(self, report: TickReport) -> None:
        """Counters and the duration histogram from one finished tick."""
        for proposal, verdict, outcome in zip(report.proposals, report.verdicts, report.outcomes, strict=True):
            self.decisions.labels(proposal.action, str(verdict.get("verdict", "unknown"))).inc()
            self.outcomes.labels(proposal.action, outcome.status).inc()
        self.ticks.labels(report.planner.kind).inc()
        self.tick_duration.observe(max(report.duration_s, 0.0))

    def record_failure(self) -> None:
        self.tick_failures.inc()

    def update_state(
        self,
        obs: Observation,
        tiers: Sequence[TierUsage] = (),
        approvals_pending: int | None = None,
        now: float | None = None,
        chain_head: ChainHead | None = None,
        policy_stale: bool = False,
    ) -> None:
        """Replace every gauge with the fleet state of this observation (and the decision log's head)."""
        fam = _Families()
        _stages(fam, obs)
        _workers(fam, obs)
        _hosts(fam, obs)
        _budget(fam, obs, tiers)
        _storage_and_cost(fam, obs)
        _index(fam, obs)
        pending = len(obs.pending_approvals) if approvals_pending is None else approvals_pending
        fam.set("approvals_pending", pending)
        fam.set("policy_stale", 1 if policy_stale else 0)
        fam.set("last_tick_timestamp_seconds", time.time() if now is None else now)
        if chain_head is not None:  # scraped into Prometheus, where rewriting state.db cannot reach it
            fam.set("decision_chain_seq", chain_head.seq)
            fam.set("decision_chain_head", 1, seq=str(chain_head.seq), hash=chain_head.short)
        with self._lock:
            self._snapshot.swap(fam.families.values())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _stages(fam: _Families, obs: Observation) -> None:
    brain = obs.brain
    for stage, depth in sorted(brain.pending.items()):
        fam.set("queue_depth", depth, stage=stage)
    # A stage with backlog but no history yet (first tick) drains at a known 0, not an unknown rate.
    rates = {**dict.fromkeys(brain.pending, 0.0), **obs.rates}
    for stage, rate in sorted(rates.items()):
        fam.set("processing_rate_per_minute", rate, stage=stage)
        running = obs.running(stage)
        if running:
            fam.set("stage_items_per_worker_minute", rate / running, stage=stage)
    for table in ("records", "entities", "relationships", "communities", "wisdom"):
        fam.set("brain_items", getattr(brain, table), table=table)
    fam.set("brain_duplicate_estimate", brain.duplicate_estimate)
    _insight(fam, obs)


def _insight(fam: _Families, obs: Observation) -> None:
    reasoning, queries = obs.brain.reasoning, obs.brain.queries
    fam.set("reasoning_outputs", reasoning.chains, kind="chains")
    fam.set("reasoning_outputs", reasoning.runbooks, kind="runbooks")
    for t in reasoning.tiers:
        fam.set("reasoning_attempts", t.attempts, tier=t.tier)
        fam.set("reasoning_yield_ratio", t.yield_rate, tier=t.tier)
        if t.valid_per_dollar is not None:
            fam.set("reasoning_valid_per_dollar", t.valid_per_dollar, tier=t.tier)
    pinned = obs.budget.task_tiers.get("reasoning")
    if pinned:
        fam.set("reasoning_tier_pinned", 1, tier=pinned)
    fam.set("queries_unanalyzed", queries.unanalyzed)
    fam.set("query_topics_without_coverage", queries.topics_without_coverage)


def _workers(fam: _Families, obs: Observation) -> None:
    sums: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def bump(name: str, value: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        sums[key] = sums.get(key, 0.0) + value

    for w in obs.workers:
        bump("workers", 1, kind=w.kind, host=w.host, state=w.state)
        bump("worker_restarts", w.restarts, kind=w.kind, host=w.host)
        if w.state in ("starting", "running", "draining"):
            bump("worker_cpu_percent", w.cpu_percent, kind=w.kind, host=w.host)
            bump("worker_rss_bytes", w.rss_mb * 1024 * 1024, kind=w.kind, host=w.host)
    for key, count in sorted(obs.desired.items()):
        kind, _, host = key.partition("@")
        bump("workers_desired", count, kind=kind, host=host)
        for state in ("running", "crashed", "fatal"):  # explicit zeros: "no fatal workers" is a value
            bump("workers", 0, kind=kind, host=host, state=state)
    fam.add(sums)


def _hosts(fam: _Families, obs: Observation) -> None:
    mb = 1024 * 1024
    for h in obs.hosts:
        fam.set("host_up", 1 if h.reachable else 0, host=h.host)
        if not h.reachable:
            continue  # stale numbers of a dead host would look like a healthy idle one
        fam.set("host_cpu_percent", h.cpu_percent, host=h.host)
        fam.set("host_memory_percent", h.mem_percent, host=h.host)
        fam.set("host_disk_percent", h.disk_percent, host=h.host)
        fam.set("host_load1", h.load1, host=h.host)
        fam.set("host_observe_seconds", h.observed_in_ms / 1000.0, host=h.host)
        for g in h.gpus:
            labels = {"host": h.host, "gpu": str(g.index), "name": g.name}
            fam.set("host_gpu_utilization_percent", g.util_percent, **labels)
            fam.set("host_gpu_memory_used_bytes", g.mem_used_mb * mb, **labels)
            fam.set("host_gpu_memory_total_bytes", g.mem_total_mb * mb, **labels)
        if h.ray is not None:
            _ray(fam, h.host, h.ray)


def _ray(fam: _Families, host: str, ray: RayFigures) -> None:
    fam.set("ray_nodes", ray.nodes, host=host)
    fam.set("ray_pending_actors", ray.pending_actors, host=host)
    for a in ray.actors:
        fam.set("ray_actors", a.count, host=host, kind=a.kind, state=a.state)


def _budget(fam: _Families, obs: Observation, tiers: Sequence[TierUsage]) -> None:
    b = obs.budget
    fam.set("budget_window_tokens", b.window_tokens)
    fam.set("budget_used_tokens", b.used_tokens)
    fam.set("budget_remaining_tokens", b.remaining_tokens)
    fam.set("budget_pace", b.pace)
    fam.set("budget_cost_today_dollars", b.cost_today)
    if b.daily_cost_cap is not None:
        fam.set("budget_daily_cost_cap_dollars", b.daily_cost_cap)
    for tier, weight in sorted(b.routing.items()):
        fam.set("llm_routing_weight", weight, tier=tier)
    for usage in tiers:
        fam.set("llm_tokens", usage.tokens_in, tier=usage.tier, direction="in")
        fam.set("llm_tokens", usage.tokens_out, tier=usage.tier, direction="out")
        fam.set("llm_reserved_tokens", usage.reserved, tier=usage.tier)
        fam.set("llm_cost_dollars", usage.cost, tier=usage.tier)


def _storage_and_cost(fam: _Families, obs: Observation) -> None:
    s = obs.storage
    if s.disk_percent is not None:
        fam.set("storage_disk_percent", s.disk_percent, host=s.host)
    for target, found in sorted(s.reclaimable.items()):
        if found.bytes is not None:
            fam.set("storage_reclaimable_bytes", found.bytes, target=target)
    for name, window in (("day", obs.cost.day), ("month", obs.cost.month)):
        if window is None:
            continue
        for item, count in sorted(window.produced.items()):
            fam.set("produced_items", count, window=name, item=item)
        for tier, dollars in sorted(window.llm_cost_by_tier.items()):
            fam.set("cost_llm_dollars", dollars, window=name, tier=tier)
        fam.set("cost_compute_dollars", window.compute_cost, window=name)
        fam.set("cost_total_dollars", window.total_cost, window=name)
        for per, item, unit in (("1k_records", "records", 1000), ("wisdom", "wisdom", 1), ("chain", "chains", 1)):
            value = window.cost_per(item, unit)
            if value is not None:
                fam.set("cost_per_result_dollars", value, window=name, per=per)


def _index(fam: _Families, obs: Observation) -> None:
    ix = obs.index
    if ix.skipped or ix.rows == 0:
        return  # no probe ran: an absent series, not a zero latency
    for quantile, ms in (("0.5", ix.p50_ms), ("0.95", ix.p95_ms)):
        if ms is not None:
            fam.set("index_search_latency_seconds", ms / 1000.0, quantile=quantile)
    if ix.recall_at_10 is not None:
        fam.set("index_recall_at_10", ix.recall_at_10)
    fam.set("index_indexed", 1 if ix.indexed else 0)
    fam.set("index_unindexed_rows", ix.unindexed_rows)
    fam.set("index_fragments", ix.fragments, size="all")
    fam.set("index_fragments", ix.small_fragments, size="small")
    fam.set("index_versions", ix.versions)
    fam.set("index_probe_seconds", ix.probe_ms / 1000.0)


# ---------------------------------------------------------------- wiring to the agent


def refresh_from_agent(metrics: BrainopsMetrics, agent: Agent, obs: Observation | None = None) -> None:
    """Gauges from the agent's state right after a tick: its observation, the ledger, open approvals."""
    from agent.service.observer import load_last_observation

    settings = agent.settings
    obs = obs or load_last_observation(settings)
    if obs is None:
        return
    now = agent.clock()
    # The observation predates the tick's actions: take desired counts and worker slots as they are now
    # (registry reads only, no host round trip), so a scale-up shows in the same scrape.
    dispatcher = agent.fleet.dispatcher
    obs = obs.model_copy(update={"desired": dispatcher.desired(), "workers": tuple(dispatcher.workers())})
    tiers = tier_usage(settings.state_db, now, settings.budget.window_s)
    pending = len(agent.approvals.pending(now))
    metrics.update_state(
        obs,
        tiers,
        approvals_pending=pending,
        now=now,
        chain_head=agent.decisions.head(),
        policy_stale=agent.policy_failure is not None,
    )


def tick_callbacks(
    metrics: BrainopsMetrics, agent: Agent
) -> tuple[Callable[[TickReport], None], Callable[[BaseException], None]]:
    """(on_report, on_error) for AgentLoop: count the tick, then refresh the gauges from agent state."""
    import logging

    log = logging.getLogger("brainops.metrics")

    def on_report(report: TickReport) -> None:
        metrics.record_tick(report)
        try:
            refresh_from_agent(metrics, agent)
        except Exception as exc:  # metrics must never break the loop
            log.warning("metrics refresh failed: %s", exc)

    def on_error(_exc: BaseException) -> None:
        metrics.record_failure()

    return on_report, on_error


@dataclass
class MetricsServer:
    """The /metrics HTTP endpoint; `port` is the bound port (ask for 0 to get a free one)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/metrics"

    @property
    def address(self) -> str:
        return str(self.server.server_address[0])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_exporter(metrics: BrainopsMetrics, port: int, address: str = "127.0.0.1") -> MetricsServer:
    """Serve the registry on address:port (loopback unless told otherwise). Raises OSError if the port is taken."""
    from prometheus_client import start_http_server

    if not 0 <= port <= 65535:
        raise ValueError(f"metrics port must be in 0..65535, got {port}")
    server, thread = start_http_server(port, addr=address, registry=metrics.registry)
    return MetricsServer(server, thread)


def describe() -> list[dict[str, Any]]:
    """Every metric name with its type and help (docs, dashboard checks)."""
    return [{"name": P + name, "type": kind, "help": text} for name, (kind, text) in METRICS.items()]
