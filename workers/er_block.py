"""Blocking: which entity pairs get compared at all. Recall lives here, precision in the model.

Several cheap keys, each within one canonical type, and a pair is a candidate if it shares any of them:
the compact name, each sorted-token spelling (word order, "X, Republic of"), the name without designators,
acronym <-> initials, single-deletion keys (every one-edit typo meets its original, SymSpell style), the
sorted metaphone codes (sound-alike spellings), each attribute value (two records with one birth date), and
the nearest name vectors. A key shared by too many rows ("state = nsw") is skipped: it would add many
pairs and little evidence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from workers import er_text as T
from workers.er_compare import ERTable


@dataclass(frozen=True)
class BlockingConfig:
    max_bucket: int = 64  # rows sharing one fuzzy key (deletion, sound, attribute value)
    max_exact_bucket: int = 500  # rows sharing one exact name
    typo_min_len: int = 5
    knn_threshold: float = 0.80  # cosine of name vectors
    knn_k: int = 8
    chunk_rows: int = 2048  # rows per matrix-product chunk (memory: chunk x block floats)


def keys_of(t: ERTable, i: int, config: BlockingConfig) -> Iterator[tuple[str, ...]]:
    """(family, type, key...) tuples; exact families first."""
    typ, c = t.types[i], t.compacts[i]
    if not c:
        return
    yield ("exact", typ, c)
    for form in t.forms[i]:
        yield ("words", typ, form)
    if core := t.cores[i][0]:
        yield ("core", typ, core)
    if len(c) >= config.typo_min_len:
        yield ("delete", typ, c)
        for k in range(len(c)):
            yield ("delete", typ, c[:k] + c[k + 1 :])
    if sound := T.phonetic_key(t.folded[i]):
        yield ("sound", typ, sound)
    for key, value in t.attributes[i].items():
        yield ("attr", typ, key, value)


def candidate_pairs(t: ERTable, vectors: np.ndarray | None, config: BlockingConfig) -> set[tuple[int, int]]:
    """Row pairs (a < b) of one type sharing a key; `vectors` (rows x dim, unit) adds nearest neighbours."""
    buckets: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i in range(len(t.names)):
        for key in set(keys_of(t, i, config)):
            buckets[key].append(i)
    pairs: set[tuple[int, int]] = set()
    for key, rows in buckets.items():
        cap = config.max_exact_bucket if key[0] in ("exact", "words") else config.max_bucket
        if 1 < len(rows) <= cap:
            for x, a in enumerate(rows):
                for b in rows[x + 1 :]:
                    pairs.add((a, b) if a < b else (b, a))
    pairs.update(acronym_pairs(t, config.max_bucket))
    if vectors is not None:
        pairs.update((a, b) for a, b, _ in knn_pairs(vectors, t.types, config))
    return pairs


def acronym_pairs(t: ERTable, max_bucket: int) -> Iterator[tuple[int, int]]:
    """Each upper-case acronym with the multi-word names whose initials spell it (never two long names)."""
    for i, acronym in enumerate(t.acronyms):
        longs = t.expansions.get((t.types[i], acronym or ""), ())
        if acronym and len(longs) <= max_bucket:
            yield from ((min(i, j), max(i, j)) for j in longs if j != i)


def type_blocks(types: Sequence[str]) -> dict[str, np.ndarray]:
    blocks: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(types):
        blocks[t].append(i)
    return {t: np.asarray(ix, dtype=np.int64) for t, ix in blocks.items()}


def knn_pairs(vectors: np.ndarray, types: Sequence[str], config: BlockingConfig) -> Iterator[tuple[int, int, float]]:
    """Exact neighbours within each type block: (i, j, cosine), i < j, cosine >= threshold.

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
                yield int(min(i, j)), int(max(i, j)), float(sim)


def _top_k_per_row(sims: np.ndarray, k: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(sims.shape[0])
    sims[rows, rows] = -1.0
    k = min(k, sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    r = np.repeat(rows, k)
    c = top.reshape(-1)
    keep = (sims[r, c] >= threshold) & (c > r)
    return r[keep], c[keep]
