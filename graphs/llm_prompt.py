"""What the planning model is shown: a compact observation summary, recent decisions, and how tier roles are chosen.

Every outside string (notes, host errors, earlier decisions with their rationales and outcomes) reaches the
model fenced with the call's token (core/fence.py), and the system prompt names that fence as untrusted.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from core.domain import Observation
from core.fence import fence, fence_rule
from core.kinds import SCALABLE_KINDS, STAGE_OF_KIND
from graphs.rules_reasoning import prompt_facts
from tools.observe import decision_view, fenced_json

CRASH_LOOP_RESTARTS = 3  # a worker restarted this often is treated as crash-looping
BACKLOG_JUMP_PER_MIN = 200.0  # a work queue growing faster than this (items/min) is an anomaly
# The real work queues: the stages long-running workers drain. The other pending figures (dedup candidates,
# relationships changed since recluster) are trigger measures that ordinary extraction grows on every tick.
BACKLOG_STAGES: tuple[str, ...] = tuple(dict.fromkeys(STAGE_OF_KIND[k] for k in SCALABLE_KINDS))
RECENT_DECISIONS_SHOWN = 5
MAX_TOOL_RESULT_CHARS = 4000

SYSTEM_PROMPT = """You are brainops, the operations agent of a self-hosted LLM knowledge pipeline.
Read-only tools add detail to the fleet summary. Decide by calling action tools: a call only
PROPOSES; a policy engine (and maybe a human) decides. Call noop with a reason when all is within targets.
Keep counts within get_policy_limits. Cite numbers in every rationale; expect may state the outcome
(brain.pending.extract<=100@600s). A rejected call says why: correct it, do not repeat it."""


def system_prompt(token: str) -> str:
    return f"{SYSTEM_PROMPT}\n{fence_rule(token)}"


def anomalies(obs: Observation) -> tuple[str, ...]:
    """Situations that deserve the analysis purpose (a stronger tier) rather than the routine one."""
    found: list[str] = []
    found += [f"host {h.host} is down" for h in obs.hosts if not h.reachable]
    found += [
        f"worker {w.id} is crash-looping ({w.state}, {w.restarts} restarts)"
        for w in obs.workers
        if w.state == "fatal" or w.restarts >= CRASH_LOOP_RESTARTS
    ]
    found += [
        f"{stage} backlog grows {-rate:.0f}/min"
        for stage, rate in sorted(obs.rates.items())
        if stage in BACKLOG_STAGES and -rate >= BACKLOG_JUMP_PER_MIN
    ]
    found += list(obs.missed_expectations)  # the planner's actions keep missing: a stronger tier looks
    return tuple(found)


Fenced = Callable[[object], str]


def observation_summary(obs: Observation, fenced: Fenced) -> dict[str, Any]:
    workers: Counter[str] = Counter(f"{w.kind}@{w.host}:{w.state}" for w in obs.workers)
    budget = obs.budget
    return {
        "time": obs.time,
        "hosts": {h.host: _host_line(h, fenced) for h in obs.hosts},
        "workers": dict(sorted(workers.items())),
        "unhealthy_workers": [
            {"id": w.id, "kind": w.kind, "host": w.host, "state": w.state, "restarts": w.restarts}
            for w in obs.workers
            if w.state in ("crashed", "backoff", "fatal")
        ],
        "desired": dict(obs.desired),
        "backlog": dict(obs.brain.pending),
        "rates_per_min": {k: round(v, 1) for k, v in obs.rates.items()},
        "brain": {
            **({"error": fenced(obs.brain.error)} if obs.brain.error else {}),
            "entities": obs.brain.entities,
            "duplicate_estimate": round(obs.brain.duplicate_estimate, 4),
            "duplicate_candidates": obs.brain.duplicate_candidates,
            "dedup_plan": _dedup_plan(obs),
            "relationships_changed_since_recluster": obs.brain.relationships_changed_since_recluster,
            "community_age_s": obs.brain.community_age_s,
            **prompt_facts(obs),
        },
        "budget": {
            "remaining_tokens": budget.remaining_tokens,
            "pace": round(budget.pace, 3),
            "cost_today": round(budget.cost_today, 4),
            "routing": dict(budget.routing),
        },
        "pending_approvals": [{"action": p.action, "args": p.args} for p in obs.pending_approvals],
        "index": _index(obs),
        "recent_actions": dict(obs.recent_actions),
        "notes": [fenced(n) for n in obs.notes],
        **_storage_and_cost(obs),
    }


def _storage_and_cost(obs: Observation) -> dict[str, Any]:
    """Only what was measured: disk use and reclaimable MiB per target; the month's cost per result."""
    out: dict[str, Any] = {}
    s = obs.storage
    if s.disk_percent is not None:
        mib = {k: None if t.bytes is None else round(t.bytes / 2**20) for k, t in s.reclaimable.items()}
        out["storage"] = {"disk_percent": s.disk_percent, "reclaimable_mib": mib}
    month = obs.cost.month
    if month is not None:
        out["cost_month"] = {
            "llm": round(month.llm_cost, 4),
            "compute": round(month.compute_cost, 4),
            "per_1k_records": month.cost_per("records", 1000),
            "per_wisdom": month.cost_per("wisdom"),
        }
    return out


def _index(obs: Observation) -> dict[str, Any] | None:
    """The records' search as the probe measured it (None when it did not: nothing to act on)."""
    ix = obs.index
    if not ix.measured:
        return None
    keys = ("p95_ms", "recall_at_10", "small_fragments", "unindexed_rows", "rows", "indexed")
    return {k: getattr(ix, k) for k in keys}


def _dedup_plan(obs: Observation) -> dict[str, Any] | None:
    """The last dry run's plan: a live run_dedup passes its hash as `plan` and its absorbed count. Its sample
    (entity names: text from the records, so untrusted) is for human approvers and stays out of the prompt."""
    plan = obs.brain.dedup_plan
    if plan is None:
        return None
    return {
        "hash": plan.hash,
        "absorbed": plan.absorbed,
        "survivors": plan.merges,
        "age_s": round(max(0.0, obs.time - plan.created_at)),
        "stale": plan.stale,
    }


def _host_line(h: Any, fenced: Fenced) -> str:
    if not h.reachable:
        return f"DOWN ({fenced(h.error) if h.error else 'unreachable'})"
    gpus = ", ".join(f"gpu{g.index} {g.util_percent:.0f}%" for g in h.gpus)
    base = f"up cpu {h.cpu_percent:.0f}% mem {h.mem_percent:.0f}% disk {h.disk_percent:.0f}% cores {h.cpu_count}"
    return f"{base}{'; ' + gpus if gpus else ''}"


def similar_decisions(recent: Sequence[dict[str, Any]], flags: Sequence[str], now: float) -> list[dict[str, Any]]:
    """The last few decisions, those matching the current anomalies' actions first."""
    compact = [decision_view(d, now) for d in recent]
    wanted = {"restart_worker", "stop_worker"} if any("crash" in f for f in flags) else set()
    wanted |= {"scale_workers"} if any("backlog" in f or "down" in f for f in flags) else set()
    ranked = sorted(compact, key=lambda d: d.get("action") in wanted)  # stable: wanted last = nearest
    return ranked[-RECENT_DECISIONS_SHOWN:]


def first_messages(obs: Observation, recent: Sequence[dict[str, Any]], token: str) -> list[dict[str, Any]]:
    """The system prompt naming this call's fence `token` (core.fence.new_fence_token), the tick as JSON, and
    the recent decisions (outside text: rationales, outcomes) as one fenced block."""
    flags = anomalies(obs)

    def fenced(text: object) -> str:
        return fence(text, token)

    user = {"observation": _pruned(observation_summary(obs, fenced)), "anomalies": list(flags)}
    messages = [
        {"role": "system", "content": system_prompt(token)},
        {"role": "user", "content": json.dumps(user, separators=(",", ":"), default=str)},
    ]
    decisions = similar_decisions(recent, flags, obs.time)
    if decisions:
        block = fenced_json(decisions, fenced)
        messages.append({"role": "user", "content": f"Recent decisions, oldest first: {block}"})
    return messages


def _pruned(summary: dict[str, Any]) -> dict[str, Any]:
    """Without empty entries (no notes, no pending approvals, no dedup plan ...): they cost tokens, say nothing."""
    out = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            value = _pruned(value)
        if value not in (None, [], {}):
            out[key] = value
    return out


def tool_result_text(result: Any) -> str:
    text = result if isinstance(result, str) else json.dumps(result, separators=(",", ":"), default=str)
    if len(text) > MAX_TOOL_RESULT_CHARS:
        return text[:MAX_TOOL_RESULT_CHARS] + "...(truncated)"
    return text
