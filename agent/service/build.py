"""Builds the planner the settings ask for: rules always, the model planner in front of it when configured."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphs.rule_planner import RecommendationHistory, RuleParams, ScalingParams

if TYPE_CHECKING:
    from core.settings import PlannerConfig
    from policies.model import Policy

STAGE_OF_KIND = {"extract": "extract", "embed": "embed", "wisdom": "wisdom"}
LLM_BOUND_KINDS = ("extract", "wisdom")  # their work is LLM calls paid from the token budget


def rule_params(policy: Policy, cfg: PlannerConfig) -> RuleParams:
    """Scaling targets and limits come from the policy file; trigger thresholds from brainops.toml."""
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
        )
    return RuleParams(
        scaling=scaling,
        dedup_threshold=cfg.dedup_threshold,
        dedup_cooldown_s=max(cfg.dedup_cooldown_s, policy.cooldown_for("run_dedup")),
        recluster_change_ratio=cfg.recluster_change_ratio,
        recluster_max_age_s=cfg.recluster_max_age_s,
        recluster_cooldown_s=max(cfg.recluster_cooldown_s, policy.cooldown_for("run_recluster")),
        embed_job_threshold=cfg.embed_job_threshold,
        embed_rows_per_shard=cfg.embed_rows_per_shard,
        embed_max_shards=cfg.embed_max_shards,
        budget_pace_high=cfg.budget_pace_high,
        budget_pace_low=cfg.budget_pace_low,
        cheap_routing=dict(cfg.cheap_routing),
        default_routing=dict(cfg.default_routing),
        embed_est=(policy.worker_limits("embed").est_cpu_percent, policy.worker_limits("embed").est_mem_percent),
        host_ceilings={name: (lim.cpu_ceiling_percent, lim.mem_ceiling_percent) for name, lim in policy.hosts.items()},
    )


def new_history(params: RuleParams) -> RecommendationHistory:
    return RecommendationHistory()


def build_planner(settings: Any, policy: Policy, engine: Any) -> Any:
    """Rules always decide when nothing better is available; a configured model planner goes in front."""
    from graphs.rule_planner import RulePlanner

    params = rule_params(policy, settings.planner)
    rules = RulePlanner(params, new_history(params))
    model = _model_planner(settings, engine)
    if model is None:
        return rules
    from graphs.planners import FallbackPlanner

    return FallbackPlanner(primary=model, fallback=rules)


def _model_planner(settings: Any, engine: Any) -> Any:
    """The LLM planner when tiers are configured and a key is present; else None (rules decide)."""
    if not settings.llm.tiers:
        return None
    from graphs.llm_planner import make_llm_planner
    from llm.ledger import TokenLedger
    from llm.router import TierRouter
    from tools.registry import action_tools, read_only_tools

    router = TierRouter.from_settings(settings, TokenLedger.from_settings(settings))
    if not router.enabled:
        return None
    return make_llm_planner(
        router,
        [*read_only_tools(), *action_tools()],
        engine,
        max_steps=settings.llm.max_steps,
        max_invalid=settings.llm.max_invalid_calls,
        allow_strategic="strategic" in engine.policy.routing.allowed_tiers,
    )
