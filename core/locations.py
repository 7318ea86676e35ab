"""Where brainops finds its config file and its state: from the config, never from the working directory.

The rule (README, "Configuration"):
- The config file is the one `--config PATH` or `$BRAINOPS_CONFIG` names (it must exist); else the first of
  `./brainops.toml`, `$XDG_CONFIG_HOME/brainops/brainops.toml` (`~/.config/brainops/brainops.toml`) and
  `/etc/brainops/brainops.toml` that exists; else none (built-in defaults and BRAINOPS_* variables only).
- A relative path written in the config file (`home`, `brain_uri`, `policy_file`, `decision_key_file`) is
  relative to the directory of that file; `~` is expanded; a relative path given in a BRAINOPS_* variable is
  relative to the working directory of the command that read it.
- `home` not set anywhere: `$XDG_STATE_HOME/brainops` (`~/.local/state/brainops`).
So every command that reads the same config file (or none) finds the same state from any directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from core.config_errors import ENV_PREFIX, ConfigError

DEFAULT_CONFIG = "brainops.toml"
SYSTEM_CONFIG = Path("/etc/brainops/brainops.toml")
# Top-level settings that name a local path: resolved against the config file's directory when written there.
PATH_SETTINGS = ("home", "brain_uri", "policy_file", "decision_key_file", "decision_archive_dir", "status_file")


def xdg_dir(variable: str, fallback: str) -> Path:
    """An XDG base directory: the variable when it holds an absolute path (the spec ignores relative ones)."""
    value = os.environ.get(variable, "")
    return Path(value) if value and Path(value).is_absolute() else Path(fallback).expanduser()


def config_search() -> tuple[Path, ...]:
    """Where a config file is looked for when none is named, in order."""
    user = xdg_dir("XDG_CONFIG_HOME", "~/.config") / "brainops" / DEFAULT_CONFIG
    return (Path(DEFAULT_CONFIG), user, SYSTEM_CONFIG)


def found_config() -> Path | None:
    """The first config file of `config_search()` that exists, as an absolute path (messages name it)."""
    for path in config_search():
        try:
            if path.is_file():
                return path.absolute()
        except OSError:  # a directory we may not enter: as good as no file there
            continue
    return None


class StateLocation(Protocol):
    """What `require_state` reads of the settings (core.settings.Settings), without importing them."""

    @property
    def state_db(self) -> Path: ...

    @property
    def config_file(self) -> Path | None: ...

    def where(self, key: str) -> str | None: ...


def default_home() -> Path:
    """`home` when neither the config file nor BRAINOPS_HOME sets it."""
    return xdg_dir("XDG_STATE_HOME", "~/.local/state") / "brainops"


def anchor_paths(settings: BaseModel, config_file: Path | None, written: set[str]) -> None:
    """Make the path settings absolute, in place: `~` expanded; a relative one against the config file's
    directory when it was written there (`written`: keys the file set that neither an override nor a
    BRAINOPS_* variable replaced), else against the working directory."""
    base = config_file.resolve().parent if config_file is not None else None
    env_names = {name.upper() for name in os.environ}
    for key in PATH_SETTINGS:
        value = getattr(settings, key)
        if key not in settings.model_fields_set or value is None or (key == "brain_uri" and "://" in str(value)):
            continue
        path = Path(str(value)).expanduser()
        if not path.is_absolute():
            in_file = base is not None and key in written and f"{ENV_PREFIX}{key.upper()}" not in env_names
            path = (base if in_file and base is not None else Path.cwd()) / path
        if str(path) != str(value):
            setattr(settings, key, str(path) if key == "brain_uri" else path)


def require_state(settings: StateLocation) -> None:
    """For commands that only read the state: a ConfigError (exit 2, one sentence) when `home` holds no
    state DB, so that such a command creates none where it was pointed by mistake."""
    if settings.state_db.is_file():
        return
    where = settings.where("home")
    if where is not None:
        origin = f"home from {where}"
    elif settings.config_file is not None:
        origin = f"{settings.config_file} sets no home: the default"
    else:
        looked = ", ".join(str(p) for p in config_search())
        origin = f"no config file found ({looked}): the default home"
    raise ConfigError(
        [
            f"no brainops state at {settings.state_db} ({origin}); nothing was created: name the config the "
            "agent runs with (--config or BRAINOPS_CONFIG), or run `brainops tick` with this one first"
        ]
    )
