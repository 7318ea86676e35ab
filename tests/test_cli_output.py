"""CLI output read through a pipe, as CI, journald, `| cat` and `| jq` read it: every check runs the command in a
subprocess with stdout captured (not a terminal) unless it says it uses a pty."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO
from support.agent_rig import NO_CPU_CEILING, copy_brain, kill_workers, write_policy

ISO_WITH_AGE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[+-]\d\d:\d\d|Z) \((?:just now|in \d+ \w+|\d+ \w+ ago)\)"
# a sentence longer than any terminal, with what Rich would otherwise eat or colour: brackets, paths, numbers
RATIONALE = (
    "extract backlog 1000 over 2 worker(s) [target 500/worker] drains in 41 min at 24.4/min; "
    + "one more worker on /srv/brain/lance/records.lance cuts it to 28 min; " * 6
    + "cpu 62% on [brain] under the 90% ceiling"
)

_REPORT_SCRIPT = """
import sys
from agent.service.agent import TickReport
from core.domain import Outcome, PlannerInfo, Proposal

report = TickReport(
    tick_id="t-piped",
    proposals=(Proposal(action="scale_workers", args={"kind": "extract", "count": 3}, rationale=sys.argv[2]),),
    outcomes=(Outcome(status="done", detail="started [extract-1] and [extract-2]", data={"started": 2}),),
    verdicts=({"verdict": "allow", "rule_ids": ["scale.within_limits"]},),
    planner=PlannerInfo(kind="rules"),
    duration_s=0.12,
)
if sys.argv[1] == "text":
    from agent.cli.report import print_report
    print_report(report)
else:
    from agent.cli.report import log_report
    from agent.service.logging_setup import configure_logging
    configure_logging(json_logs=True)
    log_report(report)
"""


def plain_env(**extra: str) -> dict[str, str]:
    """The test's environment without what changes Rich's output (a width, colour switches)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
    return {**env, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **extra}


def python(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env or plain_env(), timeout=timeout, cwd=REPO
    )


def brainops(config: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return python("-m", "agent.cli", *args, env=plain_env(BRAINOPS_CONFIG=str(config), **env), timeout=timeout)


def write_config(tmp: Path, *lines: str, brain: str | None = None) -> Path:
    policy = write_policy(tmp / "policy.yaml", **NO_CPU_CEILING)
    body = [f'home = "{tmp / "home"}"', f'policy_file = "{policy}"']
    body += [f'brain_uri = "{brain}"'] if brain else ["demo_seed = true"]
    path = tmp / "brainops.toml"
    path.write_text("\n".join([*body, *lines, "[[hosts]]", 'name = "local"', 'role = "brain"']) + "\n")
    return path


# ---------------------------------------------------------------- the console


def test_off_a_terminal_a_decision_is_one_whole_plain_line() -> None:
    done = python("-c", _REPORT_SCRIPT, "text", RATIONALE)
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout  # no colour codes in a pipe
    lines = done.stdout.splitlines()
    assert re.fullmatch(ISO_WITH_AGE + r" tick t-piped planner=rules 0\.12s", lines[0]), lines[0]
    assert lines[1] == f"   scale_workers kind=extract count=3 <- {RATIONALE}"  # never broken, brackets kept
    assert lines[2] == "     done allow (scale.within_limits) started [extract-1] and [extract-2]"
    assert len(lines) == 3


def test_columns_is_a_width_asked_for() -> None:
    done = python("-c", _REPORT_SCRIPT, "text", RATIONALE, env=plain_env(COLUMNS="60"))
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 60
    assert len(done.stdout.splitlines()) > 5


def _on_a_pty(**env: str) -> bytes:
    import pty

    master, slave = pty.openpty()
    code = "from agent.cli.console import make_console; make_console().print('[red]alert[/] ' + 'word ' * 40)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=slave, stderr=subprocess.PIPE, env=plain_env(TERM="xterm-256color", **env)
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    return b"".join(chunks)


def test_on_a_terminal_rich_colours_unless_no_color() -> None:
    assert b"\x1b[" in _on_a_pty()
    plain = _on_a_pty(NO_COLOR="1")
    assert b"\x1b[" not in plain and b"alert word" in plain


# ---------------------------------------------------------------- json_logs


def test_json_logs_print_one_object_per_decision_on_stdout() -> None:
    done = python("-c", _REPORT_SCRIPT, "json", RATIONALE)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    (event,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert event["logger"] == "brainops.tick" and event["event"] == "decision" and event["ts"].endswith("Z")
    assert event["tick_id"] == "t-piped" and event["action"] == "scale_workers"
    assert event["arguments"] == {"kind": "extract", "count": 3} and event["rationale"] == RATIONALE
    assert event["verdict"] == "allow" and event["rule_ids"] == ["scale.within_limits"]
    assert event["status"] == "done" and event["data"] == {"started": 2}


@pytest.mark.slow
def test_run_with_json_logs_writes_only_json_lines(tmp_path: Path, small_brain: str) -> None:
    config = write_config(tmp_path, "json_logs = true", brain=copy_brain(small_brain, tmp_path))
    try:
        done = brainops(config, "run", "--ticks", "2", "--interval", "1", timeout=300)
    finally:
        kill_workers(tmp_path / "home" / "run")
    assert done.returncode == 0, done.stdout + done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]  # `| jq .` reads every line
    err = [json.loads(line) for line in done.stderr.splitlines()]
    decisions = [e for e in out if e.get("event") == "decision"]
    assert len({e["tick_id"] for e in decisions}) == 2, out
    assert all(e["logger"] == "brainops.tick" and e["action"] and "rationale" in e for e in decisions)
    assert any(e["msg"].startswith("brainops run: tick every 1s") for e in err), err
    assert any(e["msg"].startswith("stopped after 2 tick(s)") for e in err), err


# ---------------------------------------------------------------- --json keeps stdout for the data


def test_tick_dry_run_json_without_a_brain_prints_nothing_on_stdout(tmp_path: Path) -> None:
    done = brainops(write_config(tmp_path), "tick", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "a tick would seed a small demo brain there; dry run, nothing written" in done.stderr


@pytest.mark.slow
def test_tick_json_seeds_with_its_news_on_stderr(tmp_path: Path) -> None:
    try:
        done = brainops(write_config(tmp_path), "tick", "--json", timeout=300)
    finally:
        kill_workers(tmp_path / "home" / "run")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # the whole of stdout is the one document
    assert report["tick_id"].startswith("t") and report["decisions"]
    assert "seeding a small demo brain" in done.stderr and "seeding" not in done.stdout


def _pending_approval(config: Path) -> str:
    done = python(
        "-c",
        "from core.settings import load_settings; from agent.state.approvals import ApprovalStore;"
        "s = load_settings(); s.ensure_dirs();"
        "ApprovalStore(s.state_db).create('apr-t20261201193039-55f0e3-run_dedup', 't20261201193039-55f0e3',"
        "'run_dedup', {'dry_run': False, 'expected_merges': 24}, 'dedup backlog 24 [est 8.00%]', 'high',"
        "('risk.dedup',), 'rules', 900)",
        env=plain_env(BRAINOPS_CONFIG=str(config)),
    )
    assert done.returncode == 0, done.stderr
    return "apr-t20261201193039-55f0e3-run_dedup"


def test_status_piped_and_as_json(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    approval_id = _pending_approval(config)
    text = brainops(config, "status")
    assert text.returncode == 0, text.stderr
    assert "No tick has run yet" in text.stdout
    row = next(line for line in text.stdout.splitlines() if "run_dedup" in line)
    assert approval_id in row  # the whole id, to copy into `brainops approve`
    assert re.search(ISO_WITH_AGE, row) and "(in 1" in row and "risk.dedup" in row  # expires in 14-15 min
    assert not re.search(r"\b1\d{9}\b", text.stdout)  # no epoch seconds

    done = brainops(config, "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    (pending,) = status["pending_approvals"]
    assert pending["id"] == approval_id and pending["rule_ids"] == ["risk.dedup"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", pending["expires"])
    assert status["observation"] is None and status["paused_by"] is None


def test_doctor_piped_keeps_every_fix_whole_and_json_is_one_object_per_check(tmp_path: Path) -> None:
    config = write_config(tmp_path, brain=str(tmp_path / "no-brain"))
    as_json = brainops(config, "doctor", "--json")
    checks = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert as_json.returncode == 1 and any(c["status"] == "FAIL" for c in checks), as_json.stdout
    table = brainops(config, "doctor")
    assert table.returncode == 1
    assert "\x1b[" not in table.stdout and "…" not in table.stdout
    for check in checks:
        assert check["fix"] in table.stdout and check["detail"] in table.stdout  # nothing cut or wrapped


def test_hosts_check_json_is_json_or_nothing(tmp_path: Path) -> None:
    local_only = brainops(write_config(tmp_path), "hosts", "check", "--json")
    assert local_only.returncode == 0 and local_only.stdout == ""
    assert "no SSH hosts configured" in local_only.stderr

    gone = [
        "[[hosts]]",
        'name = "gone"',
        'address = "127.0.0.9"',
        "port = 1",
        'user = "nobody"',
        f'known_hosts = "{tmp_path / "known_hosts"}"',
    ]
    done = brainops(write_config(tmp_path, *gone), "hosts", "check", "--json", "--timeout", "2")
    assert done.returncode == 1, done.stderr  # unreachable: failed, not a usage error
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["host"] == "gone" and row["reachable"] is False and row["error"]
