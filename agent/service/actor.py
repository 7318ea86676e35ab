"""Turn an allowed (or approved) proposal into real effects, exactly once per idempotency key."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.domain import Outcome, Proposal
from core.statedb import connect, init_schema, resolve_db_path, write_tx

_DDL = """
CREATE TABLE IF NOT EXISTS action_runs (
    key TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    args TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT
);
"""


class ActionRuns:
    """Which idempotency keys already ran. The claim is taken before the effect, the outcome stored after."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = resolve_db_path(db_path)
        init_schema(self.path, _DDL)

    def claim(self, key: str, proposal: Proposal, now: float) -> Outcome | None:
        """None: the caller owns the key and must run the action. Else: the outcome of the earlier run."""
        with connect(self.path) as conn, write_tx(conn):
            row = conn.execute("SELECT finished_at, outcome FROM action_runs WHERE key = ?", (key,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO action_runs(key, action, args, started_at) VALUES (?, ?, ?, ?)",
                    (key, proposal.action, json.dumps(proposal.args, sort_keys=True), now),
                )
                return None
        if row["outcome"]:
            earlier = Outcome.model_validate_json(row["outcome"])
            return Outcome(status="skipped", detail=f"already ran under {key}: {earlier.detail}", data=earlier.data)
        # Claimed but never finished: a crash mid-effect. Effects are idempotent at the dispatcher (worker
        # ids derive from the key), so running again converges instead of duplicating.
        return None

    def finish(self, key: str, outcome: Outcome, now: float) -> None:
        with connect(self.path) as conn, write_tx(conn):
            conn.execute(
                "UPDATE action_runs SET finished_at = ?, outcome = ? WHERE key = ?",
                (now, outcome.model_dump_json(), key),
            )

    def last_done(self) -> dict[str, float]:
        """Latest finish time per cooldown key ("action:kind@host" or the action name)."""
        out: dict[str, float] = {}
        with connect(self.path) as conn:
            for row in conn.execute("SELECT action, args, finished_at, outcome FROM action_runs WHERE finished_at"):
                if '"status":"done"' not in (row["outcome"] or ""):
                    continue
                key = cooldown_key(row["action"], json.loads(row["args"]))
                out[key] = max(out.get(key, 0.0), row["finished_at"])
        return out


def cooldown_key(action: str, args: Mapping[str, Any]) -> str:
    if action == "scale_workers":
        return f"scale_workers:{args.get('kind')}@{args.get('host')}"
    if action == "start_embedding":
        return f"start_embedding:embed@{args.get('host')}"
    return action


class Effects(Protocol):
    """What actions do to the world: the dispatcher and the ledger in the agent, the fleet model in evals."""

    def scale(self, kind: str, host: str, count: int) -> str: ...
    def start_embedding(self, host: str, shards: int, table: str, job_key: str) -> str: ...
    def run_job(self, kind: str, host: str | None, job_key: str, dry_run: bool = False) -> str: ...
    def set_routing(self, weights: Mapping[str, float]) -> str: ...
    def restart_worker(self, worker_id: str) -> str: ...
    def stop_worker(self, worker_id: str) -> str: ...


@dataclass
class Actor:
    effects: Effects
    runs: ActionRuns
    clock: Callable[[], float] = time.time

    def execute(self, proposal: Proposal, key: str, *, dry_run: bool = False) -> Outcome:
        if dry_run:
            return Outcome(status="dry_run", detail=f"dry run: would {proposal.action} {proposal.args}")
        earlier = self.runs.claim(key, proposal, self.clock())
        if earlier is not None:
            return earlier
        try:
            detail = self._apply(proposal, key)
            outcome = Outcome(status="done", detail=detail)
        except Exception as exc:  # one boundary for effect failures: recorded, the tick goes on
            outcome = Outcome(status="failed", detail=f"{type(exc).__name__}: {exc}")
        self.runs.finish(key, outcome, self.clock())
        return outcome

    def _apply(self, proposal: Proposal, key: str) -> str:
        a, fx = proposal.args, self.effects
        job_key = key.replace(":", "-")
        match proposal.action:
            case "scale_workers":
                return fx.scale(str(a["kind"]), str(a["host"]), int(a["count"]))
            case "start_embedding":
                return fx.start_embedding(
                    str(a["host"]), int(a.get("shards", 1)), str(a.get("table", "records")), job_key
                )
            case "run_dedup":
                return fx.run_job("dedup", a.get("host"), job_key, dry_run=bool(a.get("dry_run", False)))
            case "run_recluster":
                return fx.run_job("recluster", a.get("host"), job_key)
            case "set_model_routing":
                return fx.set_routing({str(k): float(v) for k, v in dict(a["weights"]).items()})
            case "restart_worker":
                return fx.restart_worker(str(a["worker_id"]))
            case "stop_worker":
                return fx.stop_worker(str(a["worker_id"]))
            case "noop":
                return proposal.rationale
        raise ValueError(f"unknown action {proposal.action!r}")
