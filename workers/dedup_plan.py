"""The dedup plan: what a dry run found, kept in the brain, so a live run merges only what a human approved.

A dry run (`workers.dedup.run_dedup(store, dry_run=True)`) saves its merges as a `DedupPlan` in the brain's
meta table: the whole plan under `META_DEDUP_PLAN`, its summary (`core.domain.DedupPlanSummary`: hash, count,
a sample of pairs with their scores) under `META_DEDUP_PLAN_SUMMARY`, which brain stats report, marked stale
once the entities table moves past the version the plan was made on.

The plan's hash names it. The planner proposes a live `run_dedup` with `plan=<hash>` and
`expected_merges=<absorbed>`; the policy judges that count (a human approves a large one, seeing the count and
the sample); the approved job runs with `--plan HASH --max-merges N` and `PlanGuard` holds it to the plan:
  - the stored plan is gone or has another hash (a newer dry run replaced it): stop, merge nothing;
  - the merges recomputed now would absorb more than N entities: stop, merge nothing;
  - otherwise merge only what the plan holds: each absorbed entity into the survivor the plan named.
A stop raises `PlanRefused`, which the worker loop ends with `workers.runtime.EXIT_REFUSED`. A live run that
merged clears the plan: it is spent.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple, Protocol

from brain.store import META_DEDUP_PLAN, META_DEDUP_PLAN_SUMMARY, BrainStore
from core.domain import DedupPairSample, DedupPlanSummary
from workers.runtime import JobRefused

if TYPE_CHECKING:
    from workers.dedup_store import DedupReport, PlannedMerge

SAMPLE_SIZE = 8  # pairs shown to approvers: the strongest half and the weakest half


class PlanRefused(JobRefused):
    """A live run that must not merge: its plan is no longer current, or it would merge more than approved."""


class Merge(NamedTuple):
    kept_id: str
    absorbed_ids: tuple[str, ...]
    score: float
    reason: str


class _Members(Protocol):
    @property
    def kept_id(self) -> str: ...
    @property
    def absorbed_ids(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class DedupPlan:
    hash: str
    created_at: float
    entities_version: int  # the entities table version the plan was computed on
    absorbed: int  # entities the plan merges away
    merges: tuple[Merge, ...]
    sample: tuple[DedupPairSample, ...] = ()

    def summary(self) -> DedupPlanSummary:
        return DedupPlanSummary(
            hash=self.hash,
            absorbed=self.absorbed,
            merges=len(self.merges),
            created_at=self.created_at,
            entities_version=self.entities_version,
            sample=self.sample,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "hash": self.hash,
                "created_at": self.created_at,
                "entities_version": self.entities_version,
                "absorbed": self.absorbed,
                "merges": [[m.kept_id, list(m.absorbed_ids), m.score, m.reason] for m in self.merges],
                "sample": [s.model_dump(mode="json") for s in self.sample],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str) -> DedupPlan:
        """Raises ValueError (or KeyError/TypeError) on anything but what `to_json` wrote."""
        data = json.loads(raw)
        merges = tuple(Merge(str(k), tuple(map(str, a)), float(s), str(r)) for k, a, s, r in data["merges"])
        return cls(
            hash=str(data["hash"]),
            created_at=float(data["created_at"]),
            entities_version=int(data["entities_version"]),
            absorbed=int(data["absorbed"]),
            merges=merges,
            sample=tuple(DedupPairSample.model_validate(s) for s in data.get("sample", ())),
        )


def plan_hash(merges: Iterable[_Members]) -> str:
    """sha256 of the canonical JSON of the sorted (kept id, sorted absorbed ids): order-free, scores aside."""
    members = sorted([m.kept_id, sorted(m.absorbed_ids)] for m in merges)
    return hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).hexdigest()


def sample_pairs(merges: Sequence[PlannedMerge], size: int = SAMPLE_SIZE) -> tuple[DedupPairSample, ...]:
    """Up to `size` (survivor, absorbed, score) pairs: the strongest first, then the weakest."""
    pairs = sorted(
        (
            DedupPairSample(kept=m.kept_name, absorbed=name, score=round(float(m.score), 4))
            for m in merges
            for name in m.absorbed_names
        ),
        key=lambda p: (-p.score, p.kept, p.absorbed),
    )
    if len(pairs) <= size:
        return tuple(pairs)
    strong = size - size // 2
    return (*pairs[:strong], *pairs[len(pairs) - size // 2 :])


def plan_from_report(report: DedupReport, entities_version: int, now: float | None = None) -> DedupPlan:
    merges = tuple(Merge(m.kept_id, tuple(m.absorbed_ids), float(m.score), m.reason) for m in report.merges)
    return DedupPlan(
        hash=plan_hash(merges),
        created_at=time.time() if now is None else now,
        entities_version=entities_version,
        absorbed=sum(len(m.absorbed_ids) for m in merges),
        merges=merges,
        sample=sample_pairs(report.merges),
    )


def save_plan(store: BrainStore, plan: DedupPlan) -> None:
    """One meta commit: the plan and its summary together, so stats never see one without the other."""
    store.meta_set_many({META_DEDUP_PLAN: plan.to_json(), META_DEDUP_PLAN_SUMMARY: plan.summary().model_dump_json()})


def load_plan(store: BrainStore) -> DedupPlan | None:
    raw = store.meta_get(META_DEDUP_PLAN)
    if not raw:
        return None
    try:
        return DedupPlan.from_json(raw)
    except (ValueError, KeyError, TypeError):  # written by another version: as good as no plan
        return None


def clear_plan(store: BrainStore) -> None:
    store.meta_set_many({META_DEDUP_PLAN: "", META_DEDUP_PLAN_SUMMARY: ""})


@dataclass(frozen=True)
class PlanGuard:
    """What one live run may merge: at most `max_merges` entities, and with a plan only the plan's merges."""

    plan: DedupPlan | None
    max_merges: int | None

    @classmethod
    def load(cls, store: BrainStore, plan: str | None, max_merges: int | None) -> PlanGuard | None:
        """The guard for a live run (None: unguarded). Raises PlanRefused when the named plan is not current."""
        if plan is None:
            return None if max_merges is None else cls(None, max_merges)
        stored = load_plan(store)
        if stored is None or stored.hash != plan:
            raise PlanRefused(f"dedup plan {plan[:12]} is no longer current: run a dry run and approve the new plan")
        return cls(stored, stored.absorbed if max_merges is None else max_merges)

    def admit(self, merges: Sequence[PlannedMerge]) -> list[PlannedMerge]:
        """The merges this run may apply. Raises PlanRefused when they would absorb more than approved."""
        found = sum(len(m.absorbed_ids) for m in merges)
        if self.max_merges is not None and found > self.max_merges:
            what = f"plan {self.plan.hash[:12]}" if self.plan else "this run"
            raise PlanRefused(
                f"dedup would now merge {found} entities, more than the {self.max_merges} approved for {what}: "
                "run a dry run and approve the new plan"
            )
        if self.plan is None:
            return list(merges)
        survivor = {a: m.kept_id for m in self.plan.merges for a in m.absorbed_ids}
        admitted = []
        for m in merges:
            keep = [i for i, a in enumerate(m.absorbed_ids) if survivor.get(a) == m.kept_id]
            if len(keep) == len(m.absorbed_ids):
                admitted.append(m)
            elif keep:  # the group grew since the plan: only the pairs the approver saw
                ids = tuple(m.absorbed_ids[i] for i in keep)
                names = tuple(m.absorbed_names[i] for i in keep)
                admitted.append(replace(m, absorbed_ids=ids, absorbed_names=names))
        return admitted
