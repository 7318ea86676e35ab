"""Fault-injection seams for the crash and race tests: named points where a process can be made to die
(`BRAINOPS_FAULT=after_claim`) or to pause (`BRAINOPS_FAULT=after_claim:0.5`, widening a race window).
Unset, as in production, a point is one dictionary look-up."""

from __future__ import annotations

import os
import time

POINTS = ("after_claim", "after_spawn", "before_record", "worker_start", "archive_before_delete")
# worker_start: in every worker process; archive_before_delete: a decision segment is safe, its records not yet gone


def point(name: str) -> None:
    if name not in POINTS:  # a seam the tests cannot name would never fire
        raise ValueError(f"unknown fault point {name!r}; known: {', '.join(POINTS)}")
    spec = os.environ.get("BRAINOPS_FAULT")
    if not spec:
        return
    where, _, pause = spec.partition(":")
    if where != name:
        return
    if pause:
        time.sleep(float(pause))
        return
    os._exit(137)  # as kill -9 would: no cleanup, no finally blocks
