"""`brainops hosts trust NAME` and `brainops hosts check`.

brainops never accepts an unknown SSH host key on its own. Trusting a host is an explicit,
operator-run trust-on-first-use step: `hosts trust NAME` fetches the key the host presents, prints its
SHA256 fingerprint (compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run on that
host), and appends it to the host's configured known_hosts only after --yes or an interactive "y".
A host whose key differs from the listed one is refused: remove the old line by hand if the change
is expected.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from core.settings import HostConfig, Settings

from agent.cli.console import EXIT_REFUSED, EXIT_USAGE

app = typer.Typer(no_args_is_help=True, help=__doc__)

EXIT_UNREACHABLE = EXIT_REFUSED  # 1: the host could not be reached; a bad config or usage is EXIT_USAGE (2)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="hosts", help="SSH hosts: trust a host key (operator-confirmed), check every host.")


def _settings(config: str | None) -> Settings:
    from core.settings import load_settings

    return load_settings(config)


def _remote_config(settings: Settings, name: str) -> HostConfig:
    try:
        config = settings.host(name)
    except KeyError:
        known = ", ".join(h.name for h in settings.hosts) or "none"
        raise typer.BadParameter(f"unknown host {name!r}; configured hosts: {known}", param_hint="NAME") from None
    if config.is_local:
        raise typer.BadParameter(f"host {name!r} is local (address {config.address!r}): no SSH key to trust")
    return config


@app.command("trust")
def trust(
    name: str = typer.Argument(..., help="Host name, as in a hosts entry of brainops.toml."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Trust without asking (you checked the fingerprint)."),
    config: str = typer.Option(None, "--config", "-c", help="brainops.toml (default: ./brainops.toml)"),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds for the key exchange."),
) -> None:
    """Trust NAME's SSH host key (trust on first use, decided by you).

    Fetches the key NAME presents, prints its SHA256 fingerprint, and appends it to the host's
    known_hosts (host.known_hosts, default ~/.ssh/known_hosts) only after --yes or an interactive yes.
    Compare the fingerprint first with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on NAME.
    A key that differs from one already listed is refused.
    """
    from fleet.host_keys import (
        HostKeyFetchError,
        append_known_host,
        fetch_host_key,
        host_key_fingerprint,
        host_key_status,
        known_hosts_path,
    )

    host = _remote_config(_settings(config), name)
    try:
        key = fetch_host_key(host.address, host.port, timeout)
    except HostKeyFetchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNREACHABLE) from exc
    path = known_hosts_path(host)
    fingerprint = host_key_fingerprint(key)
    status = host_key_status(path, host.address, host.port, key)
    typer.echo(f"{name} ({host.address}:{host.port}) presents {key.get_name()} {fingerprint}")
    if status == "known":
        typer.echo(f"already trusted in {path}")
        return
    if status == "changed":
        typer.echo(
            f"REFUSED: {path} lists a DIFFERENT {key.get_name()} key for this host. This may be an attack; "
            "if the host was really reinstalled, delete the old line by hand and run trust again.",
            err=True,
        )
        raise typer.Exit(EXIT_REFUSED)
    if not yes:
        if not sys.stdin.isatty():
            typer.echo("not trusted: no terminal to confirm on; check the fingerprint, then pass --yes", err=True)
            raise typer.Exit(EXIT_USAGE)
        if not typer.confirm(f"Trust this key and add it to {path}?", default=False):
            typer.echo("not trusted")
            raise typer.Exit(EXIT_REFUSED)
    line = append_known_host(path, host.address, host.port, key)
    typer.echo(f"trusted: appended to {path}: {line.split()[0]} {key.get_name()} {fingerprint}")


@app.command("check")
def check(
    config: str = typer.Option(None, "--config", "-c", help="brainops.toml (default: ./brainops.toml)"),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds per host (hosts run in parallel)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per host."),
) -> None:
    """Connect to every SSH host (verifying its key) and run the probe; exit 1 if any is unreachable.
    With --json, stdout has one JSON object per host and nothing else."""
    from fleet.commands import UnsafeCommandError
    from fleet.remote import RemoteHost, observe_hosts

    settings = _settings(config)
    remote = [h for h in settings.hosts if not h.is_local]
    if not remote:  # under --json: no objects on stdout, the reason on stderr
        typer.echo("no SSH hosts configured (every host is local)", err=as_json)
        return
    try:
        hosts = [RemoteHost(h) for h in remote]
    except UnsafeCommandError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from exc
    from agent.cli.doctor_checks_hosts import quiet_paramiko

    with quiet_paramiko():  # one line per unreachable host below, not paramiko's transport tracebacks
        snaps = observe_hosts(hosts, timeout)
    for host in hosts:
        host.close()
    rows: list[dict[str, object]] = [
        {
            "host": s.metrics.host,
            "address": f"{h.address}:{h.port}",
            "reachable": s.metrics.reachable,
            "ms": round(s.metrics.observed_in_ms, 1),
            "workers": len(s.workers),
            "error": s.metrics.error,
        }
        for h, s in zip(remote, snaps, strict=True)
    ]
    _print_rows(rows, as_json)
    if not all(r["reachable"] for r in rows):
        raise typer.Exit(EXIT_UNREACHABLE)


def _print_rows(rows: list[dict[str, object]], as_json: bool) -> None:
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    from rich.markup import escape
    from rich.table import Table

    from agent.cli.console import make_console

    table = Table("host", "address", "ok", "ms", "workers", "error")
    for r in rows:
        ok = "[green]yes[/]" if r["reachable"] else "[red]NO[/]"
        error = escape(str(r["error"] or ""))
        table.add_row(escape(str(r["host"])), str(r["address"]), ok, str(r["ms"]), str(r["workers"]), error)
    make_console().print(table)
