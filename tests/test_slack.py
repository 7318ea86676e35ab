"""Slack front end over real HTTP: Slack-signed requests into the bolt app, Web API calls into a stand-in.

The backend (tests/slack_rig.py) is a small real implementation over the real ApprovalStore and DecisionLog
that "executes" by counting, so tests can assert that an approved action ran exactly once.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from slack_sdk.models.blocks import Block
from support.slack_rig import APPROVER, OPS, STRANGER, CountingBackend, Rig, posted_prompt, rig

from agent.slack.app import build_app, mark_expired, notify_tick, post_approval
from agent.slack.blocks import APPROVE_ACTION_ID, DENY_ACTION_ID, MAX_SECTION_CHARS
from agent.slack.commands import ActionCommand, ReadCommand, UsageError, parse_command
from core.domain import Outcome, ScalePrediction

__all__ = ["rig"]  # the fixture

ISO = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}"

# ---------------------------------------------------------------- slash commands


def test_status_command_is_answered_via_response_url(rig: Rig) -> None:
    status, _ = rig.command("status")
    assert status == 200
    (call,) = rig.slack.wait_for("response_url")
    assert call.params["text"] == "loop running; 0 pending approval(s)"
    assert call.params["response_type"] == "ephemeral"


def test_action_goes_through_backend_and_is_announced(rig: Rig) -> None:
    rig.command("scale embed 2 h1", channel="DDIRECT")
    (call,) = rig.slack.wait_for("response_url")
    assert "requested `scale_workers`: done" in call.params["text"]
    assert call.params["response_type"] == "in_channel"
    assert rig.backend.executed == Counter({'scale_workers:{"count": 2, "host": "h1", "kind": "embed"}': 1})
    rig.slack.wait_for("chat.postMessage", lambda c: c.params["channel"] == OPS)  # asked in a DM: ops sees it
    assert [r.verdict for r in rig.backend.log.all()] == ["allow"]


def test_risky_chat_request_creates_pending_approval(rig: Rig) -> None:
    rig.command("scale embed 5")
    (call,) = rig.slack.wait_for("response_url")
    assert "needs approval" in call.params["text"]
    (pending,) = rig.backend.approvals.pending()
    assert pending.args == {"kind": "embed", "host": "local", "count": 5}
    assert pending.requested_by == APPROVER
    assert not rig.backend.executed


@pytest.mark.parametrize(
    ("text", "needle"),
    [("frobnicate", "unknown command `frobnicate`"), ("scale gpu 3", "kind must be one of"), ("decisions x", "1 to")],
)
def test_bad_subcommand_gets_usage_in_the_ack(rig: Rig, text: str, needle: str) -> None:
    status, body = rig.command(text)
    assert status == 200
    assert needle in body and "*Usage:*" in body
    assert not rig.backend.executed and rig.backend.log.count() == 0


def test_ack_is_sent_before_the_backend_finishes(rig: Rig) -> None:
    rig.backend.request_gate = threading.Event()
    started = time.monotonic()
    status, _ = rig.command("recluster")
    assert status == 200 and time.monotonic() - started < 3.0  # Slack's ack deadline
    assert not rig.slack.of("response_url")  # the backend is still blocked
    rig.backend.request_gate.set()
    (call,) = rig.slack.wait_for("response_url")
    assert "run_recluster" in call.params["text"]


def test_pause_and_resume(rig: Rig) -> None:
    rig.command("pause", key="p")
    rig.slack.wait_for("response_url", lambda c: c.path.endswith("/p"))
    assert rig.backend.paused
    rig.command("resume", key="r")
    rig.slack.wait_for("response_url", lambda c: c.path.endswith("/r"))
    assert not rig.backend.paused


# ---------------------------------------------------------------- request verification


def test_forged_signature_is_rejected(rig: Rig) -> None:
    status, _ = rig.post(rig.command_body("scale embed 1"), secret="not-the-secret")
    assert status == 401
    assert not rig.backend.executed and not rig.slack.of("response_url")


def test_replayed_old_timestamp_is_rejected(rig: Rig) -> None:
    status, _ = rig.post(rig.command_body("scale embed 1"), ts=int(time.time()) - 6 * 60)
    assert status == 401
    assert not rig.backend.executed and not rig.slack.of("response_url")


# ---------------------------------------------------------------- approval buttons


def test_prompt_shows_the_approval_and_stores_its_message_ref(rig: Rig) -> None:
    approval, ts = posted_prompt(rig)
    (call,) = rig.slack.of("chat.postMessage")
    shown = json.dumps(call.params["blocks"])
    for needle in ("scale_workers", '\\"count\\": 6', "wants more capacity", "medium", "Expires", approval.id):
        assert needle in shown
    buttons = next(b for b in call.params["blocks"] if b["type"] == "actions")["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        (APPROVE_ACTION_ID, approval.id),
        (DENY_ACTION_ID, approval.id),
    ]
    stored = rig.backend.approvals.get(approval.id)
    assert stored is not None and (stored.channel, stored.message_ts) == (OPS, ts)


PREDICTION = ScalePrediction(
    kind="extract",
    before=4,
    after=7,
    backlog=6200,
    arrival_per_min=40.0,
    per_worker_per_min=45.0,
    basis="measured",
    drain_s=1320.0,
    compute_per_hour_delta=0.41,
)
LONG_ID = "apr-t20261201T193012-" + "0123456789abcdef" * 4 + "-0"
RULE, REASON = "risk.scale_workers.large_scale", "scaling one kind above 4 workers on a host"


def _explained(rig: Rig, rationale: str) -> tuple[str, list[dict], str]:
    approval = rig.backend.approvals.create(
        LONG_ID,
        "t20261201T193012",
        "scale_workers",
        {"kind": "extract", "host": "worker-pc", "count": 7},
        rationale,
        "medium",
        (RULE,),
        "planner:rules",
        7230,
        prediction=PREDICTION,
        reasons=(REASON,),
    )
    post_approval(rig.client, OPS, approval, refs=rig.backend.approvals)
    (call,) = rig.slack.of("chat.postMessage")
    stamp = datetime.fromtimestamp(approval.expires_at).astimezone().isoformat(timespec="seconds")
    return call.params["text"], call.params["blocks"], stamp


def test_the_prompt_explains_itself_like_the_cli(rig: Rig) -> None:
    rationale = "extract backlog 6,200 at 180/min with 4 workers misses the 30 min objective: 4 -> 7"
    text, blocks, expires = _explained(rig, rationale)
    shown = json.dumps(blocks, ensure_ascii=False)
    assert LONG_ID in shown and f"brainops approve {LONG_ID} --by NAME" in shown  # the full id, uncut
    assert f"`{RULE}`: {REASON}" in shown and "*Asked by policy*" in shown
    assert PREDICTION.summary().replace(">", "&gt;") in shown
    assert rationale.replace(">", "&gt;") in shown  # the numbers, escaped for mrkdwn only
    assert f"{expires} (in 2 h)" in shown and "then denied" in shown
    assert "requested by planner:rules in tick `t20261201T193012`" in shown
    for needle in ("scale_workers", RULE, LONG_ID, f"expires {expires} (in 2 h)", "4 -> 7 extract"):
        assert needle in text  # the notification fallback says it too
    for block in blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]  # Slack would accept it


def test_a_long_rationale_is_cut_to_fit_with_a_pointer_to_the_cli(rig: Rig) -> None:
    rationale = "backlog 6,200; " * 400  # 6,000 characters: Slack would reject the whole message
    _, blocks, _ = _explained(rig, rationale)
    (section,) = [b for b in blocks if b.get("text", {}).get("text", "").startswith("*Rationale*")]
    body = section["text"]["text"]
    assert len(body) <= MAX_SECTION_CHARS and body.endswith("`brainops approvals` shows all of it)")
    for block in blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]


def test_listed_approver_resumes_and_executes_once(rig: Rig) -> None:
    approval, ts = posted_prompt(rig)
    assert rig.click(approval.id, APPROVER, ts)[0] == 200
    (update,) = rig.slack.wait_for("chat.update")
    assert update.params["ts"] == ts
    final = json.dumps(update.params["blocks"])
    assert f"Approved* by <@{APPROVER}>" in final and "executed scale_workers" in final
    assert re.search(rf"Approved\* by <@{APPROVER}> at {ISO} \(just now\)", final)  # ISO-8601 with its age
    assert all(b["type"] != "actions" for b in update.params["blocks"])  # buttons are gone
    assert "Approval request:* `scale_workers`" in final and "Approval needed" not in final
    assert rig.backend.executed[approval.id] == 1
    stored = rig.backend.approvals.get(approval.id)
    assert stored is not None and stored.status == "approved" and stored.decided_by == APPROVER


def test_deny_executes_nothing(rig: Rig) -> None:
    approval, ts = posted_prompt(rig)
    rig.click(approval.id, APPROVER, ts, approve=False)
    (update,) = rig.slack.wait_for("chat.update")
    assert "Denied* by" in json.dumps(update.params["blocks"])
    assert rig.backend.executed[approval.id] == 0


def test_unlisted_user_is_refused_and_nothing_runs(rig: Rig) -> None:
    approval, ts = posted_prompt(rig)
    rig.click(approval.id, STRANGER, ts)
    (eph,) = rig.slack.wait_for("chat.postEphemeral")
    assert eph.params["user"] == STRANGER and "not a listed approver" in eph.params["text"]
    assert rig.backend.executed[approval.id] == 0 and not rig.slack.of("chat.update")
    stored = rig.backend.approvals.get(approval.id)
    assert stored is not None and stored.status == "pending"


def test_double_click_executes_once(rig: Rig) -> None:
    approval, ts = posted_prompt(rig)
    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = list(pool.map(lambda _: rig.click(approval.id, APPROVER, ts)[0], range(2)))
    assert statuses == [200, 200]
    rig.slack.wait_for("chat.update")
    (eph,) = rig.slack.wait_for("chat.postEphemeral")
    assert "already decided" in eph.params["text"]
    assert rig.backend.executed[approval.id] == 1
    assert len(rig.slack.of("chat.update")) == 1


def test_expiry_edits_the_prompt_and_late_click_is_refused(rig: Rig) -> None:
    approval, ts = posted_prompt(rig, ttl_s=5, now=time.time() - 60)  # overdue already
    (expired,) = rig.backend.approvals.expire_due()
    assert mark_expired(rig.client, expired)
    (update,) = rig.slack.wait_for("chat.update")
    assert update.params["ts"] == ts and "Expired — denied" in json.dumps(update.params["blocks"], ensure_ascii=False)
    assert all(b["type"] != "actions" for b in update.params["blocks"])
    rig.click(approval.id, APPROVER, ts)
    (eph,) = rig.slack.wait_for("chat.postEphemeral")
    assert "expired" in eph.params["text"]
    assert rig.backend.executed[approval.id] == 0


def test_mark_expired_without_a_posted_message_does_nothing(rig: Rig) -> None:
    approval = rig.backend.create_approval("run_dedup", {"dry_run": False}, "U9", ttl_s=1, now=time.time() - 10)
    (expired,) = rig.backend.approvals.expire_due()
    assert expired.id == approval.id and not mark_expired(rig.client, expired)
    assert not rig.slack.of("chat.update")


# ---------------------------------------------------------------- notifications and parsing


def test_notify_tick_posts_a_digest_with_failures_first(rig: Rig) -> None:
    summary = {
        "tick_id": "t42",
        "planner": "rules",
        "decisions": [
            {"action": "noop", "args": {"reason": "idle"}, "outcome": {"status": "noop"}},
            {"action": "scale_workers", "args": {"kind": "embed", "count": 3}, "outcome": {"status": "done"}},
            {"action": "run_dedup", "args": {}, "outcome": Outcome(status="failed", detail="lance conflict")},
        ],
    }
    ts = notify_tick(rig.client, OPS, summary)
    (call,) = rig.slack.of("chat.postMessage")
    assert ts and call.params["text"] == "Tick t42: 2 action(s), 1 failed"
    body = call.params["blocks"][1]["text"]["text"].splitlines()
    assert body[0].startswith("• `run_dedup`") and "lance conflict" in body[0]
    assert "scale_workers" in body[1] and len(body) == 2  # noop left out


def test_parse_command_values_and_errors() -> None:
    assert parse_command("scale Embed 3 gpu1", "local") == ActionCommand(
        "scale_workers", {"kind": "embed", "host": "gpu1", "count": 3}
    )
    assert parse_command("dedup --dry-run", "local") == ActionCommand("run_dedup", {"dry_run": True})
    assert parse_command("decisions 5", "local") == ReadCommand("decisions", 5)
    assert parse_command("", "local") == ReadCommand("help")
    for bad in ("scale embed -1", "scale embed 999", "dedup now", "status please", "decisions 0"):
        assert isinstance(parse_command(bad, "local"), UsageError), bad


def test_build_app_refuses_missing_secrets() -> None:
    with pytest.raises(ValueError, match="signing secret"):
        build_app(CountingBackend.__new__(CountingBackend), "", "xoxb-x")
