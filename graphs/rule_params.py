"""The rule planner's parameters: scaling per kind from the policy, triggers from brainops.toml."""

from __future__ import annotations

from dataclasses import dataclass, field

from graphs.capacity import CostModel
from graphs.remediation import RestartRule
from graphs.rules_index import IndexRule
from graphs.rules_reasoning import InsightParams
from graphs.rules_storage import StorageRule
from graphs.scaling import ScalingParams


@dataclass(frozen=True)
class RuleParams:
    scaling: dict[str, ScalingParams]
    dedup_threshold: float = 0.005  # duplicate share of live entities that triggers a dedup run
    dedup_cooldown_s: float = 3600.0  # after a live dedup: no dedup of either kind
    dedup_dry_run_cooldown_s: float = 600.0  # after a dry run whose plan went stale before it could run
    recluster_change_ratio: float = 0.05  # changed relationships / all relationships
    recluster_max_age_s: float = 24 * 3600.0
    recluster_cooldown_s: float = 600.0
    embed_job_threshold: int = 500  # missing vectors that justify a one-shot (GPU) embedding job
    embed_rows_per_shard: int = 20_000
    embed_max_shards: int = 4
    budget_pace_high: float = 1.2
    budget_pace_low: float = 0.7
    cheap_routing: dict[str, float] = field(default_factory=dict)
    default_routing: dict[str, float] = field(default_factory=dict)
    # host -> (cpu %, mem %) above which no worker is added there; "*" for unlisted hosts
    host_ceilings: dict[str, tuple[float, float]] = field(default_factory=lambda: {"*": (90.0, 85.0)})
    embed_est: tuple[float, float] = (50.0, 8.0)  # host CPU / memory share of one embedding shard
    budget_floor: float = 0.05  # below this share of the window left, LLM-bound kinds are not scaled up
    budget_horizon_min: float = 30.0  # ... nor when the recent burn would empty the window within this long
    refusal_backoff_s: float = 3600.0  # after a human denies (or lets expire) an action, do not ask again for this long
    cost: CostModel = field(default_factory=lambda: CostModel({}))  # host prices, for the predicted compute cost
    restart: RestartRule = field(default_factory=RestartRule)  # when a worker out of line with its siblings restarts
    storage: StorageRule = field(default_factory=StorageRule)  # disk pressure (graphs/rules_storage.py)
    max_llm_per_1k_records: float | None = None  # the policy's cost target (graphs/rules_cost.py)
    insight: InsightParams = field(default_factory=InsightParams)  # reasoning tier and query analysis
    index: IndexRule = field(default_factory=IndexRule)  # when the records' vector index is optimized
