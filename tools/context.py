"""What the tools can see: one tick's observation plus read access to recent decisions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.domain import Observation
from core.fence import fence, new_fence_token


@dataclass(frozen=True)
class ToolContext:
    observation: Observation
    # Recent decisions as plain dicts (newest last); a callable so the log is only read if a tool asks.
    recent_decisions: Callable[[int], Sequence[dict[str, Any]]] = field(default=lambda _n: ())
    policy_summary: dict[str, Any] = field(default_factory=dict)
    # The fence of this model call (core/fence.py): outside text in a tool result is wrapped with it.
    fence_token: str = field(default_factory=new_fence_token)

    def fenced(self, text: object) -> str:
        return fence(text, self.fence_token)
