"""The model tiers and the budget, as brainops.toml's [llm] and [budget] tables declare them (core/settings.py
loads them with the rest)."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator


class StrictModel(BaseModel):
    """Every config table: a key it does not declare is an error (a typo must not fall back to a default)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class DeploymentConfig(StrictModel):
    """One place a model is served: a provider endpoint, its key and its prices."""

    model: str  # any litellm model string, e.g. "openai/glm-4.5"
    api_base: str | None = None
    api_key_env: str | None = None  # name of the env var holding the key; the key never sits in config
    input_cost_per_mtok: float | None = Field(default=None, ge=0)  # USD; when set, wins over litellm's price map
    output_cost_per_mtok: float | None = Field(default=None, ge=0)
    timeout_s: float = Field(default=30.0, gt=0)


class TierConfig(DeploymentConfig):
    """A model tier: its primary deployment, then `backups` (the same model served elsewhere, e.g. GLM via
    OpenRouter when Z.ai fails), tried in order before the call falls back to another tier."""

    name: str
    max_tokens: int = Field(default=1024, gt=0)
    backups: list[DeploymentConfig] = Field(default_factory=list)

    def deployments(self) -> list[DeploymentConfig]:
        return [self, *self.backups]


class LLMConfig(StrictModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    tiers: list[TierConfig] = Field(default_factory=list)
    routine_tier: str | None = None
    analysis_tier: str | None = Field(default=None, validation_alias=AliasChoices("analysis_tier", "escalation_tier"))
    strategic_tier: str | None = None
    # fleet calls' share of each tier, by tier name; unset: the documented split (llm/routing.py DEFAULT_SPLIT)
    routing: dict[str, float] | None = None
    # a fallback may go to a pricier tier only while the call's estimated cost there stays at or under this (USD)
    fallback_cost_ceiling: float | None = Field(default=None, ge=0)
    max_steps: int = 6
    max_invalid_calls: int = 2
    cooldown_s: float = 30.0
    cache_dir: str | None = None
    redis_url: str | None = None

    @model_validator(mode="after")
    def _names_are_tiers(self) -> LLMConfig:
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"llm.tiers: tier names must be unique, got {names}")
        for purpose in ("routine", "analysis", "strategic"):
            chosen = getattr(self, f"{purpose}_tier")
            if chosen is not None and chosen not in names:
                raise ValueError(f"llm.{purpose}_tier = {chosen!r} is not one of llm.tiers {names}")
        unknown = sorted(set(self.routing or {}) - set(names))
        if unknown:
            raise ValueError(f"llm.routing names {unknown}, which are not among llm.tiers {names}")
        if self.routing is not None and (any(w < 0 for w in self.routing.values()) or sum(self.routing.values()) <= 0):
            raise ValueError(f"llm.routing weights must be non-negative and not all zero, got {self.routing}")
        return self


class BudgetConfig(StrictModel):
    window_s: int = 5 * 3600
    window_tokens: int = 800_000_000
    daily_cost_cap: float | None = None
    degrade_at: float = 0.8  # share of the window after which the planner drops to cheaper tiers
