"""What `brainops run` and `brainops tick` print for a tick: text lines (one line per decision, its outcome on the
next; never wrapped off a terminal), one JSON object per decision (settings.json_logs), or one JSON document
(`tick --json`)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from agent.service.agent import TickReport

STYLE = {"done": "green", "pending": "yellow", "denied": "red", "failed": "bold red", "expired": "red"}
STYLE |= {"verified": "green", "missed": "bold red", "inconclusive": "yellow"}


def planner_label(report: TickReport) -> str:
    planner = report.planner.label if report.planner.kind != "model" else f"model {report.planner.tier}"
    if report.planner.fallback_reason:
        planner += f" (fallback: {report.planner.fallback_reason})"
    return planner


def print_report(report: TickReport, console: Console | None = None) -> None:
    from rich.markup import escape

    from agent.cli.console import make_console
    from core.timefmt import when

    out = console or make_console()
    out.print(
        f"[dim]{when(time.time())}[/] tick [bold]{report.tick_id}[/] planner={escape(planner_label(report))} "
        f"{report.duration_s:.2f}s",
        highlight=False,
    )
    for rejected in report.rejected:
        out.print(
            f"   [red]rejected model call[/] {escape(str(rejected.get('tool')))}: {escape(str(rejected.get('reason')))}"
        )
    for proposal, verdict, outcome in zip(report.proposals, report.verdicts, report.outcomes, strict=True):
        style = STYLE.get(outcome.status, "white")
        args = escape(" ".join(f"{k}={v}" for k, v in proposal.args.items()))
        rules = escape(",".join(verdict.get("rule_ids", [])))
        out.print(
            f"   {escape(proposal.action)} {args} [dim]<- {escape(proposal.rationale)}[/]\n"
            f"     [{style}]{outcome.status}[/] [dim]{escape(str(verdict.get('verdict')))} ({rules})[/] "
            f"{escape(outcome.detail)}",
            highlight=False,
        )
        if proposal.prediction is not None:
            out.print(f"     expected: {escape(proposal.prediction.summary())}", highlight=False)
        elif proposal.expectation is not None:
            out.print(f"     expected: {escape(proposal.expectation.summary)}", highlight=False)
    for checked in report.verifications:  # earlier actions, judged before this tick planned
        style = STYLE.get(checked["verdict"], "white")
        out.print(
            f"   verify {escape(checked['action'])} {escape(checked['action_id'])}: [{style}]{checked['verdict']}[/] "
            f"{escape(checked['detail'])}",
            highlight=False,
        )


def decision_events(report: TickReport) -> list[dict[str, Any]]:
    """One flat object per decision (and per rejected model call), each naming its tick: what `log_report`
    writes as one JSON line each."""
    base = {"tick_id": report.tick_id, "planner": planner_label(report), "tick_duration_s": report.duration_s}
    events: list[dict[str, Any]] = [
        {**base, "event": "rejected_model_call", "tool": r.get("tool"), "reason": r.get("reason")}
        for r in report.rejected
    ]
    for proposal, verdict, outcome in zip(report.proposals, report.verdicts, report.outcomes, strict=True):
        events.append(
            {
                **base,
                "event": "decision",
                "action": proposal.action,
                "arguments": proposal.args,
                "rationale": proposal.rationale,
                "verdict": verdict.get("verdict"),
                "rule_ids": list(verdict.get("rule_ids", [])),
                "status": outcome.status,
                "detail": outcome.detail,
                "data": outcome.data,
                "expected": proposal.prediction.summary() if proposal.prediction is not None else None,
            }
        )
    return events


def log_report(report: TickReport) -> None:
    """settings.json_logs: each decision as one record of the decisions logger (logging_setup puts them on stdout,
    one JSON object per line)."""
    from agent.service.logging_setup import DECISIONS_LOGGER

    log = logging.getLogger(DECISIONS_LOGGER)
    for event in decision_events(report):
        if event["event"] == "decision":
            msg = f"{event['action']} -> {event['status']}: {event['rationale']}"
        else:
            msg = f"rejected model call {event['tool']}: {event['reason']}"
        log.info(msg, extra=event)


def report_json(report: TickReport) -> dict[str, Any]:
    """`tick --json`: the whole tick as one document."""
    return {
        "tick_id": report.tick_id,
        "planner": report.planner.model_dump(mode="json"),
        "decisions": [
            {"proposal": p.model_dump(mode="json"), "verdict": v, "outcome": o.model_dump(mode="json")}
            for p, v, o in zip(report.proposals, report.verdicts, report.outcomes, strict=True)
        ],
        "rejected": list(report.rejected),
        "verifications": list(report.verifications),
        "duration_s": report.duration_s,
    }
