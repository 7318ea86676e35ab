"""Test rig for the Slack app: a real backend over the real ApprovalStore + DecisionLog (SQLite on a tmp path)
that "executes" by counting, the bolt app served over loopback HTTP, and a client that signs requests like Slack.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from agent.slack.app import SlackHttpServer, build_app, post_approval
from agent.slack.blocks import APPROVE_ACTION_ID, DENY_ACTION_ID
from agent.state.approvals import AnswerResult, Approval, ApprovalStore
from agent.state.decisions import DecisionLog
from core.domain import Outcome

from .fake_slack import FakeSlack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
APPROVER = "UAPPROVER1"
STRANGER = "USTRANGER2"
OPS = "COPS"


class CountingBackend:
    """Guard: scaling above 2 workers needs approval; everything else runs at once. Execution = a counter."""

    def __init__(self, db: Path, approvers: tuple[str, ...]) -> None:
        self.approvals = ApprovalStore(db)
        self.log = DecisionLog(db)
        self.approvers = approvers
        self.executed: Counter[str] = Counter()
        self.paused = False
        self.request_gate: threading.Event | None = None

    def status_text(self) -> str:
        loop = "paused" if self.paused else "running"
        return f"loop {loop}; {len(self.approvals.pending())} pending approval(s)"

    def decisions_text(self, n: int) -> str:
        return "\n".join(f"{r.action} -> {r.outcome.status}" for r in self.log.last(n)) or "no decisions"

    def budget_text(self) -> str:
        return "budget: 0 of 800M tokens used"

    def approvals_text(self) -> str:
        return "\n".join(f"{a.id} {a.action}" for a in self.approvals.pending()) or "no pending approvals"

    def request(self, action: str, args: dict[str, Any], requester: str) -> str:
        if self.request_gate is not None:
            self.request_gate.wait(timeout=10)
        if action == "scale_workers" and args["count"] > 2:
            approval = self.create_approval(action, args, requester)
            self._record(action, args, Outcome(status="pending", detail=approval.id), "needs_approval")
            return f"needs approval ({approval.id})"
        self.executed[f"{action}:{json.dumps(args, sort_keys=True)}"] += 1
        self._record(action, args, Outcome(status="done"), "allow")
        return "done"

    def create_approval(
        self, action: str, args: dict[str, Any], requester: str, ttl_s: float = 600, now: float | None = None
    ) -> Approval:
        return self.approvals.create(
            id=uuid.uuid4().hex[:12],
            tick_id="slack",
            action=action,
            args=args,
            rationale=f"{requester} wants more capacity",
            risk="medium",
            rule_ids=("scale_big",),
            requested_by=requester,
            ttl_s=ttl_s,
            now=now,
        )

    def answer(self, approval_id: str, approve: bool, user: str, reason: str) -> AnswerResult:
        result = self.approvals.answer(approval_id, approve, user, self.approvers, reason)
        if not result.ok or result.approval is None:
            return result
        approval = result.approval
        if approval.approved:
            self.executed[approval.id] += 1  # the store lets exactly one answer through
        outcome = Outcome(status="done") if approval.approved else Outcome(status="denied")
        self._record(approval.action, approval.args, outcome, "needs_approval", user)
        return replace(result, message=f"executed {approval.action}" if approval.approved else "")

    def pause(self, user: str) -> str:
        self.paused = True
        return "paused"

    def resume(self, user: str) -> str:
        self.paused = False
        return "running"

    def _record(
        self, action: str, args: dict[str, Any], outcome: Outcome, verdict: str, approver: str | None = None
    ) -> None:
        self.log.append(tick_id="slack", action=action, args=args, outcome=outcome, verdict=verdict, approver=approver)


@dataclass
class Rig:
    slack: FakeSlack
    backend: CountingBackend
    server: SlackHttpServer
    client: Any

    def post(self, body: str, secret: str = SECRET, ts: int | None = None) -> tuple[int, str]:
        stamp = str(int(time.time()) if ts is None else ts)
        sig = "v0=" + hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
        headers = {
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sig,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        req = urllib.request.Request(self.server.url, data=body.encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def command(self, text: str, user: str = APPROVER, channel: str = OPS, key: str = "cmd") -> tuple[int, str]:
        return self.post(self.command_body(text, user, channel, key))

    def command_body(self, text: str, user: str = APPROVER, channel: str = OPS, key: str = "cmd") -> str:
        fields = {
            "token": "legacy",
            "team_id": "T0001",
            "channel_id": channel,
            "user_id": user,
            "user_name": user.lower(),
            "command": "/brainops",
            "text": text,
            "response_url": self.slack.response_url(key),
            "trigger_id": "1.2.3",
        }
        return urllib.parse.urlencode(fields)

    def click(self, approval_id: str, user: str, ts: str, approve: bool = True) -> tuple[int, str]:
        prompt = next(c for c in self.slack.of("chat.postMessage") if c.params.get("blocks"))
        payload = {
            "type": "block_actions",
            "team": {"id": "T0001"},
            "user": {"id": user, "username": user.lower(), "team_id": "T0001"},
            "api_app_id": "A0001",
            "container": {"type": "message", "message_ts": ts, "channel_id": OPS},
            "channel": {"id": OPS, "name": "ops"},
            "message": {"ts": ts, "type": "message", "blocks": prompt.params["blocks"]},
            "response_url": self.slack.response_url("click"),
            "trigger_id": "4.5.6",
            "actions": [
                {
                    "type": "button",
                    "action_id": APPROVE_ACTION_ID if approve else DENY_ACTION_ID,
                    "block_id": f"brainops_approval:{approval_id}",
                    "value": approval_id,
                    "action_ts": str(time.time()),
                }
            ],
        }
        return self.post(urllib.parse.urlencode({"payload": json.dumps(payload)}))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    slack = FakeSlack().start()
    backend = CountingBackend(tmp_path / "state.db", approvers=(APPROVER,))
    app = build_app(backend, SECRET, "xoxb-test", api_url=slack.api_url, channel=OPS)
    server = SlackHttpServer(app, host="127.0.0.1", port=0).start()
    try:
        yield Rig(slack, backend, server, app.client)
    finally:
        server.stop()
        slack.stop()


def posted_prompt(rig: Rig, ttl_s: float = 600, now: float | None = None) -> tuple[Approval, str]:
    approval = rig.backend.create_approval(
        "scale_workers", {"kind": "embed", "host": "h1", "count": 6}, "U9", ttl_s, now
    )
    ref = post_approval(rig.client, OPS, approval, refs=rig.backend.approvals)
    return approval, ref.ts
