"""A scripted OpenAI- and Anthropic-compatible chat server on loopback: the provider is the only fake.

litellm talks to it over real HTTP (model "openai/<name>", "zai/<name>" or "anthropic/<name>",
api_base=server.base_url, api_key="test"), so its request building, retries, tool-call parsing, usage
accounting and error mapping all run for real. POST .../chat/completions answers in the OpenAI format, POST
.../messages (litellm's anthropic/ path, base_url + "/v1/messages") in the Anthropic Messages format.
Responses are played in order, per model name when scripted for one, else from the shared queue.
Every request is recorded (`requests`), so a test can count the HTTP attempts a call made.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANY_MODEL = "*"


@dataclass(frozen=True)
class Text:
    content: str


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] | str  # a str is sent verbatim, so malformed JSON can be scripted


@dataclass(frozen=True)
class ToolCalls:
    calls: tuple[ToolCall, ...]
    content: str | None = None


@dataclass(frozen=True)
class HttpError:
    status: int
    message: str = "scripted error"
    retry_after: float | None = None


@dataclass(frozen=True)
class Slow:
    delay_s: float
    then: Text | ToolCalls


@dataclass(frozen=True)
class Hang:
    """Hold the connection open and never answer (until the server stops): a provider that hangs."""


@dataclass(frozen=True)
class Computed:
    """An answer made from the request: `reply(body)` gets the request's JSON body (its messages) and returns the
    Text or ToolCalls to send, for a provider whose answer must quote what it was asked (ids in the prompt)."""

    reply: Callable[[dict[str, Any]], Text | ToolCalls]


Scripted = Text | ToolCalls | HttpError | Slow | Hang | Computed


def tool_calls(*calls: tuple[str, dict[str, Any] | str], content: str | None = None) -> ToolCalls:
    return ToolCalls(tuple(ToolCall(name, args) for name, args in calls), content)


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]  # lower-case names

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))


@dataclass
class _Script:
    queues: dict[str, deque[Scripted]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    usage_in: int = 0  # prompt tokens reported in successful replies
    usage_out: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_for(self, model: str) -> Scripted | None:
        with self.lock:
            for key in (model, ANY_MODEL):
                queue = self.queues.get(key)
                if queue:
                    return queue.popleft()
        return None


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _usage(body: dict[str, Any], completion_text: str) -> dict[str, int]:
    prompt = _estimate_tokens(json.dumps(body.get("messages", [])) + json.dumps(body.get("tools", [])))
    completion = _estimate_tokens(completion_text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _message(reply: Text | ToolCalls) -> tuple[dict[str, Any], str, str]:
    if isinstance(reply, Text):
        return {"role": "assistant", "content": reply.content}, "stop", reply.content
    calls = []
    for call in reply.calls:
        args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        calls.append(
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": call.name, "arguments": args},
            }
        )
    text = json.dumps(calls)
    return {"role": "assistant", "content": reply.content, "tool_calls": calls}, "tool_calls", text


def anthropic_payload(body: dict[str, Any], reply: Text | ToolCalls) -> dict[str, Any]:
    """The reply as an Anthropic Messages response (a tool call's arguments must be a JSON object there)."""
    content: list[dict[str, Any]] = []
    text = reply.content if isinstance(reply, Text) else (reply.content or "")
    if text:
        content.append({"type": "text", "text": text})
    for call in () if isinstance(reply, Text) else reply.calls:
        args = json.loads(call.arguments) if isinstance(call.arguments, str) else call.arguments
        content.append({"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:12]}", "name": call.name, "input": args})
    usage = _usage(body, json.dumps(content))
    return {
        "id": f"msg_{uuid.uuid4().hex[:16]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "fake"),
        "content": content,
        "stop_reason": "end_turn" if isinstance(reply, Text) else "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"]},
    }


def completion_payload(body: dict[str, Any], reply: Text | ToolCalls) -> dict[str, Any]:
    message, finish, text = _message(reply)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _usage(body, text),
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send(400, {"error": {"message": "request body is not JSON", "type": "invalid_request"}})
            return
        script = self.server.script
        with script.lock:
            script.requests.append(RecordedRequest(self.path, body, {k.lower(): v for k, v in self.headers.items()}))
        path = self.path.rstrip("/")
        if not path.endswith(("/chat/completions", "/messages")):
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        self._reply(body, script.next_for(str(body.get("model", ""))), anthropic=path.endswith("/messages"))

    def _reply(self, body: dict[str, Any], scripted: Scripted | None, *, anthropic: bool) -> None:
        if scripted is None:
            self._error(500, "fake server script exhausted", anthropic=anthropic)
        elif isinstance(scripted, HttpError):
            headers = {} if scripted.retry_after is None else {"Retry-After": f"{scripted.retry_after:g}"}
            self._error(scripted.status, scripted.message, headers, anthropic=anthropic)
        elif isinstance(scripted, Hang):
            self.server.stopping.wait()  # the client times out and gives up; nothing is ever sent
        elif isinstance(scripted, Computed):
            self._answer(body, scripted.reply(body), anthropic=anthropic)
        elif isinstance(scripted, Slow):
            if self.server.stopping.wait(scripted.delay_s):
                return
            self._answer(body, scripted.then, anthropic=anthropic)
        else:
            self._answer(body, scripted, anthropic=anthropic)

    def _answer(self, body: dict[str, Any], reply: Text | ToolCalls, *, anthropic: bool) -> None:
        script = self.server.script
        if anthropic:
            payload = anthropic_payload(body, reply)
            tokens = payload["usage"]["input_tokens"], payload["usage"]["output_tokens"]
        else:
            payload = completion_payload(body, reply)
            tokens = payload["usage"]["prompt_tokens"], payload["usage"]["completion_tokens"]
        with script.lock:
            script.usage_in += tokens[0]
            script.usage_out += tokens[1]
        self._send(200, payload)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None, *, anthropic: bool) -> None:
        if anthropic:
            error: dict[str, Any] = {"type": "error", "error": {"type": "api_error", "message": message}}
        else:
            error = {"error": {"message": message, "type": "scripted", "code": status}}
        self._send(status, error, headers)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        blob = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(blob)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(blob)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout); nothing to tell it


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: _Script) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.stopping = threading.Event()


class FakeLLMServer:
    """Start with `with FakeLLMServer() as server:`; script replies, then read `server.requests`."""

    def __init__(self) -> None:
        self._script = _Script()
        self._server = _Server(self._script)
        # a short poll interval: shutdown() waits for it, once per test (the default 0.5 s adds up)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, *replies: Scripted, model: str = ANY_MODEL) -> None:
        with self._script.lock:
            self._script.queues.setdefault(model, deque()).extend(replies)

    def clear(self, model: str = ANY_MODEL) -> None:
        with self._script.lock:
            self._script.queues.pop(model, None)

    def remaining(self, model: str = ANY_MODEL) -> int:
        with self._script.lock:
            return len(self._script.queues.get(model, ()))

    def clear_requests(self) -> None:
        with self._script.lock:
            self._script.requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._script.lock:
            return list(self._script.requests)

    @property
    def usage_in(self) -> int:
        return self._script.usage_in

    @property
    def usage_out(self) -> int:
        return self._script.usage_out

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.model == model]


def three_tier_config(base_url: str, **overrides: Any) -> Any:
    """LLMConfig with tiers routine < escalation < strategic, each a distinct model on this server."""
    from core.settings import LLMConfig, TierConfig

    tiers = [
        TierConfig(
            name=name,
            model=f"openai/{name}-model",
            api_base=base_url,
            api_key_env="FAKE_LLM_KEY",
            max_tokens=256,
            input_cost_per_mtok=price_in,
            output_cost_per_mtok=price_out,
            timeout_s=5.0,
        )
        for name, price_in, price_out in (
            ("routine", 0.5, 1.5),
            ("escalation", 3.0, 15.0),
            ("strategic", 15.0, 75.0),
        )
    ]
    return LLMConfig(tiers=tiers, **overrides)


SEED_PRICES = {"glm-air": (0.2, 1.1), "glm": (0.6, 2.2), "opus": (15.0, 75.0)}  # USD per million tokens


def seed_tier_config(base_url: str, **overrides: Any) -> Any:
    """LLMConfig with the seed's three tiers by their real names (glm-air < glm < opus), no routing set:
    the documented 60/35/5 split applies. Model strings are "openai/<tier>-model" on this server."""
    from core.settings import LLMConfig, TierConfig

    tiers = [
        TierConfig(
            name=name,
            model=f"openai/{name}-model",
            api_base=base_url,
            api_key_env="FAKE_LLM_KEY",
            max_tokens=256,
            input_cost_per_mtok=price_in,
            output_cost_per_mtok=price_out,
            timeout_s=5.0,
        )
        for name, (price_in, price_out) in SEED_PRICES.items()
    ]
    return LLMConfig(tiers=tiers, **overrides)
