"""Configuration: one brainops.toml plus BRAINOPS_* environment overrides, loaded once at the entry point."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.config_errors import ENV_PREFIX, ConfigError, key_lines, toml_syntax_error, validation_problems
from core.kinds import KINDS
from core.llm_settings import (  # re-exported: settings hold them
    BudgetConfig as BudgetConfig,
)
from core.llm_settings import (
    DeploymentConfig as DeploymentConfig,
)
from core.llm_settings import (
    LLMConfig as LLMConfig,
)
from core.llm_settings import (
    StrictModel as StrictModel,
)
from core.llm_settings import (
    TierConfig as TierConfig,
)
from core.locations import DEFAULT_CONFIG as DEFAULT_CONFIG  # re-exported: doctor names it
from core.locations import anchor_paths, default_home, found_config, require_state

# Options each worker kind's command accepts, settable as defaults in [worker_defaults.KIND].
WORKER_OPTIONS: dict[str, frozenset[str]] = {k.name: k.default_options for k in KINDS}
# BRAINOPS_* variables that are not settings: the config path, the decision key (agent/state/decisions.py), the
# embedder's cache dir and threads (brain/embedder.py), the test fault seam (core/faults.py). Any other BRAINOPS_*
# name must map to a setting, or load_settings refuses it (tests/test_strict_config.py checks the code's names).
OTHER_ENV = frozenset(
    {"BRAINOPS_CONFIG", "BRAINOPS_DECISION_KEY", "BRAINOPS_CACHE_DIR", "BRAINOPS_EMBED_THREADS", "BRAINOPS_FAULT"}
)
MIN_TICK_SECONDS = 1.0


class HostConfig(StrictModel):
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


class CronJob(StrictModel):
    name: str
    cron: str  # crontab expression, 5 fields
    action: str
    args: dict[str, Any] = Field(default_factory=dict)  # checked against the action's own arguments

    @field_validator("cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"not a crontab expression (minute hour day month weekday): {exc}") from None
        return value

    @field_validator("action")
    @classmethod
    def _known_action(cls, value: str) -> str:
        from core.actions import ACTIONS

        if value not in ACTIONS:
            close = difflib.get_close_matches(value, ACTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown action {value!r}{hint}; known: {', '.join(ACTIONS)}")
        return value

    @field_validator("args")
    @classmethod
    def _args_fit_the_action(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from core.actions import BY_NAME

        spec = BY_NAME.get(str(info.data.get("action", "")))
        if spec is None:  # an unknown action is its own error
            return value
        unknown = sorted(set(value) - set(spec.arg_names))
        if unknown:
            close = [m for name in unknown for m in difflib.get_close_matches(name, spec.arg_names, n=1)]
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            takes = ", ".join(spec.arg_names) or "no arguments"
            raise ValueError(f"{spec.name} takes no {', '.join(unknown)}{hint}; it takes {takes}")
        try:
            spec.args.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"arguments of {spec.name}: {problems}") from None
        return value


class ScheduleConfig(StrictModel):
    tick_seconds: float = Field(default=30.0, ge=MIN_TICK_SECONDS)  # under 1 s the scheduler cannot keep up
    # one tick's bound: the model planner stops in time for the rules; past it no mutating action starts
    tick_deadline_s: float = Field(default=60.0, gt=0)
    cron: list[CronJob] = Field(default_factory=list)


class PlannerConfig(StrictModel):
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
    # the split the rule planner moves to while the budget burns too fast, by purpose (spread over each
    # purpose's tiers); it moves back to [llm.routing] (or the 60/35/5 default) once the pace is low again
    cheap_routing: dict[str, float] = Field(
        default_factory=lambda: {"routine": 0.85, "analysis": 0.15, "strategic": 0.0}
    )

    @field_validator("cheap_routing")
    @classmethod
    def _purposes_only(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - {"routine", "analysis", "strategic"})
        if unknown:
            raise ValueError(f"planner.cheap_routing is by purpose (routine, analysis, strategic), not {unknown}")
        return value

    scaled_kinds: list[str] = Field(default_factory=lambda: ["extract", "wisdom"])


class SlackConfig(StrictModel):
    mode: Literal["off", "http", "socket"] = "off"
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    channel: str | None = None
    port: int = 3000
    bind: str = "127.0.0.1"  # HTTP mode listens here; put a TLS reverse proxy in front for Slack to reach it
    api_url: str | None = None  # Slack Web API base; tests point it at a local stand-in


class McpConfig(StrictModel):
    """`brainops mcp --http` (README, "MCP server"): where it listens, and whether approvals may be answered there."""

    bind: str = "127.0.0.1"  # loopback by default; another address needs a token
    port: int = Field(default=8765, ge=1, le=65535)
    # When set, every HTTP request must carry "Authorization: Bearer <token>" (stdio needs none: it is local)
    token: SecretStr | None = None
    # With a token: HTTP clients may approve or deny, always as this approver (who must be listed in the
    # policy), never as a name the client gives. Unset: read and propose only, as over stdio.
    approver: str | None = None

    @field_validator("approver")
    @classmethod
    def _approver_needs_token(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("token") is None:
            raise ValueError("mcp.approver needs mcp.token: approvals over HTTP are answered only with a token")
        return value


class RayConfig(StrictModel):
    """`[ray]`: workers of the named hosts run as actors on a Ray cluster (fleet/ray_host.py). brainops decides
    the worker count per kind and host; Ray places actors on nodes carrying the resource `host:<name>`, and Ray's
    autoscaler adds nodes within the cluster YAML's max_workers. The caps here are checked before brainops asks
    for an actor that would need one more node."""

    # "local": a Ray on this machine, on loopback (the one this home's `brainops run` started, else a new one with a
    # `host:<name>` resource per host);
    # anything else is a cluster address as `ray.init` takes it ("auto", "10.0.0.5:6379", "ray://head:10001")
    address: str = "local"
    hosts: list[str] = Field(default_factory=list)  # hosts of [[hosts]] run on Ray; empty: every host
    namespace: str = "brainops"
    cpus_per_worker: float = Field(default=1.0, ge=0)  # Ray CPUs each actor reserves (embed on a GPU host: 1 GPU)
    max_nodes: int | None = Field(default=None, ge=1)  # no actor that needs a node past this many
    node_cost_per_hour: float = Field(default=0.0, ge=0)  # $ per node-hour, what max_cost_per_hour counts
    max_cost_per_hour: float | None = Field(default=None, ge=0)
    object_store_mb: int = Field(default=256, ge=75)  # "local" only: Ray's shared-memory object store


class Settings(BaseSettings):
    # The file is chosen in settings_customise_sources (config_path); extra="forbid" here and in every table.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    home: Path = Field(default_factory=default_home)  # where found: core/locations.py
    brain_uri: str | None = None  # LanceDB path or object-store URI; default <home>/brain
    # Object-store options of an s3:// / gs:// brain (endpoint, region, allow_http, ...), exported to this process
    # and its workers as the upper-cased variables the object store reads (AWS_ENDPOINT, ...). Credentials only
    # from the environment: a secret-looking key written in the file is refused (`load_settings`).
    brain_storage_options: dict[str, str] = Field(default_factory=dict)
    ray: RayConfig | None = None
    policy_file: Path | None = None  # default: the shipped policies/default.yaml
    # Seed a small demo brain at <home>/brain when none exists. Left unset, only with no config file at all (a
    # first run); never at a brain_uri someone wrote (see `seeds_demo_brain`).
    demo_seed: bool = True
    demo_scale: Literal["small", "seed"] = "small"
    local_host: str = "local"
    hosts: list[HostConfig] = Field(default_factory=lambda: [HostConfig(name="local", role="brain")])
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    mcp: McpConfig = Field(default_factory=McpConfig)
    # Default worker options per kind (batch_size, item_ms, ...), passed to every worker the agent starts.
    worker_defaults: dict[str, dict[str, Any]] = Field(default_factory=dict)
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"  # loopback by default; the brain host's LAN address lets Prometheus scrape
    # hmac key of the decision log's chain, kept outside `home` (docs/OPERATIONS.md, "Decision log"). None: the
    # default $XDG_CONFIG_HOME/brainops/decision-log.key (~/.config/...), made 0600 on first use.
    # $BRAINOPS_DECISION_KEY, when set, is the key itself and wins over the file.
    decision_key_file: Path | None = None
    # Where archive_decisions writes decision-log segment files (docs/OPERATIONS.md, "Disk pressure"); put it on
    # another disk or a mounted backup volume to free the brain host's. Default <home>/archive/decisions.
    decision_archive_dir: Path | None = None
    # The cost-per-result summary each tick writes atomically (docs/OPERATIONS.md, "STATUS.json"). Default
    # <home>/STATUS.json.
    status_file: Path | None = None

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

    _config_file: Path | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        self._config_file = config_path()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = config_path()
        if path is None:  # no file at all: defaults and the environment
            return (init_settings, env_settings)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=path))

    # ---- where the values came from
    @property
    def config_file(self) -> Path | None:
        """The config file these settings were read from; None when there was none (defaults and env only)."""
        return self._config_file

    @property
    def seeds_demo_brain(self) -> bool:
        """May a missing brain be seeded with the demo one? Never at a brain_uri someone wrote (a typo must not
        grow a demo brain); else when demo_seed is set true, or left unset with no config file at all."""
        if self.brain_uri and "brain_uri" in self.model_fields_set:
            return False
        if "demo_seed" in self.model_fields_set:
            return self.demo_seed
        return self.demo_seed and self._config_file is None

    def where(self, key: str) -> str | None:
        """Where top-level setting `key` was written: "environment BRAINOPS_KEY", "file:line", or None."""
        env = {name.upper(): name for name in os.environ}
        if f"{ENV_PREFIX}{key.upper()}" in env:
            return f"environment {env[ENV_PREFIX + key.upper()]}"
        if self._config_file is None:
            return None
        try:
            lines, _ = key_lines(self._config_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return None
        line = lines.get((key,))
        return f"{self._config_file}:{line}" if line else None

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
    def last_good_policy(self) -> Path:
        """The last policy text that loaded, kept for every process while the file fails to load."""
        return self.home / "policy.last-good.yaml"

    @property
    def checkpoint_db(self) -> Path:
        return self.home / "checkpoints.db"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def decision_archive_path(self) -> Path:
        return self.decision_archive_dir or self.home / "archive" / "decisions"

    @property
    def status_path(self) -> Path:
        return self.status_file or self.home / "STATUS.json"

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


def config_path(config: str | None = None) -> Path | None:
    """The config file to read: `config` (a --config flag) or $BRAINOPS_CONFIG, which must exist; else the first
    that exists in the search order (core/locations.py); else None (defaults and the environment only)."""
    named = config or os.environ.get("BRAINOPS_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            origin = "--config" if config else "BRAINOPS_CONFIG"
            why = "is a directory, not a config file" if path.is_dir() else "does not exist"
            raise ConfigError([f"{path}: config file {why} (named by {origin})"])
        return path
    return found_config()


def load_settings(config: str | None = None, *, existing_state: bool = False, **overrides: Any) -> Settings:
    """Settings from the config file (`config_path`) and the BRAINOPS_* environment. Every problem, an unknown
    key at any level included, raises ConfigError naming the file, the line and the key (or the variable).
    `existing_state` (commands that only read the state): a home without a state DB is a ConfigError too."""
    path = config_path(config)
    if config and path is not None:  # later loads in this process, and the workers it starts, read the same file
        os.environ["BRAINOPS_CONFIG"] = str(path.resolve())
    text, data = _read_toml(path) if path is not None else ("", {})
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = validation_problems(exc, Settings, path=path, text=text, data=data, environ=os.environ)
        raise ConfigError(problems) from None
    unknown = _unknown_env(settings)
    if unknown:
        raise ConfigError(unknown)
    anchor_paths(settings, path, set(data) - set(overrides))  # relative paths: against the file's directory
    _check_ray_hosts(settings, path, text)
    export_storage_options(settings, path, text, data)
    if existing_state:
        require_state(settings)
    return settings


def _line_of(path: Path | None, text: str, *key: str) -> str:
    lines, _ = key_lines(text) if text else ({}, None)
    line = lines.get(key) or lines.get(key[:1])
    return f"{path}:{line}" if path is not None and line else (str(path) if path is not None else "settings")


def _check_ray_hosts(settings: Settings, path: Path | None, text: str) -> None:
    if settings.ray is None:
        return
    known = {h.name for h in settings.hosts}
    unknown = [h for h in settings.ray.hosts if h not in known]
    if unknown:
        where = _line_of(path, text, "ray", "hosts")
        raise ConfigError([f"{where}: ray.hosts names no host of [[hosts]]: {', '.join(unknown)}"])


def export_storage_options(settings: Settings, path: Path | None, text: str, data: dict[str, Any]) -> None:
    """brain_storage_options -> AWS_ENDPOINT=... style variables (the environment wins), so every BrainStore in
    this process and every worker it starts opens the object store alike. A credential in the file is refused."""
    from core.redact import is_secret_key

    written = data.get("brain_storage_options") or {}
    secret = sorted(k for k in written if is_secret_key(k))
    if secret:
        where = _line_of(path, text, "brain_storage_options", secret[0])
        raise ConfigError(
            [
                f"{where}: brain_storage_options: {', '.join(secret)} is a credential; set it in the environment "
                f"({', '.join(k.upper() for k in secret)}) or use the host's cloud role, never in the file"
            ]
        )
    for key, value in settings.brain_storage_options.items():
        os.environ.setdefault(key.upper(), value)


def _read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    import tomllib

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: the config file is not UTF-8: {exc.reason}"]) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise toml_syntax_error(path, text, exc) from None


def _unknown_env(settings: Settings) -> list[str]:
    """BRAINOPS_* variables that name no setting (a top-level one pydantic-settings would silently skip)."""
    import difflib

    key_envs = {t.api_key_env.upper() for t in settings.llm.tiers if t.api_key_env}  # a tier's key may be one
    known = _env_names()
    problems = []
    for name in sorted(os.environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in OTHER_ENV or upper in key_envs:
            continue
        if upper[len(ENV_PREFIX) :].split("__", 1)[0].lower() in Settings.model_fields:
            continue
        close = difflib.get_close_matches(upper, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"environment {name}: no such setting{hint}")
    return problems


def _env_names() -> list[str]:
    """BRAINOPS_KEY for every setting and BRAINOPS_TABLE__KEY for every key of a table setting."""
    names = []
    for field, info in Settings.model_fields.items():
        names.append(f"{ENV_PREFIX}{field.upper()}")
        table = info.annotation
        if isinstance(table, type) and issubclass(table, BaseModel):
            names += [f"{ENV_PREFIX}{field.upper()}__{sub.upper()}" for sub in table.model_fields]
    return names
