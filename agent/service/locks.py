"""Locks on one home, held across processes with fcntl (released by the kernel when a process dies).

- `HomeLock` (`<home>/tick.lock`): whatever changes state holds it: a tick (the loop's or `brainops tick`'s),
  resuming an approval thread (the loop's settle step, `brainops approve`, a Slack click), supervision. So two
  processes never act on one home at once, and one approval thread is resumed by one process at a time.
  Re-entrant within a process, where the scheduler and the Slack threads share it.
- `LoopLock` (`<home>/loop.lock`): one `brainops run` per home, for its whole life.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import IO


class LoopAlreadyRunning(Exception):
    def __init__(self, path: Path, pid: str) -> None:
        self.path, self.pid = path, pid
        holder = f"pid {pid}" if pid else "another process"
        super().__init__(f"another brainops run ({holder}) holds {path}: one loop per home")


class HomeLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads = threading.RLock()
        self._depth = 0
        self._file: IO[str] | None = None

    def __enter__(self) -> HomeLock:
        self._threads.acquire()
        try:
            if self._depth == 0:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                handle = open(self.path, "a+")
                fcntl.flock(handle, fcntl.LOCK_EX)
                self._file = handle
            self._depth += 1
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        self._threads.release()


class LoopLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def __enter__(self) -> LoopLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip()
            handle.close()
            raise LoopAlreadyRunning(self.path, pid) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.seek(0)
                self._file.truncate()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
