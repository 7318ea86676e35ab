"""Doctor checks of the agent's state: the state DB's directory and file, and the token budget in it.

Read-only: permissions are checked with access(2), the database is opened read-only (and `immutable` when
no -wal/-shm file exists, so SQLite makes none), and a missing home or state DB is reported, not created.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from agent.cli.doctor_checks import Check, existing_ancestor, fail, ok, user_name, warn

if TYPE_CHECKING:
    from core.domain import BudgetState
    from core.settings import Settings

MIN_FREE_DISK_BYTES = 1 << 30
_SERVICE_FIX = "deploy/brainops.service creates it (StateDirectory=brainops) when the unit starts"


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection that creates no file: `immutable=1` when no -wal/-shm exists (nothing is
    being written, so the file alone is the whole database), plain `mode=ro` when the agent has them open."""
    live = any(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm"))
    uri = f"file:{quote(str(path.resolve()))}?mode=ro" + ("" if live else "&immutable=1")
    with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
        yield conn


def _free(path: Path) -> int:
    return shutil.disk_usage(existing_ancestor(path)).free


def _space(name: str, detail: str, home: Path) -> Check:
    free = _free(home)
    if free < MIN_FREE_DISK_BYTES:
        return warn(name, f"{detail}, but only {free / 2**20:.0f} MiB free", f"free space on {existing_ancestor(home)}")
    return ok(name, f"{detail}, {free / 2**30:.1f} GiB free")


def check_state_db(settings: Settings) -> Check:
    """Can the agent keep its state where the config says? Says so without creating the home or the DB."""
    path, home, user = settings.state_db, settings.home, user_name()
    name = "state db"
    if not home.exists():
        parent = existing_ancestor(home)
        if os.access(parent, os.W_OK | os.X_OK):
            return _space(name, f"{home} does not exist yet; `brainops run` creates it ({parent} is writable)", home)
        return warn(
            name,
            f"{home} does not exist yet and {user} cannot create it in {parent}",
            f"{_SERVICE_FIX}; to run the agent by hand first: sudo install -d -m 0750 -o {user} {home}",
        )
    if not home.is_dir():
        return fail(name, f"home {home} is a file, not a directory", "point home in brainops.toml at a directory")
    if not os.access(home, os.W_OK | os.X_OK):
        return fail(
            name,
            f"{user} cannot write to {home}",
            f"make {home} writable by {user}: sudo chown -R {user} {home} ({_SERVICE_FIX})",
        )
    if not path.exists():
        return _space(name, f"no {path} yet; `brainops run` creates it in {home} (writable)", home)
    if not os.access(path, os.R_OK | os.W_OK):
        return fail(name, f"{user} cannot write to {path}", f"sudo chown {user} {path}")
    try:
        with read_only(path) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        return fail(
            name,
            f"{path} is not a usable SQLite database ({exc})",
            f"move {path} aside (the agent then starts a new one) and keep it for inspection",
        )
    return _space(name, f"{path} writable", home)


def read_budget(settings: Settings, now: float) -> BudgetState:
    """The token ledger's state as `TokenLedger.state` computes it, read through a read-only connection.

    TokenLedger itself creates its schema on open (and with it the state DB), which doctor must not."""
    from core.domain import BudgetState
    from llm.ledger import _meta_float, _meta_json, _usage  # the ledger's own queries, on a read-only connection

    budget = settings.budget
    empty = BudgetState(
        window_s=budget.window_s, window_tokens=budget.window_tokens, daily_cost_cap=budget.daily_cost_cap
    )
    if not settings.state_db.exists():
        return empty
    with read_only(settings.state_db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "ledger_entries" not in tables:
            return empty
        usage = _usage(conn, now, budget.window_s)
        started_at = _meta_float(conn, "started_at") if "ledger_meta" in tables else None
        routing = _meta_json(conn, "routing") if "ledger_meta" in tables else None
    pace = 0.0
    if started_at is not None:
        elapsed_share = min(max(now - started_at, 0.0), budget.window_s) / budget.window_s
        pace = round((usage.used / budget.window_tokens) / elapsed_share, 6) if elapsed_share > 0 else 0.0
    return empty.model_copy(
        update={
            "used_tokens": usage.used,
            "reserved_tokens": usage.reserved,
            "pace": pace,
            "cost_today": round(usage.cost_today, 6),
            "reserved_cost": round(usage.reserved_cost, 6),
            "routed_calls": usage.routed_calls,
            "per_tier": {t: usage.tier_total(t) for t in sorted({*usage.per_tier_used, *usage.per_tier_reserved})},
            "routing": {str(k): float(v) for k, v in (routing or {}).items()},
        }
    )


def check_budget(settings: Settings, now: float) -> Check:
    try:
        state = read_budget(settings, now)
    except sqlite3.Error as exc:
        return fail(
            "budget",
            f"the token ledger in {settings.state_db} cannot be read ({exc})",
            f"check {settings.state_db}: `brainops run` upgrades a ledger written by an older version",
        )
    share = state.used_tokens / state.window_tokens if state.window_tokens else 1.0
    detail = (
        f"{state.used_tokens:,} of {state.window_tokens:,} tokens ({share:.0%}) in the window, "
        f"pace {state.pace:.2f}, ${state.cost_today:.2f} today"
    )
    if state.remaining_tokens <= 0:
        return warn(
            "budget",
            detail + ": window spent, the rule planner decides until it rolls",
            "raise budget.window_tokens or wait for the window",
        )
    if state.daily_cost_cap is not None and state.cost_today >= state.daily_cost_cap:
        return warn(
            "budget",
            detail + f": daily cap ${state.daily_cost_cap:.2f} reached",
            "raise budget.daily_cost_cap or wait for UTC midnight",
        )
    if state.pace > settings.planner.budget_pace_high:
        return warn(
            "budget",
            detail + ": burning faster than the window allows",
            "route more calls to cheaper tiers (set_model_routing) or raise budget.window_tokens",
        )
    return ok("budget", detail)


def check_decision_key(settings: Settings) -> Check:
    """The decision log's hmac key: set, or a 0600 file outside home, or a file `brainops run` can create."""
    from agent.state.decision_key import DECISION_KEY_ENV, DecisionKeyError, key_file_path, load_decision_key

    name, path, user = "decision key", key_file_path(settings.decision_key_file), user_name()
    try:
        key = load_decision_key(settings.decision_key_file, state_dir=settings.home, create=False)
    except DecisionKeyError as exc:
        return fail(name, str(exc), f"fix {path} (mode 0600, owned by {user}, at least 16 characters)")
    if key is not None:
        origin = f"${DECISION_KEY_ENV}" if os.environ.get(DECISION_KEY_ENV, "").strip() else str(path)
        return ok(name, f"read from {origin}")
    parent = existing_ancestor(path.parent)
    if os.access(parent, os.W_OK | os.X_OK):
        return ok(name, f"no {path} yet; `brainops run` creates it (0600) on first start: back it up then")
    return fail(
        name,
        f"no {path}, and {user} cannot create it in {parent}",
        f"sudo sh -c 'umask 077; openssl rand -hex 32 > {path}' && sudo chown {user} {path}",
    )
