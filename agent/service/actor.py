"""Turn an allowed (or approved) proposal into real effects, exactly once per idempotency key."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.actions import action, cooldown_key
from core.domain import Outcome, Proposal
from core.faults import point
from core.ports import Effects
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
OWNER = f"pid {os.getpid()} on {socket.gethostname()}"


@dataclass(frozen=True)
class Claim:
    earlier: Outcome | None = None  # the key already finished: its stored outcome, nothing runs again
    taken_over_from: str | None = None  # claimed by an owner that died mid-effect: run again, say so


class ActionRuns:
    """Which idempotency keys already ran. The claim is taken before the effect, the outcome stored after."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = resolve_db_path(db_path)
        init_schema(self.path, _DDL)
        with connect(self.path) as conn, write_tx(conn):
            columns = {r["name"] for r in conn.execute("PRAGMA table_info(action_runs)")}
            if "owner" not in columns:
                conn.execute("ALTER TABLE action_runs ADD COLUMN owner TEXT")

    def claim(self, key: str, proposal: Proposal, now: float) -> Claim:
        """Take the key before the effect. Callers hold the home lock (agent.service.locks), so a claim
        left unfinished by another owner means that owner died mid-effect: it is taken over, and the effect
        runs again, which converges (a job's worker id derives from the key; scaling sets a count)."""
        with connect(self.path) as conn, write_tx(conn):
            row = conn.execute("SELECT outcome, owner FROM action_runs WHERE key = ?", (key,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO action_runs(key, action, args, started_at, owner) VALUES (?, ?, ?, ?, ?)",
                    (key, proposal.action, json.dumps(proposal.args, sort_keys=True), now, OWNER),
                )
                return Claim()
            if row["outcome"]:
                return Claim(earlier=Outcome.model_validate_json(row["outcome"]))
            conn.execute("UPDATE action_runs SET owner = ? WHERE key = ?", (OWNER, key))
        return Claim(taken_over_from=row["owner"] or "an earlier process")

    def claimed(self, key: str) -> bool:
        with connect(self.path) as conn:
            return conn.execute("SELECT 1 FROM action_runs WHERE key = ?", (key,)).fetchone() is not None

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


@dataclass
class Actor:
    effects: Effects
    runs: ActionRuns
    clock: Callable[[], float] = time.time

    def execute(self, proposal: Proposal, key: str, *, dry_run: bool = False, recovering: bool = False) -> Outcome:
        if dry_run:
            return Outcome(status="dry_run", detail=f"dry run: would {proposal.action} {proposal.args}")
        if recovering and not self.runs.claimed(key):
            return Outcome(status="skipped", detail="recovered: not done (the tick stopped before this action)")
        claim = self.runs.claim(key, proposal, self.clock())
        if claim.earlier is not None:
            return _ran_before(key, claim.earlier, recovering)
        point("after_claim")
        try:
            detail = self._apply(proposal, key)
            if claim.taken_over_from:
                detail = f"recovered: done (claimed by {claim.taken_over_from}, which stopped mid-effect): {detail}"
            outcome = Outcome(status="done", detail=detail)
        except Exception as exc:  # one boundary for effect failures: recorded, the tick goes on
            outcome = Outcome(status="failed", detail=f"{type(exc).__name__}: {exc}")
        self.runs.finish(key, outcome, self.clock())
        return outcome

    def _apply(self, proposal: Proposal, key: str) -> str:
        spec = action(proposal.action)
        if spec.effect is None:
            return proposal.rationale
        return spec.effect(self.effects, spec.complete(proposal.args), key.replace(":", "-"))


def _ran_before(key: str, earlier: Outcome, recovering: bool) -> Outcome:
    """A key that already finished. Finishing a crashed tick, its record must say what the effect did (the
    crash came between the effect and the record); a plain re-run is a skip."""
    if recovering:
        return earlier.model_copy(update={"detail": f"recovered: done before the crash: {earlier.detail}"})
    return Outcome(status="skipped", detail=f"already ran under {key}: {earlier.detail}", data=earlier.data)
