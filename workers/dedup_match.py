"""Entity-resolution matching as pure functions over arrays: no store, no model.

Candidates come from three places, all restricted to entities of the same type:
an exact pass on normalized names, an acronym pass, and exact k-NN over name vectors
(normalized matrix products in chunks). Every candidate pair must then pass a string check,
which is what keeps precision: embeddings alone happily pair "Acme Labs" with "Acme Lab Group".
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import OSA

# Words an acronym usually skips ("Massachusetts Institute of Technology" -> MIT).
ACRONYM_SKIP = frozenset({"of", "and", "on", "the", "for", "in", "to", "a", "an", "&"})


@dataclass(frozen=True)
class MatchConfig:
    """Thresholds; the defaults are tuned on the seed brain (see bench/bench_dedup.py)."""

    knn_threshold: float = 0.80  # cosine of name vectors for a k-NN candidate
    knn_k: int = 8  # neighbours looked at per entity
    chunk_rows: int = 2048  # rows per matrix-product chunk (memory bound: chunk x block floats)
    typo_min_len: int = 6  # shorter names admit no typo: "Ivan"/"Ivana" are different people
    max_typo_edits: int = 1  # Damerau edits between compact names
    acronym_margin: float = 0.1  # cosine lead the best long form needs over the next one
    common_word_count: int = 3  # a word seen this often in the brain's names is a real word, not a typo


@dataclass(frozen=True)
class Pair:
    """Two entity row indexes (a < b) judged the same entity, with why."""

    a: int
    b: int
    score: float
    reason: str  # exact | acronym | typo


def normalize(name: str) -> str:
    """Lowercase, accents stripped, '&' -> 'and', punctuation -> space, whitespace collapsed."""
    folded = unicodedata.normalize("NFKD", name.casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).replace("&", " and ")
    return " ".join(re.sub(r"[^0-9a-z]+", " ", folded).split())


def compact(normalized: str) -> str:
    return normalized.replace(" ", "")


def initials(normalized: str, skip_stopwords: bool) -> str:
    words = normalized.split()
    if skip_stopwords:
        words = [w for w in words if w not in ACRONYM_SKIP]
    return "".join(w[0] for w in words)


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (adjacent swaps count 1); returns limit+1 once above limit."""
    return int(OSA.distance(a, b, score_cutoff=limit))


def is_acronym_of(short: str, long_normalized: str) -> bool:
    """'ibm' vs 'international business machines'; the short form is one token of 2..8 letters."""
    if " " in short or not 2 <= len(short) <= 8 or len(long_normalized.split()) < 2:
        return False
    return short in (initials(long_normalized, True), initials(long_normalized, False))


def string_verdict(a_norm: str, b_norm: str, word_counts: Mapping[str, int], config: MatchConfig) -> str | None:
    """Why two same-type names denote one entity, or None when they should stay apart.

    `word_counts` counts each normalized word over all names: a typo makes a rare word, while two real
    names one letter apart ("Mark Smith" / "Mary Smith") are made of common words.
    """
    a_c, b_c = compact(a_norm), compact(b_norm)
    if a_c == b_c:
        return "exact"
    if is_acronym_of(a_c, b_norm) or is_acronym_of(b_c, a_norm):
        return "acronym"
    if min(len(a_c), len(b_c)) < config.typo_min_len:
        return None
    if edit_distance(a_c, b_c, config.max_typo_edits) > config.max_typo_edits:
        return None
    return "typo" if _looks_like_typo(a_norm.split(), b_norm.split(), word_counts, config) else None


def _looks_like_typo(
    a_words: list[str], b_words: list[str], word_counts: Mapping[str, int], config: MatchConfig
) -> bool:
    if len(a_words) != len(b_words):
        return False  # a typo plus a spacing change: too weak to merge on
    changed = [(wa, wb) for wa, wb in zip(a_words, b_words, strict=True) if wa != wb]
    if len(changed) != 1:
        return False
    wa, wb = changed[0]
    if _is_version(wa) or _is_version(wb):
        return False  # "Orion Pro 3" / "Orion Pro 4", "Atlas II" / "Atlas III": siblings, not typos
    if wa[0] != wb[0]:
        return False  # typos rarely hit a word's first letter; "Hernandez" / "Fernandez" are two names
    return not (_is_known_word(wa, word_counts, config) and _is_known_word(wb, word_counts, config))


def _is_known_word(word: str, word_counts: Mapping[str, int], config: MatchConfig) -> bool:
    """Common in the brain's names, or a compound of two common words ("Westford" = west + ford)."""
    common = config.common_word_count
    if word_counts.get(word, 0) >= common:
        return True
    return any(
        word_counts.get(word[:k], 0) >= common and word_counts.get(word[k:], 0) >= common
        for k in range(3, len(word) - 2)
    )


_ROMAN = re.compile(r"^(?=[ivxlc])m*(c[md]|d?c{0,3})(x[cl]|l?x{0,3})(i[xv]|v?i{0,3})$")


def _is_version(word: str) -> bool:
    return word.isdigit() or bool(_ROMAN.match(word)) or word in ("jr", "sr")


def word_frequencies(normalized: Sequence[str]) -> Counter[str]:
    return Counter(w for n in normalized for w in n.split())


# ---------------------------------------------------------------- candidate generation


def type_blocks(types: Sequence[str]) -> dict[str, np.ndarray]:
    blocks: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(types):
        blocks[t or ""].append(i)
    return {t: np.asarray(ix, dtype=np.int64) for t, ix in blocks.items()}


def exact_candidates(types: Sequence[str], normalized: Sequence[str]) -> Iterator[tuple[int, int]]:
    """All same-type pairs whose compact normalized names are equal."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (t, n) in enumerate(zip(types, normalized, strict=True)):
        if n:
            groups[(t, compact(n))].append(i)
    for members in groups.values():
        for x, a in enumerate(members):
            for b in members[x + 1 :]:
                yield a, b


def acronym_candidates(types: Sequence[str], normalized: Sequence[str]) -> dict[int, list[int]]:
    """Single-token names -> the same-type multi-word names whose initials spell them."""
    by_initials: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, (t, n) in enumerate(zip(types, normalized, strict=True)):
        if len(n.split()) >= 2:
            for skip in (True, False):
                by_initials[(t, initials(n, skip))].add(i)
    out: dict[int, list[int]] = {}
    for i, (t, n) in enumerate(zip(types, normalized, strict=True)):
        longs = by_initials.get((t, n))
        if longs and " " not in n and 2 <= len(n) <= 8:
            out[i] = sorted(longs)
    return out


def unambiguous_acronyms(
    candidates: Mapping[int, list[int]],
    vectors: np.ndarray | None,
    margin: float,
    context: Sequence[str | None] | None = None,
) -> Iterator[tuple[int, int, float]]:
    """One long form per acronym: the only one, the only one in the acronym's community (`context`, one
    label per row), or the one whose vector is clearly closest. "CAA" could be "Carbon Accounting Audit"
    or "Climate Adaptation Audit": without such a winner, no merge."""
    for short, longs in candidates.items():
        if len(longs) > 1 and context is not None and context[short] is not None:
            near = [j for j in longs if context[j] == context[short]]
            longs = near if len(near) == 1 else longs
        scored = sorted(((_cosine(vectors, short, j), j) for j in longs), reverse=True)
        if len(scored) == 1 or (vectors is not None and scored[0][0] - scored[1][0] >= margin):
            sim, j = scored[0]
            yield min(short, j), max(short, j), sim


def knn_candidates(vectors: np.ndarray, types: Sequence[str], config: MatchConfig) -> Iterator[tuple[int, int, float]]:
    """Exact neighbours within each type block: (i, j, cosine) with i < j and cosine >= threshold.

    Each chunk of rows is multiplied only with itself and the rows after it (the upper triangle), so each
    pair is scored once. A chunk with more than knn_k hits per row on average (a dense cluster of
    look-alike names) keeps just each row's knn_k best.
    """
    for block in type_blocks(types).values():
        if len(block) < 2:
            continue
        mat = np.ascontiguousarray(vectors[block], dtype=np.float32)
        for start in range(0, len(block), config.chunk_rows):
            sims = mat[start : start + config.chunk_rows] @ mat[start:].T  # column c is row start + c
            r, c = np.nonzero(sims >= config.knn_threshold)
            upper = c > r  # drops self-matches and pairs inside the chunk seen from the other side
            r, c = r[upper], c[upper]
            if len(r) > config.knn_k * sims.shape[0]:
                r, c = _top_k_per_row(sims, config.knn_k, config.knn_threshold)
            for i, j, sim in zip(block[r + start], block[c + start], sims[r, c], strict=True):
                yield int(i), int(j), float(sim)


def _top_k_per_row(sims: np.ndarray, k: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(sims.shape[0])
    sims[rows, rows] = -1.0
    k = min(k, sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    r = np.repeat(rows, k)
    c = top.reshape(-1)
    keep = (sims[r, c] >= threshold) & (c > r)
    return r[keep], c[keep]


def typo_candidates(
    types: Sequence[str], normalized: Sequence[str], min_len: int, max_bucket: int = 64
) -> Iterator[tuple[int, int]]:
    """Same-type pairs one edit apart, found exactly via shared single-deletion keys (SymSpell style)."""
    for rows in type_blocks(types).values():
        buckets: dict[str, set[int]] = defaultdict(set)
        for i in rows.tolist():
            c = compact(normalized[i])
            if len(c) >= min_len:
                buckets[c].add(i)
                for k in range(len(c)):
                    buckets[c[:k] + c[k + 1 :]].add(i)
        for members in buckets.values():
            if 1 < len(members) <= max_bucket:
                ordered = sorted(members)
                for x, a in enumerate(ordered):
                    for b in ordered[x + 1 :]:
                        yield a, b


def match_pairs(
    names: Sequence[str],
    types: Sequence[str],
    vectors: np.ndarray | None,
    config: MatchConfig,
    context: Sequence[str | None] | None = None,
) -> list[Pair]:
    """Every same-type pair that passes the string check, best score first (deterministic order).

    `context` (optional, one community label per row) only breaks ties between acronym expansions.
    """
    normalized = [normalize(n or "") for n in names]
    counts = word_frequencies(normalized)
    scores: dict[tuple[int, int], float] = {}
    for a, b in exact_candidates(types, normalized):
        scores[(a, b)] = 1.0
    acronyms = acronym_candidates(types, normalized)
    for a, b, sim in unambiguous_acronyms(acronyms, vectors, config.acronym_margin, context):
        scores.setdefault((a, b), sim)
    for a, b in typo_candidates(types, normalized, config.typo_min_len):
        scores.setdefault((a, b), _cosine(vectors, a, b))
    if vectors is not None:
        for a, b, sim in knn_candidates(vectors, types, config):
            scores[(a, b)] = max(scores.get((a, b), 0.0), sim)
    pairs = []
    for (a, b), score in scores.items():
        reason = string_verdict(normalized[a], normalized[b], counts, config)
        if reason is not None:
            pairs.append(Pair(a, b, 1.0 if reason == "exact" else round(score, 4), reason))
    pairs.sort(key=lambda p: (-p.score, p.a, p.b))
    return pairs


def _cosine(vectors: np.ndarray | None, a: int, b: int) -> float:
    return 0.0 if vectors is None else float(vectors[a] @ vectors[b])


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
