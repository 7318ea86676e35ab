"""`brainops doctor`: is this machine ready to run the agent? Each check says OK, WARN or FAIL and how to fix it.

Checks never print secret values (only the names of the variables or settings that hold them), never trust
a host key (that is `brainops hosts trust`), bound every network step by a timeout, and create no file:
doctor is read-only, so it is safe before the first start and as the unit's ExecStartPre. The checks by
subject: doctor_checks_state.py, doctor_checks_hosts.py, doctor_checks_services.py (shared types in
doctor_checks.py); this module holds the config, policy and brain checks and runs them all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli.doctor_checks import Check, Status, fail, ok, warn
from agent.cli.doctor_checks_hosts import check_hosts, check_ray, check_remote_host
from agent.cli.doctor_checks_services import check_embedder, check_metrics_port, check_model_keys, check_slack
from agent.cli.doctor_checks_state import check_budget, check_decision_key, check_state_db

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = [
    "Check",
    "DoctorReport",
    "Status",
    "check_budget",
    "check_decision_key",
    "check_embedder",
    "check_hosts",
    "check_metrics_port",
    "check_model_keys",
    "check_ray",
    "check_remote_host",
    "check_slack",
    "check_state_db",
    "run_doctor",
]


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
    loaded = settings.config_file
    if loaded is None:
        return settings, warn(
            "config",
            "no config file found: built-in defaults and BRAINOPS_* env only",
            "copy deploy/brainops.toml.example to brainops.toml (or /etc/brainops/brainops.toml) and edit it",
        )
    hosts = ", ".join(f"{h.name}({h.role})" for h in settings.hosts)
    return settings, ok("config", f"{loaded} loaded; hosts {hosts}")


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
        ("decision key", lambda: check_decision_key(settings)),
        ("brain store", lambda: check_brain(settings)),
        ("hosts", lambda: check_hosts(settings, timeout_s)),
        ("ray", lambda: check_ray(settings)),
        ("model keys", lambda: check_model_keys(settings, env)),
        ("budget", lambda: check_budget(settings, time.time())),
        ("slack", lambda: check_slack(settings, settings.config_file)),
        ("metrics", lambda: check_metrics_port(settings)),
        ("embedder", check_embedder),
    ]
    checks = [config_check]
    for name, step in steps:
        on_check(name)
        result = step()
        checks.extend(result if isinstance(result, list) else [result])
    return DoctorReport(tuple(checks))
