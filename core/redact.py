"""Strip secrets from values before they are stored, hashed, logged or shown to a model.

Two rules: a value under a key that names a secret (token, key, password, secret, ...) is replaced, and
any string that looks like a credential (OpenAI `sk-...`, Slack `xoxb-...`, `xapp-...`, GitHub `ghp_...`,
AWS `AKIA...`, `Bearer ...`) has that part replaced wherever it appears.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

_SECRET_KEY_WORDS = frozenset(
    {
        "token",
        "tokens",
        "key",
        "apikey",
        "password",
        "passwd",
        "pwd",
        "secret",
        "secrets",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "cookie",
        "passphrase",
    }
)

_SECRET_VALUE = re.compile(
    r"sk-[A-Za-z0-9_\-]{12,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{8,}"
    r"|xapp-[A-Za-z0-9\-]{8,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|(?i:bearer)\s+[A-Za-z0-9._\-~+/]{12,}=*"
)

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def is_secret_key(key: str) -> bool:
    words = re.split(r"[^a-z0-9]+", _CAMEL_BOUNDARY.sub("_", key).lower())
    return any(word in _SECRET_KEY_WORDS for word in words)


def redact_text(text: str) -> str:
    return _SECRET_VALUE.sub(REDACTED, text)


def redact(value: Any, key: str | None = None) -> Any:
    """Return a copy of a JSON-like value with secrets replaced. Numbers and booleans under secret-looking
    keys are kept: they are counts and flags (`max_tokens`), not credentials."""
    if key is not None and is_secret_key(key) and not _is_plain_scalar(value):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _is_plain_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float)
