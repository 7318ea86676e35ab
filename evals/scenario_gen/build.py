"""Builders for generated scenarios: hosts, workers, brain, budget and observation as the JSON the schema holds,
and the expectation shapes (`scale`, `up`, `down`, `act`). Plain dicts: a case is data, not code.

Figures follow the seed (/work/shared/SCALING_STRATEGIES.md): a 16 GB brain host with an RTX 4070 at 30-40%
CPU and 60-70% memory, a 32 GB worker PC running 7 research workers at 40-50% memory, 800M tokens per 5 h.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

T0 = 1_800_000_000.0
T1 = 1_800_271_545.0  # the held-out split's clock: three days and a bit later
SCALED = ("extract", "wisdom")  # the kinds the dispatcher keeps a desired count for (embed shards are a job)
DEFAULT_ROUTING = {"routine": 0.6, "analysis": 0.35, "strategic": 0.05}
CHEAP_ROUTING = {"routine": 0.85, "analysis": 0.15, "strategic": 0.0}
RTX_4070 = "NVIDIA GeForce RTX 4070"
PLAN_A = "3f9c1e7a5b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e"
PLAN_B = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

Json = dict[str, Any]


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    category: str
    description: str
    observation: Json
    expect: Json
    control: bool = False
    policy_overrides: Json = field(default_factory=dict)
    planner_overrides: Json = field(default_factory=dict)
    rules_known_wrong: str | None = None

    def to_json(self) -> Json:
        out: Json = {"$schema": "../scenario.schema.json", "id": self.id, "title": self.title}
        out["category"] = self.category
        if self.control:
            out["control"] = True
        out["description"] = self.description
        out["observation"] = self.observation
        if self.policy_overrides:
            out["policy_overrides"] = self.policy_overrides
        if self.planner_overrides:
            out["planner_overrides"] = self.planner_overrides
        if self.rules_known_wrong:
            out["rules_known_wrong"] = self.rules_known_wrong
        out["expect"] = self.expect
        return out


# ---------------------------------------------------------------- fleet


def gpu(name: str = RTX_4070, total_mb: float = 12282.0, used_mb: float = 1400.0, util: float = 4.0) -> Json:
    return {"index": 0, "name": name, "util_percent": util, "mem_used_mb": used_mb, "mem_total_mb": total_mb}


def host(
    name: str,
    cpu: float,
    mem: float,
    *,
    cores: int = 16,
    disk: float = 55.0,
    gpus: Sequence[Json] = (),
    load1: float | None = None,
) -> Json:
    out: Json = {"host": name, "cpu_percent": float(cpu), "mem_percent": float(mem), "disk_percent": float(disk)}
    out["load1"] = float(load1 if load1 is not None else round(cores * cpu / 100.0, 1))
    out["cpu_count"] = cores
    if gpus:
        out["gpus"] = [dict(g) for g in gpus]
    return out


def unreachable(name: str, error: str) -> Json:
    return {"host": name, "reachable": False, "error": error}


def workers(
    kind: str,
    on: str,
    n: int,
    *,
    first: int = 1,
    cpu: float = 95.0,
    rss: float = 640.0,
    state: str = "running",
    restarts: int = 0,
    last_exit: int | None = None,
    started: float = T0 - 7200.0,
    idle: bool = False,
) -> list[Json]:
    out = []
    for i in range(first, first + n):
        wid = f"{kind}-{on}-{i}"
        w: Json = {"id": wid, "kind": kind, "host": on, "pid": 2000 + zlib.crc32(wid.encode()) % 60000}
        w |= {"state": state, "started_at": started, "restarts": restarts, "cpu_percent": float(cpu)}
        w["rss_mb"] = float(rss)
        if last_exit is not None:
            w["last_exit"] = last_exit
        if idle:
            w["idle"] = True
        out.append(w)
    return out


def tweak(ws: list[Json], wid: str, **changes: Any) -> list[Json]:
    """The worker list with one worker's fields changed (floats for the measured figures)."""
    return [
        {**w, **{k: float(v) if k in ("cpu_percent", "rss_mb") else v for k, v in changes.items()}}
        if w["id"] == wid
        else w
        for w in ws
    ]


def brain(**overrides: Any) -> Json:
    """The seed's brain: 485k records, 21k entities at 0.97 relationships each, 4.2k communities, nothing due
    (duplicates under the threshold, 1.5% of relationships changed, communities 6 h old)."""
    out: Json = {
        "records": 485848,
        "entities": 21138,
        "relationships": 21008,
        "communities": 4231,
        "wisdom": 4784,
        "pending": {"extract": 2500, "embed": 120, "wisdom": 400},
        "duplicate_estimate": 0.002,
        "duplicate_candidates": 42,
        "relationships_changed_since_recluster": 310,
        "community_age_s": 21600.0,
        "wisdom_coverage": 0.39,
        "relationship_density": 0.97,
    }
    return out | overrides


def budget(
    used: float = 0.3,
    pace: float = 0.8,
    *,
    window: int = 800_000_000,
    reserved: float = 0.0,
    cost: float = 3.1,
    cap: float | None = 50.0,
    routing: Mapping[str, float] | None = None,
) -> Json:
    """`used` and `reserved` as shares of the window. With pace = used share / elapsed share, the window's
    elapsed share is used / pace and, at the same burn, what is left lasts window_s * (1 - used) / pace."""
    used_tokens, weights = round(used * window), dict(routing or DEFAULT_ROUTING)
    per_tier = {tier: round(used_tokens * share) for tier, share in weights.items()}
    return {
        "window_s": 18000,
        "window_tokens": window,
        "used_tokens": used_tokens,
        "reserved_tokens": round(reserved * window),
        "pace": pace,
        "cost_today": cost,
        "daily_cost_cap": cap,
        "per_tier": per_tier,
        "routing": weights,
    }


def approval(
    aid: str, action: str, args: Json, asked_s_ago: float = 180.0, ttl_s: float = 900.0, now: float = T0
) -> Json:
    return {"id": aid, "action": action, "args": args, "expires_at": now - asked_s_ago + ttl_s}


def observation(
    hosts: Sequence[Json],
    ws: Iterable[Json],
    *,
    pending: Mapping[str, int] | None = None,
    rates: Mapping[str, float] | None = None,
    spend: Json | None = None,
    desired: Mapping[str, int] | None = None,
    recent: Mapping[str, float] | None = None,
    approvals: Sequence[Json] = (),
    notes: Sequence[str] = (),
    stats: Json | None = None,
    time: float = T0,
) -> Json:
    """`desired` defaults to every scaled worker listed (FATAL ones too: the dispatcher still wants them);
    `recent` times are seconds before `time`."""
    ws = list(ws)
    counts: dict[str, int] = {}
    for w in ws:
        if w["kind"] in SCALED:
            key = f"{w['kind']}@{w['host']}"
            counts[key] = counts.get(key, 0) + 1
    b = stats or brain()
    if pending is not None:
        b = {**b, "pending": dict(pending)}
    return {
        "time": time,
        "hosts": [dict(h) for h in hosts],
        "workers": ws,
        "brain": b,
        "rates": dict(rates or {"extract": 35.0, "embed": 60.0, "wisdom": 6.0}),
        "budget": spend or budget(),
        "pending_approvals": [dict(a) for a in approvals],
        "desired": dict(desired if desired is not None else counts),
        "recent_actions": {k: time - ago for k, ago in (recent or {}).items()},
        "notes": list(notes),
    }


def seed_hosts(
    brain_cpu: float = 36.0, brain_mem: float = 62.0, pc_cpu: float = 48.0, pc_mem: float = 46.0
) -> list[Json]:
    """brain (16 GB, RTX 4070 mostly idle, 1 TB SSD 80% full) and worker-pc (32 GB)."""
    return [
        host("brain", brain_cpu, brain_mem, disk=80.0, gpus=[gpu()]),
        host("worker-pc", pc_cpu, pc_mem, disk=60.0),
    ]


def seed_workers(extract: int = 5, wisdom: int = 2, on: str = "worker-pc") -> list[Json]:
    """The seed's 7 research workers on the worker PC: extract (~6% of its 16 threads each) and wisdom."""
    return [*workers("extract", on, extract), *workers("wisdom", on, wisdom, cpu=40.0, rss=420.0)]


# ---------------------------------------------------------------- expectations


def act(action: str, verdict: str | None = None, **args: Any) -> Json:
    """An action with argument constraints; dotted names come in as `weights__routine`."""
    out: Json = {"action": action}
    if args:
        out["args"] = {k.replace("__", "."): v for k, v in args.items()}
    if verdict:
        out["verdict"] = verdict
    return out


def scale(kind: str, on: str | None = None, count: Any = None, verdict: str | None = None) -> Json:
    args: Json = {"kind": kind}
    if on is not None:
        args["host"] = on
    if count is not None:
        args["count"] = count
    return act("scale_workers", verdict, **args)


def up(kind: str, on: str, now: int) -> Json:
    """Any scale-up of the kind on the host above `now` workers."""
    return scale(kind, on, {"gt": now})


def down(kind: str, on: str, now: int) -> Json:
    """Any scale-down of the kind on the host below `now` workers."""
    return scale(kind, on, {"lt": now})


def no_scale_up(kind: str, counts: Mapping[str, int]) -> list[Json]:
    """No scale-up of the kind on any of these hosts (host -> its count now)."""
    return [up(kind, h, n) for h, n in counts.items()]


NOOP = {"action": "noop"}
CHEAPER = act("set_model_routing", weights__routine={"ge": 0.8})


def expect(
    must: Sequence[Json] = (),
    *,
    one_of: Sequence[Sequence[Json]] = (),
    may: Sequence[Json] = (),
    must_not: Sequence[Json] = (),
    exclusive: bool = False,
    approval: str = "any",
    verdict: str = "any",
) -> Json:
    out: Json = {}
    if must:
        out["must"] = list(must)
    if one_of:
        out["one_of"] = [list(g) for g in one_of]
    if may:
        out["may"] = list(may)
    if must_not:
        out["must_not"] = list(must_not)
    if exclusive:
        out["exclusive"] = True
    out["approval"] = approval
    out["verdict"] = verdict
    return out


def quiet(*must_not: Json) -> Json:
    """Nothing to do: a noop and nothing else, no human asked."""
    return expect([NOOP], must_not=must_not, exclusive=True, approval="forbidden", verdict="allow")
