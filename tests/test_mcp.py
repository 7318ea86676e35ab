"""`brainops mcp`, driven by the mcp SDK's own client: in-process, over stdio (`python -m agent.cli mcp`) and over
streamable HTTP on loopback. Proposals are real ticks: the policy engine, approvals and the decision log."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import REPO, wait_for
from support.agent_rig import NO_CPU_CEILING, cli, copy_brain, kill_workers, make_settings, write_policy, write_toml

from core.settings import McpConfig

LARGE = {"kind": "extract", "host": "local", "count": 6, "rationale": "a lasting backlog"}  # over 4: approval


@pytest.fixture
def agent(tmp_path: Path, small_brain: str):
    from agent.service.agent import Agent

    policy = write_policy(tmp_path / "policy.yaml", **NO_CPU_CEILING, scaling={"max_step_up": 8})
    settings = make_settings(tmp_path, copy_brain(small_brain, tmp_path), policy)
    yield Agent(settings)
    kill_workers(settings.run_dir)


def _client(target: Any, name: str, **kwargs: Any) -> Any:
    from mcp import Client
    from mcp_types import Implementation

    return Client(target, client_info=Implementation(name=name, version="1.0"), **kwargs)


def _json(result: Any) -> Any:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)


def _text(result: Any) -> str:
    return result.content[0].text


def test_in_process_reads_proposes_through_policy_and_never_approves(agent) -> None:
    from agent.mcp.server import build_server
    from tools.registry import action_tools, read_only_tools

    server = build_server(agent)

    async def session() -> dict[str, Any]:
        async with _client(server, "claude-code") as client:
            listed = {t.name: t for t in (await client.list_tools()).tools}
            before = _text(await client.call_tool("get_fleet_overview", {}))
            allowed = _json(await client.call_tool("noop", {"reason": "all within targets"}))
            stats = _text(await client.call_tool("get_brain_stats", {}))
            pending = _json(await client.call_tool("scale_workers", LARGE))
            status = _json(await client.call_tool("get_approval", {"approval_id": pending["approval_id"]}))
            invalid = _json(await client.call_tool("scale_workers", {"kind": "extract", "host": "local", "count": -1}))
            approve = await client.call_tool("approve", {"approval_id": pending["approval_id"]})
            unknown = await client.call_tool("get_approval", {"approval_id": "apr-nothing"})
            return locals()

    out = anyio.run(session)
    assert out["unknown"].is_error and "no approval 'apr-nothing'" in _text(out["unknown"])
    listed = out["listed"]
    reads = [t.name for t in read_only_tools()] + ["get_approvals", "get_approval"]
    assert set(listed) == {*reads, *(t.name for t in action_tools())}  # derived from tools/, no approve over stdio
    assert all(listed[n].annotations.read_only_hint for n in reads)
    assert not any(listed[t.name].annotations.read_only_hint for t in action_tools())
    assert listed["stop_worker"].annotations.destructive_hint  # the policy marks it destructive
    assert listed["scale_workers"].input_schema["properties"]["count"]["maximum"] == 256  # the action's own bounds
    assert "No tick has run yet" in out["before"]

    allowed = out["allowed"]
    assert (allowed["verdict"], allowed["status"]) == ("allow", "noop")
    (record,) = [r for r in agent.decisions.by_tick(allowed["tick_id"]) if r.id == allowed["decision_id"]]
    assert record.planner.kind == "mcp" and record.planner.label == "mcp:claude-code"
    assert record.action == "noop" and record.rationale == "all within targets"
    assert out["stats"].startswith("observed ") and '"entities"' in out["stats"]

    pending = out["pending"]
    assert (pending["verdict"], pending["status"], pending["approval_status"]) == (
        "needs_approval",
        "pending",
        "pending",
    )
    assert pending["rule_ids"] == ["risk.scale_workers.large_scale"]
    stored = agent.approvals.get(pending["approval_id"])
    assert stored is not None and stored.status == "pending" and stored.requested_by == "planner:mcp:claude-code"
    assert out["status"]["status"] == "pending"

    invalid = out["invalid"]  # rejected by the action's own argument model, and recorded like a model's bad call
    assert invalid["status"] == "rejected" and "count" in invalid["reason"]
    (rejected,) = [r for r in agent.decisions.all() if r.id in invalid["decision_ids"]]
    assert rejected.outcome.status == "denied" and rejected.planner.label == "mcp:claude-code"

    assert out["approve"].is_error and "Unknown tool" in _text(out["approve"])
    assert agent.approvals.get(pending["approval_id"]).status == "pending"  # nobody approved it


@pytest.mark.slow
def test_over_stdio_the_brainops_mcp_command_proposes_and_refuses_to_approve(agent, tmp_path: Path) -> None:
    from mcp import StdioServerParameters

    config = write_toml(agent.settings, tmp_path / "brainops.toml")
    env = {**os.environ, "BRAINOPS_CONFIG": str(config), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "agent.cli", "mcp"], env=env, cwd=str(REPO))

    async def session() -> dict[str, Any]:
        async with _client(params, "claude-desktop", read_timeout_seconds=120) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            allowed = _json(await client.call_tool("noop", {"reason": "quiet"}))
            pending = _json(await client.call_tool("scale_workers", LARGE))
            waiting = _json(await client.call_tool("get_approvals", {}))
            approve = await client.call_tool("approve", {"approval_id": pending["approval_id"]})
            return locals()

    out = anyio.run(session)
    assert "approve" not in out["names"] and "deny" not in out["names"] and "noop" in out["names"]
    (record,) = [r for r in agent.decisions.all() if r.id == out["allowed"]["decision_id"]]
    assert record.planner.label == "mcp:claude-desktop" and out["allowed"]["status"] == "noop"
    approval_id = out["pending"]["approval_id"]
    assert out["pending"]["approval_status"] == "pending"
    assert [a["id"] for a in out["waiting"]["pending"]] == [approval_id]
    assert out["approve"].is_error
    assert agent.approvals.get(approval_id).status == "pending"
    shown = cli(config, "decisions", "--last", "5")
    assert shown.returncode == 0 and "mcp:claude-desktop" in shown.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_server(agent):
    """The streamable-HTTP app on loopback with a token and a configured approver, served by uvicorn."""
    import uvicorn

    from agent.mcp.http import http_app

    cfg = McpConfig(token="t0ken-for-the-tests", approver="operator")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(http_app(agent, cfg, "127.0.0.1"), host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "uvicorn to start", timeout_s=20)
    yield f"http://127.0.0.1:{port}/mcp"
    server.should_exit = True
    thread.join(10)


def test_over_http_a_token_is_required_and_answers_come_from_the_configured_approver(agent, http_server) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    refused = httpx2.post(http_server, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 401

    async def session() -> dict[str, Any]:
        headers = {"Authorization": "Bearer t0ken-for-the-tests"}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            transport = streamable_http_client(http_server, http_client=http)
            async with _client(transport, "kagent") as client:
                pending = _json(await client.call_tool("scale_workers", LARGE))
                answer = _json(await client.call_tool("deny", {"approval_id": pending["approval_id"], "reason": "no"}))
                return locals()

    out = anyio.run(session)
    assert out["answer"]["status"] == "ok" and out["answer"]["approver"] == "operator"
    approval = agent.approvals.get(out["pending"]["approval_id"])
    assert approval.status == "denied" and approval.decided_by == "operator"  # the config's approver, not "kagent"
    closed = [r for r in agent.decisions.all() if r.action == "scale_workers" and r.approver == "operator"]
    assert closed and closed[-1].outcome.status == "denied"


def test_http_beyond_loopback_without_a_token_is_refused(agent) -> None:
    from agent.mcp.http import http_app
    from core.config_errors import ConfigError

    with pytest.raises(ConfigError, match=r"needs mcp\.token"):
        http_app(agent, McpConfig(), "0.0.0.0")
    with pytest.raises(ValueError, match=r"mcp\.approver needs mcp\.token"):
        McpConfig(approver="operator")
