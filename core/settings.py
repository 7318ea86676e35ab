"""Configuration: one brainops.toml plus BRAINOPS_* environment overrides, loaded once at the entry point."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG = "brainops.toml"
# Options each worker kind's command accepts, settable as defaults in [worker_defaults.KIND].
WORKER_OPTIONS: dict[str, frozenset[str]] = {
    "extract": frozenset({"batch_size", "item_ms", "limit"}),
    "wisdom": frozenset({"batch_size", "item_ms", "limit"}),
    "embed": frozenset({"batch_size", "limit"}),
    "dedup": frozenset(),
    "recluster": frozenset(),
}


class HostConfig(BaseModel):
    name: str
    address: str = "local"  # "local" means this machine, no SSH
    port: int = 22
    user: str | None = None
    key_file: str | None = None
    known_hosts: str | None = None
    role: Literal["orchestrator", "brain", "worker"] = "worker"
    gpu: bool = False
    max_workers: int = 8
    workdir: str = "~/.brainops"
    python: str = "python3"  # interpreter with brainops installed on that host
    connect_timeout_s: float = 5.0
    command_timeout_s: float = 10.0

    @property
    def is_local(self) -> bool:
        return self.address in ("local", "localhost")


class TierConfig(BaseModel):
    name: str
    model: str  # any litellm model string, e.g. "openai/glm-4.5"
    api_base: str | None = None
    api_key_env: str | None = None  # name of the env var holding the key; the key never sits in config
    max_tokens: int = 1024
    input_cost_per_mtok: float | None = None
    output_cost_per_mtok: float | None = None
    timeout_s: float = 30.0


class LLMConfig(BaseModel):
    tiers: list[TierConfig] = Field(default_factory=list)
    routine_tier: str | None = None
    escalation_tier: str | None = None
    strategic_tier: str | None = None
    max_steps: int = 6
    max_invalid_calls: int = 2
    cooldown_s: float = 30.0
    cache_dir: str | None = None
    redis_url: str | None = None


class BudgetConfig(BaseModel):
    window_s: int = 5 * 3600
    window_tokens: int = 800_000_000
    daily_cost_cap: float | None = None
    degrade_at: float = 0.8  # share of the window after which the planner drops to cheaper tiers


class CronJob(BaseModel):
    name: str
    cron: str  # crontab expression, 5 fields
    action: str
    args: dict[str, Any] = Field(default_factory=dict)


class ScheduleConfig(BaseModel):
    tick_seconds: float = 30.0
    cron: list[CronJob] = Field(default_factory=list)


class PlannerConfig(BaseModel):
    """Rule-planner triggers that are not guardrails (the policy file holds limits and targets)."""

    dedup_threshold: float = 0.005
    dedup_cooldown_s: float = 3600.0
    recluster_change_ratio: float = 0.05
    recluster_max_age_s: float = 24 * 3600.0
    recluster_cooldown_s: float = 600.0
    embed_job_threshold: int = 500
    embed_rows_per_shard: int = 20_000
    embed_max_shards: int = 4
    budget_pace_high: float = 1.2
    budget_pace_low: float = 0.7
    default_routing: dict[str, float] = Field(
        default_factory=lambda: {"routine": 0.6, "escalation": 0.35, "strategic": 0.05}
    )
    cheap_routing: dict[str, float] = Field(
        default_factory=lambda: {"routine": 0.85, "escalation": 0.15, "strategic": 0.0}
    )
    scaled_kinds: list[str] = Field(default_factory=lambda: ["extract", "wisdom"])


class SlackConfig(BaseModel):
    mode: Literal["off", "http", "socket"] = "off"
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    channel: str | None = None
    port: int = 3000
    bind: str = "127.0.0.1"  # HTTP mode listens here; put a TLS reverse proxy in front for Slack to reach it
    api_url: str | None = None  # Slack Web API base; tests point it at a local stand-in


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BRAINOPS_", env_nested_delimiter="__", extra="forbid", toml_file=DEFAULT_CONFIG
    )

    home: Path = Path(".brainops")
    brain_uri: str | None = None  # LanceDB path or object-store URI; default <home>/brain
    policy_file: Path | None = None  # default: the shipped policies/default.yaml
    demo_seed: bool = True  # seed a small demo brain when none exists
    demo_scale: Literal["small", "seed"] = "small"
    local_host: str = "local"
    hosts: list[HostConfig] = Field(default_factory=lambda: [HostConfig(name="local", role="brain")])
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    # Default worker options per kind (batch_size, item_ms, ...), passed to every worker the agent starts.
    worker_defaults: dict[str, dict[str, Any]] = Field(default_factory=dict)
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"  # loopback by default; the brain host's LAN address lets Prometheus scrape

    @field_validator("worker_defaults")
    @classmethod
    def _known_worker_options(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for kind, options in value.items():
            allowed = WORKER_OPTIONS.get(kind)
            if allowed is None:
                raise ValueError(f"worker_defaults: unknown worker kind {kind!r}; known: {', '.join(WORKER_OPTIONS)}")
            unknown = sorted(set(options) - allowed)
            if unknown:
                raise ValueError(
                    f"worker_defaults.{kind}: {kind} workers take no {', '.join(unknown)}; "
                    f"they take {', '.join(sorted(allowed)) or 'no options'}"
                )
        return value

    json_logs: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("BRAINOPS_CONFIG", DEFAULT_CONFIG)
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_path)
        return (init_settings, env_settings, toml)

    # ---- derived paths
    @property
    def brain_path(self) -> str:
        """Object-store URIs as given; local paths absolute, since workers may run from another directory."""
        if self.brain_uri and "://" in self.brain_uri:
            return self.brain_uri
        return str(Path(self.brain_uri or self.home / "brain").resolve())

    @property
    def state_db(self) -> Path:
        return self.home / "state.db"

    @property
    def checkpoint_db(self) -> Path:
        return self.home / "checkpoints.db"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def policy_path(self) -> Path:
        if self.policy_file:
            return self.policy_file
        return Path(__file__).resolve().parent.parent / "policies" / "default.yaml"

    def host(self, name: str) -> HostConfig:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def ensure_dirs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)


def load_settings(config: str | None = None, **overrides: Any) -> Settings:
    if config:
        os.environ["BRAINOPS_CONFIG"] = config
    return Settings(**overrides)
