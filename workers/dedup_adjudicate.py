"""The fleet LLM as a judge of ambiguous entity pairs: "same thing or not?", asked once per pair.

Only pairs the deterministic matcher leaves undecided reach it (workers.dedup_match: probable but without
corroboration, or names unrelated but meanings close), at most `max_calls` per run. The records are text
from documents, so they go to the model fenced (core/fence.py) and named untrusted; the answer must be one
of three words and anything else counts as "unsure". A cascade: the cheap tier answers first, and an UNSURE
or malformed answer is asked again one tier up. Answers are cached by the fleet LLM (same pair, same prompt, no new
call) and paid from its token ledger. When no model is configured, the budget is spent or the provider
fails, the adjudicator says "unsure" and the deterministic verdict stands.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.fence import content_fence_token, fence, fence_rule
from core.llm_types import LLMFailure, Purpose
from workers.dedup_match import Verdict
from workers.er_compare import ERTable

PURPOSE = "dedup"
SYSTEM = (
    "You decide whether two records from a knowledge base name the same real-world entity. "
    "Different places, people, languages or products with similar names are "
    "DIFFERENT. Answer with exactly one word: SAME, DIFFERENT or UNSURE."
)
ANSWERS = {"same": True, "different": False, "unsure": None}


class CompletesText(Protocol):
    def try_complete(
        self,
        messages: list[dict[str, str]],
        task: str,
        *,
        purpose: Purpose = "routine",
        max_tokens: int | None = None,
        accept: Callable[[str], bool] | None = None,
    ) -> Any: ...


@dataclass
class LLMAdjudicator:
    """Callable the matcher uses; `log` keeps every question with the model's answer (also cached ones)."""

    llm: CompletesText
    max_calls: int = 50
    asked: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    gave_up: str | None = None  # why it stopped asking (budget, provider, no model)

    def __call__(self, table: ERTable, a: int, b: int) -> Verdict:
        if self.gave_up or self.asked >= self.max_calls:
            return Verdict(None, "none", self.gave_up or "call cap reached")
        self.asked += 1
        # a cascade: the cheap tier answers; an UNSURE or malformed answer is asked again one tier up
        reply = self.llm.try_complete(messages(table, a, b), PURPOSE, purpose="routine", max_tokens=4, accept=decisive)
        if isinstance(reply, LLMFailure):
            self.gave_up = f"{reply.kind}: {reply.detail}"
            return Verdict(None, "none", self.gave_up)
        answer = (reply.text or "").strip()
        word = answer.split()[0].strip(".,!:;").casefold() if answer else ""
        model = f"{reply.tier}{' (cached)' if reply.cached else ''}"
        verdict = Verdict(ANSWERS.get(word), model, answer[:40])
        self.log.append({"names": [table.names[a], table.names[b]], "model": model, "answer": verdict.answer})
        return verdict


def decisive(answer: str) -> bool:
    """The check a cheap tier's answer must pass to stand: one of SAME or DIFFERENT, nothing else."""
    words = answer.strip().split()
    return len(words) == 1 and words[0].strip(".,!:;").casefold() in ("same", "different")


def messages(table: ERTable, a: int, b: int) -> list[dict[str, str]]:
    records = [_record(table, i) for i in (a, b)]
    body = json.dumps(records, ensure_ascii=False, indent=1)
    token = content_fence_token(body)  # fixed by the records, so a re-asked pair hits the response cache
    return [
        {"role": "system", "content": f"{SYSTEM} {fence_rule(token)}"},
        {"role": "user", "content": f"{fence(body, token)}\nSAME, DIFFERENT or UNSURE?"},
    ]


def _record(table: ERTable, i: int) -> dict[str, Any]:
    out: dict[str, Any] = {"name": table.names[i][:200], "type": table.types[i]}
    if table.descriptions[i]:
        out["description"] = table.descriptions[i][:400]
    if table.attributes[i]:
        out["attributes"] = dict(list(table.attributes[i].items())[:12])
    return out
