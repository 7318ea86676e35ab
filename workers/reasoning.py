"""The reasoning worker: each wisdom entry and its community become a reasoning chain (and, when the model
sees a procedure in it, a runbook) through the fleet LLM, checked by workers/reasoning_check.py.

Every answer is one attempt row (tier, valid, reason, the ledger's cost), so the yield per tier is observed
(`BrainStats.reasoning`); only valid answers become chains and runbooks. A wisdom entry is tried again until
it has a chain or `REASONING_MAX_ATTEMPTS` answers failed. Communities the query priorities name go first.

The tier: the ledger's task tier for "reasoning" (the planner's `set_reasoning_tier` action writes it), read
before every batch; without one the fleet's split picks. Answers are never taken from the response cache:
each attempt measures its tier. Without model tiers the worker refuses to start (there is no offline chain).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from brain.insight_stats import priority_communities, reasoning_todo
from core.fence import content_fence_token, fence, fence_rule
from llm.router import LLMFailure
from workers.reasoning_check import ReasoningAnswer, Refused, validate_answer
from workers.runtime import WorkerRun, bucket_of

if TYPE_CHECKING:
    from brain.store import BrainStore
    from llm.fleet import FleetLLM

TASK = "reasoning"
MAX_MEMBERS_IN_PROMPT = 30


@dataclass(frozen=True)
class ReasoningConfig:
    brain: str
    shard: tuple[int, int] = (0, 1)
    batch_size: int = 8
    loop: bool = False
    limit: int | None = None


@dataclass(frozen=True)
class Item:
    wisdom_id: str
    community_id: str
    wisdom: str
    members: tuple[tuple[str, str, str], ...]  # (id, name, type), community members


class NoModelError(RuntimeError):
    """no model tiers configured ([llm] tiers in brainops.toml): reasoning needs the fleet LLM."""


class ReasoningWorker:
    def __init__(
        self,
        config: ReasoningConfig,
        store: BrainStore,
        llm: FleetLLM,
        pinned_tier: Callable[[], str | None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.llm = llm
        self.pinned_tier = pinned_tier
        self.clock = clock
        self.done = 0

    def step(self) -> int:
        """One batch: answer, validate and record each item; returns the items attempted."""
        left = None if self.config.limit is None else self.config.limit - self.done
        size = self.config.batch_size if left is None else min(self.config.batch_size, left)
        todo = self.pending()[:size] if size > 0 else []
        if not todo:
            return 0
        items, known = self._items(todo)
        tier = self.pinned_tier()
        rows: dict[str, list[dict[str, Any]]] = {"reasoning_attempts": [], "reasoning_chains": [], "runbooks": []}
        for item in items:
            reply = self.llm.try_complete(
                reasoning_messages(item), TASK, purpose="analysis", max_tokens=600, use_cache=False, tier=tier
            )
            if isinstance(reply, LLMFailure):
                # provider down or budget gone: not an answer, so not an attempt; the rest waits for later
                print(f"reasoning: model unavailable, will retry: {reply.kind}: {reply.detail}", file=sys.stderr)
                break
            self._record(item, reply.text, reply.tier, reply.cost, known, rows)
        for table, batch in rows.items():
            self.store.add(table, batch)
        attempted = len(rows["reasoning_attempts"])
        self.done += attempted
        return attempted

    def pending(self) -> list[tuple[str, str]]:
        """(wisdom id, community id) to reason about in this shard: prioritised communities first, then those
        tried least (a refused entry is retried after the fresh ones, not in the next batch), then by id."""
        todo = [t for t in reasoning_todo(self.store) if _in_shard(t[0], self.config.shard)]
        rank = {cid: i for i, cid in enumerate(priority_communities(self.store))}
        ordered = sorted(todo, key=lambda t: (rank.get(t[1], len(rank)), t[2], t[0]))
        return [(wid, cid) for wid, cid, _ in ordered]

    def _items(self, todo: list[tuple[str, str]]) -> tuple[list[Item], frozenset[str]]:
        """The batch's items, and every entity id in the brain (a chain may cite one outside its community)."""
        wanted = {wid for wid, _ in todo}
        wisdom = self.store.fresh("wisdom").to_lance().to_table(columns=["id", "text"]).to_pylist()
        texts = {w["id"]: w["text"] or "" for w in wisdom if w["id"] in wanted}
        members = dict(self.store.leaf_communities())
        ids = {m for _, cid in todo for m in members.get(cid, ())}
        rows = self.store.fresh("entities").to_lance().to_table(columns=["id", "name", "type"]).to_pylist()
        named = {r["id"]: (r["id"], r["name"] or "", r["type"] or "") for r in rows if r["id"] in ids}
        items = [
            Item(wid, cid, texts.get(wid, ""), tuple(named[m] for m in members.get(cid, ()) if m in named))
            for wid, cid in todo
        ]
        return items, frozenset(r["id"] for r in rows)

    def _record(
        self, item: Item, text: str, tier: str, cost: float, known: frozenset[str], rows: dict[str, list[Any]]
    ) -> None:
        now = self.clock()
        attempt_id = "rsa-" + hashlib.sha1(f"{item.wisdom_id}\x00{now!r}\x00{text}".encode()).hexdigest()[:16]
        checked = validate_answer(text, known)
        reason = checked.reason if isinstance(checked, Refused) else ""
        rows["reasoning_attempts"].append(
            {
                "id": attempt_id,
                "wisdom_id": item.wisdom_id,
                "community_id": item.community_id,
                "tier": tier,
                "valid": not reason,
                "reason": reason,
                "cost": float(cost),
                "created_at": now,
            }
        )
        if isinstance(checked, ReasoningAnswer):
            base: dict[str, Any] = {"wisdom_id": item.wisdom_id, "community_id": item.community_id, "tier": tier}
            base |= {"attempt_id": attempt_id, "created_at": now, "cited": list(checked.cited())}
            chain = checked.chain
            rows["reasoning_chains"].append(
                {
                    **base,
                    "id": f"rsn-{item.wisdom_id}",
                    "steps": [s.text for s in chain.steps],
                    "conclusion": chain.conclusion,
                }
            )
            if checked.runbook is not None:
                book = checked.runbook
                rows["runbooks"].append(
                    {**base, "id": f"rbk-{item.wisdom_id}", "steps": [s.text for s in book.steps], "title": book.title}
                )


ANSWER_SHAPE = json.dumps(
    {
        "chain": {"steps": [{"text": "one reasoning step", "cites": ["<entity id>"]}], "conclusion": "what follows"},
        "runbook": {
            "title": "a procedure, or null when none",
            "steps": [{"text": "do this", "cites": ["<entity id>"]}],
        },
    }
)


def reasoning_messages(item: Item) -> list[dict[str, str]]:
    """The prompt for one wisdom entry. The wisdom text and the member names are brain text: fenced with a token
    fixed by that text (core/fence.py) and named untrusted in the system prompt."""
    listed = "; ".join(f"{i} = {n} ({t})" for i, n, t in item.members[:MAX_MEMBERS_IN_PROMPT])
    token = content_fence_token(item.wisdom, listed)
    system = (
        "You turn an insight about a group of entities into a step-by-step reasoning chain and, when the insight "
        "implies a procedure, a runbook. Answer with JSON only, shaped like "
        f"{ANSWER_SHAPE}. Every step cites the ids of the entities it relies on, only ids from the list given. "
        f"{fence_rule(token)}"
    )
    user = f"Insight: {fence(item.wisdom, token)}\nEntities (id = name (type)): {fence(listed, token)}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _in_shard(wisdom_id: str, shard: tuple[int, int]) -> bool:
    i, n = shard
    return n == 1 or bucket_of(wisdom_id) % n == i


def run_reasoning(
    config: ReasoningConfig, run: WorkerRun, llm: FleetLLM | None, pinned_tier: Callable[[], str | None]
) -> int:
    from workers.extract import open_brain

    if llm is None:
        run.state = "crashed"
        run.write_status(exit_code=1)
        raise NoModelError(NoModelError.__doc__)
    try:
        worker = ReasoningWorker(config, open_brain(config.brain).open_or_create(), llm, pinned_tier)
    except Exception:
        run.state = "crashed"
        run.write_status(exit_code=1)
        raise
    run.install_signal_handlers()
    return run.loop(worker.step, forever=config.loop, idle_s=1.0)
