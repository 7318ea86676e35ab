"""`brainops mcp`: the agent's read tools and proposing action tools for MCP clients (agent/mcp/)."""

from __future__ import annotations

import typer


def mcp(
    config: str = typer.Option(None, "--config", "-c"),
    http: bool = typer.Option(
        False, "--http", help="Streamable HTTP on mcp.bind:mcp.port (default 127.0.0.1:8765) instead of stdio."
    ),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="HTTP port (default: mcp.port)."),
) -> None:
    """Serve the agent as an MCP server: read-only tools, and action tools that only propose (policy, approvals
    and the decision log as for the planner). Over stdio nobody can approve; see the README, "MCP server"."""
    from agent.cli.run import ensure_brain, printer
    from agent.service.agent import Agent
    from core import telemetry
    from core.settings import load_settings

    telemetry.setup()
    settings = load_settings(config)
    say = printer(stderr=True)  # stdout is the protocol's over stdio
    ensure_brain(settings, say=say, progress=False)  # a first run seeds the demo brain, as `brainops tick` does
    settings.ensure_dirs()
    agent = Agent(settings)
    if http:
        from agent.mcp.http import serve

        serve(agent, settings.mcp, settings.mcp.bind, port or settings.mcp.port, say)
        return
    from agent.mcp.server import build_server

    build_server(agent).run("stdio")


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
