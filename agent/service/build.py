"""The one way a tick is wired: the planner the settings and policy ask for, and the tick graph around it.

`brainops tick` / `run` (agent/service/agent.py), the eval runner and the fleet simulator all build through
these functions, so a scenario runs the planner exactly as production configures it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.domain import Verdict
from core.kinds import LLM_BOUND_KINDS, STAGE_OF_KIND
from graphs.capacity import CapacityMeters, CostModel
from graphs.measured import MeasuredPlanner
from graphs.remediation import RestartRule
from graphs.rule_planner import RecommendationHistory, RuleParams, RulePlanner, ScalingParams
from graphs.rules_index import IndexRule
from graphs.rules_reasoning import PURPOSE_TIERS, InsightParams
from graphs.rules_storage import StorageRule

if TYPE_CHECKING:
    from core.ports import Actor, ApprovalDesk, ChatRouter, Observer, Recorder
    from core.settings import LLMConfig, PlannerConfig, Settings
    from graphs.planners import Planner
    from llm.ledger import TokenLedger
    from policies.engine import PolicyEngine
    from policies.model import Policy

POLICY_SUMMARY_KEYS = {
    "dry_run",
    "read_only",
    "hosts",
    "workers",
    "scaling",
    "routing",
    "actions",
    "storage",
    "cost",
    "index",
}


def rule_params(policy: Policy, cfg: PlannerConfig, llm: LLMConfig | None = None) -> RuleParams:
    """Scaling targets and limits come from the policy file; trigger thresholds from brainops.toml; the
    routing targets from the configured tiers (without tiers: tiers named by purpose, as in eval scenarios)."""
    from llm.routing import DEFAULT_SPLIT, TierMap, configured_split

    tiers = TierMap.from_config(llm) if llm is not None and llm.tiers else None
    default_routing: dict[str, float] = dict(DEFAULT_SPLIT)
    cheap_routing: dict[str, float] = dict(cfg.cheap_routing)
    if llm is not None and tiers is not None:
        default_routing, cheap_routing = configured_split(llm, tiers), tiers.spread(cfg.cheap_routing)
    scaling = {}
    for kind in cfg.scaled_kinds:
        lim, sc = policy.worker_limits(kind), policy.scaling
        scaling[kind] = ScalingParams(
            stage=STAGE_OF_KIND[kind],
            min_workers=lim.min,
            max_workers=lim.max,
            target_per_worker=float(lim.target_backlog_per_worker),
            activation=lim.activation_backlog,
            tolerance=sc.tolerance,
            max_step_up=sc.max_step_up,
            max_step_down=sc.max_step_down,
            stabilization_s=sc.scale_down_stabilization_s,
            cooldown_s=policy.cooldown_for("scale_workers"),
            est_cpu_percent=lim.est_cpu_percent,
            est_mem_percent=lim.est_mem_percent,
            llm_bound=kind in LLM_BOUND_KINDS,
            max_wait_s=lim.max_wait_s,
        )
    return RuleParams(
        scaling=scaling,
        dedup_threshold=cfg.dedup_threshold,
        dedup_cooldown_s=max(cfg.dedup_cooldown_s, policy.cooldown_for("run_dedup")),
        dedup_dry_run_cooldown_s=max(RuleParams.dedup_dry_run_cooldown_s, policy.cooldown_for("run_dedup")),
        recluster_change_ratio=cfg.recluster_change_ratio,
        recluster_max_age_s=cfg.recluster_max_age_s,
        recluster_cooldown_s=max(cfg.recluster_cooldown_s, policy.cooldown_for("run_recluster")),
        embed_job_threshold=cfg.embed_job_threshold,
        embed_rows_per_shard=cfg.embed_rows_per_shard,
        embed_max_shards=cfg.embed_max_shards,
        budget_pace_high=cfg.budget_pace_high,
        budget_pace_low=cfg.budget_pace_low,
        cheap_routing=cheap_routing,
        default_routing=default_routing,
        embed_est=(policy.worker_limits("embed").est_cpu_percent, policy.worker_limits("embed").est_mem_percent),
        host_ceilings={name: (lim.cpu_ceiling_percent, lim.mem_ceiling_percent) for name, lim in policy.hosts.items()},
        cost=CostModel({name: lim.cost_per_hour for name, lim in policy.hosts.items()}),
        restart=RestartRule(
            **policy.remediation.model_dump(),
            cooldown_s=policy.cooldown_for("restart_worker"),
            refusal_backoff_s=RuleParams.refusal_backoff_s,
        ),
        storage=StorageRule(
            policy.storage,
            {a: policy.cooldown_for(a) for a in ("prune_versions", "rotate_logs", "archive_decisions")},
            RuleParams.refusal_backoff_s,
        ),
        max_llm_per_1k_records=policy.cost.max_llm_per_1k_records,
        insight=insight_params(policy, tiers),
        index=IndexRule.from_policy(policy.index, policy.cooldown_for("optimize_index"), RuleParams.refusal_backoff_s),
    )


def insight_params(policy: Policy, tiers: Any) -> InsightParams:
    """The reasoning-tier and query-analysis rules' figures from the policy, the tiers from brainops.toml."""
    return InsightParams(
        tiers=tiers.order if tiers is not None else PURPOSE_TIERS,
        yield_floor=policy.reasoning.yield_floor,
        min_attempts=policy.reasoning.min_attempts,
        tier_cooldown_s=policy.cooldown_for("set_reasoning_tier"),
        analyze_backlog=policy.queries.analyze_backlog,
        analyze_cooldown_s=policy.cooldown_for("run_query_analysis"),
        refusal_backoff_s=RuleParams.refusal_backoff_s,
    )


def _strategic_allowed(policy: Policy, llm: LLMConfig | None) -> bool:
    """The planner may use the strategic tier when the policy allows every tier or names it (or its purpose)."""
    allowed = policy.routing.allowed_tiers
    if not allowed or "strategic" in allowed:
        return True
    if llm is None or not llm.tiers:
        return False
    from llm.routing import TierMap

    return TierMap.from_config(llm).purpose_tier["strategic"] in allowed


@dataclass(frozen=True)
class ModelSetup:
    """What the model planner runs on: a router over the configured tiers and the loop's bounds."""

    router: ChatRouter
    max_steps: int = 6
    max_invalid: int = 2

    @classmethod
    def from_settings(cls, settings: Settings, ledger: TokenLedger | None = None) -> ModelSetup | None:
        """None when no tiers are configured or no tier has its key: then the rules decide."""
        if not settings.llm.tiers:
            return None
        from llm.ledger import TokenLedger
        from llm.router import TierRouter

        router = TierRouter.from_settings(settings, ledger or TokenLedger.from_settings(settings))
        return cls.of(router, settings.llm) if router.enabled else None

    @classmethod
    def of(cls, router: ChatRouter, llm: LLMConfig) -> ModelSetup:
        return cls(router, max_steps=llm.max_steps, max_invalid=llm.max_invalid_calls)


def build_planner(
    policy: Policy,
    engine: PolicyEngine,
    cfg: PlannerConfig,
    model: ModelSetup | None = None,
    history: RecommendationHistory | None = None,
    meters: CapacityMeters | None = None,
    llm: LLMConfig | None = None,
    corrections: Callable[[], Mapping[tuple[str, str], float]] | None = None,
) -> Planner:
    """Rules always decide when nothing better is available; a configured model planner goes in front.
    `history` (the scale-down stabilization window) and `meters` (measured throughput and arrivals) carry
    over to planners rebuilt for a policy edit."""
    rules = RulePlanner(
        rule_params(policy, cfg, llm),
        history or RecommendationHistory(),
        meters or CapacityMeters(),
        approval_free=lambda proposal, obs, now: (
            engine.evaluate(proposal, obs, now).verdict is not Verdict.NEEDS_APPROVAL
        ),
        project=engine.project,
        corrections=corrections,
    )
    if model is None:
        return MeasuredPlanner(rules, rules)
    from graphs.llm_planner import make_llm_planner
    from graphs.planners import FallbackPlanner
    from tools.registry import action_tools, read_only_tools

    primary = make_llm_planner(
        model.router,
        [*read_only_tools(), *action_tools()],
        engine,
        max_steps=model.max_steps,
        max_invalid=model.max_invalid,
        allow_strategic=_strategic_allowed(policy, llm),
    )
    return MeasuredPlanner(FallbackPlanner(primary=primary, fallback=rules), rules)


def policy_summary(policy: Policy, tier_ranks: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The policy as the model sees it through get_policy_limits: limits, routing limits (with the configured
    tiers and the purpose each serves, `tier_ranks`), and per allowed action its risk, cooldown and what needs
    a human ("always" for a destructive action)."""
    summary = policy.model_dump(mode="json", include=POLICY_SUMMARY_KEYS - {"actions"})
    if tier_ranks:
        summary["routing"]["tiers"] = dict(tier_ranks)
    actions: dict[str, Any] = {}
    for name in policy.actions:
        act = policy.action_policy(name)
        if act is None:
            continue
        entry: dict[str, Any] = {"risk": act.risk, "cooldown_s": policy.cooldown_for(name)}
        rules = [{"when": rule.when, "reason": rule.reason or rule.id} for rule in act.approval_when]
        if act.destructive:
            entry["needs_approval"] = "always"
        elif rules:
            entry["needs_approval_when"] = rules
        actions[name] = entry
    return {**summary, "actions": actions}


@dataclass(frozen=True)
class TickPorts:
    """What a tick acts on: real parts in the agent, recording or simulated ones in evals."""

    observer: Observer
    actor: Actor
    desk: ApprovalDesk
    recorder: Recorder
    recent_decisions: Callable[[int], list[dict[str, Any]]] = field(default=lambda _n: [])
    checkpointer: Any = None
    clock: Callable[[], float] = time.time


def build_tick(ports: TickPorts, planner: Planner, policy: Policy, engine: PolicyEngine) -> Any:
    """The compiled tick graph: observe -> plan -> guard (this engine) -> act -> record."""
    from graphs.tick import build_tick_graph

    return build_tick_graph(
        observer=ports.observer,
        planner=planner,
        guard=engine.evaluate,
        project=engine.project,
        actor=ports.actor,
        desk=ports.desk,
        recorder=ports.recorder,
        recent_decisions=ports.recent_decisions,
        policy_summary=lambda: policy_summary(policy, engine.tier_ranks),
        checkpointer=ports.checkpointer,
        clock=ports.clock,
    )
