"""The value types of one model call: what a router answers (`LLMReply` or `LLMFailure`) and its parts.

They live in core so a planner can depend on `core.ports.ChatRouter` alone; `llm.router.TierRouter` makes
them and re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# What a call is for; it decides which tiers may serve it (llm/routing.py).
Purpose = Literal["routine", "analysis", "strategic"]
Role = Purpose  # the planner's name for the same thing
Message = dict[str, Any]


@dataclass(frozen=True)
class RawToolCall:
    """A tool call as the model sent it: arguments stay a raw string, the planner validates them."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Attempt:
    tier: str
    error: str | None = None  # None: this attempt answered
    skipped: bool = False  # True: no HTTP call was made (cooling down, no key, no budget)
    budget_limit: BudgetLimit | None = None  # the limit that refused this attempt's reservation
    deployment: str | None = None  # the model string of the deployment tried, when the tier has several


@dataclass(frozen=True)
class LLMReply:
    text: str | None
    tool_calls: tuple[RawToolCall, ...]
    tier: str
    model: str
    tokens_in: int
    tokens_out: int
    cost: float
    attempts: tuple[Attempt, ...] = ()
    degraded: bool = False

    def assistant_message(self) -> Message:
        message: Message = {"role": "assistant", "content": self.text or ""}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


FailureKind = Literal["no_model", "budget_exhausted", "provider_failed"]
# Which budget limit refused a call: the token window, a tier's window, the daily dollar cap, a tier's share.
BudgetLimit = Literal["window", "tier_window", "daily_cost", "max_share"]


@dataclass(frozen=True)
class LLMFailure:
    kind: FailureKind
    detail: str
    attempts: tuple[Attempt, ...] = ()
    budget_limits: tuple[BudgetLimit, ...] = ()  # set when kind is budget_exhausted: every limit that refused


LLMResult = LLMReply | LLMFailure
