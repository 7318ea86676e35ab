"""`brainops doctor`: operations commands. Wired into the root app by agent/cli.py (`cli_ops.register(app)`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from agent.cli.doctor import DoctorReport

_STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "bold red"}


def register(app: typer.Typer) -> None:
    app.command("doctor", help="Check config, policy, brain, state DB, SSH hosts, model keys, budget and Slack.")(
        doctor
    )


def doctor(
    config: str = typer.Option(None, "--config", "-c", help="brainops.toml (default: ./brainops.toml)"),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="Seconds per SSH host (hosts run in parallel)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per check."),
) -> None:
    """Every check prints OK, WARN or FAIL with a concrete fix; the exit code is 1 when any check FAILs."""
    from agent.cli.console import make_console
    from agent.cli.doctor import run_doctor

    console = make_console(stderr=True)
    if as_json:
        report = run_doctor(config, timeout_s=timeout)
        for check in report.checks:
            typer.echo(json.dumps(asdict(check)))
    else:
        with console.status("checking") as status:
            report = run_doctor(config, timeout_s=timeout, on_check=lambda n: status.update(f"checking {n}"))
        make_console().print(_table(report))
        _summary(report)
    raise typer.Exit(report.exit_code)


def _table(report: DoctorReport) -> object:
    from rich.markup import escape
    from rich.table import Table

    table = Table("check", "status", "detail", "fix", title="brainops doctor", show_lines=True)
    for check in report.checks:
        style = _STYLE[check.status]
        table.add_row(escape(check.name), f"[{style}]{check.status}[/]", escape(check.detail), escape(check.fix))
    return table


def _summary(report: DoctorReport) -> None:
    counts = {s: sum(c.status == s for c in report.checks) for s in ("OK", "WARN", "FAIL")}
    line = f"{counts['OK']} ok, {counts['WARN']} warning(s), {counts['FAIL']} failure(s)"
    typer.echo(line if not report.failed else f"{line}: fix the FAIL rows above before `brainops run`")
