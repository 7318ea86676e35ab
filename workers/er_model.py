"""Fellegi-Sunter match probabilities with m and u fitted by EM on the brain's own candidate pairs.

For each comparison and level, m = P(level | same entity) and u = P(level | different entities); a pair's
match weight is log2(prior/(1-prior)) + sum over comparisons of log2(m/u), and its probability follows.
EM alternates between the probability of each candidate pair and the m, u and prior that best explain
them (the Expectation-Maximisation recordlinkage's ECM classifier and splink use). The starting m and u
are also a weak Dirichlet prior (`strength` pairs' worth), so a brain with a handful of candidates gets
sensible defaults instead of a fit to noise. A MISSING level (nothing to compare) adds no weight.

Why our own ~100 lines and not splink: the features here include graph neighbourhoods and name keys that
live in Python, the entities are already Arrow arrays in memory, and a dedup run must stay in seconds
without a database engine. bench/bench_outside_er.py runs splink and recordlinkage on the same records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workers.er_compare import MISSING

# Starting m / u per comparison family (levels strongest first). u is over candidate pairs, not random
# pairs: candidates already look alike, so "close name" is common among them even when different.
NAME_M = (0.50, 0.15, 0.12, 0.13, 0.05, 0.03, 0.02)
NAME_U = (0.005, 0.01, 0.01, 0.03, 0.15, 0.15, 0.645)
ATTR_M = (0.60, 0.25, 0.10, 0.05)
ATTR_U = (0.02, 0.10, 0.08, 0.80)
GRAPH_M = (0.25, 0.45, 0.30)
GRAPH_U = (0.03, 0.07, 0.90)
DESC_M = (0.50, 0.30, 0.20)
DESC_U = (0.30, 0.30, 0.40)
PRIOR = 0.3
EPS = 1e-6


@dataclass(frozen=True)
class FSModel:
    comparisons: tuple[str, ...]
    m: tuple[np.ndarray, ...]
    u: tuple[np.ndarray, ...]
    prior: float  # share of candidate pairs that are matches
    iterations: int

    def weights(self, gamma: np.ndarray) -> np.ndarray:
        """log2 Bayes factor per pair (prior included)."""
        total = np.full(len(gamma), np.log2(self.prior / (1 - self.prior)))
        for k in range(len(self.comparisons)):
            total += _level_weights(self.m[k], self.u[k], gamma[:, k])
        return total

    def probabilities(self, gamma: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp2(-self.weights(gamma)))

    def summary(self) -> dict[str, list[float]]:
        """log2(m/u) per comparison and level: how much each kind of agreement is worth in this brain."""
        return {
            c: np.round(np.log2(m / u), 2).tolist() for c, m, u in zip(self.comparisons, self.m, self.u, strict=True)
        }


def _level_weights(m: np.ndarray, u: np.ndarray, levels: np.ndarray) -> np.ndarray:
    table = np.log2(m / u)
    out = np.zeros(len(levels))
    present = levels != MISSING
    out[present] = table[levels[present]]
    return out


def starting_values(comparisons: Sequence[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    families: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
        "name": (NAME_M, NAME_U),
        "graph": (GRAPH_M, GRAPH_U),
        "description": (DESC_M, DESC_U),
    }
    pairs = [families.get(c, (ATTR_M, ATTR_U)) for c in comparisons]
    return [np.asarray(m, dtype=float) for m, _ in pairs], [np.asarray(u, dtype=float) for _, u in pairs]


def fit(gamma: np.ndarray, comparisons: Sequence[str], *, iterations: int = 60, strength: float = 20.0) -> FSModel:
    """EM over the candidate pairs' levels; stops early once the prior moves less than 1e-5."""
    m0, u0 = starting_values(comparisons)
    m, u, prior = [x.copy() for x in m0], [x.copy() for x in u0], PRIOR
    done = 0
    for done in range(1, iterations + 1):
        model = FSModel(tuple(comparisons), tuple(m), tuple(u), prior, done)
        w = model.probabilities(gamma) if len(gamma) else np.zeros(0)
        for k in range(len(comparisons)):
            m[k] = _reestimate(gamma[:, k], w, m0[k], strength)
            u[k] = _reestimate(gamma[:, k], 1.0 - w, u0[k], strength)
        new_prior = float((w.sum() + strength * PRIOR) / (len(w) + strength))
        new_prior = min(max(new_prior, EPS), 1 - EPS)
        converged = abs(new_prior - prior) < 1e-5
        prior = new_prior
        if converged:
            break
    return _oriented(FSModel(tuple(comparisons), tuple(m), tuple(u), prior, done))


def _reestimate(levels: np.ndarray, weight: np.ndarray, start: np.ndarray, strength: float) -> np.ndarray:
    present = levels != MISSING
    counts = np.bincount(levels[present].astype(np.int64), weights=weight[present], minlength=len(start))
    probs = (counts + strength * start) / (counts.sum() + strength)
    return np.clip(probs, EPS, 1.0)


def _oriented(model: FSModel) -> FSModel:
    """EM's two classes have no names: the match class is the one where names agree exactly more often."""
    name = model.comparisons.index("name")
    if model.m[name][0] >= model.u[name][0]:
        return model
    return FSModel(model.comparisons, model.u, model.m, 1 - model.prior, model.iterations)
