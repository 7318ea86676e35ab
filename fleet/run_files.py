"""The files a host keeps per worker in its run dir, and the pid-reuse-safe way to find a worker's process.

`fleet.hosts.LocalHost` writes these files, `fleet.probe` reads them back (on this machine or over SSH).
The layout is described in fleet/hosts.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

# psutil derives create_time from boot time + start ticks; the same process always gives the same value,
# a reused pid almost never does within this tolerance.
CREATE_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class RunFiles:
    """Paths of one worker's files in a run dir."""

    run_dir: Path
    worker_id: str

    def _path(self, suffix: str) -> Path:
        return self.run_dir / f"{self.worker_id}{suffix}"

    @property
    def pid(self) -> Path:
        return self._path(".pid")

    @property
    def status(self) -> Path:
        return self._path(".status.json")

    @property
    def log(self) -> Path:
        return self._path(".log")

    @property
    def stop(self) -> Path:
        return self._path(".stop")

    @property
    def exit(self) -> Path:
        return self._path(".exit")

    def clear_previous_run(self) -> None:
        for path in (self.pid, self.status, self.stop, self.exit):
            path.unlink(missing_ok=True)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from path, or None when missing or torn (writers replace atomically, but be safe)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def our_process(pid: int | None, create_time: float | None) -> psutil.Process | None:
    """The live process with this pid AND this create_time; None if gone, a zombie, or a reused pid."""
    if not pid or create_time is None:
        return None
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > CREATE_TIME_TOLERANCE_S:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return proc


def kill_session(pid: int) -> None:
    # Workers start in their own session (pgid == pid), so this also takes any children they spawned.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
