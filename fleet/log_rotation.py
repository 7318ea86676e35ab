"""Worker logs in a host's run dir: what rotating them would free, and rotating them (the `rotate_logs` action).

A worker writes `<id>.log` through a descriptor opened for appending (fleet/hosts.py), so a live log can be
copied and truncated in place (logrotate's copytruncate) without the worker noticing; lines written between
the copy and the truncation are lost, as with copytruncate. A finished worker's log is gzipped whole. Each
compressed copy is written to a temporary name, fsynced and renamed before its original is truncated or
removed, so a crash at any point leaves every line in at least one file. Only a live worker's own rotated
generations beyond `keep` are deleted (their lines were already rotated out once); the compressed log of a
finished worker is never deleted here.
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from fleet.run_files import RunFiles, our_process, read_json

ROTATED = ".log.*.gz"  # <id>.log.<stamp>.gz


@dataclass(frozen=True)
class LogSpace:
    bytes: int  # uncompressed bytes rotation would take off the disk (less what the gzip copies keep)
    files: int
    oldest_age_s: float | None


@dataclass(frozen=True)
class RotateReport:
    compressed: int  # finished workers' logs gzipped
    rotated: int  # live workers' logs copy-truncated
    deleted: int  # live workers' generations beyond `keep`
    bytes_before: int
    bytes_after: int

    @property
    def freed(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)


def _live(run_dir: Path, worker_id: str) -> bool:
    pid = read_json(RunFiles(run_dir, worker_id).pid) or {}
    return our_process(pid.get("pid"), pid.get("create_time")) is not None


def _candidates(run_dir: Path, rotate_bytes: int) -> list[tuple[Path, bool]]:
    """(log, live) for every log rotation would touch: every finished worker's, a live one's over the size."""
    out = []
    for log in sorted(run_dir.glob("*.log")):
        live = _live(run_dir, log.stem)
        if not live or log.stat().st_size > rotate_bytes:
            out.append((log, live))
    return out


def log_space(run_dir: Path, rotate_bytes: int, now: float | None = None) -> LogSpace:
    now = time.time() if now is None else now
    if not run_dir.is_dir():
        return LogSpace(0, 0, None)
    found = [(log.stat(), live) for log, live in _candidates(run_dir, rotate_bytes)]
    oldest = max((now - st.st_mtime for st, _ in found), default=None)
    return LogSpace(sum(st.st_size for st, _ in found), len(found), oldest)


def _gzip_copy(source: Path, target: Path) -> None:
    """`target` holds all of `source`, compressed, on disk (fsynced, renamed into place) when this returns."""
    tmp = target.with_name(target.name + ".tmp")
    with source.open("rb") as src, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename=source.name, mode="wb", fileobj=raw, mtime=0) as gz:
            shutil.copyfileobj(src, gz, 1 << 20)
        raw.flush()
        os.fsync(raw.fileno())
    tmp.replace(target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _new_generation(log: Path) -> Path:
    """A name no earlier generation has (UTC time to the microsecond, sortable): nothing is overwritten."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1e6) % 1_000_000:06d}"
    target, n = log.with_name(f"{log.name}.{stamp}.gz"), 0
    while target.exists():
        n += 1
        target = log.with_name(f"{log.name}.{stamp}-{n}.gz")
    return target


def _run_dir_bytes(run_dir: Path) -> int:
    return sum(f.stat().st_size for f in run_dir.glob("*.log*") if f.is_file())


def rotate_logs(run_dir: Path, keep: int, rotate_bytes: int) -> RotateReport:
    if keep < 1:
        raise ValueError("keep must be at least 1: the newest rotated generation is never deleted")
    if not run_dir.is_dir():
        return RotateReport(0, 0, 0, 0, 0)
    before = _run_dir_bytes(run_dir)
    compressed = rotated = deleted = 0
    for log, live in _candidates(run_dir, rotate_bytes):
        target = _new_generation(log)
        _gzip_copy(log, target)
        if live:
            os.truncate(log, 0)  # the worker appends (O_APPEND): its next line lands at the new end
            rotated += 1
            generations = sorted(run_dir.glob(log.stem + ROTATED), key=lambda f: f.name, reverse=True)
            for old in generations[keep:]:
                old.unlink()
                deleted += 1
        else:
            log.unlink()
            compressed += 1
    return RotateReport(compressed, rotated, deleted, before, _run_dir_bytes(run_dir))
