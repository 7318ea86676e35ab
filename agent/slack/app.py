"""Slack front end: `/brainops` chat commands, approval prompts with buttons, tick notifications.

The app only talks to a narrow `SlackBackend`; every action goes through the backend, which applies the
same policy guard and decision log as the autonomous loop. Approver checks, atomic answers and expiry
live in the approval store behind `backend.answer`: Slack never decides who may approve.
"""

from __future__ import annotations

import logging
import socketserver
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from agent.slack.blocks import (
    APPROVE_ACTION_ID,
    CLOSED_TITLE,
    DENY_ACTION_ID,
    OPEN_TITLE,
    ApprovalView,
    alert_blocks,
    approval_blocks,
    approval_text,
    decided_blocks,
    decided_line,
    expired_blocks,
    tick_digest,
)
from agent.slack.commands import (
    USAGE,
    ActionCommand,
    Command,
    ControlCommand,
    ReadCommand,
    UsageError,
    parse_command,
)

if TYPE_CHECKING:
    from slack_bolt import App
    from slack_sdk import WebClient

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
SLASH_COMMAND = "/brainops"


class AnswerLike(Protocol):
    """`agent.state.approvals.AnswerResult` fits: status is ok | not_found | not_approver | already_decided | expired;
    message is shown to the user (for ok: what was executed, when the backend says so)."""

    @property
    def status(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def decided_at(self) -> float | None: ...


class SlackBackend(Protocol):
    def status_text(self) -> str: ...
    def decisions_text(self, n: int) -> str: ...
    def budget_text(self) -> str: ...
    def approvals_text(self) -> str: ...
    def request(self, action: str, args: dict[str, Any], requester: str) -> str:
        """Same policy guard + decision log as the loop; returns a human summary."""
        ...

    def answer(self, approval_id: str, approve: bool, user: str, reason: str) -> AnswerLike:
        """Answers atomically and, when approved, resumes the waiting graph (executes once)."""
        ...

    def pause(self, user: str) -> str: ...
    def resume(self, user: str) -> str: ...


class MessageRefStore(Protocol):
    def set_message_ref(self, approval_id: str, channel: str, ts: str) -> Any: ...


@dataclass(frozen=True)
class MessageRef:
    channel: str
    ts: str


# ---------------------------------------------------------------- app


def build_app(
    backend: SlackBackend,
    signing_secret: str,
    bot_token: str,
    api_url: str | None = None,
    channel: str | None = None,
    *,
    default_host: str = "local",
    command: str = SLASH_COMMAND,
) -> App:
    """A bolt App with the slash command and the approval buttons; signatures are always verified.

    `channel` is the ops channel: actions requested elsewhere (a DM) are announced there too, so the
    team sees every chat-initiated action. `api_url` points the Web API client at a stand-in in tests.
    """
    from slack_bolt import App
    from slack_sdk import WebClient

    if not signing_secret:
        raise ValueError("Slack signing secret is required (settings.slack.signing_secret)")
    if not bot_token:
        raise ValueError("Slack bot token is required (settings.slack.bot_token)")
    client = WebClient(token=bot_token, base_url=_api_base(api_url)) if api_url else WebClient(token=bot_token)
    # Bolt resets the level of the logger named after the app: "brainops" would silence our own INFO logs.
    app = App(signing_secret=signing_secret, client=client, name="brainops-slack")
    app.command(command)(_command_handler(backend, default_host, channel))
    app.action(APPROVE_ACTION_ID)(_button_handler(backend, approve=True))
    app.action(DENY_ACTION_ID)(_button_handler(backend, approve=False))
    return app


def _api_base(api_url: str) -> str:
    return api_url if api_url.endswith("/") else api_url + "/"


def _command_handler(backend: SlackBackend, default_host: str, ops_channel: str | None) -> Any:
    def on_command(ack: Any, command: dict[str, Any], respond: Any, client: WebClient) -> None:
        parsed = parse_command(command.get("text", ""), default_host)
        if isinstance(parsed, UsageError):
            ack(parsed.text())
            return
        if isinstance(parsed, ReadCommand) and parsed.kind == "help":
            ack(USAGE)
            return
        ack()  # Slack wants an answer within 3 s; the result follows via response_url
        user = str(command.get("user_id", ""))
        text, public = _run_command(backend, parsed, user)
        respond(text=text, response_type="in_channel" if public else "ephemeral")
        if public and ops_channel and command.get("channel_id") != ops_channel:
            client.chat_postMessage(channel=ops_channel, text=text)

    return on_command


def _run_command(backend: SlackBackend, cmd: Command, user: str) -> tuple[str, bool]:
    """Returns (text, public). Backend failures become a message instead of a silent drop."""
    try:
        if isinstance(cmd, ReadCommand):
            return _read(backend, cmd), False
        if isinstance(cmd, ActionCommand):
            summary = backend.request(cmd.action, dict(cmd.args), requester=user)
            return f"<@{user}> requested `{cmd.action}`: {summary}", True
        if isinstance(cmd, ControlCommand):
            result = backend.pause(user) if cmd.kind == "pause" else backend.resume(user)
            return f"<@{user}> {cmd.kind}d the loop: {result}", True
    except Exception as exc:  # the boundary to the user: report, log, keep serving
        log.exception("slack command failed")
        return f":x: command failed: {exc}", False
    return UsageError("unsupported command").text(), False


def _read(backend: SlackBackend, cmd: ReadCommand) -> str:
    if cmd.kind == "status":
        return backend.status_text()
    if cmd.kind == "decisions":
        return backend.decisions_text(cmd.n)
    if cmd.kind == "budget":
        return backend.budget_text()
    if cmd.kind == "approvals":
        return backend.approvals_text()
    return USAGE


# ---------------------------------------------------------------- buttons


@dataclass(frozen=True)
class ButtonClick:
    approval_id: str
    user: str
    channel: str
    ts: str
    blocks: tuple[dict[str, Any], ...]


def _parse_click(body: Mapping[str, Any]) -> ButtonClick:
    action = body["actions"][0]
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id", "")
    return ButtonClick(
        approval_id=str(action["value"]),
        user=str(body["user"]["id"]),
        channel=str(channel),
        ts=str(container.get("message_ts") or message.get("ts", "")),
        blocks=tuple(message.get("blocks") or ()),
    )


_REFUSALS = {
    "not_approver": "You are not a listed approver for this action; nothing was executed.",
    "already_decided": "This approval was already decided; nothing was executed again.",
    "expired": "This approval has expired and was denied; nothing was executed.",
    "not_found": "Unknown approval; nothing was executed.",
}


def _button_handler(backend: SlackBackend, approve: bool) -> Any:
    def on_click(ack: Any, body: dict[str, Any], client: WebClient) -> None:
        ack()
        click = _parse_click(body)
        result = backend.answer(click.approval_id, approve, click.user, reason="answered in Slack")
        status = str(result.status)
        if status == "ok":
            line = decided_line(approve, click.user, result.decided_at or time.time(), result.message)
            _replace_buttons(client, click, line, "decided")
            return
        if status == "expired":
            _replace_buttons(client, click, ":hourglass: *Expired — denied*", "expired")
        refusal = _REFUSALS.get(status, f"Answer refused ({status}); nothing was executed.")
        if result.message:
            refusal = f"{refusal}\n_{result.message}_"
        client.chat_postEphemeral(channel=click.channel, user=click.user, text=refusal)

    return on_click


def _replace_buttons(client: WebClient, click: ButtonClick, line: str, fallback: str) -> None:
    kept = [_retitled(b) for b in click.blocks if b.get("type") != "actions"]
    blocks = [*kept, {"type": "section", "text": {"type": "mrkdwn", "text": line}}]
    client.chat_update(channel=click.channel, ts=click.ts, blocks=blocks, text=f"approval {fallback}")


def _retitled(block: dict[str, Any]) -> dict[str, Any]:
    text = (block.get("text") or {}).get("text")
    if block.get("type") != "section" or not isinstance(text, str) or OPEN_TITLE not in text:
        return block
    return {**block, "text": {**block["text"], "text": text.replace(OPEN_TITLE, CLOSED_TITLE, 1)}}


# ---------------------------------------------------------------- outbound messages


def post_approval(
    client: WebClient, channel: str, approval: ApprovalView, refs: MessageRefStore | None = None
) -> MessageRef:
    """Posts the prompt with Approve / Deny buttons; records where it lives so expiry can edit it."""
    resp = client.chat_postMessage(channel=channel, text=approval_text(approval), blocks=approval_blocks(approval))
    ref = MessageRef(channel=str(resp["channel"]), ts=str(resp["ts"]))
    if refs is not None:
        refs.set_message_ref(approval.id, ref.channel, ref.ts)
    return ref


class PostedApproval(ApprovalView, Protocol):
    """An approval record that remembers its Slack message (`agent.state.approvals.Approval` fits)."""

    @property
    def channel(self) -> str | None: ...
    @property
    def message_ts(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def decided_by(self) -> str | None: ...
    @property
    def decided_at(self) -> float | None: ...


def mark_expired(client: WebClient, approval: PostedApproval) -> bool:
    """Edits the prompt to "expired — denied"; False when it was never posted (nothing to edit)."""
    if not (approval.channel and approval.message_ts):
        return False
    client.chat_update(
        channel=approval.channel,
        ts=approval.message_ts,
        text=f"Expired — denied: {approval.action}",
        blocks=expired_blocks(approval),
    )
    return True


def mark_decided(client: WebClient, approval: PostedApproval, detail: str = "") -> bool:
    """Edits the prompt after an answer given outside Slack (`brainops approve/deny`): buttons go away."""
    if not (approval.channel and approval.message_ts) or approval.status not in ("approved", "denied"):
        return False
    approved = approval.status == "approved"
    at = approval.decided_at or time.time()
    client.chat_update(
        channel=approval.channel,
        ts=approval.message_ts,
        text=f"{approval.status}: {approval.action}",
        blocks=decided_blocks(approval, approved, approval.decided_by or "?", at, detail),
    )
    return True


def notify_alert(client: WebClient, channel: str, alert: str) -> str:
    """A page: something no action of the agent can fix, so a human must look (a crash loop with one cause)."""
    text, blocks = alert_blocks(alert)
    resp = client.chat_postMessage(channel=channel, text=text, blocks=blocks)
    return str(resp["ts"])


def notify_tick(client: WebClient, channel: str, tick_summary: Any) -> str:
    """Posts a concise digest of one tick's actions and failures; returns the message ts."""
    text, blocks = tick_digest(tick_summary)
    resp = client.chat_postMessage(channel=channel, text=text, blocks=blocks)
    return str(resp["ts"])


# ---------------------------------------------------------------- serving


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("slack http: " + format, *args)


class SlackHttpServer:
    """Serves the bolt app over HTTP (WSGI, one thread per request) at POST /slack/events."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 3000) -> None:
        from slack_bolt.adapter.wsgi import SlackRequestHandler

        handler = SlackRequestHandler(app, path=EVENTS_PATH)
        self._server = make_server(host, port, handler, _ThreadingWSGIServer, _QuietHandler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{EVENTS_PATH}"

    def start(self) -> SlackHttpServer:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(0.5)

    def stop(self) -> None:
        """Stops a server started with `start()`."""
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.close()

    def close(self) -> None:
        self._server.server_close()


def run_socket_mode(app: App, app_token: str) -> None:
    """Blocks serving the app over Socket Mode (no public URL needed; Slack pushes over a websocket)."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    if not app_token:
        raise ValueError("Socket Mode needs an app-level token (settings.slack.app_token, xapp-...)")
    SocketModeHandler(app, app_token, web_client=app.client).start()
