"""Disk pressure on the brain host: what is observed each tick, and the three reclaim effects.

The agent runs on the brain host, so the disk is the one holding the brain (a local path) and the agent's
home (state.db, worker logs of local hosts). Reclaimable bytes per target:
- versions: LanceDB files no current table version references (brain/lance_space.py), an upper bound;
- logs: worker logs of this machine's run dir a rotation would compress (fleet/log_rotation.py);
- decisions: decision records older than the policy's age, the size of their text (agent/state/decision_archive.py).
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from core.domain import ReclaimTarget, StorageStats

if TYPE_CHECKING:
    from core.settings import Settings
    from policies.model import Storage

log = logging.getLogger("brainops.storage")
DAY_S = 86_400.0


def disk_path(settings: Settings) -> Path:
    """The filesystem that fills up: the brain's when it is a local path, else the home's."""
    brain = settings.brain_path
    path = Path(brain) if "://" not in brain else settings.home
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def observe_storage(settings: Settings, host: str, policy: Storage, now: float) -> StorageStats:
    """The disk's use and each target's reclaimable bytes; a part that cannot be read is left out and named."""
    path = disk_path(settings)
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return StorageStats(host=host, path=str(path), error=f"disk usage of {path}: {exc}")
    targets: dict[str, ReclaimTarget] = {}
    problems: list[str] = []
    for name, measure in (("versions", _versions), ("logs", _logs), ("decisions", _decisions)):
        try:
            targets[name] = measure(settings, policy, now)
        except Exception as exc:  # one unreadable part must not hide the others
            log.warning("reclaimable %s unknown: %s", name, exc)
            problems.append(f"{name}: {type(exc).__name__}: {exc}"[:200])
    return StorageStats(
        host=host,
        path=str(path),
        disk_percent=round(100.0 * usage.used / usage.total, 2) if usage.total else None,
        total_bytes=usage.total,
        used_bytes=usage.used,
        reclaimable=targets,
        error="; ".join(problems) or None,
    )


def _versions(settings: Settings, policy: Storage, now: float) -> ReclaimTarget:
    from brain.lance_space import version_space
    from brain.schema import TABLES
    from brain.store import BrainStore

    store = BrainStore(settings.brain_path)
    if not store.exists():
        return ReclaimTarget(bytes=0)
    space = version_space(store, tuple(TABLES), now)
    return ReclaimTarget(bytes=space.bytes, items=space.old_versions, oldest_age_s=space.oldest_age_s)


def _logs(settings: Settings, policy: Storage, now: float) -> ReclaimTarget:
    from fleet.log_rotation import log_space

    space = log_space(settings.run_dir, int(policy.rotate_log_mb * 2**20), now)
    return ReclaimTarget(bytes=space.bytes, items=space.files, oldest_age_s=space.oldest_age_s)


def _decisions(settings: Settings, policy: Storage, now: float) -> ReclaimTarget:
    from agent.state.decision_archive import archivable
    from core.statedb import connect

    if not settings.state_db.is_file():
        return ReclaimTarget(bytes=0)
    with connect(settings.state_db) as conn:
        count, size, oldest = archivable(conn, now - policy.archive_decisions_after_days * DAY_S)
    return ReclaimTarget(bytes=size, items=count, oldest_age_s=None if oldest is None else now - oldest)


# ---------------------------------------------------------------- effects


def reclaim(settings: Settings, policy: Storage, target: str, older_than_days: float, keep: int) -> str:
    """Run one reclaim; the line says what it freed (the decision record keeps it)."""
    if target == "versions":
        from brain.lance_space import prune_versions
        from brain.schema import TABLES
        from brain.store import BrainStore

        pruned = prune_versions(BrainStore(settings.brain_path), tuple(TABLES), timedelta(days=older_than_days))
        freed = _mb(pruned.bytes_removed)
        return f"pruned {pruned.versions_removed} LanceDB versions older than {older_than_days:g} d: {freed} freed"
    if target == "logs":
        from fleet.log_rotation import rotate_logs

        done = rotate_logs(settings.run_dir, keep, int(policy.rotate_log_mb * 2**20))
        return (
            f"logs: {done.compressed} finished gzipped, {done.rotated} live rotated, {done.deleted} old generations "
            f"removed: {_mb(done.freed)} freed"
        )
    if target == "decisions":
        from agent.state.decision_archive import archive
        from agent.state.decisions import DecisionLog

        decisions = DecisionLog.from_settings(settings)
        now = time.time()
        before = now - older_than_days * DAY_S
        report = archive(decisions.path, settings.decision_archive_path, before, decisions.signing_key(), now)
        if not report.records:
            return f"no decision record older than {older_than_days:g} d to archive"
        return (
            f"archived decision records {report.first_seq}..{report.last_seq} ({report.records}) to {report.path}, "
            "chain verified"
        )
    raise ValueError(f"unknown reclaim target {target!r}")


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
