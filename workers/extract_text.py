"""Pure text side of extraction: which entities a record mentions. No I/O, fully deterministic.

Known entities (a gazetteer of the names already in the brain, e.g. the ones the seed planted) are
matched exactly, longest name first, so a record links to the entity rows that already exist. A record
naming no known entity falls back to capitalized n-grams, which become new entities.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations

from brain.store import normalize_name

EXTRACTED_TYPE = "concept"
MAX_MENTIONS_PER_RECORD = 12
MAX_NAME_TOKENS = 8
_EDGE_PUNCT = ".,;:!?()[]\"'"

# A run of capitalized words ("Ada Lovelace", "Acme Corp"), allowing digits and inner hyphens.
_NGRAM = re.compile(r"\b[A-Z][\w-]*(?:\s+[A-Z][\w-]*){0,3}\b")
# Capitalized only because they start a sentence; dropped when they lead a match.
_STOP_WORDS = (
    "A An And As At But By For From He Her His How I If In Is It Its Of On Or She So That The Their "
    "There These They This To We What When Where Which Who Why With You"
)
_STOP = frozenset(_STOP_WORDS.split())


@dataclass(frozen=True)
class Mention:
    entity_id: str
    name: str
    known: bool  # an entity row with this id already exists


@dataclass(frozen=True)
class Gazetteer:
    """Exact entity names (whitespace collapsed, case kept) -> entity id."""

    by_name: dict[str, str]
    max_tokens: int = 1

    @classmethod
    def build(cls, names: Iterable[str | None], ids: Iterable[str]) -> Gazetteer:
        by_name: dict[str, str] = {}
        for name, eid in sorted(zip(names, ids, strict=True), key=lambda p: p[1]):
            key = " ".join((name or "").split())
            if key and key not in by_name:  # a name shared across types (decoys) links the smaller id
                by_name[key] = eid
        longest = max((len(k.split()) for k in by_name), default=1)
        return cls(by_name, min(longest, MAX_NAME_TOKENS))

    def find(self, text: str) -> list[Mention]:
        """Known names in text, left to right, longest match first, no overlaps."""
        tokens = (text or "").split()
        found: list[Mention] = []
        i = 0
        while i < len(tokens):
            hit = self._longest_at(tokens, i)
            if hit is None:
                i += 1
                continue
            width, name = hit
            found.append(Mention(self.by_name[name], name, known=True))
            i += width
        return found

    def _longest_at(self, tokens: list[str], i: int) -> tuple[int, str] | None:
        for width in range(min(self.max_tokens, len(tokens) - i), 0, -1):
            raw = " ".join(tokens[i : i + width])
            for candidate in (raw, raw.strip(_EDGE_PUNCT), raw.rstrip(_EDGE_PUNCT)):
                if candidate in self.by_name:
                    return width, candidate
        return None


def capitalized_ngrams(text: str) -> list[str]:
    """Distinct capitalized n-grams in first-seen order, leading stop words trimmed."""
    seen: dict[str, str] = {}
    for match in _NGRAM.finditer(text or ""):
        words = match.group(0).split()
        while words and words[0] in _STOP:
            words = words[1:]
        name = " ".join(words)
        key = normalize_name(name)
        if len(key) >= 2 and key not in seen:
            seen[key] = name
    return list(seen.values())


def new_entity_id(name: str) -> str:
    """Same name, same id, whichever worker sees it first: concurrent shards never duplicate an entity."""
    return "ent-x-" + hashlib.sha1(f"{EXTRACTED_TYPE}:{normalize_name(name)}".encode()).hexdigest()[:16]


def mentions(text: str, gazetteer: Gazetteer) -> tuple[Mention, ...]:
    found = gazetteer.find(text) or [Mention(new_entity_id(n), n, known=False) for n in capitalized_ngrams(text)]
    unique = {m.entity_id: m for m in reversed(found)}  # keep the first mention of each id
    ordered = sorted(unique.values(), key=found.index)
    return tuple(ordered[:MAX_MENTIONS_PER_RECORD])


def relationship_id(src: str, dst: str) -> str:
    return "rel-x-" + hashlib.sha1(f"{src}|{dst}".encode()).hexdigest()[:16]


def co_occurrences(entity_ids: Iterable[str]) -> list[tuple[str, str]]:
    """Unordered pairs of distinct entities, each as (smaller id, larger id)."""
    return list(combinations(sorted(set(entity_ids)), 2))
