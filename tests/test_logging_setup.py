"""JSON logs: one parseable object per line, extra fields kept, secrets never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from agent.service.logging_setup import DECISIONS_LOGGER, HANDLER_NAME, configure_logging

SLACK_TOKEN = "xoxb-1234567890-abcdefghijkl"
OPENAI_KEY = "sk-proj-abcdefghijklmnop1234"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # sentence-transformers raises logging.disable() around model loads; an in-process embedding test
    # earlier in the session can leave it raised, which would swallow this test's INFO records.
    disabled = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    decisions = logging.getLogger(DECISIONS_LOGGER)
    decision_handlers, propagate = list(decisions.handlers), decisions.propagate
    yield
    logging.disable(disabled)
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
    root.handlers[:] = handlers
    root.setLevel(level)
    decisions.handlers[:] = decision_handlers
    decisions.propagate = propagate
    logging.captureWarnings(False)


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_records_are_one_line_with_fields_and_no_secrets(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging(json_logs=True, stream=stream)
    log = logging.getLogger("brainops.test")
    log.info("posting with %s", SLACK_TOKEN, extra={"tick_id": "t1", "api_key": "hunter2-plain", "count": 3})
    log.warning("multi\nline message", extra={"args_seen": {"password": "pw", "host": "brain"}})
    try:
        raise RuntimeError(f"provider said: bad key {OPENAI_KEY}")
    except RuntimeError:
        log.exception("call failed")
    lines = _lines(stream)
    assert len(lines) == 3, lines
    first, second, third = (json.loads(line) for line in lines)
    assert first["level"] == "info" and first["logger"] == "brainops.test"
    assert first["ts"].endswith("Z") and first["tick_id"] == "t1" and first["count"] == 3
    assert first["api_key"] == "[REDACTED]"
    assert "[REDACTED]" in first["msg"]
    assert second["msg"] == "multi\nline message" and second["args_seen"] == {"password": "[REDACTED]", "host": "brain"}
    assert "RuntimeError" in third["exc"]
    text = stream.getvalue()
    for secret in (SLACK_TOKEN, OPENAI_KEY, "hunter2-plain", '"pw"'):
        assert secret not in text


def test_plain_format_is_redacted_too_and_reconfiguring_does_not_double_lines(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging(json_logs=True, stream=stream)
    configure_logging(json_logs=False, stream=stream)
    logging.getLogger("brainops.test").warning("token %s", SLACK_TOKEN, extra={"secret": "s3cr3t-value"})
    lines = _lines(stream)
    assert len(lines) == 1
    assert "WARNING brainops.test: token [REDACTED]" in lines[0]
    assert SLACK_TOKEN not in lines[0] and "s3cr3t-value" not in lines[0]


def test_unknown_level_is_a_clear_error(restore_root: None) -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging(json_logs=True, level="LOUD")


def test_json_logs_put_decisions_on_their_own_stream_and_text_logs_take_them_back(restore_root: None) -> None:
    logs, decisions = io.StringIO(), io.StringIO()
    configure_logging(json_logs=True, stream=logs, decisions_stream=decisions)
    logging.getLogger(DECISIONS_LOGGER).info("noop -> noop", extra={"tick_id": "t1", "rationale": SLACK_TOKEN})
    logging.getLogger("brainops.run").info("brainops run: tick every 30s")
    (decision,) = [json.loads(line) for line in _lines(decisions)]
    assert decision["logger"] == DECISIONS_LOGGER and decision["tick_id"] == "t1"
    assert decision["rationale"] == "[REDACTED]"  # the same redaction as every record
    assert [json.loads(line)["msg"] for line in _lines(logs)] == ["brainops run: tick every 30s"]

    configure_logging(json_logs=False, stream=logs, decisions_stream=decisions)
    logging.getLogger(DECISIONS_LOGGER).info("scale_workers -> done")
    assert len(_lines(decisions)) == 1 and "INFO brainops.tick: scale_workers -> done" in _lines(logs)[-1]
