"""A local stand-in for Slack's Web API and response_url webhooks that records every call.

Serves POST /api/<method> (form or JSON bodies, as slack_sdk sends them) and POST /response/<key>
(bolt's `respond`). Answers like Slack does for the methods brainops uses.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from . import wait_for

BOT_USER = "UBOT"
TEAM = "T0001"


@dataclass(frozen=True)
class Call:
    method: str  # "chat.postMessage", ..., or "response_url"
    params: dict[str, Any]
    path: str


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._cond = threading.Condition()
        self._ts = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    # ---- lifecycle
    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def response_url(self, key: str) -> str:
        return f"{self.base}/response/{key}"

    # ---- inspection
    def of(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def wait_for(
        self, method: str, pred: Callable[[Call], bool] = lambda c: True, timeout: float = 10.0, count: int = 1
    ) -> list[Call]:
        """The matching calls, once at least `count` of them were recorded (support.wait_for polls)."""

        def hits() -> list[Call] | None:
            with self._cond:
                found = [c for c in self.calls if c.method == method and pred(c)]
            return found if len(found) >= count else None

        try:
            return wait_for(hits, f"{count}x {method}", timeout_s=timeout, interval_s=0.01)
        except AssertionError as exc:
            with self._cond:
                seen = [c.method for c in self.calls]
            raise AssertionError(f"{exc}; calls so far: {seen}") from None

    # ---- behaviour
    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def reply(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "user_id": BOT_USER, "bot_id": "B0001", "team_id": TEAM, "user": "brainops"}
        if method == "chat.postMessage":
            ts = f"{1700000000 + next(self._ts)}.000100"
            return {"ok": True, "channel": params.get("channel"), "ts": ts, "message": {"ts": ts}}
        if method == "chat.update":
            return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{1700000000 + next(self._ts)}.000200"}
        return {"ok": True}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                params = _decode(raw, self.headers.get("Content-Type", ""))
                if self.path.startswith("/api/"):
                    method = self.path[len("/api/") :].split("?")[0]
                    fake._record(Call(method, params, self.path))
                    self._send(fake.reply(method, params))
                elif self.path.startswith("/response/"):
                    fake._record(Call("response_url", params, self.path))
                    self._send_text("ok")
                else:
                    self.send_error(404)

            def _send(self, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _send_text(self, text: str) -> None:
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _decode(raw: str, content_type: str) -> dict[str, Any]:
    if "json" in content_type:
        return dict(json.loads(raw or "{}"))
    params: dict[str, Any] = {k: v[0] for k, v in parse_qs(raw).items()}
    for key in ("blocks", "attachments"):  # slack_sdk JSON-encodes these inside form bodies
        if isinstance(params.get(key), str):
            params[key] = json.loads(params[key])
    return params
