"""The tool lists handed to planners."""

from __future__ import annotations

from langchain_core.tools import BaseTool

from tools.actions import ACTION_TOOLS
from tools.observe import READ_ONLY_TOOLS


def read_only_tools() -> list[BaseTool]:
    """Tools that only read the tick's snapshot; they take an injected `ctx: ToolContext` argument."""
    return list(READ_ONLY_TOOLS)


def action_tools() -> list[BaseTool]:
    """Tools that build a Proposal; calling one executes nothing."""
    return list(ACTION_TOOLS)
