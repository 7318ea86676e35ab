"""The approvals table, and how a store made by an older version is brought up to date in place: columns
are only ever added (old rows keep NULL there and read as "not recorded"), never rewritten."""

from __future__ import annotations

import sqlite3

DDL = """
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    tick_id TEXT NOT NULL,
    action TEXT NOT NULL,
    args TEXT NOT NULL,
    args_hash TEXT NOT NULL,
    rationale TEXT NOT NULL,
    risk TEXT NOT NULL,
    rule_ids TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    decided_by TEXT,
    decided_at REAL,
    reason TEXT,
    channel TEXT,
    message_ts TEXT,
    context TEXT,
    prediction TEXT,
    reasons TEXT
);
CREATE INDEX IF NOT EXISTS approvals_status ON approvals(status, expires_at);
"""
# One pending approval per action and arguments, enforced by SQLite rather than a read-then-write, so
# concurrent ticks (or a tick and a chat request) cannot open two prompts for one need.
_ONE_PENDING = (
    "CREATE UNIQUE INDEX IF NOT EXISTS approvals_one_pending ON approvals(args_hash) WHERE status = 'pending'"
)
# Stores made before the index may hold such twins already: all but the newest count as expired.
_EXPIRE_TWINS = """
UPDATE approvals SET status = 'expired', reason = 'superseded by a newer approval for the same action'
WHERE status = 'pending' AND EXISTS (
    SELECT 1 FROM approvals newer WHERE newer.args_hash = approvals.args_hash AND newer.status = 'pending'
    AND (newer.created_at > approvals.created_at
         OR (newer.created_at = approvals.created_at AND newer.id > approvals.id))
)
"""


def migrate(conn: sqlite3.Connection) -> None:
    """Inside the caller's write transaction: the columns and the index later versions added."""
    columns = {r["name"] for r in conn.execute("PRAGMA table_info(approvals)")}
    if "context" not in columns:  # a store made before approvals showed observed facts
        conn.execute("ALTER TABLE approvals ADD COLUMN context TEXT")
    if "prediction" not in columns:  # ... and before proposals carried a prediction
        conn.execute("ALTER TABLE approvals ADD COLUMN prediction TEXT")
    if "reasons" not in columns:  # ... and before they kept the policy's reasons (NULL: ask the log)
        conn.execute("ALTER TABLE approvals ADD COLUMN reasons TEXT")
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'approvals_one_pending'").fetchone():
        conn.execute(_EXPIRE_TWINS)
        conn.execute(_ONE_PENDING)
