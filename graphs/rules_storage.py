"""Disk pressure: reclaim space on the brain host before its disk crosses the policy's ceiling.

From `storage.act_at_percent` the rule proposes the reclaim action that frees the most of what is known to be
reclaimable (at least `min_reclaim_mb`); at or over `ceiling_percent`, every such action at once. A target whose
bytes are unknown (an object-store brain) or too young to go (no LanceDB version past the minimum age) is not
chosen. Each action keeps the policy's minimum ages, so none removes the only copy of anything: current table
versions stay, logs are compressed before their originals go, decision records reach a verified segment first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.domain import Observation, Proposal, ReclaimTarget
from graphs.plan_facts import held_back
from policies.model import Storage

MIB = 2**20
DAY_S = 86_400.0


@dataclass(frozen=True)
class StorageRule:
    limits: Storage = field(default_factory=Storage)
    cooldowns: dict[str, float] = field(default_factory=dict)  # action -> the policy's cooldown
    refusal_backoff_s: float = 3600.0


def _options(rule: StorageRule) -> tuple[tuple[str, str, dict[str, Any]], ...]:
    p = rule.limits
    return (
        ("versions", "prune_versions", {"older_than_days": p.min_version_age_days}),
        ("logs", "rotate_logs", {"keep": p.keep_rotated_logs}),
        ("decisions", "archive_decisions", {"older_than_days": p.archive_decisions_after_days}),
    )


def _too_young(target: str, found: ReclaimTarget, p: Storage) -> bool:
    if target != "versions":
        return False
    return found.oldest_age_s is None or found.oldest_age_s < p.min_version_age_days * DAY_S


def storage_proposals(rule: StorageRule, obs: Observation, now: float, holds: list[str]) -> list[Proposal]:
    s, p = obs.storage, rule.limits
    if s.disk_percent is None or s.disk_percent < p.act_at_percent:
        return []
    over = s.disk_percent >= p.ceiling_percent
    level = f"disk {s.disk_percent:.1f}% on {s.host or 'the brain host'}" + (
        f" is at or over the ceiling {p.ceiling_percent:g}%" if over else f" passed {p.act_at_percent:g}%"
    )
    ranked: list[tuple[int, Proposal]] = []
    for target, action, args in _options(rule):
        found = s.reclaimable.get(target)
        if found is None or not found.bytes or found.bytes < p.min_reclaim_mb * MIB or _too_young(target, found, p):
            continue
        held = held_back(obs, action, now, cooldown_s=rule.cooldowns.get(action, 0.0), backoff_s=rule.refusal_backoff_s)
        if held:
            holds.append(f"{level}: {action} would free ~{found.bytes / MIB:,.0f} MiB, but it is {held}")
            continue
        why = f"{level}: {action} frees ~{found.bytes / MIB:,.0f} MiB ({found.items} {target})"
        ranked.append((found.bytes, Proposal(action=action, args=dict(args), rationale=why)))
    if not ranked:
        if not any("would free" in h for h in holds):
            holds.append(f"{level}, but nothing known to be reclaimable frees {p.min_reclaim_mb:g} MiB or more")
        return []
    ranked.sort(key=lambda item: -item[0])
    return [proposal for _, proposal in (ranked if over else ranked[:1])]
