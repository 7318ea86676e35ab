"""What an observation says about one action or kind, as the rule planner asks it: cooling down, refused by a
human lately, awaiting an approval, busy, and where a kind should run."""

from __future__ import annotations

from collections import Counter

from core.domain import Observation, PendingApproval
from core.timefmt import iso


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
    return pending_scale(obs, kind, host) is not None


def pending_scale(obs: Observation, kind: str, host: str) -> PendingApproval | None:
    """The open approval for scaling this kind on this host, if a human is already asked."""
    return next(
        (
            a
            for a in obs.pending_approvals
            if a.action == "scale_workers" and a.args.get("kind") == kind and a.args.get("host") == host
        ),
        None,
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


def held_back(
    obs: Observation, key: str, now: float, *, cooldown_s: float = 0.0, backoff_s: float = 0.0, asked: bool = True
) -> str | None:
    """Why an action due now waits, in words an operator can check: its cooldown (until when), a human's
    refusal (when), or an approval already asked for (any of the action's, unless `asked` is False).
    None: nothing holds it."""
    action = key.split(":", 1)[0]
    pending = next((a for a in obs.pending_approvals if a.action == action), None) if asked else None
    if pending is not None:
        return f"awaiting approval {pending.id} (expires {iso(pending.expires_at)})"
    last = obs.recent_actions.get(key)
    if cooldown_s and last is not None and now - last < cooldown_s:
        return f"in cooldown until {iso(last + cooldown_s)}"
    refused_at = obs.recent_actions.get(f"refused:{key}")
    if backoff_s and refused_at is not None and now - refused_at < backoff_s:
        return f"refused at {iso(refused_at)}; not asked again before {iso(refused_at + backoff_s)}"
    return None


def no_room(obs: Observation, hosts: list[str], ceilings: dict[str, tuple[float, float]]) -> str:
    """Which limit keeps more workers off these hosts: unreachable, or a CPU or memory ceiling reached."""
    parts = []
    for host in hosts:
        m = next((h for h in obs.hosts if h.host == host), None)
        cpu, mem = ceilings.get(host) or ceilings.get("*") or (90.0, 85.0)
        if m is None or not m.reachable:
            parts.append(f"{host} unreachable")
        elif m.cpu_percent >= cpu or m.mem_percent >= mem:
            parts.append(
                f"{host} at cpu {m.cpu_percent:.0f}% / mem {m.mem_percent:.0f}% (ceilings {cpu:.0f}%/{mem:.0f}%)"
            )
        else:
            parts.append(f"{host} has no room for another worker under its ceilings {cpu:.0f}%/{mem:.0f}%")
    return ", ".join(parts) or "no host"


def crash_loops(obs: Observation) -> list[str]:
    """Every kind whose workers crash with one cause (`crash_loop`), one sentence each: what a human must see."""
    kinds = sorted({w.kind for w in obs.workers})
    return [looping for kind in kinds if (looping := crash_loop(obs, kind))]
