"""Entity resolution over arrays: candidates (workers.er_block), comparisons (workers.er_compare), a fitted
Fellegi-Sunter model (workers.er_model), then groups without chains. No store, no model download.

A pair is accepted when its match probability reaches the threshold of its type AND either the names say
"same name" (exact, same words, designator or acronym alias) or other evidence agrees (an attribute, a
shared neighbour or community): "Ireland" / "Iceland" is one edit apart and nothing else, so it stays two
entities unless a model adjudicating the pair says otherwise. A pair whose side already absorbed entities
in an earlier pass must match every one of them too, so clusters never chain across passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.er_block import BlockingConfig, candidate_pairs
from workers.er_compare import (
    CONTEXT_KEYS,
    IDENTITY_LEVELS,
    MISSING,
    NAME_LEVELS,
    WEAK_NAME,
    ERTable,
    attributes_disagree,
    compare,
    corroborated,
    explain,
)
from workers.er_model import FSModel, fit

DEFAULT_TYPE_ALIASES: tuple[tuple[str, str], ...] = (
    ("org", "organization"),
    ("organisation", "organization"),
    ("per", "person"),
    ("loc", "location"),
    ("tech", "technology"),
)


@dataclass(frozen=True)
class MatchConfig:
    """Thresholds and knobs; defaults measured in bench/bench_dedup.py and bench/bench_outside_er.py."""

    threshold: float = 0.9  # match probability a pair needs
    type_thresholds: tuple[tuple[str, float], ...] = ()  # per canonical type, overriding `threshold`
    type_aliases: tuple[tuple[str, str], ...] = DEFAULT_TYPE_ALIASES
    context_keys: frozenset[str] = CONTEXT_KEYS  # attributes whose agreement never counts as evidence
    blocking: BlockingConfig = field(default_factory=BlockingConfig)
    band_low: float = 0.5  # from here up to the threshold a pair is ambiguous: a model may adjudicate it
    alias_cosine: float = 0.88  # name vectors this close but names unrelated: a semantic alias to adjudicate
    max_llm_calls: int = 50  # adjudications per run; past it the deterministic verdict stands
    em_iterations: int = 60

    def threshold_for(self, canonical_type: str) -> float:
        return dict(self.type_thresholds).get(canonical_type, self.threshold)

    @property
    def aliases(self) -> dict[str, str]:
        return dict(self.type_aliases)


@dataclass(frozen=True)
class Pair:
    """Two live entity row indexes (a < b) judged the same entity, with why."""

    a: int
    b: int
    score: float  # match probability
    reason: str  # the name level (exact | same_words | alias | typo | close | different), "+llm" if adjudicated
    evidence: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Verdict:
    """A model's answer on one ambiguous pair; `same` None when it could not say (budget, provider, nonsense)."""

    same: bool | None
    model: str
    answer: str


Adjudicator = Callable[[ERTable, int, int], Verdict]


@dataclass(frozen=True)
class MatchResult:
    pairs: list[Pair]
    candidates: int
    model: FSModel | None
    adjudications: list[dict[str, Any]]


@dataclass(frozen=True)
class _Scored:
    gamma: np.ndarray
    prob: np.ndarray
    accepted: np.ndarray


def match(
    table: ERTable,
    n_live: int,
    absorbed: Mapping[int, Sequence[int]],
    vectors: np.ndarray | None,
    config: MatchConfig,
    adjudicate: Adjudicator | None = None,
) -> MatchResult:
    """Matched live pairs. Rows >= n_live are absorbed entities; `absorbed[i]` lists row i's own."""
    owner = _owners(n_live, len(table.names), absorbed)
    raw = candidate_pairs(table, _padded(vectors, len(table.names)), config.blocking)
    live = sorted({(min(owner[x], owner[y]), max(owner[x], owner[y])) for x, y in raw if owner[x] != owner[y]})
    if not live:
        return MatchResult([], 0, None, [])
    checks = [_member_pairs(a, b, absorbed) for a, b in live]
    rows = sorted({p for c in checks for p in c})
    index = {p: k for k, p in enumerate(rows)}
    gamma = compare(table, rows)
    model = fit(gamma[[index[p] for p in live]], table.comparisons, iterations=config.em_iterations)
    scored = _score(table, rows, gamma, model, config)
    pairs, undecided = [], []
    for (a, b), members in zip(live, checks, strict=True):
        k = index[(a, b)]
        if all(scored.accepted[index[m]] for m in members):
            pairs.append(_pair(table, a, b, k, scored))
        elif len(members) == 1 and _ambiguous(table, a, b, k, scored, vectors, config):
            undecided.append((a, b, k))
    adjudications = _adjudicate(table, undecided, scored, config, adjudicate, pairs)
    pairs.sort(key=lambda p: (-p.score, p.a, p.b))
    return MatchResult(pairs, len(live), model, adjudications)


def _owners(n_live: int, n_rows: int, absorbed: Mapping[int, Sequence[int]]) -> list[int]:
    owner = list(range(n_rows))
    for survivor, members in absorbed.items():
        for m in members:
            owner[m] = survivor
    assert all(o < n_live for o in owner[n_live:]), "every absorbed row needs its live survivor"
    return owner


def _padded(vectors: np.ndarray | None, n_rows: int) -> np.ndarray | None:
    """Absorbed rows have no vector here: zero rows, which are nobody's neighbour."""
    if vectors is None or len(vectors) == n_rows:
        return vectors
    out = np.zeros((n_rows, vectors.shape[1]), dtype=np.float32)
    out[: len(vectors)] = vectors
    return out


def _member_pairs(a: int, b: int, absorbed: Mapping[int, Sequence[int]]) -> list[tuple[int, int]]:
    side_a, side_b = [a, *absorbed.get(a, ())], [b, *absorbed.get(b, ())]
    return [(min(x, y), max(x, y)) for x in side_a for y in side_b]


def _score(
    table: ERTable, rows: Sequence[tuple[int, int]], gamma: np.ndarray, model: FSModel, config: MatchConfig
) -> _Scored:
    """Accepted = eligible and probable; with nothing but names to compare, the name level decides alone.

    EM cannot tell matches from non-matches on one comparison (any split of the name levels fits), so a
    pair known only by its names is accepted on "same name" (exact, same words, alias) and nothing weaker.
    """
    prob = model.probabilities(gamma)
    identity = gamma[:, 0] < IDENTITY_LEVELS
    eligible = (identity | corroborated(gamma)) & ~attributes_disagree(table, gamma)
    name_only = (gamma[:, 1:] == MISSING).all(axis=1)
    thresholds = np.array([config.threshold_for(table.types[a]) for a, _ in rows])
    accepted = eligible & np.where(name_only, identity, prob >= thresholds)
    return _Scored(gamma, prob, accepted)


def _pair(table: ERTable, a: int, b: int, k: int, s: _Scored, verdict: Verdict | None = None) -> Pair:
    reason = NAME_LEVELS[int(s.gamma[k, 0])] + ("+llm" if verdict else "")
    evidence: dict[str, Any] = {
        "names": [table.names[a], table.names[b]],
        "probability": round(float(s.prob[k]), 4),
        "levels": explain(table, s.gamma[k]),
    }
    if verdict is not None:
        evidence["adjudication"] = {"model": verdict.model, "answer": verdict.answer}
    return Pair(a, b, round(float(s.prob[k]), 4), reason, evidence)


def _ambiguous(
    table: ERTable, a: int, b: int, k: int, s: _Scored, vectors: np.ndarray | None, config: MatchConfig
) -> bool:
    """Worth asking a model: names one edit or a word apart, probable but unproven, or unrelated names
    whose meanings are close ("South Korea" / "Korea, Republic of")."""
    if attributes_disagree(table, s.gamma[k : k + 1])[0]:
        return False  # attributes say two entities: a model reading names cannot overrule a birth date
    if int(s.gamma[k, 0]) < WEAK_NAME or s.prob[k] >= config.band_low:
        return True
    if vectors is None or a >= len(vectors) or b >= len(vectors):
        return False
    return float(vectors[a] @ vectors[b]) >= config.alias_cosine


def _adjudicate(
    table: ERTable,
    undecided: list[tuple[int, int, int]],
    s: _Scored,
    config: MatchConfig,
    adjudicate: Adjudicator | None,
    pairs: list[Pair],
) -> list[dict[str, Any]]:
    """Ask the model about the most probable undecided pairs, up to the cap; its yes makes a pair."""
    if adjudicate is None or not undecided:
        return []
    undecided.sort(key=lambda x: (-float(s.prob[x[2]]), x[0], x[1]))
    log = []
    for a, b, k in undecided[: config.max_llm_calls]:
        verdict = adjudicate(table, a, b)
        log.append({"names": [table.names[a], table.names[b]], "same": verdict.same, "model": verdict.model})
        if verdict.same:
            pairs.append(_pair(table, a, b, k, s, verdict))
    return log


# ---------------------------------------------------------------- grouping


def group_pairs(pairs: Sequence[Pair], n: int) -> list[list[int]]:
    """Complete-linkage groups: a member joins (or two groups fuse) only if linked to EVERY member.

    A~B and B~C never put A and C together unless A~C was matched too: no transitive chains.
    Pairs are taken best-first, so each entity lands in the group of its strongest consistent match.
    """
    linked: set[tuple[int, int]] = {(p.a, p.b) for p in pairs}
    group_of: dict[int, int] = {}
    groups: dict[int, list[int]] = {}

    def all_linked(xs: list[int], ys: list[int]) -> bool:
        return all((min(x, y), max(x, y)) in linked for x in xs for y in ys)

    for p in pairs:
        ga, gb = group_of.get(p.a), group_of.get(p.b)
        if ga is not None and ga == gb:
            continue
        xs = groups[ga] if ga is not None else [p.a]
        ys = groups[gb] if gb is not None else [p.b]
        if not all_linked(xs, ys):
            continue
        keep = ga if ga is not None else (gb if gb is not None else p.a)
        merged = sorted(set(xs) | set(ys))
        for g in (ga, gb):
            if g is not None and g != keep:
                del groups[g]
        groups[keep] = merged
        for m in merged:
            group_of[m] = keep
    assert all(0 <= m < n for g in groups.values() for m in g)
    return sorted(groups.values())


def choose_survivor(members: Sequence[int], rel_counts: np.ndarray, created_at: np.ndarray, ids: Sequence[str]) -> int:
    """Most relationships, then oldest, then smallest id: the same input always picks the same row."""
    return min(members, key=lambda m: (-int(rel_counts[m]), float(created_at[m]), ids[m]))
