"""Entity resolution on outside data (FEBRL people, pycountry aliases and look-alikes): brainops next to
recordlinkage (ECM), splink (Fellegi-Sunter, EM) and an exact-name baseline, same records, same run.

brainops is its real dedup path: the records are written to a fresh LanceDB brain (no vectors) and
`workers.dedup.run_dedup(store, dry_run=True)` plans the merges; its seconds include loading the embedder
and embedding every name. Pairwise precision / recall / F1 against the sets' ground truth: brainops'
predicted pairs are all pairs inside each planned merge group; the peers' are their predicted links taken
as-is (not closed transitively). splink keeps links with match_probability >= 0.9. Data: bench/outside_data.py.

Run: `.venv/bin/python -m bench.bench_outside_er [--quick]` (writes bench/out/bench_outside_er.json).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from bench.outside_data import DataSet, Record, fold, lookalike_distance, pair

Pairs = set[tuple[str, str]]
BRAINOPS, ECM, SPLINK, NAMES = "brainops", "recordlinkage ECM", "splink", "names-only"
PEERS = (ECM, SPLINK)
SPLINK_THRESHOLD = 0.9
NOTES = [
    "brainops: run_dedup(store, dry_run=True) on a fresh LanceDB brain; seconds include embedder load + embedding "
    "(the embedder is loaded once beforehand only to warm the disk cache and its compiled copy).",
    "Predicted pairs: brainops = every pair inside a planned merge group; peers = their links as-is (no closure).",
    "recordlinkage (person sets): block given_name | surname | date_of_birth | soc_sec_id; exact given_name, "
    "dob, suburb, state, postcode, soc_sec_id; jarowinkler >= 0.85 on surname, address_1, address_2; ECMClassifier.",
    "recordlinkage (name sets): full index; jarowinkler >= 0.85 and >= 0.95 on name, exact type; ECMClassifier.",
    "splink (person sets): settings of splink's febrl3 example (DuckDB); u by random sampling (1e7 pairs), m by "
    "EM blocked on date_of_birth then postcode; links with match_probability >= 0.9.",
    "splink (name sets): all pairs; JaroWinklerAtThresholds(name), ExactMatch(type); u by random sampling, m by EM "
    "blocked on type then on substr(name,1,1); default prior; links with match_probability >= 0.9.",
    "names-only: exact normalized name (anyascii, casefold, punctuation dropped) and same type; nameless rows "
    "(FEBRL rows missing both name parts) are never merged by it, and are left in the data for the others.",
    "Seconds are wall time on a shared CPU box (see load_avg_1m): compare systems within one run, not across runs.",
    "cross_type_false: predicted pairs whose types differ; lookalike_false: false pairs whose names are within "
    "1 OSA edit (2 from 10 chars) or equal; designed_lookalikes_merged: the set's listed confusable pairs merged.",
]


# ---------------------------------------------------------------- scoring


def cluster_pairs(clusters: Iterable[Sequence[str]]) -> Pairs:
    """Every unordered pair inside each cluster."""
    return {pair(a, b) for members in clusters for a, b in combinations(members, 2)}


def pair_scores(predicted: Pairs, truth: Pairs) -> dict[str, float | int | None]:
    """Pairwise precision, recall, F1; None where undefined (nothing predicted, or no true pairs)."""
    correct = len(predicted & truth)
    precision = correct / len(predicted) if predicted else None
    recall = correct / len(truth) if truth else None
    f1: float | None = None
    if truth:
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    return {
        "precision": _r(precision),
        "recall": _r(recall),
        "f1": _r(f1),
        "predicted_pairs": len(predicted),
        "correct_pairs": correct,
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def score(ds: DataSet, predicted: Pairs, seconds: float) -> dict[str, Any]:
    """Scores plus the false merges that matter: across types, and between look-alike names."""
    by_id = {r.id: r for r in ds.records}
    false = sorted(predicted - ds.true_pairs())
    cross = [p for p in false if by_id[p[0]].type != by_id[p[1]].type]
    lookalike = [p for p in false if lookalike_distance(by_id[p[0]].name, by_id[p[1]].name) is not None]
    return {
        **pair_scores(predicted, ds.true_pairs()),
        "seconds": round(seconds, 2),
        "false_pairs": len(false),
        "cross_type_false": len(cross),
        "lookalike_false": len(lookalike),
        "designed_lookalikes_merged": len(predicted & set(ds.lookalikes)),
        "false_examples": [_show(by_id[a], by_id[b]) for a, b in (lookalike or false)[:12]],
    }


def _show(a: Record, b: Record) -> str:
    return f"{a.name!r} ({a.type}) = {b.name!r} ({b.type})"


# ---------------------------------------------------------------- systems


def entity_rows(ds: DataSet) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "id": r.id,
            "name": r.name,
            "type": r.type,
            "description": r.description,
            "attributes": json.dumps(dict(r.attributes), sort_keys=True),
            "bucket": zlib.crc32(r.id.encode()) % 1024,
            "content_hash": str(zlib.crc32(r.name.encode())),
            "vector": None,
            "embedded_hash": None,
            "merged_into": None,
            "truth_cluster": r.truth,
            "created_at": now,
        }
        for r in ds.records
    ]


def run_brainops(ds: DataSet) -> tuple[Pairs, dict[str, Any]]:
    """The project's dedup, dry run, on a real LanceDB brain holding exactly these records."""
    import pyarrow as pa

    from brain.schema import ENTITIES
    from brain.store import BrainStore
    from workers.dedup import run_dedup

    with tempfile.TemporaryDirectory(prefix="bench-outside-er-") as tmp:
        store = BrainStore(f"{tmp}/brain").open_or_create()
        store.add("entities", pa.Table.from_pylist(entity_rows(ds), schema=ENTITIES))
        started = time.perf_counter()  # the brain is set-up, not dedup: time the run only
        report = run_dedup(store, dry_run=True)
        seconds = time.perf_counter() - started
    clusters = [(m.kept_id, *m.absorbed_ids) for m in report.merges]
    return cluster_pairs(clusters), {"seconds": seconds, **{k: round(v, 2) for k, v in report.timings.items()}}


def run_names_only(ds: DataSet) -> tuple[Pairs, dict[str, Any]]:
    """Exact normalized name and same type; rows without a name are left alone."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in ds.records:
        if key := " ".join(re.sub(r"[^0-9a-z]+", " ", fold(r.name)).split()):
            groups[(key, r.type)].append(r.id)
    return cluster_pairs(groups.values()), {}


def _frame(ds: DataSet) -> Any:
    import pandas as pd

    df = pd.DataFrame([dict(r.columns) for r in ds.records], index=pd.Index([r.id for r in ds.records], name="id"))
    return df.astype(object).where(df.notna(), None)


def run_recordlinkage(ds: DataSet) -> tuple[Pairs, dict[str, Any]]:
    """recordlinkage's FEBRL dedup setup (person sets) or a name-only one, classified by unsupervised ECM."""
    import recordlinkage as rl

    logging.getLogger("recordlinkage").setLevel(logging.ERROR)
    df = _frame(ds)
    index, compare = rl.Index(), rl.Compare()
    if ds.person:
        for col in ("given_name", "surname", "date_of_birth", "soc_sec_id"):
            index.block(col)
        for col in ("given_name", "date_of_birth", "suburb", "state", "postcode", "soc_sec_id"):
            compare.exact(col, col, label=col)
        for col in ("surname", "address_1", "address_2"):
            compare.string(col, col, method="jarowinkler", threshold=0.85, label=col)
    else:
        index.full()
        compare.string("name", "name", method="jarowinkler", threshold=0.85, label="name_85")
        compare.string("name", "name", method="jarowinkler", threshold=0.95, label="name_95")
        compare.exact("type", "type", label="type")
    candidates = index.index(df)
    features = compare.compute(candidates, df)
    links = rl.ECMClassifier().fit_predict(features)
    return {pair(str(a), str(b)) for a, b in links}, {"candidate_pairs": len(candidates)}


def run_splink(ds: DataSet) -> tuple[Pairs, dict[str, Any]]:
    """splink 5 on DuckDB: u by random sampling, m by EM over two blocking rules, links at p >= 0.9."""
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    df = _frame(ds).reset_index().rename(columns={"id": "unique_id"})
    comparisons, predict_rules, em_rules = _splink_model(ds.person)
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=predict_rules,
        comparisons=comparisons,
    )
    linker = Linker(DuckDBAPI().register(df), settings, log_level=logging.WARNING)
    if ds.person:  # as in splink's febrl3 example
        rules: list[Any] = [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth")]
        linker.training.estimate_probability_two_random_records_match(rules, recall=0.9)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=2)
    for rule in em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(rule))
    links = linker.inference.predict(threshold_match_probability=SPLINK_THRESHOLD).as_pandas_dataframe()
    return {pair(str(a), str(b)) for a, b in zip(links["unique_id_l"], links["unique_id_r"], strict=True)}, {}


def _splink_model(person: bool) -> tuple[list[Any], list[Any], list[str]]:
    import splink.comparison_library as cl
    from splink import block_on

    if not person:
        return [cl.JaroWinklerAtThresholds("name"), cl.ExactMatch("type")], [], ["type", "substr(name, 1, 1)"]
    comparisons = [
        cl.NameComparison("given_name"),
        cl.NameComparison("surname"),
        cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
        cl.DamerauLevenshteinAtThresholds("soc_sec_id", [2]),
        cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
        cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
    ]
    rules = [block_on(c) for c in ("soc_sec_id", "given_name", "surname", "date_of_birth", "postcode")]
    return comparisons, rules, ["date_of_birth", "postcode"]


SYSTEMS: dict[str, Callable[[DataSet], tuple[Pairs, dict[str, Any]]]] = {
    BRAINOPS: run_brainops,
    ECM: run_recordlinkage,
    SPLINK: run_splink,
    NAMES: run_names_only,
}


def measure(ds: DataSet, label: str) -> dict[str, Any]:
    """One system on one set; a system that cannot run reports why instead of a figure."""
    started = time.perf_counter()
    try:
        predicted, extra = SYSTEMS[label](ds)
    except Exception as exc:  # a peer failing on a set is a result, not a crash
        return {"not_run": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
    seconds = extra.pop("seconds", time.perf_counter() - started)
    return {**score(ds, predicted, seconds), **extra}


# ---------------------------------------------------------------- sets and the result


def datasets(quick: bool) -> list[DataSet]:
    from bench import outside_data as od

    if quick:
        return [od.febrl(1), od.aliases(languages=False)]
    sets = [od.febrl(1), od.febrl(2), od.febrl(3), od.febrl(4), od.febrl_namesakes()]
    return [*sets, od.aliases(), od.language_aliases(), od.lookalikes()[0]]


def set_summary(ds: DataSet) -> dict[str, Any]:
    from bench.outside_data import lookalike_pairs

    summary: dict[str, Any] = {
        "source": ds.source,
        "records": len(ds.records),
        "true_pairs": len(ds.true_pairs()),
        "designed_lookalike_pairs": len(ds.lookalikes),
    }
    if not ds.person:
        summary["lookalike_pairs_in_set"] = len(lookalike_pairs(ds.records))
    return summary


def comparisons_for(name: str, systems: dict[str, dict[str, Any]], has_truth: bool) -> list[dict[str, Any]]:
    metrics = [("f1", "F1", "higher"), ("precision", "precision", "higher")] if has_truth else []
    metrics += [("lookalike_false", "look-alike false merges", "lower")] * (not has_truth)
    metrics.append(("seconds", "seconds", "lower"))
    out = []
    for key, title, better in metrics:
        values = {label: float(s[key]) for label, s in systems.items() if s.get(key) is not None}
        peers = {label: v for label, v in values.items() if label in PEERS}
        if BRAINOPS not in values or not peers:
            continue
        pick = max if better == "higher" else min
        baseline = pick(peers, key=lambda label: peers[label])
        unit = "pairs" if key == "lookalike_false" else ("s" if key == "seconds" else "")
        out.append(
            {"title": f"{name}: {title}", "unit": unit, "values": values, "baseline": baseline, "better": better}
        )
    return out


def warm_up() -> None:
    """Import the heavy libraries and load the embedder once, so no system's first set pays for that.

    brainops still loads its embedder inside every run_dedup (as every real run does); this only warms
    the disk cache and the embedder's compiled copy."""
    import recordlinkage  # noqa: F401
    import splink.comparison_library  # noqa: F401
    from splink import DuckDBAPI  # noqa: F401

    from brain.embedder import load_embedder
    from workers.dedup import run_dedup  # noqa: F401

    load_embedder(device="auto", dtype="auto").encode(["warm up"])


def matcher_state() -> dict[str, Any]:
    """Which matcher ran: the commit, and the workers/ files that differ from it (a rewrite in progress)."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30, check=False)
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        changed = [line[3:] for line in git("status", "--porcelain", "--", "workers").splitlines()]
    except (OSError, subprocess.SubprocessError):
        commit, changed = "", []
    return {"commit": commit or "unknown (not a git checkout)", "workers_changed_since_commit": changed}


def run(out_dir: Path, quick: bool = False) -> dict[str, Any]:
    warm_up()
    from bench.outside_data import lookalikes

    sets: dict[str, Any] = {}
    comps: list[dict[str, Any]] = []
    for ds in datasets(quick):
        systems = {label: measure(ds, label) for label in SYSTEMS}
        sets[ds.name] = {**set_summary(ds), "systems": systems}
        comps += comparisons_for(ds.name, systems, has_truth=bool(ds.true_pairs()))
        line = ", ".join(f"{k} F1={v.get('f1')} {v.get('seconds')}s" for k, v in systems.items())
        print(f"{ds.name}: {line}", file=sys.stderr)
    result: dict[str, Any] = {
        "bench": "outside_er",
        "quick": quick,
        "matcher": matcher_state(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "splink_threshold": SPLINK_THRESHOLD,
        "notes": NOTES,
        "sets": sets,
        "comparisons": comps,
    }
    if not quick:
        result["pycountry_lookalike_pairs_by_kind"] = lookalikes()[1]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_outside_er.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(json.dumps(run(Path(__file__).resolve().parent / "out", quick="--quick" in sys.argv), indent=2))
