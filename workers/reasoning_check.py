"""The reasoning validator: what counts as a yield. An answer is valid when it parses into the schema below, its
chain (and runbook, when it gives one) has non-empty steps, and every entity it cites exists in the brain.

An invalid answer is recorded as an attempt with the reason, never as a chain: it counts against its tier's yield.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Strict):
    text: str = Field(min_length=1)
    cites: tuple[str, ...] = ()  # entity ids


class Chain(_Strict):
    steps: tuple[Step, ...] = Field(min_length=1)
    conclusion: str = Field(min_length=1)


class Runbook(_Strict):
    title: str = Field(min_length=1)
    steps: tuple[Step, ...] = Field(min_length=1)


class ReasoningAnswer(_Strict):
    chain: Chain
    runbook: Runbook | None = None

    def cited(self) -> tuple[str, ...]:
        steps = (*self.chain.steps, *(self.runbook.steps if self.runbook else ()))
        return tuple(dict.fromkeys(c for s in steps for c in s.cites))


@dataclass(frozen=True)
class Refused:
    reason: str


_CODE_BLOCK = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def validate_answer(text: str, known_entities: Collection[str]) -> ReasoningAnswer | Refused:
    """The answer as a ReasoningAnswer, or why it is not one (first problem found, one line)."""
    body = text.strip()
    fenced = _CODE_BLOCK.match(body)
    body = fenced.group(1) if fenced else body
    try:
        raw = json.loads(body)
    except json.JSONDecodeError as exc:
        return Refused(f"not JSON: {exc.msg} at character {exc.pos}")
    try:
        answer = ReasoningAnswer.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        return Refused(f"schema: {where}: {first['msg']}")
    if any(not s.text.strip() for s in (*answer.chain.steps, *(answer.runbook.steps if answer.runbook else ()))):
        return Refused("schema: a step has blank text")
    cited = answer.cited()
    if not cited:
        return Refused("cites no entity")
    unknown = [c for c in cited if c not in known_entities]
    if unknown:
        return Refused(f"cites unknown entities: {', '.join(unknown[:5])}")
    return answer
