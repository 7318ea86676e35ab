"""Tier health shared by every process on a home: a circuit breaker per tier with one half-open probe (issue 16).

Cooldowns used to live in each process's memory, so every worker re-probed a dead tier on its own. Here the
breaker state is a row per tier in the state DB (`<home>/state.db`), so one failure cools the tier down for
all processes and, when the cooldown ends, exactly one process gets to probe it:

    closed     no row, or `open_until` 0: call the tier.
    open       now < open_until: skip until `open_until`.
    half-open  now >= open_until: the first `claim` takes the probe lease (until now + probe_lease_s) and
               calls the tier; every other caller skips until the lease ends. The prober reports back:
               `succeeded` closes the breaker for everyone, `failed` reopens it. A prober that crashes
               reports nothing; its lease simply expires and the next `claim` probes again.

Every state change runs under `BEGIN IMMEDIATE` (read, decide and write hold the write lock together), so
two processes can never both win the probe. Times are wall-clock seconds (`time.time()`): they are compared
across processes. Callers pass `now` explicitly, which also keeps tests free of sleeps.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.statedb import connect, init_schema, read_tx, resolve_db_path, write_tx

if TYPE_CHECKING:
    from core.settings import Settings

_DDL = """
CREATE TABLE IF NOT EXISTS tier_health (
    tier TEXT PRIMARY KEY,
    open_until REAL NOT NULL DEFAULT 0,
    probe_until REAL NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    updated_at REAL
);
"""


@dataclass(frozen=True)
class TierState:
    """One tier's breaker as stored. `open_until` 0 means closed; `failures` counts failures since the last
    success (a caller may grow its cooldown with it)."""

    tier: str
    open_until: float
    probe_until: float
    failures: int

    @property
    def closed(self) -> bool:
        return self.open_until <= 0

    def skip_until(self, now: float) -> float | None:
        """Until when a caller must skip this tier at `now`; None when it may call (or may take the probe)."""
        if self.closed:
            return None
        if now < self.open_until:
            return self.open_until
        if now < self.probe_until:
            return self.probe_until
        return None


class TierHealth:
    """`claim` before calling a tier; `succeeded` / `failed` after. Safe from any threads and processes."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = resolve_db_path(db_path)
        init_schema(self.path, _DDL)

    @classmethod
    def from_settings(cls, settings: Settings) -> TierHealth:
        return cls(settings.state_db)

    def claim(self, tier: str, now: float, probe_lease_s: float) -> float | None:
        """None: call the tier now (it is healthy, or this caller just won the half-open probe and holds the
        lease until now + probe_lease_s). Otherwise the time until which the caller must skip the tier."""
        _check_tier(tier)
        if probe_lease_s <= 0:
            raise ValueError(f"probe_lease_s must be positive, got {probe_lease_s}")
        with connect(self.path) as conn:
            state = _read(conn, tier)  # the common case, a closed breaker, needs no write lock
            if state is None or state.closed:
                return None
            with write_tx(conn):
                state = _read(conn, tier)
                if state is None:
                    return None
                skip = state.skip_until(now)
                if skip is not None or state.closed:
                    return skip
                conn.execute(
                    "UPDATE tier_health SET probe_until = ?, updated_at = ? WHERE tier = ?",
                    (now + probe_lease_s, now, tier),
                )
                return None

    def failed(self, tier: str, until: float, now: float | None = None) -> float:
        """(Re)open the breaker until `until` (never shortening a longer cooldown already set) and end any
        probe. Returns the cooldown end now in force."""
        _check_tier(tier)
        with connect(self.path) as conn, write_tx(conn):
            conn.execute(
                "INSERT INTO tier_health (tier, open_until, probe_until, failures, updated_at)"
                " VALUES (?, ?, 0, 1, ?)"
                " ON CONFLICT(tier) DO UPDATE SET open_until = MAX(open_until, excluded.open_until),"
                " probe_until = 0, failures = failures + 1, updated_at = excluded.updated_at",
                (tier, until, now),
            )
            row = conn.execute("SELECT open_until FROM tier_health WHERE tier = ?", (tier,)).fetchone()
            return float(row[0])

    def succeeded(self, tier: str, now: float | None = None) -> None:
        """Close the breaker for every process: no cooldown, no probe, failure count reset."""
        _check_tier(tier)
        with connect(self.path) as conn:
            state = _read(conn, tier)
            if state is None or (state.closed and state.probe_until <= 0 and state.failures == 0):
                return  # already closed: successes on a healthy tier take no write lock
            with write_tx(conn):
                conn.execute(
                    "UPDATE tier_health SET open_until = 0, probe_until = 0, failures = 0, updated_at = ?"
                    " WHERE tier = ?",
                    (now, tier),
                )

    def release_probe(self, tier: str, now: float | None = None) -> None:
        """Give back a probe lease without a verdict (the call was never made, e.g. no budget), so another
        caller may probe at once instead of waiting for the lease to expire."""
        _check_tier(tier)
        with connect(self.path) as conn, write_tx(conn):
            conn.execute(
                "UPDATE tier_health SET probe_until = 0, updated_at = ? WHERE tier = ? AND open_until > 0",
                (now, tier),
            )

    def cooling_down(self, now: float) -> dict[str, float]:
        """Every tier a caller would skip at `now`, with the time until which it is skipped."""
        return {s.tier: until for s in self.states().values() if (until := s.skip_until(now)) is not None}

    def states(self) -> dict[str, TierState]:
        """Every tier with an open (or half-open) breaker or a failure on record."""
        with connect(self.path) as conn, read_tx(conn):
            rows = conn.execute(
                "SELECT tier, open_until, probe_until, failures FROM tier_health"
                " WHERE open_until > 0 OR probe_until > 0 OR failures > 0 ORDER BY tier"
            ).fetchall()
        return {row[0]: _state(row) for row in rows}

    def state(self, tier: str) -> TierState | None:
        with connect(self.path) as conn:
            return _read(conn, tier)


def _check_tier(tier: str) -> None:
    if not tier:
        raise ValueError("tier must be a non-empty name")


def _read(conn: sqlite3.Connection, tier: str) -> TierState | None:
    row = conn.execute(
        "SELECT tier, open_until, probe_until, failures FROM tier_health WHERE tier = ?", (tier,)
    ).fetchone()
    return _state(row) if row is not None else None


def _state(row: sqlite3.Row) -> TierState:
    return TierState(tier=str(row[0]), open_until=float(row[1]), probe_until=float(row[2]), failures=int(row[3]))
