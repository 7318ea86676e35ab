"""What an observation says about one action or kind, as the rule planner asks it: cooling down, refused by a
human lately, awaiting an approval, busy, and where a kind should run."""

from __future__ import annotations

from collections import Counter

from core.domain import Observation


def rounded(weights: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in weights.items()}


def refused(obs: Observation, key: str, now: float, backoff_s: float) -> bool:
    return in_cooldown(obs, f"refused:{key}", now, backoff_s)


def in_cooldown(obs: Observation, key: str, now: float, cooldown_s: float) -> bool:
    last = obs.recent_actions.get(key)
    return last is not None and now - last < cooldown_s


def busy(obs: Observation, kind: str) -> bool:
    return any(w.kind == kind and w.state in ("starting", "running", "draining") for w in obs.workers)


def awaiting(obs: Observation, action: str) -> bool:
    return any(a.action == action for a in obs.pending_approvals)


def awaiting_scale(obs: Observation, kind: str, host: str) -> bool:
    return any(
        a.action == "scale_workers" and a.args.get("kind") == kind and a.args.get("host") == host
        for a in obs.pending_approvals
    )


def place(obs: Observation, kind: str) -> str | None:
    """Host for a kind: where it already runs, else the reachable host with most headroom (GPU first for embed)."""
    current = {w.host for w in obs.workers if w.kind == kind and w.state in ("starting", "running")}
    current |= {key.split("@", 1)[1] for key, n in obs.desired.items() if key.startswith(f"{kind}@") and n > 0}
    reachable = [h for h in obs.hosts if h.reachable]
    for h in reachable:
        if h.host in current:
            return h.host
    if not reachable:
        return None
    return min(
        reachable, key=lambda h: (0 if kind == "embed" and h.gpus else 1, max(h.cpu_percent, h.mem_percent))
    ).host


def crash_loop(obs: Observation, kind: str) -> str | None:
    """One cause across a kind's workers: two or more FATAL with the same exit code, or every one of them.
    Such a fault follows the code or the data, not the host: more workers anywhere would crash the same way."""
    fatal = [w for w in obs.workers if w.kind == kind and w.state == "fatal" and w.last_exit not in (None, 0)]
    if not fatal:
        return None
    code, count = Counter(w.last_exit for w in fatal).most_common(1)[0]
    healthy = any(w.kind == kind and w.state in ("starting", "running") for w in obs.workers)
    if count < 2 and healthy:
        return None
    hosts = ", ".join(sorted({w.host for w in fatal if w.last_exit == code}))
    return f"{count} {kind} worker(s) FATAL with exit code {code} ({hosts})"
