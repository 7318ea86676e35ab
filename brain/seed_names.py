"""Entity names for the synthetic brain: realistic canonical names, planted duplicates, decoys, near misses.

Everything here is deterministic for a given `random.Random`, so ground truth can be rebuilt from (scale, seed).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from brain import seed_vocab as V
from brain.store import normalize_name

DUPLICATE_KINDS: tuple[str, ...] = ("case", "spacing", "abbreviation", "typo")
TYPE_MIX: tuple[tuple[str, float], ...] = (
    ("person", 0.34),
    ("organization", 0.20),
    ("technology", 0.15),
    ("concept", 0.14),
    ("place", 0.07),
    ("product", 0.08),
    ("project", 0.02),
)
_SMALL_WORDS = {"of", "and", "on", "for", "the", "in", "a", "to"}


@dataclass(frozen=True)
class NamedEntity:
    name: str
    type: str
    truth: int  # index of the real-world entity; duplicates repeat their original's
    role: str = "plain"  # plain | decoy | near_miss | duplicate
    kind: str | None = None  # duplicate kind
    original: int | None = None  # position (in the canonical list) of a duplicate's original


def acronym(name: str) -> str:
    words = [w for w in re.split(r"[\s\-]+", name) if w and w.lower() not in _SMALL_WORDS]
    return "".join(w[0].upper() for w in words) if len(words) >= 2 else ""


class NameMaker:
    """Draws unique names per type; `taken` holds normalized names so no two plain entities collide."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set()
        ch = rng.choice
        self.patterns: dict[str, tuple[Callable[[], str], ...]] = {
            "person": (lambda: f"{ch(V.FIRST_NAMES)} {ch(V.LAST_NAMES)}",),
            "organization": (
                lambda: f"{ch(V.ORG_PREFIXES)} {ch(V.ORG_SUFFIXES)}",
                lambda: f"{ch(V.LAST_NAMES)} {ch(V.ORG_SUFFIXES)}",
                lambda: f"{ch(V.KNOWN_PLACES)} {ch(V.ORG_SUFFIXES)}",
            ),
            "technology": (
                lambda: f"{ch(V.TECH_QUALIFIERS)} {ch(V.TECH_CORES)}",
                lambda: f"{ch(V.TECH_QUALIFIERS)} {ch(V.TECH_QUALIFIERS)} {ch(V.TECH_CORES)}",
                lambda: ch(V.KNOWN_TECH),
            ),
            "concept": (
                lambda: f"{ch(V.CONCEPT_DOMAINS)} {ch(V.CONCEPT_NOUNS)}",
                lambda: f"{ch(V.TECH_QUALIFIERS)} {ch(V.CONCEPT_DOMAINS)} {ch(V.CONCEPT_NOUNS)}",
            ),
            "place": (
                lambda: f"{ch(V.PLACE_PREFIXES)} {ch(V.PLACE_BASES)}",
                lambda: f"{ch(V.PLACE_PREFIXES)}{ch(V.PLACE_BASES).lower()}",
                lambda: ch(V.KNOWN_PLACES),
            ),
            "product": (
                lambda: f"{ch(V.PRODUCT_BRANDS)} {ch(V.PRODUCT_LINES)} {rng.randint(2, 12)}",
                lambda: f"{ch(V.PRODUCT_BRANDS)} {ch(V.PRODUCT_LINES)}",
            ),
            "project": (
                lambda: f"Project {ch(V.PROJECT_CODENAMES)}",
                lambda: f"{ch(V.PROJECT_CODENAMES)} {ch(['Initiative', 'Program', 'Migration', 'Pilot'])}",
                lambda: f"{ch(V.PROJECT_CODENAMES)} {ch(['Rollout', 'Platform', 'Rewrite', 'Sprint'])}",
            ),
        }

    def claim(self, name: str) -> bool:
        key = normalize_name(name)
        if not key or key in self.taken:
            return False
        self.taken.add(key)
        return True

    def draw(self, etype: str) -> str:
        for _ in range(200):
            name = self.rng.choice(self.patterns[etype])()
            if self.claim(name):
                return name
        # The type's name space is nearly used up: a roman-numeral suffix keeps names realistic and unique.
        while True:
            name = f"{self.rng.choice(self.patterns[etype])()} {self.rng.choice(['II', 'III', 'IV', 'Jr'])}"
            if self.claim(name):
                return name


def canonical_entities(
    rng: random.Random, n_canonical: int, n_decoy_pairs: int, n_near_miss_pairs: int, n_known_abbr: int
) -> tuple[list[NamedEntity], NameMaker]:
    maker = NameMaker(rng)
    out: list[NamedEntity] = []

    def add(name: str, etype: str, role: str = "plain") -> None:
        out.append(NamedEntity(name, etype, truth=len(out), role=role))

    for long, _short, etype in V.KNOWN_ABBREVIATIONS[:n_known_abbr]:
        maker.claim(long)
        maker.taken.add(normalize_name(_short))
        add(long, etype)
    for i in range(n_decoy_pairs):
        name, type_a, type_b = _decoy(i)
        maker.taken.add(normalize_name(name))
        add(name, type_a, "decoy")
        add(name, type_b, "decoy")
    for _ in range(n_near_miss_pairs):
        first, second, etype = _near_miss_pair(maker)
        add(first, etype, "near_miss")
        add(second, etype, "near_miss")
    types, weights = zip(*TYPE_MIX, strict=True)
    for etype in rng.choices(types, weights=weights, k=max(0, n_canonical - len(out))):
        add(maker.draw(etype), etype)
    return out[:n_canonical], maker


def _decoy(i: int) -> tuple[str, str, str]:
    if i < len(V.DECOY_NAMES):
        return V.DECOY_NAMES[i]
    # Codenames already used by a hand-written decoy get a number, or the seed would plant two distinct
    # entities with the same name and type (indistinguishable, so no resolver could be right).
    codename = V.PROJECT_CODENAMES[i % len(V.PROJECT_CODENAMES)]
    taken = {name for name, *_ in V.DECOY_NAMES}
    first_round = i < len(V.DECOY_NAMES) + len(V.PROJECT_CODENAMES)
    suffix = "" if first_round and codename not in taken else f" {i}"
    return codename + suffix, "project", "product"


def _near_miss_pair(maker: NameMaker) -> tuple[str, str, str]:
    """Two distinct entities whose names differ in a way that matters (version, sibling company)."""
    rng = maker.rng
    for _ in range(500):
        style = rng.randrange(3)
        if style == 0:
            base = f"{rng.choice(V.PRODUCT_BRANDS)} {rng.choice(V.PRODUCT_LINES)}"
            n = rng.randint(2, 11)
            pair, etype = (f"{base} {n}", f"{base} {n + 1}"), "product"
        elif style == 1:
            prefix = rng.choice(V.ORG_PREFIXES)
            a, b = rng.sample(V.ORG_SUFFIXES, 2)
            pair, etype = (f"{prefix} {a}", f"{prefix} {b}"), "organization"
        else:
            tech = rng.choice(V.KNOWN_TECH)
            n = rng.randint(1, 8)
            pair, etype = (f"{tech} {n}", f"{tech} {n + 1}"), "technology"
        keys = {normalize_name(p) for p in pair}
        if not keys & maker.taken:
            maker.taken |= keys
            return pair[0], pair[1], etype
    raise RuntimeError("could not draw a near-miss pair: vocabulary exhausted")


def plant_duplicates(rng: random.Random, canon: list[NamedEntity], maker: NameMaker, n_dups: int) -> list[NamedEntity]:
    """Duplicates of plain canonical entities, spread over the kinds; each original gets at most one."""
    used: set[int] = set()
    dups: list[NamedEntity] = []
    # Known abbreviations come first: they are the textbook case.
    for pos, ent in enumerate(canon):
        for long, short, _t in V.KNOWN_ABBREVIATIONS:
            if ent.name == long and len(dups) < n_dups // 4 + 1:
                dups.append(_dup(ent, pos, short, "abbreviation"))
                used.add(pos)
    candidates = [p for p, e in enumerate(canon) if e.role == "plain" and p not in used]
    rng.shuffle(candidates)
    for kind in _remaining_kinds(dups, n_dups):
        for _ in range(len(candidates)):
            pos = candidates.pop()
            variant = _variant(rng, canon[pos].name, kind)
            # Case and spacing variants fold to their original's normalized name on purpose.
            folds = kind in ("case", "spacing")
            if variant and variant != canon[pos].name and (folds or maker.claim(variant)):
                dups.append(_dup(canon[pos], pos, variant, kind))
                break
            candidates.insert(0, pos)
        else:
            raise RuntimeError(f"no entity left to plant a {kind!r} duplicate on")
    return dups


def _remaining_kinds(planted: list[NamedEntity], n_dups: int) -> list[str]:
    """Kinds still to plant so that every kind ends up with about n_dups / 4 rows."""
    kinds = [DUPLICATE_KINDS[i % len(DUPLICATE_KINDS)] for i in range(n_dups)]
    for dup in planted:
        if dup.kind in kinds:
            kinds.remove(dup.kind)
    return kinds[: n_dups - len(planted)]


def _dup(ent: NamedEntity, pos: int, name: str, kind: str) -> NamedEntity:
    return NamedEntity(name, ent.type, truth=ent.truth, role="duplicate", kind=kind, original=pos)


def _variant(rng: random.Random, name: str, kind: str) -> str | None:
    if kind == "case":
        return name.lower() if rng.random() < 0.7 else name.upper()
    if kind == "spacing":
        if "-" in name:
            return name.replace("-", " ", 1)
        if " " not in name:
            return None
        return name.replace(" ", rng.choice(["", "-", "_"]), 1)
    if kind == "abbreviation":
        short = acronym(name)
        return short if 3 <= len(short) <= 4 and not any(c.isdigit() for c in name) else None
    return _typo(rng, name)


def _typo(rng: random.Random, name: str) -> str | None:
    """One-letter edit (substitute, drop, swap, double) inside a word, never the first letter."""
    spots = [i for i in range(1, len(name) - 1) if name[i].isalpha() and name[i - 1].isalpha()]
    if len(name) < 7 or not spots:
        return None
    i = rng.choice(spots)
    op = rng.randrange(4)
    if op == 0:
        letter = rng.choice([c for c in "aeioulnrst" if c != name[i].lower()])
        return name[:i] + letter + name[i + 1 :]
    if op == 1:
        return name[:i] + name[i + 1 :]
    if op == 2 and name[i + 1].isalpha() and name[i] != name[i + 1]:
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    return name[:i] + name[i] + name[i:]
