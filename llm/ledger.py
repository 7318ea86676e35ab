"""Token and dollar ledger: reserve before an LLM call, settle after it, over a rolling window.

A reservation holds the call's ceiling, in tokens (prompt estimate + max_tokens) against the window and in
dollars (that ceiling priced, llm/pricing.py) against the daily cost cap (UTC day), until it is settled with
the real usage, released on failure, or times out (so a crashed caller does not leak budget). `reserve`
reads the window and inserts under one `BEGIN IMMEDIATE`, so concurrent callers in any threads or processes
can never pass a limit together: the cap is checked before spending, not after.

Routed fleet calls carry their purpose; the window's count of them per tier is what the split steers by,
and a tier's `share_cap` (the policy's routing.max_share) is checked in the same transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.domain import BudgetState
from core.llm_types import BudgetLimit
from core.statedb import canonical_json, connect, init_schema, read_tx, resolve_db_path, write_tx
from llm.routing import normalise_weights

if TYPE_CHECKING:
    from core.settings import Settings

DAY_S = 86_400
RETENTION_S = 30 * DAY_S
TASK_TIER_PREFIX = "task_tier:"  # ledger_meta keys: the tier a task's fleet calls are pinned to

_DDL = """
CREATE TABLE IF NOT EXISTS ledger_entries (
    id TEXT PRIMARY KEY,
    tier TEXT NOT NULL,
    reserved_tokens INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    settled_at REAL,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    reserved_cost REAL NOT NULL DEFAULT 0,
    purpose TEXT
);
CREATE INDEX IF NOT EXISTS ledger_open ON ledger_entries(status, expires_at);
CREATE INDEX IF NOT EXISTS ledger_settled ON ledger_entries(settled_at);
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Columns added after the first release; a ledger created before them gets them on open.
_ADDED_COLUMNS = {"reserved_cost": "REAL NOT NULL DEFAULT 0", "purpose": "TEXT"}


@dataclass(frozen=True)
class Reservation:
    id: str
    tier: str
    tokens: int
    created_at: float
    expires_at: float
    cost: float = 0.0  # dollars held against the daily cap


@dataclass(frozen=True)
class BudgetExhausted:
    tier: str
    requested: int
    remaining: int
    reason: BudgetLimit
    message: str


@dataclass(frozen=True)
class _Usage:
    used: int = 0
    reserved: int = 0
    cost_today: float = 0.0
    reserved_cost: float = 0.0
    routed_calls: dict[str, int] = field(default_factory=dict)
    per_tier_used: dict[str, int] = field(default_factory=dict)
    per_tier_reserved: dict[str, int] = field(default_factory=dict)

    def tier_total(self, tier: str) -> int:
        return self.per_tier_used.get(tier, 0) + self.per_tier_reserved.get(tier, 0)


class TokenLedger:
    def __init__(
        self,
        db_path: str | Path,
        *,
        window_s: int = 5 * 3600,
        window_tokens: int = 800_000_000,
        daily_cost_cap: float | None = None,
        tier_limits: Mapping[str, int] | None = None,
        reservation_timeout_s: float = 600.0,
    ) -> None:
        if window_s <= 0 or window_tokens <= 0 or reservation_timeout_s <= 0:
            raise ValueError("window_s, window_tokens and reservation_timeout_s must be positive")
        self.path = resolve_db_path(db_path)
        self.window_s = window_s
        self.window_tokens = window_tokens
        self.daily_cost_cap = daily_cost_cap
        self.tier_limits = dict(tier_limits or {})
        self.reservation_timeout_s = reservation_timeout_s
        init_schema(self.path, _DDL)
        _add_missing_columns(self.path)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenLedger:
        budget = settings.budget
        return cls(
            settings.state_db,
            window_s=budget.window_s,
            window_tokens=budget.window_tokens,
            daily_cost_cap=budget.daily_cost_cap,
        )

    def reserve(
        self,
        tier: str,
        tokens: int,
        now: float | None = None,
        *,
        cost: float = 0.0,
        purpose: str | None = None,
        share_cap: float | None = None,
    ) -> Reservation | BudgetExhausted:
        """Hold `tokens` (prompt + max_tokens) and `cost` (their price) for one call on `tier`, or say which
        limit refuses it. `purpose` marks a routed fleet call; `share_cap` bounds the tier's share of those."""
        if not tier:
            raise ValueError("tier must be a non-empty name")
        if tokens <= 0:
            raise ValueError(f"tokens to reserve must be positive, got {tokens}")
        if cost < 0:
            raise ValueError(f"cost to reserve must be non-negative, got {cost}")
        now = time.time() if now is None else now
        with connect(self.path) as conn, write_tx(conn):
            usage = _usage(conn, now, self.window_s)
            refusal = self._refusal(usage, tier, tokens, cost) or _share_refusal(
                usage, tier, tokens, purpose, share_cap
            )
            if refusal is not None:
                return refusal
            reservation = Reservation(uuid.uuid4().hex, tier, tokens, now, now + self.reservation_timeout_s, cost)
            conn.execute(
                "INSERT INTO ledger_entries (id, tier, reserved_tokens, status, created_at, expires_at,"
                " reserved_cost, purpose) VALUES (?, ?, ?, 'reserved', ?, ?, ?, ?)",
                (reservation.id, tier, tokens, now, reservation.expires_at, cost, purpose),
            )
            conn.execute("INSERT OR IGNORE INTO ledger_meta VALUES ('started_at', ?)", (repr(now),))
            return reservation

    def routed_calls(self, now: float | None = None) -> dict[str, int]:
        """Routed fleet calls per tier in the window (reserved or settled): what the split steers by."""
        now = time.time() if now is None else now
        with connect(self.path) as conn, read_tx(conn):
            return _usage(conn, now, self.window_s).routed_calls

    def settle(
        self, reservation: Reservation, tokens_in: int, tokens_out: int, cost: float, now: float | None = None
    ) -> bool:
        """Record the real usage of a reserved call; False when it was already settled or released.

        A reservation that timed out is still settled: the tokens were spent, the ledger tells the truth.
        """
        if tokens_in < 0 or tokens_out < 0 or cost < 0:
            raise ValueError("tokens and cost must be non-negative")
        now = time.time() if now is None else now
        with connect(self.path) as conn, write_tx(conn):
            cursor = conn.execute(
                "UPDATE ledger_entries SET status = 'settled', settled_at = ?, tokens_in = ?, tokens_out = ?,"
                " cost = ? WHERE id = ? AND status = 'reserved'",
                (now, tokens_in, tokens_out, cost, reservation.id),
            )
            conn.execute("DELETE FROM ledger_entries WHERE created_at < ?", (now - RETENTION_S,))
            return cursor.rowcount == 1

    def release(self, reservation: Reservation) -> bool:
        """Give back a reservation whose call failed before using tokens; False if already closed."""
        with connect(self.path) as conn, write_tx(conn):
            cursor = conn.execute(
                "UPDATE ledger_entries SET status = 'released' WHERE id = ? AND status = 'reserved'",
                (reservation.id,),
            )
            return cursor.rowcount == 1

    def state(self, now: float | None = None) -> BudgetState:
        now = time.time() if now is None else now
        with connect(self.path) as conn, read_tx(conn):
            usage = _usage(conn, now, self.window_s)
            started_at = _meta_float(conn, "started_at")
            routing = _meta_json(conn, "routing")
            task_tiers = _task_tiers(conn)
        per_tier = {tier: usage.tier_total(tier) for tier in sorted({*usage.per_tier_used, *usage.per_tier_reserved})}
        return BudgetState(
            window_s=self.window_s,
            window_tokens=self.window_tokens,
            used_tokens=usage.used,
            reserved_tokens=usage.reserved,
            pace=self._pace(usage.used, started_at, now),
            cost_today=round(usage.cost_today, 6),
            reserved_cost=round(usage.reserved_cost, 6),
            routed_calls=usage.routed_calls,
            daily_cost_cap=self.daily_cost_cap,
            per_tier=per_tier,
            routing={str(k): float(v) for k, v in (routing or {}).items()},
            task_tiers=task_tiers,
        )

    def set_routing(self, weights: Mapping[str, float]) -> dict[str, float]:
        """Store fleet tier weights, normalised to sum 1 (60/35/5 -> 0.6/0.35/0.05)."""
        normalised = normalise_weights(weights)
        with connect(self.path) as conn, write_tx(conn):
            conn.execute(
                "INSERT INTO ledger_meta VALUES ('routing', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (canonical_json(normalised),),
            )
        return normalised

    def routing(self) -> dict[str, float]:
        with connect(self.path) as conn:
            stored = _meta_json(conn, "routing")
        return {str(k): float(v) for k, v in (stored or {}).items()}

    def set_task_tier(self, task: str, tier: str) -> None:
        """Pin one task's fleet calls (e.g. "reasoning") to a tier: the routing state its workers read per batch."""
        if not task or not tier:
            raise ValueError("a task tier needs a task and a tier")
        with connect(self.path) as conn, write_tx(conn):
            conn.execute(
                "INSERT INTO ledger_meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (TASK_TIER_PREFIX + task, tier),
            )

    def task_tier(self, task: str) -> str | None:
        with connect(self.path) as conn:
            return _task_tiers(conn).get(task)

    def _refusal(self, usage: _Usage, tier: str, tokens: int, cost: float) -> BudgetExhausted | None:
        remaining = self.window_tokens - usage.used - usage.reserved
        if tokens > remaining:
            message = f"token window spent: {tokens} requested, {max(remaining, 0)} left in {self.window_s}s"
            return BudgetExhausted(tier, tokens, max(remaining, 0), "window", message)
        tier_limit = self.tier_limits.get(tier)
        if tier_limit is not None and tokens > tier_limit - usage.tier_total(tier):
            left = max(tier_limit - usage.tier_total(tier), 0)
            message = f"tier {tier} window spent: {tokens} requested, {left} left"
            return BudgetExhausted(tier, tokens, left, "tier_window", message)
        committed = usage.cost_today + usage.reserved_cost
        if self.daily_cost_cap is not None and committed + cost > self.daily_cost_cap:
            message = (
                f"daily cost cap ${self.daily_cost_cap:.2f}: ${usage.cost_today:.4f} spent today and"
                f" ${usage.reserved_cost:.4f} held by calls in flight leave less than this call's ${cost:.4f}"
            )
            return BudgetExhausted(tier, tokens, max(remaining, 0), "daily_cost", message)
        return None

    def _pace(self, used: int, started_at: float | None, now: float) -> float:
        if started_at is None:
            return 0.0
        elapsed_share = min(max(now - started_at, 0.0), self.window_s) / self.window_s
        if elapsed_share <= 0:
            return 0.0
        return round((used / self.window_tokens) / elapsed_share, 6)


def _share_refusal(
    usage: _Usage, tier: str, tokens: int, purpose: str | None, share_cap: float | None
) -> BudgetExhausted | None:
    if purpose is None or share_cap is None:
        return None
    after = usage.routed_calls.get(tier, 0) + 1
    total = sum(usage.routed_calls.values()) + 1
    if after / total <= share_cap + 1e-9:
        return None
    message = f"tier {tier} at its max_share {share_cap:.0%}: this call would make it {after} of {total} routed calls"
    return BudgetExhausted(tier, tokens, 0, "max_share", message)


def _add_missing_columns(path: Path) -> None:
    with connect(path) as conn, write_tx(conn):
        present = {row[1] for row in conn.execute("PRAGMA table_info(ledger_entries)")}
        for name, decl in _ADDED_COLUMNS.items():
            if name not in present:
                conn.execute(f"ALTER TABLE ledger_entries ADD COLUMN {name} {decl}")


def _usage(conn: sqlite3.Connection, now: float, window_s: int) -> _Usage:
    used_rows = conn.execute(
        "SELECT tier, SUM(tokens_in + tokens_out) FROM ledger_entries"
        " WHERE status = 'settled' AND settled_at > ? GROUP BY tier",
        (now - window_s,),
    ).fetchall()
    reserved_rows = conn.execute(
        "SELECT tier, SUM(reserved_tokens) FROM ledger_entries"
        " WHERE status = 'reserved' AND expires_at > ? GROUP BY tier",
        (now,),
    ).fetchall()
    day_start = now - (now % DAY_S)
    cost_row = conn.execute(
        "SELECT COALESCE(SUM(cost), 0) FROM ledger_entries WHERE status = 'settled' AND settled_at >= ?",
        (day_start,),
    ).fetchone()
    held_row = conn.execute(
        "SELECT COALESCE(SUM(reserved_cost), 0) FROM ledger_entries WHERE status = 'reserved' AND expires_at > ?",
        (now,),
    ).fetchone()
    routed_rows = conn.execute(
        "SELECT tier, COUNT(*) FROM ledger_entries WHERE purpose IS NOT NULL AND created_at > ?"
        " AND (status = 'settled' OR (status = 'reserved' AND expires_at > ?)) GROUP BY tier",
        (now - window_s, now),
    ).fetchall()
    per_tier_used = {row[0]: int(row[1]) for row in used_rows}
    per_tier_reserved = {row[0]: int(row[1]) for row in reserved_rows}
    return _Usage(
        used=sum(per_tier_used.values()),
        reserved=sum(per_tier_reserved.values()),
        cost_today=float(cost_row[0]),
        reserved_cost=float(held_row[0]),
        routed_calls={row[0]: int(row[1]) for row in routed_rows},
        per_tier_used=per_tier_used,
        per_tier_reserved=per_tier_reserved,
    )


def _task_tiers(conn: sqlite3.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT key, value FROM ledger_meta WHERE key LIKE ?", (TASK_TIER_PREFIX + "%",)).fetchall()
    return {str(k)[len(TASK_TIER_PREFIX) :]: str(v) for k, v in rows}


def _meta_float(conn: sqlite3.Connection, key: str) -> float | None:
    row = conn.execute("SELECT value FROM ledger_meta WHERE key = ?", (key,)).fetchone()
    return float(row[0]) if row else None


def _meta_json(conn: sqlite3.Connection, key: str) -> dict[str, float] | None:
    row = conn.execute("SELECT value FROM ledger_meta WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else None
