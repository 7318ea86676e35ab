"""Tamper evidence of the decision log against someone who can write state.db but has not got the key.

Each attack is done the way a knowing attacker would: raw SQL on state.db (triggers dropped, sqlite_sequence
fixed), hashes recomputed with the algorithm from the source but without the key. `brainops decisions verify
--expect-head N:HASH` compares the log with a head recorded elsewhere (metric, JSON log line, Slack digest).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner, Result

from agent.cli import state as cli_state
from agent.service.logging_setup import JsonFormatter, RedactingFormatter
from agent.service.metrics import BrainopsMetrics
from agent.slack.backend import SlackNotifier
from agent.slack.blocks import tick_digest
from agent.state.decisions import GENESIS_HASH, DecisionKeyError, DecisionLog, verify_log
from core.domain import Observation, Outcome, PlannerInfo

REPO = Path(__file__).resolve().parent.parent
_JSON_COLUMNS = ("planner", "args", "rule_ids", "reasons", "outcome", "extra")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state dir and, beside it (not inside), the config dir where the key file is made."""
    monkeypatch.setenv("BRAINOPS_HOME", str(tmp_path / "home"))
    config = tmp_path / "brainops.toml"
    config.write_text("")  # every setting at its default (decision_key_file too)
    monkeypatch.setenv("BRAINOPS_CONFIG", str(config))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("BRAINOPS_DECISION_KEY", raising=False)
    monkeypatch.delenv("BRAINOPS_DECISION_KEY_FILE", raising=False)
    return tmp_path / "home"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "config" / "brainops" / "decision-log.key"


@pytest.fixture
def log(home: Path) -> DecisionLog:
    return DecisionLog(home / "state.db")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What `brainops run --json-logs` writes for the decision log's logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("brainops.decisions")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _append(log: DecisionLog, n: int) -> None:
    for i in range(n):
        log.append(
            tick_id=f"t{i}",
            action="scale_workers",
            args={"kind": "embed", "host": "local", "count": i},
            rationale=f"backlog step {i}",
            outcome=Outcome(status="done", detail=f"{i} running"),
            now=1_700_000_000.0 + i,
        )


def _cli(*args: str) -> Result:
    app = typer.Typer()
    cli_state.register(app)
    return CliRunner().invoke(app, ["decisions", *args])


def _head() -> str:
    result = _cli("head")
    assert result.exit_code == 0, result.output
    head = result.output.strip()
    assert re.fullmatch(r"\d+:[0-9a-f]{32}", head), head
    return head


def _one_line(result: Result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def _attack(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER IF EXISTS decisions_no_update")
    conn.execute("DROP TRIGGER IF EXISTS decisions_no_delete")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _recompute_from(db: Path, start_seq: int, attacker_key: bytes | None) -> None:
    """The attacker's rewrite: for every record from `start_seq` on, sha256 over the record (the source shows
    how) linked to the previous hash, and, where the table has a `mac` column, an hmac under a key of their own
    (they cannot read the real one); with no key, NULL (pretending the records predate the hmac). Records that
    had no hmac keep none."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    conn.execute("DROP TRIGGER IF EXISTS decisions_no_update")
    columns = [r["name"] for r in conn.execute("PRAGMA table_info(decisions)")]
    rows = conn.execute("SELECT * FROM decisions ORDER BY seq").fetchall()
    prev_hash, prev_mac = GENESIS_HASH, ""
    for row in rows:
        fields = dict(row)
        if fields["seq"] >= start_seq:
            body = {k: v for k, v in fields.items() if k not in ("hash", "mac")}
            body["prev_hash"] = prev_hash
            for column in _JSON_COLUMNS:
                body[column] = json.loads(body[column])
            fields["prev_hash"], fields["hash"] = prev_hash, hashlib.sha256(_canonical(body).encode()).hexdigest()
            if "mac" in columns:
                if attacker_key is None or fields["mac"] is None:
                    fields["mac"] = None
                else:
                    message = _canonical(
                        {
                            "v": "brainops-decision-log/hmac-sha256/v1",
                            "seq": fields["seq"],
                            "hash": fields["hash"],
                            "prev_mac": prev_mac,
                        }
                    )
                    fields["mac"] = hmac.new(attacker_key, message.encode(), hashlib.sha256).hexdigest()
            sets = ", ".join(f"{c} = ?" for c in ("prev_hash", "hash", *(("mac",) if "mac" in columns else ())))
            values = [fields["prev_hash"], fields["hash"], *([fields["mac"]] if "mac" in columns else [])]
            conn.execute(f"UPDATE decisions SET {sets} WHERE seq = ?", (*values, fields["seq"]))
        prev_hash, prev_mac = fields["hash"], fields.get("mac") or ""
    conn.commit()
    conn.close()


# ---------------------------------------------------------------- (a) truncation


def test_truncated_tail_with_fixed_sqlite_sequence_fails_expect_head(log: DecisionLog) -> None:
    _append(log, 6)
    recorded = _head()
    assert recorded.startswith("6:")
    _attack(
        log.path,
        "DELETE FROM decisions WHERE seq > 4",
        "UPDATE sqlite_sequence SET seq = 4 WHERE name = 'decisions'",
    )
    # Without the recorded head a clean truncation is indistinguishable from a shorter log: that is why the
    # head is exported. Verify says which head it sees.
    plain = _cli("verify")
    assert plain.exit_code == 0 and "head 4:" in plain.output, plain.output

    result = _cli("verify", "--expect-head", recorded)
    assert result.exit_code == 1, result.output
    line = _one_line(result)
    assert line.startswith("TAMPERED at seq 5") and "truncated" in line and "ends at seq 4" in line


def test_truncated_tail_without_fixing_sqlite_sequence_fails_even_without_a_head(log: DecisionLog) -> None:
    _append(log, 4)
    _attack(log.path, "DELETE FROM decisions WHERE seq > 2")
    result = _cli("verify")
    assert result.exit_code == 1 and "TAMPERED at seq 3" in result.output and "truncated" in result.output


# ---------------------------------------------------------------- (b) wipe


@pytest.mark.parametrize(
    "statements",
    [
        ("DELETE FROM decisions", "DELETE FROM sqlite_sequence WHERE name = 'decisions'"),
        ("DROP TABLE decisions",),
    ],
    ids=["rows-deleted", "table-dropped"],
)
def test_wiped_log_fails_expect_head(log: DecisionLog, statements: tuple[str, ...]) -> None:
    _append(log, 3)
    recorded = _head()
    _attack(log.path, *statements)
    plain = _cli("verify")
    assert plain.exit_code == 0 and "ok: 0 records, empty log" in plain.output, plain.output

    result = _cli("verify", "--expect-head", recorded)
    assert result.exit_code == 1, result.output
    line = _one_line(result)
    assert line.startswith("TAMPERED at seq 1") and "wiped" in line and recorded in line


def test_wiped_rows_with_sqlite_sequence_left_fail_without_a_head(log: DecisionLog) -> None:
    _append(log, 3)
    _attack(log.path, "DELETE FROM decisions")
    result = _cli("verify")
    assert result.exit_code == 1 and "TAMPERED at seq 1" in result.output and "wiped" in result.output


# ---------------------------------------------------------------- (c) edit and recompute without the key


def test_edit_recomputed_with_another_key_fails_at_that_record(log: DecisionLog) -> None:
    _append(log, 6)
    recorded = _head()
    _attack(log.path, "UPDATE decisions SET action = 'noop', args = '{}' WHERE seq = 3")
    _recompute_from(log.path, 3, attacker_key=b"the attacker's own key, not the real one")
    for args in (("verify",), ("verify", "--expect-head", recorded)):
        result = _cli(*args)
        assert result.exit_code == 1, result.output
        line = _one_line(result)
        assert line.startswith("TAMPERED at seq 3") and "hmac does not match" in line, line
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 3 and report.checked == 2


def test_edit_recomputed_as_unkeyed_records_fails_at_that_record(log: DecisionLog) -> None:
    _append(log, 5)
    _attack(log.path, "UPDATE decisions SET rationale = 'nothing to see' WHERE seq = 2")
    _recompute_from(log.path, 2, attacker_key=None)  # "these predate the hmac"
    result = _cli("verify")
    assert result.exit_code == 1
    line = _one_line(result)
    assert line.startswith("TAMPERED at seq 2") and "no hmac" in line, line


def test_whole_log_rewritten_as_legacy_passes_plain_verify_honestly_but_not_the_head(log: DecisionLog) -> None:
    _append(log, 4)
    recorded = _head()
    _attack(log.path, "UPDATE decisions SET action = 'noop' WHERE seq = 1")
    _recompute_from(log.path, 1, attacker_key=None)
    plain = _cli("verify")
    assert plain.exit_code == 0 and "no hmac yet" in plain.output, plain.output  # says it proves little
    result = _cli("verify", "--expect-head", recorded)
    assert result.exit_code == 1 and "TAMPERED at seq 4" in result.output and "rewritten" in result.output


# ---------------------------------------------------------------- (d) an untouched log, and its exported head


def test_untouched_log_verifies_and_its_head_is_the_metric_the_log_line_and_the_digest(
    log: DecisionLog, json_log: io.StringIO
) -> None:
    _append(log, 5)
    head = _head()
    seq, digest = head.split(":")

    result = _cli("verify", "--expect-head", head)
    assert result.exit_code == 0, result.output
    line = _one_line(result)
    assert line.startswith("ok: 5 records") and "hmac-sha256 keyed" in line
    assert f"matches the expected head {head}" in line
    assert f"head {head}" in line
    assert _cli("verify", "--expect-head", f"{seq}:{digest[:16]}").exit_code == 0  # a shorter prefix will do
    assert _cli("verify", "--expect-head", "3:" + "0" * 32).exit_code == 1  # an older head must match too
    logged = [json.loads(x) for x in json_log.getvalue().splitlines()]
    lines = [x for x in logged if x["msg"] == "decision chain head"]  # (the first append also made the key)
    earlier = lines[2]
    assert _cli("verify", "--expect-head", earlier["head"]).exit_code == 0  # any earlier recorded head

    metrics = BrainopsMetrics()
    metrics.update_state(Observation(time=1.0), chain_head=log.head())
    samples = {s.name: s for fam in text_string_to_metric_families(metrics.exposition().decode()) for s in fam.samples}
    assert samples["brainops_decision_chain_seq"].value == int(seq)
    assert samples["brainops_decision_chain_head"].labels == {"seq": seq, "hash": digest}

    assert len(lines) == 5 and all(x["logger"] == "brainops.decisions" and x["level"] == "info" for x in lines)
    assert [x["seq"] for x in lines] == [1, 2, 3, 4, 5]
    assert lines[-1]["seq"] == int(seq) and lines[-1]["hash"] == digest and lines[-1]["head"] == head

    notifier = SlackNotifier(SimpleNamespace(decisions=log), client=None, channel="#ops")  # type: ignore[arg-type]
    _text, blocks = tick_digest({"tick_id": "t9", "decisions": [], "chain_head": notifier._chain_head()})
    assert blocks[-1]["elements"][0]["text"] == f"decision chain head `{head}`"


def test_head_and_expect_head_arguments(log: DecisionLog) -> None:
    empty = _cli("head")
    assert empty.exit_code == 1 and "no decision records" in empty.output
    _append(log, 1)
    for bad in ("1", "x:abcdef0123456789", "1:abc", "0:" + "a" * 32, "1:" + "g" * 32):
        result = _cli("verify", "--expect-head", bad)
        assert result.exit_code == 2 and "--expect-head" in result.output, (bad, result.output)


# ---------------------------------------------------------------- legacy logs


_OLD_DDL = """
CREATE TABLE decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, tick_id TEXT NOT NULL, time REAL NOT NULL,
    planner TEXT NOT NULL, action TEXT NOT NULL, args TEXT NOT NULL, rationale TEXT NOT NULL,
    observation_digest TEXT, verdict TEXT, rule_ids TEXT NOT NULL, reasons TEXT NOT NULL, approver TEXT,
    approved_at REAL, outcome TEXT NOT NULL, idempotency_key TEXT, extra TEXT NOT NULL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL
)"""


def _legacy_log(db: Path, n: int) -> None:
    """A state.db as the code before the hmac chain wrote it: no `mac` column, sha256 chain only."""
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    conn.execute(_OLD_DDL)
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        fields: dict[str, Any] = {
            "id": f"old{seq}",
            "tick_id": f"t{seq}",
            "time": 1_600_000_000.0 + seq,
            "planner": PlannerInfo().model_dump(mode="json"),
            "action": "noop",
            "args": {},
            "rationale": "",
            "observation_digest": None,
            "verdict": None,
            "rule_ids": [],
            "reasons": [],
            "approver": None,
            "approved_at": None,
            "outcome": Outcome(status="noop").model_dump(mode="json"),
            "idempotency_key": None,
            "extra": {},
            "seq": seq,
            "prev_hash": prev,
        }
        fields["hash"] = hashlib.sha256(_canonical(fields).encode()).hexdigest()
        row = {k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in fields.items()}
        conn.execute(
            f"INSERT INTO decisions ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
        )
        prev = fields["hash"]
    conn.commit()
    conn.close()


def test_legacy_records_verify_as_legacy_and_are_sealed_by_the_first_keyed_one(home: Path) -> None:
    db = home / "state.db"
    _legacy_log(db, 3)
    before = _cli("verify")  # read-only: the old table is not even migrated
    assert before.exit_code == 0, before.output
    assert "ok: 3 records" in before.output and "legacy unkeyed sha256 up to seq 3 (no hmac yet" in before.output
    assert "mac" not in {r[1] for r in sqlite3.connect(db).execute("PRAGMA table_info(decisions)")}

    log = DecisionLog(db)  # the upgraded agent opens it: `mac` column added, old records untouched
    _append(log, 2)
    after = _cli("verify")
    assert after.exit_code == 0, after.output
    assert "ok: 5 records" in after.output
    assert "legacy unkeyed sha256 up to seq 3, hmac-sha256 keyed from seq 4" in after.output
    assert [r.mac is None for r in log.all()] == [True, True, True, False, False]

    _attack(db, "UPDATE decisions SET action = 'scale_workers' WHERE seq = 2")
    _recompute_from(db, 2, attacker_key=b"not the key either, sorry")  # legacy rows stay unkeyed
    sealed = _cli("verify")  # the edit is in a legacy record; the first keyed record's hmac covers it
    assert sealed.exit_code == 1, sealed.output
    assert _one_line(sealed).startswith("TAMPERED at seq 4") and "hmac does not match" in sealed.output


# ---------------------------------------------------------------- (e), (f) the key


def test_key_file_is_made_0600_outside_the_state_dir_on_first_use(log: DecisionLog, key_file: Path) -> None:
    assert not key_file.exists()
    assert _cli("verify").exit_code == 0 and not key_file.exists()  # verify never creates a key
    _append(log, 1)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.parent.stat().st_mode & 0o077 == 0
    assert len(key_file.read_text().strip()) == 64


def test_the_key_never_reaches_logs_output_or_state_db(
    log: DecisionLog, key_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stream = io.StringIO()
    handlers = [logging.StreamHandler(stream), logging.StreamHandler(stream)]
    handlers[0].setFormatter(JsonFormatter())
    handlers[1].setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    outputs: list[str] = []
    try:
        _append(log, 3)  # creates the key file (logs that it did), logs three heads
        outputs += [_cli("verify").output, _cli("head").output, _cli("verify", "--expect-head", _head()).output]
        file_key = key_file.read_text().strip()
        _attack(log.path, "UPDATE decisions SET action = 'noop' WHERE seq = 2")
        outputs.append(_cli("verify").output)

        env_key = "env-secret-" + "q7" * 16
        monkeypatch.setenv("BRAINOPS_DECISION_KEY", env_key)
        other = DecisionLog(tmp_path / "other" / "state.db")
        _append(other, 2)
        outputs.append(_cli("verify").output)  # the file-keyed log checked with the env key: mismatch
        monkeypatch.setenv("BRAINOPS_DECISION_KEY", "short-secret")
        with pytest.raises(DecisionKeyError) as short:
            _append(DecisionLog(tmp_path / "third" / "state.db"), 1)
        outputs += [str(short.value), _cli("verify").output]
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(level)
    logged = stream.getvalue()
    assert "decision chain head" in logged and "created the decision log key file" in logged
    assert "short-secret" not in "".join(outputs)
    for secret in (file_key, env_key):
        assert secret not in logged
        assert not any(secret in out for out in outputs)
        for db in (log.path, other.path):
            assert secret.encode() not in db.read_bytes()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_file_others_can_read_is_refused(log: DecisionLog, key_file: Path, mode: int) -> None:
    key_file.parent.mkdir(parents=True)
    key_file.write_text("k" * 64)
    os.chmod(key_file, mode)
    with pytest.raises(DecisionKeyError, match=f"mode {mode:04o}.*chmod 600"):
        _append(log, 1)
    assert log.count() == 0
    result = _cli("verify")
    assert result.exit_code == 2, result.output
    assert _one_line(result).startswith("error: refusing decision key file") and "k" * 64 not in result.output
    os.chmod(key_file, 0o600)
    _append(log, 1)
    assert _cli("verify").exit_code == 0


def test_a_key_file_inside_the_state_dir_is_refused(home: Path) -> None:
    inside = DecisionLog(home / "state.db", key_file=home / "decision-log.key")
    with pytest.raises(DecisionKeyError, match="inside the state directory"):
        inside.append(tick_id="t", action="noop", outcome=Outcome(status="noop"))
    assert not (home / "decision-log.key").exists()


def test_a_keyed_log_without_its_key_cannot_pass(log: DecisionLog, key_file: Path) -> None:
    _append(log, 2)
    key_file.unlink()
    result = _cli("verify")
    assert result.exit_code == 2 and "no decision key is available" in _one_line(result)
    with pytest.raises(DecisionKeyError):
        verify_log(log.path)


# ---------------------------------------------------------------- verify only reads


_MAKE_LOG = textwrap.dedent(
    """
    import sys
    from agent.state.decisions import DecisionLog
    from core.domain import Outcome
    log = DecisionLog(sys.argv[1])
    for i in range(3):
        log.append(tick_id="t", action="noop", args={"i": i}, outcome=Outcome(status="noop"))
    """
)


def test_verify_and_head_work_on_a_read_only_state_dir(home: Path) -> None:
    """Made by another process (closed: no -wal/-shm left), then the directory made immutable. A read-only
    SQLite connection cannot open a WAL database there; the old verify crashed ("unable to open database")."""
    db = home / "state.db"
    subprocess.run([sys.executable, "-c", _MAKE_LOG, str(db)], cwd=REPO, check=True, env=os.environ.copy())
    assert sorted(p.name for p in home.iterdir()) == ["state.db"]
    if subprocess.run(["chattr", "+i", str(home)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        with pytest.raises(OSError):
            (home / "probe").write_text("")  # really read-only, even for root
        verified = _cli("verify")
        assert verified.exit_code == 0 and "ok: 3 records" in verified.output, verified.output
        assert re.fullmatch(r"3:[0-9a-f]{32}", _head())
        assert _cli("verify", "--expect-head", _head()).exit_code == 0
    finally:
        subprocess.run(["chattr", "-i", str(home)], check=True)
    assert sorted(p.name for p in home.iterdir()) == ["state.db"]


def test_verify_does_not_set_up_the_schema_or_make_directories(
    log: DecisionLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write paths a full disk breaks are never taken: no schema DDL, no mkdir, no write transaction."""
    _append(log, 2)
    import agent.state.decision_chain as decision_chain
    import agent.state.decisions as decisions
    import core.statedb as statedb

    def refuse(*_a: Any, **_k: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    for module in (statedb, decisions, decision_chain):  # wherever verify might reach them from
        for name in ("init_schema", "write_tx", "resolve_db_path"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(Path, "mkdir", refuse)
    result = _cli("verify")
    assert result.exit_code == 0 and "ok: 2 records" in result.output, result.output
    assert _cli("head").exit_code == 0
