"""The seed's reasoning and query rows: SCALING_STRATEGIES' reasoning worker (404 chains, 213 runbooks, 53% yield
on the cheap tier) and its 8,012 unanalyzed queries, scaled down for the small brain.

Chains and runbooks cite members of their wisdom entry's community; the failed attempts carry the validator's
reason for a made-up citation. Queries are unanalyzed, with best scores spread over 0..1.
"""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa

from brain.schema import QUERIES, REASONING_ATTEMPTS, REASONING_CHAINS, RUNBOOKS

# scale -> (chains, runbooks, attempts, queries); attempts - chains answers failed validation
INSIGHT: dict[str, tuple[int, int, int, int]] = {"small": (5, 3, 9, 40), "seed": (404, 213, 762, 8_012)}
SEED_TIER = "routine"
TOPICS = ("pricing of", "who works with", "latest news on", "contracts of", "what happened to", "partners of")


def insight_tables(
    scale: str, wisdom: pa.Table, communities: pa.Table, names: dict[str, str], seed: int, now: float
) -> dict[str, pa.Table]:
    chains_n, runbooks_n, attempts_n, queries_n = INSIGHT.get(scale, (0, 0, 0, 0))
    members = dict(zip(communities.column("id").to_pylist(), communities.column("members").to_pylist(), strict=True))
    entries = sorted(zip(wisdom.column("id").to_pylist(), wisdom.column("community_id").to_pylist(), strict=True))
    rng = random.Random(seed)
    attempts: list[dict[str, Any]] = []
    chains: list[dict[str, Any]] = []
    runbooks: list[dict[str, Any]] = []
    for i, (wid, cid) in enumerate(entries[:attempts_n]):
        valid = i < chains_n
        attempt = {"id": f"rsa-seed-{i:05d}", "wisdom_id": wid, "community_id": cid, "tier": SEED_TIER}
        attempt |= {"valid": valid, "reason": "" if valid else "cites unknown entities: ent-999999"}
        attempt |= {"cost": 0.002, "created_at": now - rng.uniform(0, 20 * 3600)}
        attempts.append(attempt)
        if not valid:
            continue
        cited = list((members.get(cid) or [])[:2])
        about = " and ".join(names.get(c, c) for c in cited) or "the group"
        row = {"wisdom_id": wid, "community_id": cid, "cited": cited, "tier": SEED_TIER, "attempt_id": attempt["id"]}
        row["created_at"] = attempt["created_at"]
        steps = [f"{about} appear in the same records", f"a change to one of {about} touches the other"]
        chains.append(row | {"id": f"rsn-{wid}", "steps": steps, "conclusion": f"treat {about} as one unit"})
        if len(runbooks) < runbooks_n:
            runbooks.append(row | {"id": f"rbk-{wid}", "steps": steps, "title": f"review {about} together"})
    name_list = sorted(names.values())
    queries = []
    for i in range(queries_n):
        text = f"{rng.choice(TOPICS)} {rng.choice(name_list)}" if name_list else f"query {i}"
        at = now - rng.uniform(0, 7 * 86_400)
        queries.append(
            {
                "id": f"q-seed-{i:06d}",
                "text": text,
                "time": at,
                "hits": rng.randint(0, 12),
                "best_score": round(rng.random(), 3),
            }
        )
    return {
        "reasoning_attempts": pa.Table.from_pylist(attempts, schema=REASONING_ATTEMPTS),
        "reasoning_chains": pa.Table.from_pylist(chains, schema=REASONING_CHAINS),
        "runbooks": pa.Table.from_pylist(runbooks, schema=RUNBOOKS),
        "queries": pa.Table.from_pylist(queries, schema=QUERIES),
    }
