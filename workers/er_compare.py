"""Comparison vectors for entity pairs: what two entities share, as one level per comparison.

Each entity is read once into an `ERTable` row (folded name and its keys, canonical type, attributes,
description words, neighbours, community). A pair is then compared on its name, every attribute key the
brain uses, its graph neighbourhood and its description; each comparison gives a level (0 = strongest
agreement) or MISSING when one side has nothing to compare. `workers.er_model` turns the levels into a
match probability. Levels are coarse on purpose: the model learns how much each one is worth per brain.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import OSA, JaroWinkler

from workers import er_text as T

MISSING = -1
NAME_LEVELS = ("exact", "same_words", "alias", "typo", "close", "shares_word", "different")
IDENTITY_LEVELS = 3  # name levels below this say "same name"; typo and close need corroborating evidence
WEAK_NAME = 5  # from here on (a word in common, or nothing) a pair needs two pieces of evidence
NAME_DIFFERENT = len(NAME_LEVELS) - 1
# "same_rare": the same value of an identifying key (a birth date, an id: most entities have their own);
# "same": the same value of a key many entities share (a state, a country code), which proves little
ATTRIBUTE_LEVELS = ("same_rare", "same", "near", "different")
ATTR_NEAR, ATTR_DIFFERENT = 2, 3
GRAPH_LEVELS = ("shared_neighbour", "same_community", "apart")
DESCRIPTION_LEVELS = ("overlap", "some", "none")
MAX_ATTRIBUTE_KEYS = 12
# Words of keys that say what kind of thing or which area an entity is in, never which one: two provinces
# share a country. Agreeing on one never corroborates a fuzzy name (the model still weighs it).
CONTEXT_KEYS = frozenset(
    {
        "country", "nationality", "state", "province", "region", "county", "kind", "category", "class", "type",
        "subtype", "genre", "language", "gender", "sex", "status",
    }
)  # fmt: skip
# Words of keys that say where an entity is: a rare address corroborates, but a household shares one, so
# only an identity key (a birth date, an id number) that differs vetoes a pair whose names are unrelated.
PLACE_KEYS = frozenset({"address", "street", "suburb", "postcode", "zip", "city", "town", "location"})


def is_context_key(key: str, context_keys: frozenset[str]) -> bool:
    """ "address_1", "street_number", "country_code": a word of the key names a place or a kind."""
    return key in context_keys or any(part in context_keys for part in key.split("_"))


_DESCRIPTION_STOP = frozenset({"a", "an", "the", "of", "in", "on", "and", "or", "as", "is", "to", "for", "with"})


@dataclass(frozen=True)
class ERTable:
    """Column lists over rows (live entities first, then absorbed members kept for the no-chain check)."""

    names: list[str]
    types: list[str]  # canonical
    folded: list[str]
    compacts: list[str]
    forms: list[frozenset[str]]
    cores: list[tuple[str, frozenset[str]]]
    acronyms: list[str | None]
    initials: list[frozenset[str]]
    versions: list[tuple[str, ...]]
    qualifiers: list[str]
    attributes: list[dict[str, str]]
    attribute_keys: tuple[str, ...]
    identifying_keys: frozenset[str]  # keys whose values mostly tell entities apart (an address, a birth date)
    identity_keys: frozenset[str]  # those of them that are not context (a birth date, an id; not an address)
    descriptions: list[str]
    description_words: list[frozenset[str]]
    neighbours: list[frozenset[str]]
    communities: list[str | None]
    # (type, core) keys whose long forms carry different designators: "Congo" could be either Republic
    ambiguous_cores: frozenset[tuple[str, str]]
    # (type, acronym) -> rows whose initials spell it; an acronym with two expansions needs its community
    expansions: dict[tuple[str, str], tuple[int, ...]]

    @property
    def comparisons(self) -> tuple[str, ...]:
        return ("name", *(f"attr:{k}" for k in self.attribute_keys), "graph", "description")


def parse_attributes(raw: str | None) -> dict[str, str]:
    """The entity's attributes JSON as folded strings; anything that is not a JSON object counts as none."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out = {}
    for key, value in data.items():
        text = T.fold(str(value)) if value is not None else ""
        if text:
            out[T.fold(str(key)).replace(" ", "_")] = text
    return out


def build_table(
    names: Sequence[str],
    types: Sequence[str],
    descriptions: Sequence[str | None],
    attributes: Sequence[str | None],
    neighbours: Sequence[frozenset[str]],
    communities: Sequence[str | None],
    type_aliases: Mapping[str, str],
    context_keys: frozenset[str] = CONTEXT_KEYS,
) -> ERTable:
    folded = [T.fold(n) for n in names]
    attrs = [parse_attributes(a) for a in attributes]
    canonical = [T.canonical_type(t, type_aliases) for t in types]
    identifying = _identifying_keys(attrs)
    cores = [T.core(f) for f in folded]
    inits = [T.initials(f) for f in folded]
    return ERTable(
        names=list(names),
        types=canonical,
        folded=folded,
        compacts=[T.compact(f) for f in folded],
        forms=[T.name_forms(n) for n in names],
        cores=cores,
        acronyms=[T.acronym_of(n) for n in names],
        initials=inits,
        versions=[T.versions(f) for f in folded],
        qualifiers=[T.qualifier(n) for n in names],
        attributes=attrs,
        attribute_keys=_common_keys(attrs),
        identifying_keys=frozenset(k for k in identifying if not is_context_key(k, context_keys)),
        identity_keys=frozenset(k for k in identifying if not is_context_key(k, context_keys | PLACE_KEYS)),
        descriptions=[d or "" for d in descriptions],
        description_words=[_description_words(d, f) for d, f in zip(descriptions, folded, strict=True)],
        neighbours=list(neighbours),
        communities=list(communities),
        ambiguous_cores=_ambiguous_cores(canonical, cores),
        expansions=_expansions(canonical, inits),
    )


def _ambiguous_cores(types: Sequence[str], cores: Sequence[tuple[str, frozenset[str]]]) -> frozenset[tuple[str, str]]:
    forms: dict[tuple[str, str], set[frozenset[str]]] = {}
    for t, (c, designators) in zip(types, cores, strict=True):
        if c and designators:
            forms.setdefault((t, c), set()).add(designators)
    return frozenset(k for k, v in forms.items() if len(v) > 1)


def _expansions(types: Sequence[str], inits: Sequence[frozenset[str]]) -> dict[tuple[str, str], tuple[int, ...]]:
    out: dict[tuple[str, str], list[int]] = {}
    for i, (t, keys) in enumerate(zip(types, inits, strict=True)):
        for key in keys:
            out.setdefault((t, key), []).append(i)
    return {k: tuple(v) for k, v in out.items()}


def _identifying_keys(attrs: Sequence[dict[str, str]]) -> frozenset[str]:
    """Keys whose values tell entities apart: at least 20 distinct values, as many as a third of the rows
    holding the key, and no value held by more than max(10, 1%) of them. A birth date or an address
    qualifies; a state or a country code, however many countries there are, does not."""
    counts: dict[str, Counter[str]] = {}
    for a in attrs:
        for k, v in a.items():
            counts.setdefault(k, Counter())[v] += 1
    out = set()
    for key, values in counts.items():
        held = sum(values.values())
        top = values.most_common(1)[0][1]
        if len(values) >= 20 and len(values) * 3 >= held and top <= max(10, held // 100):
            out.add(key)
    return frozenset(out)


def _common_keys(attrs: Sequence[dict[str, str]]) -> tuple[str, ...]:
    """Attribute keys carried by at least 1% of entities (at most MAX_ATTRIBUTE_KEYS, most common first)."""
    counts = Counter(k for a in attrs for k in a)
    floor = max(2, len(attrs) // 100)
    return tuple(sorted(k for k, c in counts.most_common(MAX_ATTRIBUTE_KEYS) if c >= floor))


def _description_words(description: str | None, folded_name: str) -> frozenset[str]:
    """Words of the description that are not the entity's own name (a description repeating it says nothing)."""
    own = set(folded_name.split())
    return frozenset(w for w in T.fold(description or "").split() if w not in own and w not in _DESCRIPTION_STOP)


# ---------------------------------------------------------------- levels


def name_level(t: ERTable, a: int, b: int) -> int:
    if t.compacts[a] and t.compacts[a] == t.compacts[b]:
        return 0
    qa, qb = t.qualifiers[a], t.qualifiers[b]
    if t.versions[a] != t.versions[b] or (qa and qb and qa != qb) or T.sibling_words_differ(t.folded[a], t.folded[b]):
        return NAME_DIFFERENT  # "Orion Pro 3" / "Orion Pro 4", "Pyu (Myanmar)" / "Pyu (Papua New Guinea)"
    if t.forms[a] & t.forms[b]:
        return 1
    if _alias(t, a, b):
        return 2
    ca, cb = t.compacts[a], t.compacts[b]
    if min(len(ca), len(cb)) >= 5 and OSA.distance(ca, cb, score_cutoff=1) <= 1 and _same_initials(t, a, b):
        return 3
    if _close(t.folded[a], t.folded[b]):
        return 4
    if _shared_words(t.folded[a], t.folded[b]):
        return WEAK_NAME  # "Thomas Petersen" / "Thomas Tuckwell": a surname changed, or two people
    return NAME_DIFFERENT


def _same_initials(t: ERTable, a: int, b: int) -> bool:
    """Typos rarely hit a word's first letter: "Kabul" / "Zabul", "Jarva" / "Narva" are two places.
    (A split word, "Sal t" / "Salt", keeps the letters and changes the count: then the first letter.)"""
    wa, wb = t.folded[a].split(), t.folded[b].split()
    if len(wa) != len(wb):
        return t.compacts[a][:1] == t.compacts[b][:1]
    return all(x[0] == y[0] for x, y in zip(wa, wb, strict=True))


def _alias(t: ERTable, a: int, b: int) -> bool:
    """One name is the other without its designators, or the other's upper-case acronym."""
    (core_a, des_a), (core_b, des_b) = t.cores[a], t.cores[b]
    if core_a and core_a == core_b and (des_a or des_b) and (not des_a or not des_b or des_a == des_b):
        return (t.types[a], core_a) not in t.ambiguous_cores
    return _acronym(t, a, b) or _acronym(t, b, a)


def _acronym(t: ERTable, short: int, long: int) -> bool:
    """`short` is the upper-case acronym of `long`, and `long` its only expansion (in its community, if several)."""
    acronym = t.acronyms[short]
    if not acronym or acronym not in t.initials[long]:
        return False
    longs = t.expansions.get((t.types[short], acronym), ())
    if len(longs) > 1 and t.communities[short] is not None:
        longs = tuple(j for j in longs if t.communities[j] == t.communities[short])
    return longs == (long,)


def _close(fa: str, fb: str) -> bool:
    """Every word of the shorter name has a partner at most one edit away in the other, in any order
    ("Lary Slape" / "Lara Slave", "Musolino" / "Jaime Musolimo"), or the names are near by Jaro-Winkler."""
    sa, sb = T.sorted_tokens(fa), T.sorted_tokens(fb)
    if JaroWinkler.similarity(sa, sb) >= 0.92 or JaroWinkler.similarity(fa, fb) >= 0.92:
        return True
    wa, wb = fa.split(), fb.split()
    small, big = (wa, wb) if len(wa) <= len(wb) else (wb, wa)
    return any(len(w) >= 3 for w in small) and all(any(_word_near(w, x) for x in big) for w in small)


def _word_near(x: str, y: str) -> bool:
    return x == y or (min(len(x), len(y)) >= 4 and OSA.distance(x, y, score_cutoff=1) <= 1)


def _shared_words(fa: str, fb: str) -> bool:
    """A word in common, allowing one edit in words of four letters or more (not a designator)."""
    wa = [w for w in fa.split() if len(w) >= 2 and w not in T.DESIGNATORS]
    wb = [w for w in fb.split() if len(w) >= 2 and w not in T.DESIGNATORS]
    return any(_word_near(x, y) for x in wa for y in wb)


def attribute_level(x: str | None, y: str | None, rare: bool) -> int:
    if not x or not y:
        return MISSING
    if x == y or x.replace(" ", "") == y.replace(" ", ""):
        return 0 if rare else 1
    limit = 2 if min(len(x), len(y)) >= 10 else 1
    if min(len(x), len(y)) >= 3 and OSA.distance(x, y, score_cutoff=limit) <= limit:
        return ATTR_NEAR
    return ATTR_DIFFERENT


def graph_level(t: ERTable, a: int, b: int) -> int:
    na, nb = t.neighbours[a], t.neighbours[b]
    ca, cb = t.communities[a], t.communities[b]
    if not (na or ca) or not (nb or cb):
        return MISSING
    if na & nb:
        return 0
    if ca is not None and ca == cb:
        return 1
    return 2


def description_level(t: ERTable, a: int, b: int) -> int:
    da, db = t.description_words[a], t.description_words[b]
    if not da or not db:
        return MISSING
    jaccard = len(da & db) / len(da | db)
    return 0 if jaccard >= 0.5 else (1 if jaccard > 0 else 2)


def compare(t: ERTable, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """(len(pairs), comparisons) int8 levels, MISSING where a side has nothing to compare."""
    out = np.full((len(pairs), len(t.comparisons)), MISSING, dtype=np.int8)
    keys = t.attribute_keys
    for row, (a, b) in enumerate(pairs):
        out[row, 0] = name_level(t, a, b)
        aa, ab = t.attributes[a], t.attributes[b]
        for k, key in enumerate(keys, start=1):
            level = attribute_level(aa.get(key), ab.get(key), key in t.identifying_keys)
            if level == ATTR_DIFFERENT and (aa[key] in ab.values() or ab[key] in aa.values()):
                level = ATTR_NEAR  # the value sits under another key: two fields swapped, not a difference
            out[row, k] = level
        out[row, -2] = graph_level(t, a, b)
        out[row, -1] = description_level(t, a, b)
    return out


def corroborated(gamma: np.ndarray) -> np.ndarray:
    """Rows with enough evidence beyond the name: names one edit or a word apart need one identifying
    attribute both hold or a shared neighbourhood; unrelated names need two such pieces of evidence.
    Sharing a common value (the same country, the same state) or a description template proves nothing."""
    evidence = (gamma[:, 1:-2] == 0).sum(axis=1) + ((gamma[:, -2] == 0) | (gamma[:, -2] == 1))
    needed = np.where(gamma[:, 0] >= WEAK_NAME, 2, 1)
    return evidence >= needed


def attributes_disagree(t: ERTable, gamma: np.ndarray) -> np.ndarray:
    """Rows the attributes keep apart, whatever the model says:
    - more differs than agrees, counting the name: the same name with another birth date, address and id
      is another person (a typo in one field of a true duplicate leaves most of them agreeing);
    - or the names are unrelated and an identity attribute (an id, a birth date) differs too: another
      name at the same address is another person of the household."""
    attrs = gamma[:, 1:-2]
    name_differs = gamma[:, 0] == NAME_DIFFERENT
    differ = (attrs == ATTR_DIFFERENT).sum(axis=1) + name_differs
    agree = ((attrs >= 0) & (attrs < ATTR_DIFFERENT)).sum(axis=1) + ~name_differs
    identifying = np.array([k in t.identity_keys for k in t.attribute_keys], dtype=bool)
    identity_differs = ((attrs == ATTR_DIFFERENT) & identifying).any(axis=1)
    return (attrs >= 0).any(axis=1) & ((differ > agree) | (name_differs & identity_differs))


def explain(t: ERTable, gamma_row: np.ndarray) -> dict[str, str]:
    """The comparison levels of one pair by name, for the merge log and the approval sample."""
    names = {"name": NAME_LEVELS, "graph": GRAPH_LEVELS, "description": DESCRIPTION_LEVELS}
    out = {}
    for comparison, level in zip(t.comparisons, gamma_row.tolist(), strict=True):
        labels = names.get(comparison, ATTRIBUTE_LEVELS)
        out[comparison] = "missing" if level == MISSING else labels[level]
    return out
