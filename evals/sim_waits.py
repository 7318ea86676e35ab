"""Per-item waiting in the fleet simulator: each stage's queue is a FIFO of cohorts (arrival time, count);
workers take batches from the front, and when a batch is committed every item in it records its wait
(commit time - arrival time), weighted by its count. What is still queued or in hand at the end counts with
its wait so far, so leaving work undone is not rewarded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

EPS = 1e-9
Cohort = list[float]  # [arrival time, items]; items may be fractional (wisdom items per extracted record)


@dataclass
class StageQueue:
    """Items of one stage waiting for a worker, oldest first."""

    cohorts: deque[Cohort] = field(default_factory=deque)
    size: float = 0.0

    def add(self, t: float, items: float) -> None:
        if items <= EPS:
            return
        if self.cohorts and self.cohorts[-1][0] == t:
            self.cohorts[-1][1] += items
        else:
            self.cohorts.append([t, items])
        self.size += items

    def take(self, items: float) -> list[Cohort]:
        """Up to `items` from the front, split where a cohort is taken in part."""
        taken: list[Cohort] = []
        want = min(items, self.size)
        while want > EPS and self.cohorts:
            head = self.cohorts[0]
            if head[1] <= want + EPS:
                taken.append(self.cohorts.popleft())
                want -= head[1]
                self.size -= head[1]
            else:
                taken.append([head[0], want])
                head[1] -= want
                self.size -= want
                want = 0.0
        if not self.cohorts:
            self.size = 0.0  # no float drift on an empty queue
        return taken

    def put_back(self, cohorts: Sequence[Cohort]) -> None:
        """A batch that was not committed goes back to the front, with its items' original arrival times."""
        for cohort in reversed(cohorts):
            self.cohorts.appendleft(cohort)
            self.size += cohort[1]


@dataclass
class WaitLog:
    """Weighted wait samples per stage: (wait seconds, items)."""

    waits: dict[str, list[float]] = field(default_factory=dict)
    weights: dict[str, list[float]] = field(default_factory=dict)

    def record(self, stage: str, now: float, cohorts: Iterable[Cohort]) -> None:
        waits, weights = self.waits.setdefault(stage, []), self.weights.setdefault(stage, [])
        for arrived, items in cohorts:
            waits.append(now - arrived)
            weights.append(items)

    def summary(self, stage: str, end: float, unfinished: Iterable[Cohort]) -> dict[str, float]:
        """p50 / p95 / max wait of the stage's items, the unfinished ones counted with their wait so far."""
        waits, weights = list(self.waits.get(stage, ())), list(self.weights.get(stage, ()))
        for arrived, items in unfinished:
            waits.append(end - arrived)
            weights.append(items)
        return {
            "p50": round(weighted_quantile(waits, weights, 0.50), 3),
            "p95": round(weighted_quantile(waits, weights, 0.95), 3),
            "max": round(max((w for w, n in zip(waits, weights, strict=True) if n > EPS), default=0.0), 3),
        }


def weighted_quantile(values: Sequence[float], weights: Sequence[float], q: float) -> float:
    """The smallest value whose cumulative weight reaches q of the total (0.0 when there is no weight)."""
    if not values:
        return 0.0
    v, w = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    order = np.argsort(v, kind="stable")
    v, cum = v[order], np.cumsum(w[order])
    total = float(cum[-1])
    if total <= EPS:
        return 0.0
    index = int(np.searchsorted(cum, q * total - EPS * max(1.0, total), side="left"))
    return float(v[min(index, len(v) - 1)])
