"""A worker of any kind inside a Ray actor: the body `brainops worker KIND` runs, in the actor's process.

`KindActor` is a plain class; fleet/ray_host.py makes it a Ray actor (`ray.remote(...).options(...)`), so this
module never imports ray. One actor is one worker's life: `work()` runs the kind's loop (`WorkerRun.loop`) to
its end, `status()` answers meanwhile with the counters the probe reads from a status file, `drain()` is the
SIGTERM of a process: the batch in hand finishes and commits, then the loop ends with exit 0. RayHost creates it
with `autostart`: `work()` runs in the actor's own thread from the start, so a `brainops tick` that started the
worker and exited at once (before Ray placed the actor) leaves a worker that works. The embedder, the
gazetteer and the brain's table handles are loaded once, in `work()`, and stay for the actor's life.

A worker never writes a batch halfway: each batch is one LanceDB commit, so an actor killed with its node (a spot
instance taken back) leaves its rows pending, and the restarted worker takes them again.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from workers.runtime import EXIT_ERROR, WorkerRun, parse_shard


def _picked(options: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {n: options[n] for n in names if n in options}


def _extract(brain: str, o: Mapping[str, Any], run: WorkerRun, lane: int) -> int:
    from workers.extract import ExtractConfig, run_extract

    config = ExtractConfig(
        brain, parse_shard(o.get("shard")), lane=lane, **_picked(o, "batch_size", "loop", "item_ms", "limit")
    )
    return run_extract(config, run)


def _embed(brain: str, o: Mapping[str, Any], run: WorkerRun, _lane: int) -> int:
    from workers.embed import EmbedConfig, run_embed

    config = EmbedConfig(brain, shard=parse_shard(o.get("shard")), **_picked(o, "table", "batch_size", "loop", "limit"))
    return run_embed(config, run, show_progress=False)


def _wisdom(brain: str, o: Mapping[str, Any], run: WorkerRun, _lane: int) -> int:
    from workers.wisdom import WisdomConfig, run_wisdom

    config = WisdomConfig(brain, parse_shard(o.get("shard")), **_picked(o, "batch_size", "loop", "item_ms", "limit"))
    return run_wisdom(config, run, None)  # extractive summaries: the fleet LLM is not wired into actors yet


def _dedup(brain: str, o: Mapping[str, Any], run: WorkerRun, _lane: int) -> int:
    from workers.dedup import DedupConfig, run_dedup_worker
    from workers.dedup_match import MatchConfig

    config = DedupConfig(
        brain, match=MatchConfig(max_llm_calls=0), **_picked(o, "dry_run", "loop", "plan", "max_merges")
    )
    return run_dedup_worker(config, run)[0]


def _recluster(brain: str, o: Mapping[str, Any], run: WorkerRun, _lane: int) -> int:
    from workers.recluster import ReclusterConfig, run_recluster_worker

    return run_recluster_worker(ReclusterConfig(brain, **_picked(o, "loop")), run)[0]


RUNNERS: dict[str, Callable[[str, Mapping[str, Any], WorkerRun, int], int]] = {
    "extract": _extract,
    "embed": _embed,
    "wisdom": _wisdom,
    "dedup": _dedup,
    "recluster": _recluster,
}


def worker_number(worker_id: str) -> int:
    """Dispatcher ids end in their sequence number (KIND-HOST-N): it spreads extract's bucket lanes."""
    tail = worker_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class KindActor:
    """One worker: `work()` once, `status()` and `drain()` from other calls while it runs (a threaded actor)."""

    def __init__(
        self, worker_id: str, kind: str, brain: str, options: Mapping[str, Any], *, autostart: bool = False
    ) -> None:
        if kind not in RUNNERS:
            raise ValueError(f"no in-actor runner for kind {kind!r}; known: {', '.join(RUNNERS)}")
        self.worker_id = worker_id
        self.kind = kind
        self.brain = brain
        self.options = dict(options)
        self.run = WorkerRun(kind=kind)
        self.exit_code: int | None = None
        self.error: str | None = None
        self.started_at = time.time()
        if autostart:  # the actor's own thread: a call from its creator is lost if that process exits first
            threading.Thread(target=self.work, name=f"work-{worker_id}", daemon=True).start()

    def work(self) -> int:
        try:
            code = RUNNERS[self.kind](self.brain, self.options, self.run, worker_number(self.worker_id))
        except Exception as exc:  # the snapshot reports a crash; the last lines say why
            self.run.state = "crashed"
            self.error = f"{type(exc).__name__}: {exc}"[:500]
            self.exit_code = EXIT_ERROR
            traceback.print_exc()  # the actor's log on its node
            return EXIT_ERROR
        self.exit_code = code
        return code

    def drain(self) -> str:
        if self.exit_code is None:
            self.run.state = "draining"
            self.run.stop.set()
        return self.run.state

    def status(self) -> dict[str, Any]:
        """What a worker's status file holds (workers/runtime.py), plus pid and the error of a crash."""
        run = self.run
        return {
            "pid": os.getpid(),
            "kind": self.kind,
            "state": run.state,
            "processed": run.processed,
            "batches": run.batches,
            "last_batch": run.last_batch,
            "busy_s": round(run.busy_s, 3),
            "started_at": self.started_at,
            "exit_code": self.exit_code,
            "error": self.error,
        }
