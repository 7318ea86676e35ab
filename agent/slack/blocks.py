"""Block Kit builders for brainops' Slack messages: approval prompts, their final states, tick digests.

Pure functions from plain values to Slack JSON, so they are cheap to test and carry no Slack client.
Every message also gets a plain `text` fallback (notifications and screen readers use it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from core.domain import approval_context_lines
from core.timefmt import when

if TYPE_CHECKING:
    from core.domain import ScalePrediction

APPROVE_ACTION_ID = "brainops_approve"
DENY_ACTION_ID = "brainops_deny"
MAX_ARGS_CHARS = 600  # Slack caps a section's text at 3000 chars; arguments stay readable well below that
MAX_DIGEST_LINES = 12
MAX_FACTS_CHARS = 2000  # the plan's count and sample pairs, within Slack's 3000-char section limit
MAX_SECTION_CHARS = 3000  # Slack rejects the whole message when one section's text is longer
FULL_TEXT = "… (cut to fit Slack: `brainops approvals` shows all of it)"

Block = dict[str, Any]
OPEN_TITLE = "Approval needed"
CLOSED_TITLE = "Approval request"
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")


class ApprovalView(Protocol):
    """What a prompt shows. The approval store's record satisfies it."""

    @property
    def id(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def args(self) -> Mapping[str, Any]: ...
    @property
    def rationale(self) -> str: ...
    @property
    def risk(self) -> str: ...
    @property
    def expires_at(self) -> float: ...
    @property
    def context(self) -> Mapping[str, Any]: ...  # observed facts beside the arguments (e.g. a dedup plan)
    @property
    def prediction(self) -> ScalePrediction | None: ...  # what a scaling change is expected to do
    @property
    def rules(self) -> Sequence[tuple[str, str | None]]: ...  # (policy rule id, its reason) that asked
    @property
    def unpaired_reasons(self) -> Sequence[str]: ...  # reasons that could not be paired with a rule id
    @property
    def requested_by(self) -> str: ...
    @property
    def tick_id(self) -> str: ...


def format_args(args: Mapping[str, Any]) -> str:
    blob = json.dumps(dict(args), sort_keys=True, default=str)
    if len(blob) > MAX_ARGS_CHARS:
        blob = blob[: MAX_ARGS_CHARS - 1] + "…"
    return blob


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _summary_blocks(approval: ApprovalView, title: str = OPEN_TITLE) -> list[Block]:
    """What the approver needs, as the CLI shows it: action and arguments, the time left, the expected effect
    and observed facts, the policy rules that asked and why, the rationale, the full id and who asked."""
    facts = context_lines(approval)
    rationale = _fit("*Rationale*\n", _escape(approval.rationale) or "(none given)")
    return [
        _section(f"*{title}:* `{approval.action}`  (risk: *{approval.risk}*)"),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Arguments*\n`{format_args(approval.args)}`"},
                {"type": "mrkdwn", "text": f"*Expires* (then denied)\n{when(approval.expires_at)}"},
            ],
        },
        *([_section("*What it will do*\n```" + _clip("\n".join(facts)) + "```")] if facts else []),
        _section(_fit("*Asked by policy*\n", "\n".join(f"• {line}" for line in rule_lines(approval)))),
        _section(rationale),
        _context(
            f"approval `{approval.id}` · requested by {_escape(approval.requested_by)} in tick "
            f"`{approval.tick_id}` · from a shell: `brainops approve {approval.id} --by NAME`"
        ),
    ]


def rule_lines(approval: ApprovalView) -> list[str]:
    """One mrkdwn line per policy rule that asked: "`risk.scale_workers.large_scale`: scaling one kind ..."."""
    lines = [f"`{rule_id}`: {_escape(reason)}" if reason else f"`{rule_id}`" for rule_id, reason in approval.rules]
    lines += [f"reason: {_escape(reason)}" for reason in approval.unpaired_reasons]
    return lines or ["(no rule recorded)"]


def _escape(text: str) -> str:
    """mrkdwn control characters as entities: text from the planner or records makes no mentions or links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fit(heading: str, body: str) -> str:
    """A section's text within Slack's limit, cut with a pointer to the CLI where it had to be."""
    room = MAX_SECTION_CHARS - len(heading)
    return heading + (body if len(body) <= room else body[: room - len(FULL_TEXT)] + FULL_TEXT)


def context_lines(approval: ApprovalView) -> list[str]:
    """What the approval will do, as lines: a scaling change's expected effect ("4 -> 7 extract: backlog 6,200
    drains in ~22 min, +$0.41/h compute"), then the facts it was opened with (a dedup plan's count and pairs)."""
    expected = [approval.prediction.summary()] if approval.prediction is not None else []
    return expected + approval_context_lines(dict(approval.context or {}))


def _clip(text: str) -> str:
    """Escaped for mrkdwn (entity names are text from the records: no mentions or links from them)."""
    text = _escape(text).replace("```", "'''")
    return text if len(text) <= MAX_FACTS_CHARS else text[: MAX_FACTS_CHARS - 1] + "…"


def approval_text(approval: ApprovalView) -> str:
    """The notification text: what, the first fact or expected effect, which rules asked, the time left."""
    facts = context_lines(approval)
    plan = f"; {facts[0]}" if facts else ""
    rules = ", ".join(rule_id for rule_id, _ in approval.rules) or "no rule recorded"
    return (
        f"Approval needed: {approval.action} {format_args(approval.args)} (risk {approval.risk}){plan}; "
        f"asked by {rules}; expires {when(approval.expires_at)}; id {approval.id}"
    )


def approval_blocks(approval: ApprovalView) -> list[Block]:
    """The prompt: summary plus Approve / Deny buttons whose value is the approval id."""
    buttons: Block = {
        "type": "actions",
        "block_id": f"brainops_approval:{approval.id}",
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE_ACTION_ID,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": approval.id,
            },
            {
                "type": "button",
                "action_id": DENY_ACTION_ID,
                "style": "danger",
                "text": {"type": "plain_text", "text": "Deny"},
                "value": approval.id,
            },
        ],
    }
    return [*_summary_blocks(approval), buttons]


def mention(user: str) -> str:
    """Slack user ids render as mentions; names (answers given from the CLI) stay plain text."""
    return f"<@{user}>" if SLACK_USER_ID.fullmatch(user) else user


def decided_line(approved: bool, user: str, at: float, detail: str = "") -> str:
    verb = "Approved" if approved else "Denied"
    line = f"{':white_check_mark:' if approved else ':no_entry:'} *{verb}* by {mention(user)} at {when(at)}"
    return f"{line}\n{detail}" if detail else line


def decided_blocks(approval: ApprovalView, approved: bool, user: str, at: float, detail: str = "") -> list[Block]:
    """The prompt after an answer: buttons removed, who decided and when, and what happened."""
    return [*_summary_blocks(approval, CLOSED_TITLE), _section(decided_line(approved, user, at, detail))]


def expired_blocks(approval: ApprovalView) -> list[Block]:
    line = f":hourglass: *Expired — denied* (no answer by {when(approval.expires_at)})"
    return [*_summary_blocks(approval, CLOSED_TITLE), _section(line)]


# ---------------------------------------------------------------- tick digest


def _as_mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        result = dump(mode="json")
        if isinstance(result, Mapping):
            return result
    raise TypeError(f"expected a mapping or a pydantic model, got {type(value).__name__}")


def _decision_line(decision: Mapping[str, Any]) -> str:
    outcome = _as_mapping(decision.get("outcome") or {})
    status = str(outcome.get("status", decision.get("status", "?")))
    detail = str(outcome.get("detail", decision.get("detail", "")))
    args = decision.get("args") or {}
    line = f"• `{decision.get('action', '?')}` {format_args(args) if args else ''} → *{status}*"
    return f"{line}: {detail}" if detail else line


def _is_failure(decision: Mapping[str, Any]) -> bool:
    outcome = _as_mapping(decision.get("outcome") or {})
    return str(outcome.get("status", decision.get("status", ""))) == "failed"


VERIFICATION_ALERT = "verification: "  # alerts from checking actions against their expectations


def alert_blocks(alert: str) -> tuple[str, list[Block]]:
    """The page for a crash loop with one cause (what, what the agent holds back, what a human can do), or for
    actions that keep missing what they expected, or a rollback the verifier proposed."""
    if alert.startswith(VERIFICATION_ALERT):
        what = alert.removeprefix(VERIFICATION_ALERT)
        body = (
            f":warning: *Actions checked against their expectations*: {_escape(what)}\n"
            "While an action kind keeps missing, the model planner runs on a stronger tier and the rule planner's "
            "throughput estimates follow what happened. `brainops decisions --action ID` shows an action with its "
            "verdicts; a rollback goes through the policy and its approvals like any action."
        )
        return f"Verification: {what}", [_section(body)]
    text = f"Crash loop, an operator must look: {alert}"
    body = (
        f":rotating_light: *Crash loop with one cause*: {_escape(alert)}\n"
        "The agent scales that kind up on no host (a fault that follows the code or the data follows the workers). "
        "Look at the FATAL workers' logs (`brainops status` lists them) and fix the cause; a FATAL worker keeps "
        "its slot until a `restart_worker` (policy-checked) clears it."
    )
    return text, [_section(body)]


def tick_digest(tick_summary: Any) -> tuple[str, list[Block]]:
    """Concise digest of one tick: counts, then one line per non-noop decision (failures first).

    Accepts a mapping or pydantic model with `tick_id` and `decisions` (each with action, args and
    an `outcome` {status, detail}); optional `planner`, `errors` (strings) and `chain_head` are shown when present.
    """
    summary = _as_mapping(tick_summary)
    decisions = [_as_mapping(d) for d in summary.get("decisions", ())]
    errors: Sequence[str] = [str(e) for e in summary.get("errors", ())]
    acted = [d for d in decisions if d.get("action") != "noop"]
    failures = [d for d in acted if _is_failure(d)]
    ordered = failures + [d for d in acted if not _is_failure(d)]
    header = f"*Tick {summary.get('tick_id', '?')}*: {len(acted)} action(s), {len(failures)} failed" + (
        f", planner {summary['planner']}" if summary.get("planner") else ""
    )
    lines = [_decision_line(d) for d in ordered[:MAX_DIGEST_LINES]]
    if len(ordered) > MAX_DIGEST_LINES:
        lines.append(f"… and {len(ordered) - MAX_DIGEST_LINES} more (`brainops decisions`)")
    lines += [f":warning: {e}" for e in errors[:MAX_DIGEST_LINES]]
    if not lines:
        lines = ["nothing to do"]
    blocks = [_section(header), _section("\n".join(lines))]
    if summary.get("chain_head"):  # optional `chain_head` ("N:HASH"): the decision log's head, recorded here too
        blocks.append(_context(f"decision chain head `{summary['chain_head']}`"))
    text = f"Tick {summary.get('tick_id', '?')}: {len(acted)} action(s), {len(failures)} failed"
    return text, blocks
