"""The records' vector index as a tick sees it, and the optimize_index job's effect as the decision log keeps it.

`observe_index` runs the bounded probe (brain/index_probe.py) with the policy's `index` settings and reads the
last job's result from the brain's meta table. `record_index_effect` appends, once per job run, a decision
record of what the job measured before and after: the optimize_index decision said a job started; this one
says what it did (idempotency key `index-effect:<run id>`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from core.domain import IndexHealth, IndexRun, Observation, Outcome, PlannerInfo

if TYPE_CHECKING:
    from agent.state.decisions import DecisionLog
    from brain.store import BrainStore
    from policies.model import IndexPolicy

log = logging.getLogger("brainops.index")


def observe_index(store: BrainStore, rules: IndexPolicy) -> tuple[IndexHealth, IndexRun | None, str | None]:
    """(probe figures, last job run, a note when the probe failed). Never raises: a broken probe is a note."""
    from brain.index_probe import probe
    from brain.vector_index import last_run

    try:
        return probe(store, rules.probe_settings(), rules.search_settings()), last_run(store), None
    except Exception as exc:  # the index probe must not cost the tick its other figures
        log.warning("index probe failed: %s", exc)
        why = f"index probe failed: {type(exc).__name__}: {str(exc)[:200]}"
        return IndexHealth(skipped=why), None, why


def effect_key(run: IndexRun) -> str:
    return f"index-effect:{run.run_id}"


def record_index_effect(decisions: DecisionLog, obs: Observation, tick_id: str, now: float) -> str | None:
    """One record of the last index job's measured effect, the first tick that sees it; its id, else None."""
    run = obs.index_run
    if run is None or decisions.by_key(effect_key(run)):
        return None
    record = decisions.append(
        tick_id=tick_id,
        action="optimize_index",
        args={"job": run.worker_id or run.run_id},
        rationale=f"measured effect of index job {run.worker_id or run.run_id}",
        planner=PlannerInfo(kind="rules"),
        observation_digest=obs.digest(),
        outcome=Outcome(status="done", detail=run.summary(), data=run.model_dump(mode="json")),
        idempotency_key=effect_key(run),
        now=now,
        once=True,
    )
    return record.id
