"""`brainops run`: APScheduler drives ticks (never overlapping, misfires coalesced) plus cron jobs from config.

SIGINT/SIGTERM stop the scheduler cleanly after the tick in hand. Workers keep running and pending
approvals stay in SQLite: the next `brainops run` picks both up.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.service.agent import Agent, TickReport
    from core.settings import CronJob

log = logging.getLogger("brainops.run")


@dataclass
class AgentLoop:
    agent: Agent
    on_report: Callable[[TickReport], None] = lambda _r: None
    on_error: Callable[[BaseException], None] = lambda _e: None
    max_ticks: int | None = None  # stop after this many ticks (demos, tests)
    ticks: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)
    _scheduler: Any = None

    def tick_job(self) -> None:
        if self.agent.paused_by() is not None:
            self._maintain()
            return
        try:
            report = self.agent.tick()
        except Exception as exc:  # one tick failing must not end the loop; it is logged and shown
            log.exception("tick failed")
            self.on_error(exc)
            return
        self.ticks += 1
        self.on_report(report)
        if self.max_ticks is not None and self.ticks >= self.max_ticks:
            self.stopped.set()

    def _maintain(self) -> None:
        try:
            self.agent.maintain()
        except Exception as exc:
            log.exception("maintenance while paused failed")
            self.on_error(exc)

    def cron_job(self, job: CronJob) -> None:
        if self.agent.paused_by() is not None:
            log.info("cron job %s skipped: autonomous actions are paused", job.name)
            return
        try:
            report = self.agent.request(job.action, dict(job.args), requester=f"cron:{job.name}")
            self.on_report(report)
        except Exception as exc:
            log.exception("cron job %s failed", job.name)
            self.on_error(exc)

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        schedule = self.agent.settings.schedule
        scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": int(schedule.tick_seconds)}
        )
        scheduler.add_job(
            self.tick_job,
            IntervalTrigger(seconds=schedule.tick_seconds),
            id="tick",
            next_run_time=_now_dt(),
        )
        for job in schedule.cron:
            scheduler.add_job(self.cron_job, CronTrigger.from_crontab(job.cron), args=[job], id=f"cron:{job.name}")
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)  # waits for the tick in hand; starts no new one
            self._scheduler = None
        self.stopped.set()

    def run_forever(self) -> None:
        """Block until SIGINT/SIGTERM (or max_ticks), then shut down cleanly."""

        def on_signal(signum: int, _frame: object) -> None:
            log.info("signal %s: finishing the tick in hand", signum)
            self.stopped.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        self.start()
        try:
            while not self.stopped.wait(0.5):
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _now_dt() -> Any:
    from datetime import datetime

    return datetime.fromtimestamp(time.time(), tz=UTC)
