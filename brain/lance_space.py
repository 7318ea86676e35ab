"""Disk held by old LanceDB table versions, and pruning them (the `prune_versions` action).

Every commit leaves a version behind (a manifest, and the data, deletion and index files only it references).
What a prune could free is the table directory's bytes that the current version does not reference: an upper
bound, since a prune keeps the versions younger than its age limit. Lance's own cleanup removes them; the
current version, and whatever it references, is never touched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brain.lance_ops import with_conflict_retry

if TYPE_CHECKING:
    from brain.store import BrainStore


@dataclass(frozen=True)
class VersionSpace:
    bytes: int | None  # unreferenced by the current versions; None: not a local path
    old_versions: int  # versions besides the current one, all tables
    oldest_age_s: float | None


@dataclass(frozen=True)
class PruneReport:
    bytes_removed: int
    versions_removed: int
    tables: tuple[str, ...]


def _referenced(ds: object, root: Path) -> set[Path]:
    """Files the dataset's current version needs: its data and deletion files, its indexes, its manifest and
    transaction (the newest of each), the version hint."""
    keep: set[Path] = set()
    for fragment in ds.get_fragments():  # type: ignore[attr-defined]
        meta = fragment.metadata
        keep |= {root / "data" / f.path for f in meta.files}
        if meta.deletion_file is not None:
            keep.add(root / "_deletions" / meta.deletion_file.path(fragment.fragment_id))
    for index in ds.describe_indices():  # type: ignore[attr-defined]
        for segment in index.segments:
            keep |= set((root / "_indices" / str(segment.uuid)).rglob("*"))
    for folder in ("_versions", "_transactions"):
        files = [f for f in (root / folder).glob("*") if f.is_file()]
        chain = [f for f in files if f.suffix in (".manifest", ".txn")]
        keep |= set(files) - set(chain)
        if chain:
            keep.add(max(chain, key=lambda f: f.stat().st_mtime_ns))
    return keep


def _unreferenced_bytes(ds: object, root: Path) -> int:
    keep = _referenced(ds, root)
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and f not in keep)


def version_space(store: BrainStore, tables: tuple[str, ...], now: float | None = None) -> VersionSpace:
    """What pruning every old version of `tables` could free, how many versions, and the oldest one's age."""
    now = time.time() if now is None else now
    local = "://" not in store.uri
    reclaimable, old, oldest = 0, 0, None
    for name in tables:
        table = store.fresh(name)
        versions = table.list_versions()
        current = table.version
        for v in versions:
            if v["version"] != current:
                old += 1
                age = max(0.0, now - v["timestamp"].timestamp())
                oldest = age if oldest is None else max(oldest, age)
        if local:
            ds = table.to_lance()
            root = Path(store.uri) / f"{name}.lance"
            reclaimable += _unreferenced_bytes(ds, root) if root.exists() else 0
    return VersionSpace(reclaimable if local else None, old, oldest)


def prune_versions(store: BrainStore, tables: tuple[str, ...], older_than: timedelta) -> PruneReport:
    """Remove the versions of each table older than `older_than` (never the current one, Lance keeps it)."""
    removed = versions = 0
    for name in tables:
        dataset = store.fresh(name).to_lance()

        def cleanup(ds: Any = dataset) -> Any:
            return ds.cleanup_old_versions(older_than)

        stats = with_conflict_retry(cleanup)
        removed += int(stats.bytes_removed)
        versions += int(stats.old_versions)
    return PruneReport(removed, versions, tables)
