"""`brainops mcp --http`: the MCP server over streamable HTTP, on loopback unless told otherwise.

With `mcp.token` set every request must carry `Authorization: Bearer <token>` (401 otherwise); another address
than loopback needs one. approve/deny are served only with a token and `mcp.approver`, who must be listed in the
policy's approvers: they answer as that approver, whatever the client says it is.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING, Any

from core.config_errors import ConfigError

if TYPE_CHECKING:
    from agent.service.agent import Agent
    from core.settings import McpConfig

PATH = "/mcp"


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def http_app(agent: Agent, cfg: McpConfig, bind: str) -> Any:
    """The ASGI app: the MCP server's streamable-HTTP app behind the bearer-token check when a token is set."""
    from agent.mcp.server import build_server

    token = cfg.token.get_secret_value() if cfg.token is not None else None
    if token is None and not is_loopback(bind):
        raise ConfigError([f"mcp.bind {bind}: serving MCP beyond loopback needs mcp.token (a bearer token)"])
    if cfg.approver is not None and not agent.policy.is_approver(cfg.approver):
        raise ConfigError([f"mcp.approver {cfg.approver!r} is not among the policy's approvers"])
    server = build_server(agent, approver=cfg.approver if token else None)
    app = server.streamable_http_app(streamable_http_path=PATH, host=bind)
    return BearerToken(app, token) if token else app


class BearerToken:
    """ASGI middleware: HTTP requests without the configured bearer token get 401 and reach nothing."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            sent = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(sent, self.expected):
                headers = [(b"content-type", b"text/plain")]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": b"missing or wrong bearer token\n"})
                return
        await self.app(scope, receive, send)


def serve(agent: Agent, cfg: McpConfig, bind: str, port: int, say: Any) -> None:
    import uvicorn

    app = http_app(agent, cfg, bind)
    say(f"brainops MCP on http://{bind}:{port}{PATH}" + (" (bearer token required)" if cfg.token else ""))
    uvicorn.run(app, host=bind, port=port, log_level="warning")
