"""Remediation under policy: restart a worker far out of line with its siblings (a leak, a runaway loop) while
its host nears a ceiling. Thresholds come from the policy's `remediation` section; the policy's
`restart_worker` cooldown (per worker) and approval rules (e.g. restarts beyond N an hour) still judge it."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from core.domain import Observation, Proposal, WorkerInfo
from graphs.plan_facts import awaiting, in_cooldown, refused


@dataclass(frozen=True)
class RestartRule:
    memory_outlier_ratio: float = 4.0
    cpu_outlier_ratio: float = 4.0
    min_rss_mb: float = 512.0
    host_margin_percent: float = 10.0
    cooldown_s: float = 900.0
    refusal_backoff_s: float = 3600.0


def restart_proposals(
    obs: Observation, now: float, rule: RestartRule, ceilings: dict[str, tuple[float, float]]
) -> list[Proposal]:
    out = []
    for worker in obs.workers:
        why = _out_of_line(obs, worker, rule, ceilings)
        key = f"restart_worker:{worker.id}"
        if why is None or awaiting(obs, "restart_worker"):
            continue
        if in_cooldown(obs, key, now, rule.cooldown_s) or refused(obs, key, now, rule.refusal_backoff_s):
            continue
        out.append(Proposal(action="restart_worker", args={"worker_id": worker.id}, rationale=why))
    return out


def _out_of_line(
    obs: Observation, w: WorkerInfo, rule: RestartRule, ceilings: dict[str, tuple[float, float]]
) -> str | None:
    if w.state != "running":
        return None
    siblings = [s for s in obs.workers if s.kind == w.kind and s.id != w.id and s.state == "running"]
    host = next((h for h in obs.hosts if h.host == w.host and h.reachable), None)
    if not siblings or host is None:
        return None
    cpu_ceiling, mem_ceiling = ceilings.get(w.host) or ceilings.get("*") or (90.0, 85.0)
    rss, cpu = median(s.rss_mb for s in siblings), median(s.cpu_percent for s in siblings)
    if (
        w.rss_mb >= rule.min_rss_mb
        and w.rss_mb > rule.memory_outlier_ratio * max(rss, 1.0)
        and host.mem_percent >= mem_ceiling - rule.host_margin_percent
    ):
        return (
            f"{w.id} holds {w.rss_mb / 1024:.1f} GB while its {len(siblings)} {w.kind} sibling(s) hold "
            f"{rss / 1024:.1f} GB (median); {w.host} memory {host.mem_percent:.0f}% nears its {mem_ceiling:.0f}% "
            f"ceiling: restart it"
        )
    if (
        cpu > 0
        and w.cpu_percent > rule.cpu_outlier_ratio * cpu
        and host.cpu_percent >= cpu_ceiling - rule.host_margin_percent
    ):
        return (
            f"{w.id} uses {w.cpu_percent:.0f}% CPU while its {w.kind} siblings use {cpu:.0f}% (median); "
            f"{w.host} CPU {host.cpu_percent:.0f}% nears its {cpu_ceiling:.0f}% ceiling: restart it"
        )
    return None
