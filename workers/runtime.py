"""What every worker process shares: drain on SIGTERM, a status file the dispatcher reads, the batch loop."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core import telemetry
from core.faults import point

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_REFUSED = 3  # the job refused to do what it was asked (e.g. an approved plan no longer holds); wrote nothing

# What a job's exit code tells whoever sees it end (the agent turns it into an observation note).
EXIT_MEANINGS: dict[int, str] = {
    EXIT_ERROR: "failed (see its log)",
    EXIT_REFUSED: "refused to go on and wrote nothing (dedup: its approved plan no longer holds; the log says why)",
}


class JobRefused(Exception):
    """Raised inside a step when the job must not go on (an expected stop, not a crash): the loop ends with
    `EXIT_REFUSED` and `WorkerRun.refusal` holds the one-sentence reason."""


@dataclass
class WorkerRun:
    """Drain flag plus progress counters, mirrored to a JSON status file after every batch."""

    kind: str
    status_file: Path | None = None
    processed: int = 0
    batches: int = 0
    last_batch: int | None = None  # items the last batch did; 0: it found nothing to do (None: no batch yet)
    busy_s: float = 0.0  # seconds spent in batches that did work: the agent reads throughput as processed / busy_s
    state: str = "running"
    stop: threading.Event = field(default_factory=threading.Event)
    refusal: str | None = None  # why the job refused (JobRefused), when it did

    def __post_init__(self) -> None:
        point("worker_start")  # a test's crash loop: every worker of the fleet dying the same way at start

    def install_signal_handlers(self) -> None:
        # SIGTERM means "drain": finish the batch in hand, then exit cleanly. A second one kills.
        # Off the main thread (a worker inside a Ray actor) signals are not ours: `stop` is set by a call.
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, _frame: object) -> None:
            if self.stop.is_set():
                os._exit(128 + signum)
            self.state = "draining"
            self.stop.set()
            self.write_status()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    @property
    def draining(self) -> bool:
        return self.stop.is_set()

    def write_status(self, exit_code: int | None = None) -> None:
        if self.status_file is None:
            return
        payload = {
            "pid": os.getpid(),
            "kind": self.kind,
            "state": self.state,
            "processed": self.processed,
            "batches": self.batches,
            "last_batch": self.last_batch,
            "busy_s": round(self.busy_s, 3),
            "updated_at": time.time(),
            "exit_code": exit_code,
        }
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload))
        tmp.replace(self.status_file)

    def loop(self, step: Callable[[], int], *, forever: bool, idle_s: float = 2.0) -> int:
        """Call step() (one batch, returns items done) until no work is left or a drain is asked.

        With forever=True an idle worker waits for new work instead of exiting.
        """
        self.write_status()
        telemetry.setup("brainops-worker")  # on when the OTEL_* environment asks; TRACEPARENT names the parent
        try:
            while not self.draining:
                started = time.monotonic()
                with telemetry.batch_span(self.kind, self._worker_id) as span:
                    done = step()
                    span.set({"brainops.batch.items": done})
                    if done == 0:
                        span.skip()
                if done:
                    self.busy_s += time.monotonic() - started
                self.processed += done
                self.batches += 1
                self.last_batch = done
                self.write_status()
                if done == 0:
                    if not forever:
                        break
                    self.stop.wait(idle_s)
        except JobRefused as exc:
            self.refusal = str(exc)
            self.state = "stopped"
            self.write_status(exit_code=EXIT_REFUSED)
            return EXIT_REFUSED
        except Exception:
            self.state = "crashed"
            self.write_status(exit_code=EXIT_ERROR)
            raise
        finally:
            telemetry.flush()
        self.state = "stopped"
        self.write_status(exit_code=EXIT_OK)
        return EXIT_OK

    @property
    def _worker_id(self) -> str | None:
        """The id the dispatcher gave this worker: its status file is named after it."""
        return self.status_file.name.removesuffix(".status.json") if self.status_file is not None else None


def single_pass(step: Callable[[], int]) -> Callable[[], int]:
    """A one-shot job (dedup, recluster) does its pass once, even if other writers change the brain meanwhile."""
    done = False

    def once() -> int:
        nonlocal done
        if done:
            return 0
        done = True
        return step()

    return once


def parse_shard(spec: str | None) -> tuple[int, int]:
    """'i/n' -> (i, n), 0 <= i < n. None -> (0, 1)."""
    if not spec:
        return 0, 1
    try:
        i_s, n_s = spec.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError as exc:
        raise ValueError(f"shard must look like i/n, got {spec!r}") from exc
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {spec!r} out of range: need 0 <= i < n")
    return i, n


def bucket_of(row_id: str) -> int:
    """Stable bucket of an id (crc32, not Python's salted hash); stored in the `bucket` column."""
    import zlib

    from brain.schema import BUCKETS

    return zlib.crc32(row_id.encode()) % BUCKETS


def shard_filter(shard: tuple[int, int]) -> str | None:
    """SQL predicate selecting one shard's rows; shards of n never overlap and cover every bucket."""
    i, n = shard
    return None if n == 1 else f"bucket % {n} = {i}"
