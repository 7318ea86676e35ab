"""Name and type text for entity resolution: folding, keys and the small vocabularies matching relies on.

Everything here is a pure function of one string. `fold` transliterates (anyascii: "Łódź" -> "lodz",
"Ørsted" -> "orsted", where Unicode decomposition alone drops the letter) before it lower-cases, so two
spellings of one name meet on one key. Acronyms are read from the source text: only a token written in
upper case ("IBM", "NASA") is an acronym; "Lac" or "saga" is a word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

# Words an acronym usually skips ("Massachusetts Institute of Technology" -> MIT).
ACRONYM_SKIP = frozenset({"of", "and", "on", "the", "for", "in", "to", "a", "an", "at", "de"})

# Words that name a legal or political form rather than the thing itself: "Republic of Albania" is
# Albania, "Acme Inc." is Acme. Directions ("South", "North") and "United" are not here on purpose.
DESIGNATORS = frozenset(
    {
        "republic", "kingdom", "state", "federation", "federal", "principality", "grand", "duchy",
        "sultanate", "commonwealth", "emirate", "islamic", "democratic", "people", "peoples", "socialist",
        "plurinational", "bolivarian", "independent", "union", "of", "the", "and",
        "inc", "incorporated", "ltd", "limited", "llc", "gmbh", "corp", "corporation", "co", "company",
        "plc", "ag", "sa", "nv", "bv", "srl", "spa", "holdings", "group",
    }
)  # fmt: skip

# Words that tell neighbours apart: "North Dakota" / "South Dakota", "Kavango West" / "Kavango East",
# "Sudan" / "South Sudan". Names differing only in these are different things, however alike they look.
SIBLING_WORDS = frozenset(
    {
        "north", "south", "east", "west", "northern", "southern", "eastern", "western", "central", "upper",
        "lower", "new", "old", "greater", "little", "great", "northeast", "northwest", "southeast", "southwest",
        "northeastern", "northwestern", "southeastern", "southwestern", "middle", "inner", "outer",
    }
)  # fmt: skip

_PARENTHESES = re.compile(r"\([^)]*\)")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_UPPER_TOKEN = re.compile(r"^[A-Z][A-Z0-9]{1,7}$")
_ROMAN = re.compile(r"^(?=[ivxlc])m*(c[md]|d?c{0,3})(x[cl]|l?x{0,3})(i[xv]|v?i{0,3})$")


@lru_cache(maxsize=200_000)
def fold(text: str) -> str:
    """Transliterated, lower-cased, '&' -> 'and', punctuation -> space, whitespace collapsed."""
    from anyascii import anyascii

    ascii_text = anyascii(text or "").casefold().replace("&", " and ")
    return " ".join(_NON_ALNUM.sub(" ", ascii_text.replace("'", "")).split())


def compact(folded: str) -> str:
    return folded.replace(" ", "")


def sorted_tokens(folded: str) -> str:
    """Word order removed: "Zapotec, Yareni" and "Yareni Zapotec", "Smith John" and "John Smith" meet."""
    return " ".join(sorted(folded.split()))


def without_parentheses(name: str) -> str:
    """ "Greek, Modern (1453-)" -> "Greek, Modern": a qualifier in brackets is not part of the name."""
    return " ".join(_PARENTHESES.sub(" ", name).split())


def qualifier(name: str) -> str:
    """The folded text in brackets: "Pyu (Myanmar)" -> "myanmar". Two different qualifiers are two things."""
    return " ".join(fold(m) for m in _PARENTHESES.findall(name))


def inverted(name: str) -> str | None:
    """ "Korea, Republic of" -> "Republic of Korea", "Greek, Modern" -> "Modern Greek"; None without a comma."""
    base = without_parentheses(name)
    if base.count(",") != 1:
        return None
    head, tail = (p.strip() for p in base.split(","))
    return f"{tail} {head}" if head and tail else None


def core(folded: str) -> tuple[str, frozenset[str]]:
    """(the name without designator words, the designators it had): "republic of albania" -> ("albania", ...)."""
    words = folded.split()
    kept = [w for w in words if w not in DESIGNATORS]
    return " ".join(kept), frozenset(w for w in words if w in DESIGNATORS and w not in ("of", "the", "and"))


def name_forms(name: str) -> frozenset[str]:
    """Sorted-token folds of a name and of its bracket-free and comma-inverted spellings."""
    forms = {name, without_parentheses(name)}
    if (flipped := inverted(name)) is not None:
        forms.add(flipped)
    return frozenset(sorted_tokens(fold(f)) for f in forms if fold(f))


def acronym_of(name: str) -> str | None:
    """The acronym a name is, read from its source text: one upper-case token of 2..8 characters."""
    stripped = name.strip().replace(".", "")
    return stripped.casefold() if _UPPER_TOKEN.match(stripped) else None


def initials(folded: str) -> frozenset[str]:
    """Acronyms a multi-word name could have: with and without the small words."""
    words = folded.split()
    if len(words) < 2:
        return frozenset()
    content = [w for w in words if w not in ACRONYM_SKIP]
    return frozenset(i for i in ("".join(w[0] for w in words), "".join(w[0] for w in content)) if len(i) >= 2)


def is_version(word: str) -> bool:
    """ "3", "iii", "jr": a word that tells siblings apart ("Orion Pro 3" / "Orion Pro 4") rather than a typo."""
    return word.isdigit() or bool(_ROMAN.match(word)) or word in ("jr", "sr")


def sibling_words_differ(folded_a: str, folded_b: str) -> bool:
    """The names differ in a direction or an age word: "north dakota" / "south dakota", "sudan" / "south sudan"."""
    a, b = set(folded_a.split()), set(folded_b.split())
    return bool(a & b) and bool((a ^ b) & SIBLING_WORDS)


def versions(folded: str) -> tuple[str, ...]:
    """Version-like words after the first ("CI" and "MIX" are names, not Roman numerals), and any number."""
    words = folded.split()
    return tuple(w for k, w in enumerate(words) if (k > 0 and is_version(w)) or any(c.isdigit() for c in w))


@lru_cache(maxsize=200_000)
def phonetic_key(folded: str) -> str:
    """Sorted metaphone codes of the words: "Smyth Jon" and "John Smith" share "JN SM0"."""
    import jellyfish

    codes = sorted(jellyfish.metaphone(w) for w in folded.split() if len(w) >= 2 and not w.isdigit())
    return " ".join(c for c in codes if c)


def canonical_type(raw: str | None, aliases: Mapping[str, str]) -> str:
    """Types compared case-insensitively ("ORGANIZATION" = "organization") and through the alias map."""
    key = " ".join((raw or "").casefold().replace("_", " ").split())
    return aliases.get(key, key)
