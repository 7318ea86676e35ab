"""Approval store: idempotent create, binding, approver list, exactly-once answers, TTL expiry."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from pathlib import Path

import pytest

from agent.state.approvals import (
    AnswerResult,
    Approval,
    ApprovalRefError,
    ApprovalStore,
    answer_approval,
    args_binding_hash,
    verify_binding,
)
from agent.state.decisions import DecisionLog
from core.domain import Outcome
from core.settings import Settings
from core.timefmt import when

NOW = 1_700_000_000.0
ARGS = {"kind": "embed", "host": "gpu", "count": 6}
APPROVERS = ("alice", "Bob")


@pytest.fixture
def store(tmp_path: Path) -> ApprovalStore:
    return ApprovalStore(tmp_path / "state.db")


def _create(store: ApprovalStore, approval_id: str = "ap-1", ttl_s: float = 600.0, args: dict | None = None):
    return store.create(
        approval_id,
        "tick-1",
        "scale_workers",
        ARGS if args is None else args,
        "backlog of 40k",
        "high",
        ("scale.approval",),
        "rules",
        ttl_s,
        now=NOW,
    )


def test_create_is_idempotent_and_survives_reopen(store: ApprovalStore) -> None:
    first = _create(store)
    again = _create(store)
    assert first == again and first.status == "pending" and first.expires_at == NOW + 600
    reopened = ApprovalStore(store.path)
    assert reopened.get("ap-1") == first
    assert [a.id for a in reopened.pending(NOW + 10)] == ["ap-1"]


def test_same_id_with_other_args_is_refused(store: ApprovalStore) -> None:
    _create(store)
    with pytest.raises(ValueError, match="different action"):
        _create(store, args={**ARGS, "count": 60})


def test_binding_to_exact_action_and_args(store: ApprovalStore) -> None:
    approval = _create(store)
    assert verify_binding(approval, "scale_workers", dict(reversed(list(ARGS.items()))))
    assert not verify_binding(approval, "scale_workers", {**ARGS, "count": 7})
    assert not verify_binding(approval, "stop_worker", ARGS)


def test_approve_once_then_already_decided(store: ApprovalStore) -> None:
    _create(store)
    result = store.answer("ap-1", True, "alice", APPROVERS, now=NOW + 5)
    assert result.ok and result.approval is not None and result.approval.approved
    assert result.decided_by == "alice" and result.decided_at == NOW + 5
    second = store.answer("ap-1", False, "bob", APPROVERS, reason="too many", now=NOW + 6)
    assert second.status == "already_decided"
    assert second.decided_by == "alice" and second.decided_at == NOW + 5 and "alice" in second.message
    assert store.get("ap-1").status == "approved"  # type: ignore[union-attr]
    assert store.pending(NOW + 7) == []


def test_deny_keeps_reason(store: ApprovalStore) -> None:
    _create(store)
    result = store.answer("ap-1", False, "BOB", APPROVERS, reason="not during the demo", now=NOW + 1)
    assert result.ok and result.approval.status == "denied"  # type: ignore[union-attr]
    assert result.approval.reason == "not during the demo"  # type: ignore[union-attr]


def test_unlisted_approver_and_unknown_id_are_refused(store: ApprovalStore) -> None:
    _create(store)
    assert store.answer("ap-1", True, "mallory", APPROVERS, now=NOW).status == "not_approver"
    assert store.answer("ap-1", True, "alice", (), now=NOW).status == "not_approver"
    assert store.answer("ap-1", True, "", APPROVERS, now=NOW).status == "not_approver"
    assert store.answer("nope", True, "alice", APPROVERS, now=NOW).status == "not_found"
    assert store.get("ap-1").status == "pending"  # type: ignore[union-attr]


def test_answer_after_ttl_is_expired(store: ApprovalStore) -> None:
    _create(store, ttl_s=60)
    result = store.answer("ap-1", True, "alice", APPROVERS, now=NOW + 60)
    assert result.status == "expired" and result.approval.status == "expired"  # type: ignore[union-attr]
    assert store.answer("ap-1", True, "alice", APPROVERS, now=NOW + 61).status == "expired"


def test_expire_due_flips_only_overdue_pending(store: ApprovalStore) -> None:
    for count, (approval_id, ttl_s) in enumerate((("short", 30), ("long", 3600), ("answered", 30))):
        _create(store, approval_id, ttl_s=ttl_s, args={**ARGS, "count": count})
    store.answer("answered", True, "alice", APPROVERS, now=NOW + 1)
    expired = store.expire_due(NOW + 31)
    assert [a.id for a in expired] == ["short"] and expired[0].status == "expired"
    assert store.expire_due(NOW + 32) == []
    assert [a.id for a in store.pending(NOW + 32)] == ["long"]
    assert store.get("answered").status == "approved"  # type: ignore[union-attr]


def _race(store: ApprovalStore, approval_id: str, contenders: int) -> list[AnswerResult]:
    barrier = threading.Barrier(contenders)
    results: list[AnswerResult] = []

    def answer(i: int) -> None:
        barrier.wait()
        results.append(store.answer(approval_id, i % 2 == 0, "alice", APPROVERS, now=NOW + i))

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_concurrent_answers_exactly_one_wins(store: ApprovalStore) -> None:
    for round_ in range(5):
        approval_id = f"race-{round_}"
        _create(store, approval_id)
        results = _race(store, approval_id, 8)
        assert sorted(r.status for r in results) == ["already_decided"] * 7 + ["ok"]
        winner = next(r for r in results if r.ok)
        assert store.get(approval_id) == winner.approval


def test_message_ref(store: ApprovalStore) -> None:
    _create(store)
    assert store.set_message_ref("ap-1", "C123", "1700000000.000100")
    assert not store.set_message_ref("missing", "C123", "1")
    assert store.by_message_ref("C123", "1700000000.000100").id == "ap-1"  # type: ignore[union-attr]


def test_bad_create_input(store: ApprovalStore) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        _create(store, ttl_s=0)
    with pytest.raises(ValueError, match="id"):
        _create(store, approval_id="")


def test_answer_approval_uses_policy_approvers_and_hook(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    default = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
    policy.write_text(re.sub(r"(?m)^approvers:.*$", "approvers: [alice]", default.read_text()))
    settings = Settings(home=tmp_path / "home", policy_file=policy)
    store = ApprovalStore(settings.state_db)
    _create(store)
    resumed: list[str] = []

    def on_answered(_settings: Settings, approval: Approval) -> None:
        resumed.append(f"{approval.id}:{approval.status}")

    refused = answer_approval(settings, "ap-1", True, "mallory", on_answered=on_answered, now=NOW)
    assert refused.status == "not_approver" and resumed == []
    result = answer_approval(settings, "ap-1", True, "alice", on_answered=on_answered, now=NOW + 1)
    assert result.ok and resumed == ["ap-1:approved"]
    again = answer_approval(settings, "ap-1", True, "alice", on_answered=on_answered, now=NOW + 2)
    assert again.status == "already_decided" and resumed == ["ap-1:approved"]


def test_one_pending_approval_per_action_and_arguments(store: ApprovalStore) -> None:
    first = _create(store, "ap-1")
    twin = _create(store, "ap-2")  # the same action and arguments, asked again (another tick, another process)
    assert twin.id == "ap-1" and [a.id for a in store.pending(NOW)] == ["ap-1"]
    store.answer("ap-1", False, "alice", APPROVERS, now=NOW + 1)
    assert _create(store, "ap-3").id == "ap-3"  # once answered, the same need may be asked again
    assert first.args_hash == twin.args_hash


def test_concurrent_creates_open_one_approval(tmp_path: Path) -> None:
    """Eight processes' worth of ticks racing to ask for the same dedup: one prompt (was 8)."""
    db = tmp_path / "state.db"
    ApprovalStore(db)
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def ask(i: int) -> None:
        store = ApprovalStore(db)
        barrier.wait()
        ids.append(_create(store, f"ap-{i}").id)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(ids) == 8 and len(set(ids)) == 1
    assert len(ApprovalStore(db).pending(NOW)) == 1


def test_rules_and_reasons_are_kept_and_paired(store: ApprovalStore) -> None:
    rules = ("risk.run_dedup.large_merge", "risk.run_dedup.live_merge")
    reasons = ("more than 200 expected merges", "a live (not dry-run) dedup merging more than 20 entities")
    made = store.create("ap-r", "t", "run_dedup", {"n": 1}, "why", "high", rules, "rules", 60, now=NOW, reasons=reasons)
    again = ApprovalStore(store.path).get("ap-r")
    assert again == made and again.reasons == reasons and again.rules == tuple(zip(rules, reasons, strict=True))
    odd = store.create("ap-o", "t", "run_dedup", {"n": 2}, "", "high", rules, "rules", 60, now=NOW, reasons=("one",))
    assert odd.rules == ((rules[0], None), (rules[1], None)) and odd.unpaired_reasons == ("one",)
    assert _create(store).reasons == () and _create(store).rules == (("scale.approval", None),)


def test_a_store_made_by_an_older_version_is_migrated_in_place(tmp_path: Path) -> None:
    """A state.db from before context, prediction and reasons were kept: the columns are added, old rows read
    as "not recorded" (their reasons, where the decision log has them, from there) and can still be answered."""
    db = tmp_path / "state.db"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE approvals (id TEXT PRIMARY KEY, tick_id TEXT NOT NULL, action TEXT NOT NULL, args TEXT NOT NULL,"
        " args_hash TEXT NOT NULL, rationale TEXT NOT NULL, risk TEXT NOT NULL, rule_ids TEXT NOT NULL,"
        " requested_by TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,"
        " status TEXT NOT NULL DEFAULT 'pending', decided_by TEXT, decided_at REAL, reason TEXT, channel TEXT,"
        " message_ts TEXT)"
    )
    binding = args_binding_hash("scale_workers", ARGS)
    conn.execute(
        "INSERT INTO approvals (id, tick_id, action, args, args_hash, rationale, risk, rule_ids, requested_by,"
        " created_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            "ap-old",
            "t-old",
            "scale_workers",
            json.dumps(ARGS),
            binding,
            "backlog",
            "high",
            '["r.x"]',
            "rules",
            NOW,
            NOW + 600,
        ),
    )
    conn.commit()
    conn.close()
    store = ApprovalStore(db)
    columns = {row[1] for row in sqlite3.connect(db).execute("PRAGMA table_info(approvals)")}
    assert {"context", "prediction", "reasons"} <= columns
    old = store.get("ap-old")
    assert old is not None and old.reasons == () and old.prediction is None and old.context == {}
    DecisionLog(db).append(
        tick_id="t-old",
        action="scale_workers",
        args=ARGS,
        verdict="needs_approval",
        rule_ids=("r.x",),
        reasons=("scaling above 4",),
        outcome=Outcome(status="pending", data={"approval_id": "ap-old"}),
    )
    assert store.get("ap-old").rules == (("r.x", "scaling above 4"),)  # type: ignore[union-attr]
    assert store.answer("ap-old", True, "alice", APPROVERS, now=NOW + 1).ok


def test_resolve_takes_the_full_id_or_a_unique_start(store: ApprovalStore) -> None:
    for i, approval_id in enumerate(("apr-t1-0", "apr-t1-1", "apr-t2-0")):
        _create(store, approval_id, args={**ARGS, "count": i})
    assert store.resolve("apr-t2").id == "apr-t2-0"
    assert store.resolve(" apr-t1-1 ").id == "apr-t1-1"
    with pytest.raises(ApprovalRefError, match=r"'apr-t1' is the start of 2 open approvals \(apr-t1-\d, apr-t1-\d\)"):
        store.resolve("apr-t1", now=NOW)
    store.answer("apr-t1-0", True, "alice", APPROVERS, now=NOW)
    assert store.resolve("apr-t1", now=NOW).id == "apr-t1-1"  # the only one still open
    assert store.resolve("apr-t1-0").status == "approved"  # a full id always names its approval
    with pytest.raises(ApprovalRefError, match="no approval id is or starts with 'apr-x'"):
        store.resolve("apr-x")
    with pytest.raises(ApprovalRefError, match="empty"):
        store.resolve("  ")
    with pytest.raises(ApprovalRefError, match="start of 3 approvals"):
        store.resolve("apr", now=NOW + 10_000)  # none open: all three named


def test_refusals_give_iso_times_not_epoch(store: ApprovalStore) -> None:
    _create(store, ttl_s=60)
    store.answer("ap-1", True, "alice", APPROVERS, now=NOW + 5)
    again = store.answer("ap-1", True, "alice", APPROVERS, now=NOW + 65)
    assert f"at {when(NOW + 5, NOW + 65)}" in again.message and str(int(NOW)) not in again.message
    _create(store, "ap-2", ttl_s=60, args={**ARGS, "count": 1})
    late = store.answer("ap-2", True, "alice", APPROVERS, now=NOW + 120)
    assert late.status == "expired" and f"expired at {when(NOW + 60, NOW + 120)}" in late.message
    assert "(1 min ago)" in late.message and str(int(NOW)) not in late.message
