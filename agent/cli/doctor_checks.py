"""What every `brainops doctor` check returns: a name, OK / WARN / FAIL, one sentence of detail and one of fix.

The checks live beside this module, by subject: doctor_checks_state.py (state DB, token budget),
doctor_checks_hosts.py (SSH hosts), doctor_checks_services.py (model keys and prices, Slack, metrics port,
embedder); agent/cli/doctor.py (config, policy, brain) runs them all. Every check is read-only: it creates,
changes and removes no file, so it may run before the service ever started (and as its ExecStartPre).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["OK", "WARN", "FAIL"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def ok(name: str, detail: str) -> Check:
    return Check(name, "OK", detail)


def warn(name: str, detail: str, fix: str) -> Check:
    return Check(name, "WARN", detail, fix)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "FAIL", detail, fix)


def user_name() -> str:
    """The user this process runs as (the service user under systemd), for "USER cannot write X"."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def existing_ancestor(path: Path) -> Path:
    """`path` itself or its nearest parent that exists (what a later mkdir -p would create under)."""
    for candidate in (path, *path.parents):
        try:
            if candidate.exists():
                return candidate
        except OSError:  # a parent we may not look into
            continue
    return Path("/")
