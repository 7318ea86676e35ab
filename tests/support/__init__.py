"""Shared test support: rigs, loopback fakes and the one polling helper every test uses.

Tests import these as `support.<module>` (pytest puts tests/ on sys.path: tests/ has no __init__.py and the
default "prepend" import mode inserts the rootdir of each test file); scripts at the repo root, such as
bench/bench_observe.py, import them as `tests.support.<module>`.

    support.agent_rig        whole-tick set-up: settings, policy files, brain copies, CLI subprocesses
    support.brain_rig        worker subprocesses on a real brain
    support.slack_rig        the Slack app over loopback HTTP with a counting backend (`rig` fixture)
    support.fake_slack       Slack Web API / response_url stand-in that records calls
    support.fake_llm_server  scripted OpenAI-compatible HTTP server (litellm talks to it for real)
    support.scripted_chat    scripted in-process chat model: a langchain BaseChatModel and a ChatRouter
    support.sshd             real OpenSSH servers on loopback addresses, one per fake host
    support.prometheus       a real Prometheus server on loopback

Kept free of heavy imports: only what `wait_for` needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]


def wait_for(check: Callable[[], T | None], what: str, *, timeout_s: float = 30.0, interval_s: float = 0.05) -> T:
    """Poll `check()` until it returns something truthy and return that value (no fixed sleeps in tests).

    `what` names the condition for the failure message: "timed out after 30s waiting for <what>
    (last value: ...)". `check` runs at least once, and once more at the deadline; exceptions it raises
    propagate at once.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what} (last value: {value!r})")
        time.sleep(min(interval_s, left))
