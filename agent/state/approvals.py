"""Durable approval records: a risky proposal waits here until a listed approver answers or it expires.

An approval is bound to one exact action and its arguments (`args_hash`), answered at most once (the
UPDATE only matches a row that is still pending and not yet expired, so of two concurrent answers exactly
one wins), and expiry means deny. Records live in `<home>/state.db` next to the decision log.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agent.state.approval_schema import DDL, migrate
from core.domain import Outcome, ScalePrediction
from core.redact import redact, redact_text
from core.statedb import canonical_json, connect, init_schema, resolve_db_path, sha256_hex, write_tx
from core.timefmt import when

if TYPE_CHECKING:
    from core.settings import Settings

ApprovalStatus = Literal["pending", "approved", "denied", "expired"]
AnswerStatus = Literal["ok", "not_found", "not_approver", "already_decided", "expired"]
MAX_CANDIDATES = 5  # ids named in an "ambiguous prefix" message


@dataclass(frozen=True)
class Approval:
    id: str
    tick_id: str
    action: str
    args: dict[str, Any]
    args_hash: str
    rationale: str
    risk: str
    rule_ids: tuple[str, ...]
    requested_by: str
    created_at: float
    expires_at: float
    status: ApprovalStatus
    decided_by: str | None
    decided_at: float | None
    reason: str | None
    channel: str | None
    message_ts: str | None
    # Observed facts shown beside the arguments (graphs.tick.approval_context), not part of the binding.
    context: dict[str, Any] = field(default_factory=dict)
    # What the proposal expects (scale_workers: drain time, cost), shown to approvers; not part of the binding.
    prediction: ScalePrediction | None = None
    # Why the policy asked, one reason per rule id in `rule_ids` (PolicyDecision.reasons); () when the record
    # predates them and the decision log does not say either.
    reasons: tuple[str, ...] = ()

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    @property
    def rules(self) -> tuple[tuple[str, str | None], ...]:
        """(rule id, its reason) for each rule that asked for approval. The engine gives one reason per rule;
        where the counts differ the reasons cannot be paired, so each id gets None and `unpaired_reasons`
        has them all."""
        if len(self.reasons) == len(self.rule_ids):
            return tuple(zip(self.rule_ids, self.reasons, strict=True))
        return tuple((rule_id, None) for rule_id in self.rule_ids)

    @property
    def unpaired_reasons(self) -> tuple[str, ...]:
        return () if len(self.reasons) == len(self.rule_ids) else self.reasons

    def is_open(self, now: float) -> bool:
        return self.status == "pending" and self.expires_at > now


@dataclass(frozen=True)
class AnswerResult:
    status: AnswerStatus
    approval: Approval | None = None
    message: str = ""
    outcome: Outcome | None = None  # what the resumed action did, where the caller resumed it

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def decided_by(self) -> str | None:
        return self.approval.decided_by if self.approval else None

    @property
    def decided_at(self) -> float | None:
        return self.approval.decided_at if self.approval else None


def args_binding_hash(action: str, args: Mapping[str, Any]) -> str:
    """What an approval is bound to: the action name and its exact (redacted) arguments."""
    return sha256_hex(canonical_json({"action": action, "args": redact(dict(args))}))


def verify_binding(approval: Approval, action: str, args: Mapping[str, Any]) -> bool:
    """True when `action(args)` is exactly what was approved; act must refuse anything else."""
    return approval.args_hash == args_binding_hash(action, args)


class ApprovalStore:
    def __init__(self, db_path: str | Path) -> None:
        self.path = resolve_db_path(db_path)
        init_schema(self.path, DDL)
        with connect(self.path) as conn, write_tx(conn):
            migrate(conn)

    def create(
        self,
        id: str,
        tick_id: str,
        action: str,
        args: Mapping[str, Any],
        rationale: str,
        risk: str,
        rule_ids: Iterable[str],
        requested_by: str,
        ttl_s: float,
        now: float | None = None,
        context: Mapping[str, Any] | None = None,
        prediction: ScalePrediction | None = None,
        reasons: Iterable[str] | None = None,
    ) -> Approval:
        """Create a pending approval; the same id again returns the stored row (graph nodes may re-run), and
        so does a request for the action and arguments of another approval still pending (check the id).
        `reasons` are the policy's, one per rule id (PolicyDecision.reasons); None: read them from the
        decision log's record of the request once it is written."""
        if not id or not action:
            raise ValueError("an approval needs an id and an action")
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        now = time.time() if now is None else now
        binding = args_binding_hash(action, args)
        values = (
            id,
            tick_id,
            action,
            canonical_json(redact(dict(args))),
            binding,
            redact_text(rationale),
            risk,
            json.dumps([str(r) for r in rule_ids]),
            requested_by,
            now,
            now + ttl_s,
            canonical_json(redact(dict(context or {}))),
            None if prediction is None else canonical_json(prediction.model_dump(mode="json")),
            None if reasons is None else json.dumps([redact_text(str(r)) for r in reasons]),
        )
        with connect(self.path) as conn, write_tx(conn):
            # An overdue twin no longer blocks: it is expired now (its thread records that on settle).
            conn.execute(
                "UPDATE approvals SET status = 'expired' WHERE args_hash = ? AND status = 'pending'"
                " AND expires_at <= ? AND id != ?",
                (binding, now, id),
            )
            conn.execute(
                "INSERT OR IGNORE INTO approvals (id, tick_id, action, args, args_hash, rationale, risk,"
                " rule_ids, requested_by, created_at, expires_at, context, prediction, reasons)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                values,
            )
            approval = _fetch(conn, id)
            if approval is None:  # the unique index kept it out: the same action is already waiting
                twin = conn.execute(
                    "SELECT id FROM approvals WHERE args_hash = ? AND status = 'pending'", (binding,)
                ).fetchone()
                approval = _fetch(conn, twin["id"])
        assert approval is not None
        if approval.args_hash != binding:
            raise ValueError(f"approval {id} already exists for a different action or arguments")
        return approval

    def get(self, id: str) -> Approval | None:
        with connect(self.path) as conn:
            return _fetch(conn, id)

    def pending(self, now: float | None = None) -> list[Approval]:
        now = time.time() if now is None else now
        sql = "SELECT * FROM approvals WHERE status = 'pending' AND expires_at > ? ORDER BY created_at, id"
        with connect(self.path) as conn:
            return [_from_row(row, conn) for row in conn.execute(sql, (now,)).fetchall()]

    def recent(self, limit: int = 50) -> list[Approval]:
        sql = "SELECT * FROM approvals ORDER BY created_at DESC, id LIMIT ?"
        with connect(self.path) as conn:
            return [_from_row(row, conn) for row in conn.execute(sql, (limit,)).fetchall()]

    def resolve(self, ref: str, now: float | None = None) -> Approval:
        """The approval a CLI argument names: its full id, or a prefix of exactly one id. A prefix shared by
        several ids still names one when only one of them is still open (the others cannot be answered).
        Raises ApprovalRefError, with one sentence saying what to type instead."""
        now = time.time() if now is None else now
        ref = ref.strip()
        if not ref:
            raise ApprovalRefError("the approval id is empty: copy it from `brainops approvals`")
        with connect(self.path) as conn:
            exact = _fetch(conn, ref)
            if exact is not None:
                return exact
            sql = "SELECT * FROM approvals WHERE substr(id, 1, ?) = ? ORDER BY created_at DESC, id"
            matches = [_from_row(row, conn) for row in conn.execute(sql, (len(ref), ref)).fetchall()]
        if len(matches) == 1:
            return matches[0]
        still_open = [a for a in matches if a.is_open(now)]
        if len(still_open) == 1:
            return still_open[0]
        if not matches:
            raise ApprovalRefError(f"no approval id is or starts with {ref!r} (`brainops approvals --all` lists them)")
        named = still_open or matches
        shown = ", ".join(a.id for a in named[:MAX_CANDIDATES]) + (", ..." if len(named) > MAX_CANDIDATES else "")
        which = "open approvals" if still_open else "approvals"
        raise ApprovalRefError(f"{ref!r} is the start of {len(named)} {which} ({shown}): give more of the id")

    def answer(
        self,
        id: str,
        approve: bool,
        by: str,
        approvers: Collection[str],
        reason: str = "",
        now: float | None = None,
    ) -> AnswerResult:
        """Approve or deny once. Only names in `approvers` may answer; an empty list lets nobody answer."""
        now = time.time() if now is None else now
        with connect(self.path) as conn, write_tx(conn):
            current = _fetch(conn, id)
            if current is None:
                return AnswerResult("not_found", None, f"no approval with id {id}")
            if not _is_listed(by, approvers):
                return AnswerResult("not_approver", current, f"{by!r} is not a listed approver")
            status = "approved" if approve else "denied"
            cursor = conn.execute(
                "UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, reason = ?"
                " WHERE id = ? AND status = 'pending' AND expires_at > ?",
                (status, by, now, redact_text(reason), id, now),
            )
            if cursor.rowcount == 1:
                return AnswerResult("ok", _fetch(conn, id), f"{id} {status} by {by}")
            return _refusal(conn, current, now)

    def expire_due(self, now: float | None = None) -> list[Approval]:
        """Flip overdue pending approvals to expired (= denied) and return them."""
        now = time.time() if now is None else now
        with connect(self.path) as conn, write_tx(conn):
            rows = conn.execute(
                "SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= ?", (now,)
            ).fetchall()
            ids = [row["id"] for row in rows]
            for approval_id in ids:
                _mark_expired(conn, approval_id, now)
            return [a for a in (_fetch(conn, i) for i in ids) if a is not None]

    def set_message_ref(self, id: str, channel: str, ts: str) -> bool:
        """Remember the Slack message that shows this approval; False when the id is unknown."""
        with connect(self.path) as conn, write_tx(conn):
            cursor = conn.execute("UPDATE approvals SET channel = ?, message_ts = ? WHERE id = ?", (channel, ts, id))
            return cursor.rowcount == 1

    def by_message_ref(self, channel: str, ts: str) -> Approval | None:
        sql = "SELECT * FROM approvals WHERE channel = ? AND message_ts = ?"
        with connect(self.path) as conn:
            row = conn.execute(sql, (channel, ts)).fetchone()
            return _from_row(row, conn) if row else None


class ApprovalRefError(ValueError):
    """An approval id or prefix that names no approval, or more than one."""


OnAnswered = Callable[["Settings", Approval], "Outcome | None"]


def answer_approval(
    settings: Settings,
    id: str,
    approve: bool,
    by: str,
    reason: str = "",
    *,
    on_answered: OnAnswered | None = None,
    approvers: Collection[str] | None = None,
    now: float | None = None,
) -> AnswerResult:
    """The store half of `brainops approve/deny` and the Slack buttons.

    `approvers` defaults to the policy file's list. `on_answered(settings, approval)` resumes the waiting
    approval graph after a successful answer, and after one that found the approval expired, so the expiry is
    recorded by whoever notices it; its outcome comes back in the result.
    """
    allowed = policy_approvers(settings) if approvers is None else approvers
    result = ApprovalStore(settings.state_db).answer(id, approve, by, allowed, reason, now)
    if (result.ok or result.status == "expired") and on_answered is not None and result.approval is not None:
        return replace(result, outcome=on_answered(settings, result.approval))
    return result


def policy_approvers(settings: Settings) -> tuple[str, ...]:
    """Approver names from the policy file as it is now; while it fails to load, from its last good copy
    (said on stderr: an answer must not silently follow a policy the operator believes replaced)."""
    import sys

    from policies.live import live_policy

    live = live_policy(settings)
    policy: Any = live.current()
    if live.failure is not None:
        print(f"warning: {live.failure.error}; using the last good policy's approvers", file=sys.stderr)
    names = policy.get("approvers") if isinstance(policy, Mapping) else getattr(policy, "approvers", None)
    if names is None:
        raise ValueError(f"policy {settings.policy_path} lists no approvers")
    return tuple(str(n) for n in names)


def _is_listed(by: str, approvers: Collection[str]) -> bool:
    wanted = by.strip().lower()
    return bool(wanted) and any(wanted == a.strip().lower() for a in approvers)


def _refusal(conn: sqlite3.Connection, before: Approval, now: float) -> AnswerResult:
    current = _fetch(conn, before.id) or before
    if current.status == "pending":  # still pending, so the UPDATE missed on time: it is overdue
        _mark_expired(conn, current.id, now)
        current = _fetch(conn, current.id) or current
    if current.status == "expired":
        return AnswerResult("expired", current, f"{current.id} expired at {when(current.expires_at, now)}")
    at = when(current.decided_at, now) if current.decided_at is not None else "an unrecorded time"
    message = f"{current.id} was already {current.status} by {current.decided_by} at {at}"
    return AnswerResult("already_decided", current, message)


def _mark_expired(conn: sqlite3.Connection, approval_id: str, now: float) -> None:
    conn.execute(
        "UPDATE approvals SET status = 'expired', decided_at = ?, reason = 'expired: no answer in time'"
        " WHERE id = ? AND status = 'pending'",
        (now, approval_id),
    )


def _fetch(conn: sqlite3.Connection, id: str) -> Approval | None:
    row = conn.execute("SELECT * FROM approvals WHERE id = ?", (id,)).fetchone()
    return _from_row(row, conn) if row else None


def _from_row(row: sqlite3.Row, conn: sqlite3.Connection) -> Approval:
    values = dict(row)
    values["args"] = json.loads(values["args"])
    values["rule_ids"] = tuple(json.loads(values["rule_ids"]))
    values["context"] = json.loads(values.get("context") or "{}")
    values["prediction"] = _prediction(values.get("prediction"))
    stored = values.get("reasons")
    values["reasons"] = tuple(json.loads(stored)) if stored else _logged_reasons(conn, values["id"], values["tick_id"])
    return Approval(**values)


def _logged_reasons(conn: sqlite3.Connection, approval_id: str, tick_id: str) -> tuple[str, ...]:
    """For a record that kept no reasons (made before they were stored, or by a caller that passed none): the
    reasons of the decision record of its tick that opened it, in the same state.db (indexed by tick). Read-only."""
    sql = (
        "SELECT reasons FROM decisions WHERE tick_id = ? AND verdict = 'needs_approval'"
        " AND json_extract(outcome, '$.data.approval_id') = ? ORDER BY seq LIMIT 1"
    )
    try:
        row = conn.execute(sql, (tick_id, approval_id)).fetchone()
    except sqlite3.OperationalError:  # no decision log in this file (yet)
        return ()
    return tuple(str(r) for r in json.loads(row["reasons"])) if row else ()


def _prediction(stored: str | None) -> ScalePrediction | None:
    """The stored prediction; one this version cannot read (another version wrote it) is shown as none, so it
    never keeps the approval itself from being listed or answered."""
    if not stored:
        return None
    try:
        return ScalePrediction.model_validate_json(stored)
    except ValueError:
        return None
