"""The policy file as it is now: every tick, every approval answer and every chat command asks for it.

The file is re-read when its mtime, size or (for a file changed in the last two seconds, when timestamps can
repeat) its content hash changes. A file that fails to load keeps the last good policy in force and says so
once per bad version; the last good text is kept in the state directory, so a new process (a CLI `approve`)
also falls back to it instead of failing open or closed on a half-saved edit.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from policies.loader import PolicyError, load_policy_text
from policies.model import Policy

if TYPE_CHECKING:
    from core.settings import Settings

RACY_S = 2.0  # a file modified this recently may change again within the same mtime


@dataclass(frozen=True)
class PolicyFailure:
    """The current file's problem while the last good policy stays in force."""

    error: PolicyError
    since: float
    digest: str

    @property
    def where(self) -> str:
        return f"{self.error.source}:{self.error.line}"


@dataclass
class LivePolicy:
    path: Path
    keep: Path | None = None  # where the last good text is kept for other processes
    on_failure: Callable[[PolicyFailure], None] | None = None
    clock: Callable[[], float] = time.time
    failure: PolicyFailure | None = None
    _policy: Policy | None = None
    _digest: str = ""
    _stamp: tuple[int, int] | None = None
    _stamp_checked_at: float = field(default=0.0)

    def current(self) -> Policy:
        """The policy in force. Raises PolicyError only when no good version was ever loaded."""
        stamp = _stamp(self.path)
        if self._policy is not None and stamp == self._stamp and not self._racy(stamp):
            return self._policy
        text, digest = self._read()
        self._stamp, self._stamp_checked_at = stamp, self.clock()
        if self._policy is not None and digest == self._digest:
            self.failure = None  # back to the good version
            return self._policy
        if self.failure is not None and digest == self.failure.digest:
            return self._fallback(self.failure.error)
        try:
            policy = load_policy_text(text, str(self.path))
        except PolicyError as exc:
            return self._failed(exc, digest)
        self._policy, self._digest, self.failure = policy, digest, None
        self._keep(text)
        return policy

    def _racy(self, stamp: tuple[int, int] | None) -> bool:
        return stamp is not None and self._stamp_checked_at - stamp[0] / 1e9 < RACY_S

    def _read(self) -> tuple[str, str]:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raw = f"\0unreadable: {exc.strerror or exc}".encode()
        return raw.decode("utf-8", errors="replace"), hashlib.sha256(raw).hexdigest()

    def _failed(self, error: PolicyError, digest: str) -> Policy:
        policy = self._fallback(error)
        self.failure = PolicyFailure(error, self.clock(), digest)
        if self.on_failure is not None:
            self.on_failure(self.failure)
        return policy

    def _fallback(self, error: PolicyError) -> Policy:
        if self._policy is None and self.keep is not None and self.keep.is_file():
            kept = self.keep.read_text(encoding="utf-8")
            self._policy = load_policy_text(kept, f"{self.keep} (last good copy of {self.path})")
            self._digest = hashlib.sha256(kept.encode()).hexdigest()
        if self._policy is None:
            raise error
        return self._policy

    def _keep(self, text: str) -> None:
        if self.keep is None:
            return
        try:
            self.keep.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.keep.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.keep)
        except OSError:
            pass  # a read-only state dir (a CLI reading someone else's home) only loses the fallback copy


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def live_policy(
    settings: Settings,
    on_failure: Callable[[PolicyFailure], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> LivePolicy:
    """The policy file as every process on this home reads it, with its last good copy in the home."""
    return LivePolicy(settings.policy_path, keep=settings.last_good_policy, on_failure=on_failure, clock=clock)


def policy_status(settings: Settings) -> str | None:
    """One line for `brainops status` when the file is not the policy in force; None when it is."""
    live = live_policy(settings)
    try:
        live.current()
    except PolicyError as exc:
        return f"policy does not load and no good version is kept: {exc}"
    if live.failure is None:
        return None
    return f"policy file fails to load; the last good policy stays in force: {live.failure.error}"
