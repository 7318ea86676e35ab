"""The decision log's signing key (see agent/state/decisions.py): $BRAINOPS_DECISION_KEY, else a 0600 key file
kept outside the state directory, made on first use. The key itself is never logged nor put in an error message.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

DECISION_KEY_ENV = "BRAINOPS_DECISION_KEY"
KEY_FILE_NAME = "decision-log.key"
MIN_KEY_CHARS = 16

log = logging.getLogger("brainops.decisions")


class DecisionKeyError(RuntimeError):
    """The decision log's hmac key is unusable (missing where needed, too short, readable by others)."""


def default_key_file() -> Path:
    """$XDG_CONFIG_HOME/brainops/decision-log.key, else ~/.config/brainops/decision-log.key."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "brainops" / KEY_FILE_NAME


def key_file_path(key_file: str | Path | None) -> Path:
    return Path(key_file).expanduser() if key_file else default_key_file()


def load_decision_key(
    key_file: str | Path | None = None, *, state_dir: Path | None = None, create: bool = False
) -> bytes | None:
    """The hmac key: $BRAINOPS_DECISION_KEY if set, else the key file (made, 0600, when `create` and missing).

    None when there is no key and `create` is False. Raises DecisionKeyError for a key file inside the
    state directory, readable or writable by group/other, not a regular file, or holding too short a key.
    The key itself is never logged nor put in an error message.
    """
    env = os.environ.get(DECISION_KEY_ENV, "").strip()
    if env:
        if len(env) < MIN_KEY_CHARS:
            raise DecisionKeyError(f"{DECISION_KEY_ENV} is set but shorter than {MIN_KEY_CHARS} characters")
        return env.encode("utf-8")
    path = key_file_path(key_file)
    if state_dir is not None and _is_inside(path, state_dir):
        raise DecisionKeyError(
            f"decision key file {path} is inside the state directory {state_dir}: whoever can rewrite state.db "
            "could read it; set decision_key_file to a path outside it"
        )
    if not os.path.lexists(path):
        if not create:
            return None
        _create_key_file(path)
    return _read_key_file(path)


def _is_inside(path: Path, directory: Path) -> bool:
    try:
        return path.resolve().is_relative_to(directory.resolve())
    except OSError:
        return False


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{KEY_FILE_NAME}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # atomic and exclusive: a concurrent first use keeps whichever key landed first
        except FileExistsError:
            return
    finally:
        os.unlink(tmp)
    log.warning("created the decision log key file %s (mode 0600); back it up: verifying the log needs it", path)


def _read_key_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise DecisionKeyError(f"cannot read decision key file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DecisionKeyError(f"decision key file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise DecisionKeyError(
                f"refusing decision key file {path}: group/other can access it (mode {mode:04o}); "
                f"run `chmod 600 {path}`"
            )
        with os.fdopen(os.dup(fd), "rb") as handle:
            secret = handle.read().strip()
    finally:
        os.close(fd)
    if len(secret) < MIN_KEY_CHARS:
        raise DecisionKeyError(f"decision key file {path} holds fewer than {MIN_KEY_CHARS} characters")
    return secret
