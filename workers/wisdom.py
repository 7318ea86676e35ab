"""The wisdom worker: one short insight per community that has none yet.

It summarises the leaf communities (`BrainStore.leaf_communities`: the finest level, each entity in at most
one), not the coarser levels that recluster also writes: one LLM call per group of entities, and the count
`stats` reports as pending["wisdom"] and wisdom_coverage is of the same leaves.

With model tiers configured (brainops.toml / BRAINOPS_* env, inherited from the agent that started the
worker) the text comes from the fleet LLM call (budgeted, cached, routed by the fleet's tier weights); the
entry point (`brainops worker wisdom`) loads those settings and passes the built fleet LLM in.
Without a model it writes an extractive summary (central entities by degree, types, link count), so the
pipeline stays complete and testable offline.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from brain.insight_stats import priority_communities
from brain.schema import WISDOM
from core.fence import content_fence_token, fence, fence_rule
from llm.fleet import FleetLLMUnavailable
from workers.runtime import WorkerRun, bucket_of

if TYPE_CHECKING:
    from brain.store import BrainStore

MAX_NAMES_IN_PROMPT = 25


@dataclass(frozen=True)
class WisdomConfig:
    brain: str
    shard: tuple[int, int] = (0, 1)
    batch_size: int = 16
    loop: bool = False
    item_ms: int = 0  # simulated per-community LLM latency when no model is configured
    limit: int | None = None


@dataclass(frozen=True)
class CommunityView:
    id: str
    names: tuple[str, ...]  # most connected first
    types: dict[str, int]
    links: int


class WisdomWorker:
    def __init__(self, config: WisdomConfig, store: BrainStore, llm: Any = None) -> None:
        self.config = config
        self.store = store
        self.llm = llm
        self.done = 0

    def step(self) -> int:
        if self.config.limit is not None and self.done >= self.config.limit:
            return 0
        todo = self._pending()[: self._batch_limit()]
        if not todo:
            return 0
        try:
            rows = [self._wisdom_row(view) for view in self._views(todo)]
        except FleetLLMUnavailable as exc:
            # Provider down or budget gone: keep the process (no crash loop), write nothing, retry later.
            print(f"wisdom: model unavailable, will retry: {exc}", file=sys.stderr)
            return 0
        self.store.upsert("wisdom", pa.Table.from_pylist(rows, schema=WISDOM))
        self.done += len(rows)
        return len(rows)

    def _batch_limit(self) -> int:
        left = None if self.config.limit is None else self.config.limit - self.done
        return self.config.batch_size if left is None else min(self.config.batch_size, left)

    def _pending(self) -> list[tuple[str, list[str]]]:
        """Leaf communities (the finest level: the partition) without wisdom, in this shard: those the query
        priorities name first (worst answered topic first), then by id."""
        covered = set(self.store.fresh("wisdom").to_lance().to_table(columns=["community_id"]).column(0).to_pylist())
        todo = [
            (cid, members)
            for cid, members in self.store.leaf_communities()
            if cid not in covered and _in_shard(cid, self.config.shard)
        ]
        rank = {cid: i for i, cid in enumerate(priority_communities(self.store))}
        return sorted(todo, key=lambda t: (rank.get(t[0], len(rank)), t[0]))

    def _views(self, todo: list[tuple[str, list[str]]]) -> list[CommunityView]:
        member_ids = sorted({m for _, members in todo for m in members})
        entities = _select_in(self.store, "entities", ("id",), member_ids, ["id", "name", "type"])
        names = dict(zip(entities.column("id").to_pylist(), entities.column("name").to_pylist(), strict=True))
        types = dict(zip(entities.column("id").to_pylist(), entities.column("type").to_pylist(), strict=True))
        rels = _select_in(self.store, "relationships", ("src", "dst"), member_ids, ["src", "dst"])
        degree: Counter[str] = Counter(rels.column("src").to_pylist()) + Counter(rels.column("dst").to_pylist())
        views = []
        for cid, members in todo:
            ranked = sorted((m for m in members if m in names), key=lambda m: (-degree[m], names[m]))
            inside = set(members)
            links = sum(
                1
                for s, d in zip(rels.column("src").to_pylist(), rels.column("dst").to_pylist(), strict=True)
                if s in inside and d in inside
            )
            views.append(
                CommunityView(cid, tuple(names[m] for m in ranked), dict(Counter(types[m] for m in ranked)), links)
            )
        return views

    def _wisdom_row(self, view: CommunityView) -> dict[str, Any]:
        text = self._llm_text(view) if self.llm is not None else self._extractive_text(view)
        return {"id": f"wis-{view.id}", "community_id": view.id, "text": text, "created_at": time.time()}

    def _extractive_text(self, view: CommunityView) -> str:
        if self.config.item_ms:
            time.sleep(self.config.item_ms / 1000.0)
        central = ", ".join(view.names[:3]) or "no named entities"
        kinds = ", ".join(f"{n} {t}" for t, n in sorted(view.types.items(), key=lambda kv: -kv[1]))
        return (
            f"A group of {len(view.names)} entities ({kinds}) centred on {central}, "
            f"held together by {view.links} relationships. [extractive summary]"
        )

    def _llm_text(self, view: CommunityView) -> str:
        token = content_fence_token(*view.names[:MAX_NAMES_IN_PROMPT], *map(str, view.types.items()))
        messages = wisdom_messages(view, token)
        return str(self.llm.complete(messages, "wisdom", purpose="analysis", max_tokens=120)).strip()


def wisdom_messages(view: CommunityView, token: str) -> list[dict[str, str]]:
    """The prompt for one community. Entity names and types are record text: fenced with this call's token
    (core/fence.py) and named untrusted in the system prompt."""
    listed = "; ".join(view.names[:MAX_NAMES_IN_PROMPT])
    types = ", ".join(f"{t}: {n}" for t, n in view.types.items())
    system = f"You write one or two factual sentences on what links a set of entities. {fence_rule(token)}"
    user = f"Entities (most connected first): {fence(listed, token)}. Types: {fence(types, token)}."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _in_shard(community_id: str, shard: tuple[int, int]) -> bool:
    i, n = shard
    return n == 1 or bucket_of(community_id) % n == i


def _select_in(store: BrainStore, table: str, keys: tuple[str, ...], values: list[str], columns: list[str]) -> pa.Table:
    """Rows whose value in any of `keys` is one of `values`."""
    data = store.fresh(table).to_lance().to_table(columns=columns)
    if not values:
        return data.slice(0, 0)
    wanted = pa.array(values)
    mask = pc.is_in(data.column(keys[0]), value_set=wanted)
    for key in keys[1:]:
        mask = pc.or_(mask, pc.is_in(data.column(key), value_set=wanted))
    return data.filter(mask)


def run_wisdom(config: WisdomConfig, run: WorkerRun, llm: Any = None) -> int:
    from workers.extract import open_brain

    try:
        worker = WisdomWorker(config, open_brain(config.brain), llm)
    except Exception:
        run.state = "crashed"
        run.write_status(exit_code=1)
        raise
    run.install_signal_handlers()
    return run.loop(worker.step, forever=config.loop, idle_s=1.0)
