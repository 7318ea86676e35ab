"""Config errors that name the file, the line and the key: `brainops.toml:7: hosts[1].adress: unknown key`.

tomllib keeps no positions, so `key_lines` scans the TOML text itself (table headers, arrays of tables, dotted
and quoted keys, values that span lines) and maps each key path, as pydantic spells an error's `loc`
(`("hosts", 1, "adress")`), to the line that wrote it. A key inside an inline table or array maps to the line
of the key that holds it.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

Loc = tuple[str | int, ...]
ENV_PREFIX = "BRAINOPS_"

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_DEEPER = re.compile(r"([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)+): ")
_AT = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")


class ConfigError(ValueError):
    """A config that cannot be used. `str()` is one problem a line, each `file:line: key: reason` where the
    problem sits in the file, `BRAINOPS_X: reason` where it comes from the environment."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


# ---------------------------------------------------------------- positions


def key_lines(text: str) -> tuple[dict[Loc, int], list[tuple[Loc, int]]]:
    """({key path: 1-based line}, [(key path, line) of each key written twice]) for TOML `text`.

    Best effort on text tomllib accepted; on broken text it still returns what it could read."""
    lines: dict[Loc, int] = {}
    repeats: list[tuple[Loc, int]] = []
    arrays: dict[Loc, int] = {}  # array-of-tables path -> index of its last element
    table: Loc = ()
    scanner = _ValueScanner()
    for number, raw in enumerate(text.splitlines(), start=1):
        if scanner.open:  # inside a multi-line string, array or inline table
            scanner.feed(raw)
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            header = _header(line)
            if header is None:
                continue
            names, is_array = header
            path = _resolve(names, arrays)
            if is_array:
                arrays[path] = arrays.get(path, -1) + 1
                path = (*path, arrays[path])
            elif path in lines:
                repeats.append((path, number))
            lines.setdefault(path, number)
            table = path
            continue
        split = _split_key(line)
        if split is None:
            continue
        parts, rest = split
        path = (*table, *parts)
        for i in range(len(table) + 1, len(path)):
            lines.setdefault(path[:i], number)
        if path in lines:
            repeats.append((path, number))
        lines.setdefault(path, number)
        scanner.feed(rest)
    return lines, repeats


def _header(line: str) -> tuple[list[str], bool] | None:
    is_array = line.startswith("[[")
    inner = line[2:] if is_array else line[1:]
    close = "]]" if is_array else "]"
    split = _split_dotted(inner, stop=close[0])
    if split is None:
        return None
    names, rest = split
    if not rest.startswith(close):
        return None
    return names, is_array


def _resolve(names: list[str], arrays: Mapping[Loc, int]) -> Loc:
    """`[a.b]` after `[[a]]` is a table inside a's last element: (a, <index>, b)."""
    path: Loc = ()
    for name in names[:-1]:
        path = (*path, name)
        if path in arrays:
            path = (*path, arrays[path])
    return (*path, names[-1])


def _split_key(line: str) -> tuple[list[str], str] | None:
    split = _split_dotted(line, stop="=")
    if split is None or not split[1].startswith("="):
        return None
    names, rest = split
    return names, rest[1:]


def _split_dotted(text: str, stop: str) -> tuple[list[str], str] | None:
    """A dotted key (`a."b.c".d`) at the start of `text`: its parts and the text after it (from `stop` on)."""
    names: list[str] = []
    rest = text.lstrip()
    while True:
        if rest[:1] in ('"', "'"):
            quote = rest[0]
            end = rest.find(quote, 1)
            if end < 0:
                return None
            names.append(rest[1:end])
            rest = rest[end + 1 :].lstrip()
        else:
            bare = _BARE.match(rest)
            if bare is None:
                return None
            names.append(bare.group())
            rest = rest[bare.end() :].lstrip()
        if rest.startswith("."):
            rest = rest[1:].lstrip()
            continue
        return (names, rest) if rest.startswith(stop) else None


class _ValueScanner:
    """Follows a value across lines: multi-line strings and brackets still open after a line."""

    def __init__(self) -> None:
        self.depth = 0
        self.string: str | None = None  # the open multi-line delimiter

    @property
    def open(self) -> bool:
        return self.depth > 0 or self.string is not None

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            if self.string is not None:
                end = text.find(self.string, i)
                if end < 0:
                    return
                i = end + 3
                self.string = None
                continue
            char = text[i]
            if text.startswith(('"""', "'''"), i):
                self.string = text[i : i + 3]
                i += 3
            elif char in "\"'":
                i = _string_end(text, i)
            elif char == "#":
                return
            elif char in "[{":
                self.depth += 1
                i += 1
            elif char in "]}":
                self.depth = max(0, self.depth - 1)
                i += 1
            else:
                i += 1


def _string_end(text: str, start: int) -> int:
    quote = text[start]
    i = start + 1
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return i


# ---------------------------------------------------------------- errors


def toml_syntax_error(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """`file:line: TOML syntax error: reason (column c)` from tomllib's "(at line L, column C)" message."""
    message = str(exc)
    found = _AT.search(message)
    reason = message[: found.start()] if found else message
    if found and found.group(1):
        return ConfigError([f"{path}:{found.group(1)}: TOML syntax error: {reason} (column {found.group(2)})"])
    _, repeats = key_lines(text)  # tomllib places a key written twice "at end of document"
    if repeats:
        key, line = repeats[0]
        return ConfigError([f"{path}:{line}: {format_loc(key)}: TOML syntax error: {reason} (written twice)"])
    line = max(1, len(text.splitlines()))
    return ConfigError([f"{path}:{line}: TOML syntax error: {reason} (at the end of the file)"])


def validation_problems(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    path: Path | None,
    text: str,
    data: Mapping[str, Any],
    environ: Mapping[str, str],
) -> list[str]:
    """One `file:line: key: reason` (or `BRAINOPS_X: key: reason`) line per pydantic error."""
    lines, _ = key_lines(text) if path is not None else ({}, [])
    env = {k.upper(): k for k in environ}
    problems = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        reason = _reason(error, model, loc)
        loc, reason = _narrowed(loc, reason)
        key = format_loc(loc) or "(top level)"
        where = _env_name(loc, env)
        if where is not None:
            problems.append(f"{where}: {key}: {reason}")
            continue
        line = _deepest_line(loc, lines) if path is not None else None
        if line is not None:
            problems.append(f"{path}:{line}: {key}: {reason}")
        elif path is not None and _present(loc, data):
            problems.append(f"{path}: {key}: {reason}")
        else:
            problems.append(f"{key}: {reason}")
    return problems


def _narrowed(loc: Loc, reason: str) -> tuple[Loc, str]:
    """A validator's "worker_defaults.extract: reason" names a deeper key than its field: use that key."""
    key = format_loc(loc)
    found = _DEEPER.match(reason)
    if key and found and found.group(1).startswith(key + "."):
        return tuple(found.group(1).split(".")), reason[found.end() :]
    return loc, reason.removeprefix(f"{key}: ") if key else reason


def format_loc(loc: Loc) -> str:
    """("hosts", 1, "adress") -> hosts[1].adress"""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _env_name(loc: Loc, env: Mapping[str, str]) -> str | None:
    """The BRAINOPS_* variable the value came from (the environment wins over the file), if any."""
    names: list[str] = []
    for part in loc:
        if isinstance(part, int):
            break
        names.append(part)
    for n in range(len(names), 0, -1):
        name = ENV_PREFIX + "__".join(names[:n]).upper()
        if name in env:
            return f"environment {env[name]}"
    return None


def _deepest_line(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
        below = [line for path, line in lines.items() if path[:n] == loc[:n]]  # only `[a.b]` wrote `a`
        if below:
            return min(below)
    return None


def _present(loc: Loc, data: Any) -> bool:
    for part in loc:
        in_list = isinstance(part, int) and isinstance(data, list) and part < len(data)
        if not (in_list or (isinstance(part, str) and isinstance(data, dict) and part in data)):
            return False
        data = data[part]
    return True


def _reason(error: Any, model: type[BaseModel], loc: Loc) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        name = str(loc[-1]) if loc else ""
        close = difflib.get_close_matches(name, known, n=1) if known else []
        if close:
            return f"unknown key (did you mean {close[0]!r}?)"
        return f"unknown key; known keys here: {', '.join(known)}" if known else "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str | int | float | bool) and kind != "value_error":
        message += f" (got {value!r})"
    return message


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part)
        current = _model_in(field.annotation) if field is not None else None
    return list(current.model_fields) if current is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
