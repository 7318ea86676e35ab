"""An approval as the CLI shows it: everything an approver needs to answer without opening another tool.

The full id (never cut: it is what `approve` takes), the action and its arguments, the planner's rationale
with its numbers, each policy rule that asked and why, the predicted effect where the proposal carries one,
the observed facts it was opened with (a dedup plan's count and pairs), and the time left. The same record
as one JSON object for `approvals --json`. Times are ISO-8601 local with their age, never epoch seconds.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from core.domain import approval_context_lines
from core.timefmt import local_iso, when

if TYPE_CHECKING:
    from agent.state.approvals import Approval

LABEL_WIDTH = 11


def iso(ts: float | None) -> str | None:
    return None if ts is None else local_iso(ts)


def rule_lines(approval: Approval) -> list[str]:
    """One line per policy rule that asked: "risk.scale_workers.large_scale: scaling one kind above 4 ..."."""
    lines = [f"{rule_id}: {reason}" if reason else rule_id for rule_id, reason in approval.rules]
    lines += [f"reason: {reason}" for reason in approval.unpaired_reasons]
    return lines or ["(no rule recorded)"]


def state_line(approval: Approval, now: float) -> tuple[str, str]:
    """(label, text): the time left while it can be answered, else how it ended and when."""
    if approval.is_open(now):
        return "expires", f"{when(approval.expires_at, now)}; unanswered by then, it is denied"
    if approval.status in ("pending", "expired"):  # pending here: overdue, not yet flipped by the loop
        why = approval.reason if approval.reason and not approval.reason.startswith("expired") else ""
        return "expired", f"{when(approval.expires_at, now)}: {why or 'no answer in time'}, so denied"
    at = when(approval.decided_at, now) if approval.decided_at is not None else "an unrecorded time"
    by = f" by {approval.decided_by}" if approval.decided_by else ""
    why = f": {approval.reason}" if approval.reason else ""
    return "decided", f"{approval.status}{by} at {at}{why}"


def approval_lines(approval: Approval, now: float) -> list[tuple[str, str]]:
    """(label, text) rows under the approval's header line; texts are never cut."""
    rows: list[tuple[str, str]] = [
        ("arguments", json.dumps(approval.args, sort_keys=True, ensure_ascii=False)),
        ("rationale", approval.rationale or "(none given)"),
    ]
    rows += [("policy", line) for line in rule_lines(approval)]
    if approval.prediction is not None:
        rows.append(("expected", approval.prediction.summary()))
    rows += [("facts", line) for line in approval_context_lines(dict(approval.context))]
    rows.append(state_line(approval, now))
    rows.append(
        ("requested", f"by {approval.requested_by} in tick {approval.tick_id}, {when(approval.created_at, now)}")
    )
    if approval.is_open(now):
        rows.append(("answer", f"brainops approve {approval.id} --by NAME"))
        rows.append(("", f"brainops deny {approval.id} --by NAME --reason TEXT"))
    return rows


def header(approval: Approval) -> str:
    return f"{approval.id}  {approval.action}  {approval.status}, risk {approval.risk}"


def render(approval: Approval, now: float) -> list[str]:
    """Plain text lines: the header, then aligned label: text rows."""
    body = [f"  {label + ':' if label else '':<{LABEL_WIDTH}} {text}" for label, text in approval_lines(approval, now)]
    return [header(approval), *body]


def approval_json(approval: Approval, now: float) -> dict[str, Any]:
    """One approval for `approvals --json`: the record's fields, the rules paired with their reasons, the
    expected effect as data and as the sentence shown, ISO times, and seconds left while it is open."""
    prediction = approval.prediction
    return {
        "id": approval.id,
        "tick_id": approval.tick_id,
        "action": approval.action,
        "args": approval.args,
        "rationale": approval.rationale,
        "risk": approval.risk,
        "status": approval.status,
        "open": approval.is_open(now),
        "rules": [{"id": rule_id, "reason": reason} for rule_id, reason in approval.rules],
        "reasons": list(approval.reasons),
        "prediction": None if prediction is None else prediction.model_dump(mode="json"),
        "expected": None if prediction is None else prediction.summary(),
        "context": approval.context,
        "facts": approval_context_lines(dict(approval.context)),
        "requested_by": approval.requested_by,
        "created_at": iso(approval.created_at),
        "expires_at": iso(approval.expires_at),
        "expires_in_s": round(approval.expires_at - now, 1) if approval.is_open(now) else None,
        "decided_by": approval.decided_by,
        "decided_at": iso(approval.decided_at),
        "reason": approval.reason,
    }
