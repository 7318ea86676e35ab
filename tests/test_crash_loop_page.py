"""A crash loop with one cause pages a human once in Slack (the agent can fix it with no action), and again
only after it cleared and came back; no page for a single crash or a healthy fleet."""

from __future__ import annotations

from typing import Any

from agent.slack.backend import SlackNotifier
from core.domain import Observation, WorkerInfo
from graphs.plan_facts import crash_loops

NOW = 1_800_000_000.0


class Client:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []

    def chat_postMessage(self, **kwargs: Any) -> dict[str, str]:
        self.posts.append(kwargs)
        return {"channel": kwargs["channel"], "ts": str(len(self.posts))}


def fatal(worker_id: str, host: str, code: int = 2) -> WorkerInfo:
    return WorkerInfo(id=worker_id, kind="extract", host=host, state="fatal", last_exit=code)


def observation(*workers: WorkerInfo) -> Observation:
    return Observation(time=NOW, workers=workers)


def test_one_cause_across_hosts_is_a_crash_loop_a_single_crash_beside_healthy_workers_is_not() -> None:
    loop = observation(fatal("e1", "brain"), fatal("e2", "worker-pc"))
    assert crash_loops(loop) == ["2 extract worker(s) FATAL with exit code 2 (brain, worker-pc)"]
    healthy = WorkerInfo(id="e3", kind="extract", host="worker-pc", state="running")
    assert crash_loops(observation(fatal("e1", "brain"), healthy)) == []
    assert crash_loops(observation(fatal("e1", "brain", 2), fatal("e2", "brain", 9), healthy)) == []


def test_a_crash_loop_pages_once_and_again_only_after_it_cleared() -> None:
    client = Client()
    notifier = SlackNotifier(agent=None, client=client, channel="C1")  # type: ignore[arg-type]
    alert = crash_loops(observation(fatal("e1", "brain"), fatal("e2", "worker-pc")))
    for _ in range(3):
        notifier._page(alert)
    assert len(client.posts) == 1
    page = client.posts[0]
    assert page["channel"] == "C1" and "Crash loop" in page["text"] and "exit code 2" in page["text"]
    assert "scales that kind up on no host" in page["blocks"][0]["text"]["text"]
    notifier._page([])  # cleared
    notifier._page(alert)  # back
    assert len(client.posts) == 2
