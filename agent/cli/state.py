"""`brainops decisions | approvals | approve | deny | budget`: the durable state, read and answered from a shell."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from agent.state.approvals import AnswerResult, OnAnswered
    from agent.state.decisions import DecisionRecord, ExpectedHead, VerifyReport
    from core.settings import Settings


ID_HELP = "Approval id as `brainops approvals` shows it, or its start when that names one approval (or one still open)."


def register(app: typer.Typer, on_answered: OnAnswered | None = None) -> None:
    """Add the state commands to the root app. `on_answered(settings, approval)` resumes the waiting graph
    after a successful `approve`/`deny` (the lead wires it; without it only the store is updated)."""
    decisions_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)
    decisions_app.callback()(_decisions_list)
    decisions_app.command(
        "verify", help="Check the decision log's hash and hmac chains (read-only), optionally against a recorded head."
    )(_decisions_verify)
    decisions_app.command("head", help="Print the chain head N:HASH, to record outside state.db.")(_decisions_head)
    app.add_typer(decisions_app, name="decisions", help="The decision log: newest records, `verify` or `head`.")
    app.command("approvals", help="Pending approvals.")(_approvals)
    app.command("approve", help="Approve a pending action.")(_answer_command(True, on_answered))
    app.command("deny", help="Deny a pending action.")(_answer_command(False, on_answered))
    app.command(
        "budget",
        help="Token budget (rolling window, reservations, pace, cost, routing) and cost per result per day and month.",
    )(_budget)


def _settings() -> Settings:
    """Settings for commands that read the state: none where there is none (one sentence, exit 2)."""
    from core.settings import load_settings

    return load_settings(existing_state=True)


def _decisions_list(
    ctx: typer.Context,
    last: int = typer.Option(20, "--last", "-n", min=1, help="How many of the newest records."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    action: str | None = typer.Option(None, "--action", metavar="ID", help="One action with its verdicts."),
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from agent.state.decisions import DecisionLog

    if action is not None:
        from agent.cli.decisions_action import show_action

        return show_action(DecisionLog(_settings().state_db), action, as_json)

    records = DecisionLog(_settings().state_db).last(last)
    if as_json:
        for record in records:
            typer.echo(record.to_json())
        return
    _print(_decisions_table(records))


def _decisions_verify(
    expect_head: str | None = typer.Option(
        None,
        "--expect-head",
        metavar="N:HASH",
        help="A head recorded elsewhere (`decisions head`, the metric, the log line, the Slack digest): "
        "fails if the log no longer reaches it unchanged (truncated, wiped, rewritten).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON document on stdout (ok, checked, head, ...); same exit codes."
    ),
) -> None:
    """Exit 0: one `ok:` line. Exit 1: one `TAMPERED at seq N` line. Exit 2: the log or key cannot be read.
    Only reads: no schema set up, no key created, a read-only connection."""
    import sqlite3

    from agent.state.decisions import DecisionKeyError, ExpectedHead, verify_log

    try:
        expected = ExpectedHead.parse(expect_head) if expect_head is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--expect-head") from None
    settings = _settings()
    try:
        report = verify_log(settings.state_db, key_file=settings.decision_key_file, expect_head=expected)
    except (DecisionKeyError, sqlite3.Error) as exc:
        what = (
            str(exc)
            if isinstance(exc, DecisionKeyError)
            else f"cannot read the decision log {settings.state_db}: {exc}"
        )
        if as_json:
            typer.echo(json.dumps({"ok": False, "error": what, "state_db": str(settings.state_db)}, sort_keys=True))
        typer.echo(f"error: {what}", err=True)
        raise typer.Exit(2) from None
    if report.ok:
        line = _verified_line(report, expected)
        typer.echo(json.dumps(_verify_json(report, expected, line), sort_keys=True) if as_json else line)
        return
    where = f" (record {report.first_bad_id})" if report.first_bad_id else ""
    line = f"TAMPERED at seq {report.first_bad_seq}{where} after {report.checked} good records: {report.reason}"
    if as_json:
        typer.echo(json.dumps(_verify_json(report, expected, line), sort_keys=True))
    typer.echo(line, err=True)
    raise typer.Exit(1)


def _verify_json(report: VerifyReport, expected: ExpectedHead | None, summary: str) -> dict[str, object]:
    head = report.head
    return {
        "ok": report.ok,
        "checked": report.checked,
        "head": None if head is None else str(head),
        "head_seq": None if head is None else head.seq,
        "head_keyed": None if head is None else head.keyed,
        "legacy_through": report.legacy_through,
        "expected_head": None if expected is None else str(expected),
        "first_bad_seq": report.first_bad_seq,
        "first_bad_id": report.first_bad_id,
        "reason": report.reason,
        "summary": summary,
    }


def _verified_line(report: VerifyReport, expected: ExpectedHead | None) -> str:
    """One line: the count, which chains cover what (legacy unkeyed records said so), the head to record."""
    head = report.head
    if head is None:
        scheme = "empty log (pass --expect-head to tell an empty log from a wiped one)"
    elif report.legacy_through == 0:
        scheme = "chain intact, hmac-sha256 keyed"
    elif report.legacy_through < head.seq:
        scheme = (
            f"chain intact, legacy unkeyed sha256 up to seq {report.legacy_through}, "
            f"hmac-sha256 keyed from seq {report.legacy_through + 1}"
        )
    else:
        scheme = (
            f"chain intact, legacy unkeyed sha256 up to seq {report.legacy_through} "
            "(no hmac yet: anyone who can write state.db could have rewritten it)"
        )
    matched = f"; matches the expected head {expected}" if expected is not None else ""
    shown = f"; head {head}" if head is not None else ""
    return f"ok: {report.checked} records, {scheme}{shown}{matched}"


def _decisions_head() -> None:
    import sqlite3

    from agent.state.decisions import read_head

    settings = _settings()
    try:
        head = read_head(settings.state_db)
    except sqlite3.Error as exc:
        typer.echo(f"error: cannot read the decision log {settings.state_db}: {exc}", err=True)
        raise typer.Exit(2) from None
    if head is None:
        typer.echo("no decision records yet", err=True)
        raise typer.Exit(1)
    typer.echo(str(head))


def _approvals(
    all_recent: bool = typer.Option(False, "--all", help="Also decided and expired ones (the newest 50)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout: {now, approvals: [...]}."),
) -> None:
    """Each approval with its full id, action and arguments, rationale, the policy rules that asked and why,
    the expected effect, the facts it was opened with and the time left."""
    from agent.cli import approval_view as view
    from agent.state.approvals import ApprovalStore

    store = ApprovalStore(_settings().state_db)
    now = time.time()
    rows = store.recent() if all_recent else store.pending(now)
    if as_json:
        document = {"now": view.iso(now), "approvals": [view.approval_json(a, now) for a in rows]}
        typer.echo(json.dumps(document, sort_keys=True, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no approvals recorded" if all_recent else "no pending approvals")
        return
    from rich.markup import escape

    from agent.cli.console import make_console

    console = make_console()
    for i, approval in enumerate(rows):
        first, *rest = view.render(approval, now)
        console.print(("\n" if i else "") + f"[bold]{escape(first)}[/]", soft_wrap=True, highlight=False)
        for line in rest:
            console.print(escape(line), soft_wrap=True, highlight=False)


def _answer_command(approve: bool, on_answered: OnAnswered | None) -> Callable[..., None]:
    def approve_command(
        approval_id: str = typer.Argument(..., help=ID_HELP),
        by: str = typer.Option(..., "--by", help="Your approver name, as listed in the policy file."),
    ) -> None:
        _answer(approval_id, True, by, "", on_answered)

    def deny_command(
        approval_id: str = typer.Argument(..., help=ID_HELP),
        by: str = typer.Option(..., "--by", help="Your approver name, as listed in the policy file."),
        reason: str = typer.Option(..., "--reason", help="Why: recorded and shown to the planner."),
    ) -> None:
        _answer(approval_id, False, by, reason, on_answered)

    return approve_command if approve else deny_command


def _answer(ref: str, approve: bool, by: str, reason: str, on_answered: OnAnswered | None) -> None:
    from agent.state.approvals import ApprovalRefError, ApprovalStore, answer_approval

    settings = _settings()
    try:
        approval_id = ApprovalStore(settings.state_db).resolve(ref).id
    except ApprovalRefError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    result: AnswerResult = answer_approval(settings, approval_id, approve, by, reason, on_answered=on_answered)
    ran = result.outcome
    if result.ok and approve and ran is not None and ran.status not in ("done", "dry_run"):
        typer.echo(f"{result.message}, but the action did not run: {ran.status}: {ran.detail}", err=True)
        raise typer.Exit(1)
    if result.ok:
        typer.echo(result.message + (f": {ran.detail}" if ran is not None and ran.detail else ""))
        return
    typer.echo(f"{result.status}: {result.message}", err=True)
    raise typer.Exit(1)


def _budget(
    as_json: bool = typer.Option(
        False, "--json", help="One JSON document on stdout: the ledger's state and `cost_per_result`."
    ),
) -> None:
    from rich.table import Table

    from agent.cli.budget import cost_json, cost_lines, cost_per_result
    from llm.ledger import TokenLedger

    settings = _settings()
    state = TokenLedger.from_settings(settings).state()
    cost = cost_per_result(settings)
    if as_json:
        document = {
            **state.model_dump(mode="json"),
            "remaining_tokens": state.remaining_tokens,
            "used_share": round((state.used_tokens + state.reserved_tokens) / state.window_tokens, 6),
            "burning_too_fast": state.pace > 1,
            "cost_per_result": cost_json(cost),
        }
        typer.echo(json.dumps(document, sort_keys=True))
        return
    table = Table(title=f"token budget (rolling {state.window_s / 3600:g} h)")
    table.add_column("what")
    table.add_column("value", justify="right")
    share = (state.used_tokens + state.reserved_tokens) / state.window_tokens
    table.add_row("used", f"{state.used_tokens:,}")
    table.add_row("reserved", f"{state.reserved_tokens:,}")
    table.add_row("remaining", f"{state.remaining_tokens:,} of {state.window_tokens:,} ({1 - share:.1%})")
    table.add_row("pace", f"{state.pace:.2f}x" + ("  (burning too fast)" if state.pace > 1 else ""))
    cap = f" of {state.daily_cost_cap:.2f}" if state.daily_cost_cap is not None else ""
    table.add_row("cost today (UTC)", f"{state.cost_today:.4f}{cap}")
    for tier, tokens in state.per_tier.items():
        table.add_row(f"tier {tier}", f"{tokens:,}")
    for tier, weight in state.routing.items():
        table.add_row(f"routing {tier}", f"{weight:.0%}")
    for task, tier in state.task_tiers.items():
        table.add_row(f"{task} pinned to", tier)
    _print(table)
    for line in cost_lines(cost):
        typer.echo(line)


def _decisions_table(records: list[DecisionRecord]) -> Table:
    from rich.table import Table

    from core.timefmt import when

    now = time.time()
    table = Table(title=f"last {len(records)} decisions")
    for column in ("time", "tick", "planner", "action", "args", "verdict", "outcome", "approver"):
        table.add_column(column, overflow="fold")
    for r in records:
        planner = r.planner.label if r.planner.kind != "model" else (r.planner.tier or r.planner.model or "model")
        table.add_row(
            when(r.time, now),
            r.tick_id,
            planner,
            r.action,
            _short(r.args),
            r.verdict or "",
            f"{r.outcome.status} {r.outcome.detail}".strip(),
            r.approver or "",
        )
    return table


def _short(value: object, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _print(table: Table) -> None:
    from agent.cli.console import make_console

    make_console().print(table)
