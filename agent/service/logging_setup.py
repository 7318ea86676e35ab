"""Logging for `brainops run`: human lines by default, one JSON object per line with settings.json_logs.

With json_logs every line `brainops run` writes is one JSON object: log records on stderr, and the decisions of
each tick on stdout (logger DECISIONS_LOGGER, one record per decision), so `journalctl -o cat ... | jq .` reads
both. Every record passes through redaction (agent/redact.py) on its way out, whatever the format: credentials
in the message, in its arguments, in `extra={...}` fields or in a traceback never reach the log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

from core.redact import redact, redact_text

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
HANDLER_NAME = "brainops"
DECISIONS_LOGGER = "brainops.tick"  # one record per decision of a tick; with json_logs its own handler, on stdout
DECISIONS_HANDLER_NAME = "brainops.tick"


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, redacted (secret-looking keys replaced, credential strings masked)."""
    fields: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _STANDARD_ATTRS or key.startswith("_"):
            continue
        fields[key] = redact(_jsonable(value), key)
    return fields


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _jsonable(dump(mode="json"))
    return str(value)


class JsonFormatter(logging.Formatter):
    """One line per record: ts (ISO 8601 UTC), level, logger, msg, then extra fields, then exc."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact_text(record.getMessage()),
        }
        for key, value in record_fields(record).items():
            payload.setdefault(key, value)
        if record.exc_info:
            payload["exc"] = redact_text(self.formatException(record.exc_info))
        if record.stack_info:
            payload["stack"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(payload, ensure_ascii=False, default=str)


class RedactingFormatter(logging.Formatter):
    """The human format, with the same redaction as the JSON one."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = record_fields(record)
        if fields:
            line += " " + " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items())
        return redact_text(line)


def configure_logging(
    json_logs: bool,
    level: str | int = "INFO",
    stream: IO[str] | None = None,
    decisions_stream: IO[str] | None = None,
) -> logging.Handler:
    """Install one brainops handler on the root logger (replacing a previous one); returns it.

    With json_logs the DECISIONS_LOGGER records go, as JSON lines, to `decisions_stream` (default stdout) and
    not to the root handler; without it they propagate like any other record.
    Called once by `brainops run`. Idempotent: calling it again swaps the format instead of doubling lines.
    """
    if isinstance(level, str) and level.upper() not in logging.getLevelNamesMapping():
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
    root = logging.getLogger()
    _remove_named(root, HANDLER_NAME)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(HANDLER_NAME)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if json_logs:
        logging.captureWarnings(True)  # a Python warning is a record too, not a stray text line on stderr
    _configure_decisions(json_logs, decisions_stream)
    for noisy in ("httpx", "LiteLLM", "litellm", "paramiko", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler


def _configure_decisions(json_logs: bool, stream: IO[str] | None) -> None:
    decisions = logging.getLogger(DECISIONS_LOGGER)
    _remove_named(decisions, DECISIONS_HANDLER_NAME)
    decisions.propagate = not json_logs
    if not json_logs:
        return
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.set_name(DECISIONS_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    decisions.addHandler(handler)
    decisions.setLevel(logging.INFO)  # a decision is never filtered out by a quieter root level


def _remove_named(logger: logging.Logger, name: str) -> None:
    for handler in list(logger.handlers):
        if handler.get_name() == name:
            logger.removeHandler(handler)
