"""`brainops doctor` is read-only and precise: it creates no file (the example config, a missing home, an
existing state DB), prints no traceback (paramiko's included), and says in one sentence what failed where:
each way an SSH host fails, each errno the metrics port fails with."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.agent_rig import DEFAULT_POLICY
from support.prometheus import free_port
from test_doctor import doctor, write_config

EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "brainops.toml.example"


@pytest.fixture(autouse=True)
def _config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINOPS_CONFIG", "/nonexistent/brainops.toml")


class FakeServer:
    """A TCP listener on loopback that is not a working sshd: `close` hangs up at once, `garbage` answers
    like a web server, `silent` accepts and says nothing, `ssh1` offers an SSH version paramiko refuses."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.mode == "close":
                conn.close()
            elif self.mode == "garbage":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                self.held.append(conn)
            elif self.mode == "ssh1":
                conn.sendall(b"SSH-1.5-OldServer\r\n")
                self.held.append(conn)
            else:
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def fake_servers() -> Iterator[dict[str, FakeServer]]:
    servers = {mode: FakeServer(mode) for mode in ("close", "garbage", "silent", "ssh1")}
    yield servers
    for server in servers.values():
        server.close()


def example_config(tmp: Path, orchestrator: tuple[str, int], workerpc: tuple[str, int]) -> Path:
    """deploy/brainops.toml.example with every local path moved under `tmp` and both SSH hosts replaced."""
    text = EXAMPLE.read_text()
    replacements = {
        'address = "10.0.0.10"\nport = 22': f'address = "{orchestrator[0]}"\nport = {orchestrator[1]}',
        'address = "10.0.0.30"\nport = 22': f'address = "{workerpc[0]}"\nport = {workerpc[1]}',
        "/etc/brainops/policy.yaml": str(DEFAULT_POLICY),
        "/etc/brainops": str(tmp / "etc"),
        "/var/lib/brainops": str(tmp / "state"),
        "/srv/brain": str(tmp / "srv"),
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / "brainops.toml"
    path.write_text(text)
    return path


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_doctor_on_the_example_config_creates_no_file_and_prints_no_traceback(
    tmp_path: Path, fake_servers: dict[str, FakeServer]
) -> None:
    """The CLI as the unit's ExecStartPre runs it: home and state DB missing, hosts not speaking SSH. Stdout
    holds one JSON object per check, stderr no traceback, and the tree holds exactly the files it held."""
    config = example_config(
        tmp_path, ("127.0.0.1", fake_servers["close"].port), ("127.0.0.1", fake_servers["garbage"].port)
    )
    before = files_under(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "BRAINOPS_CONFIG"}
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "doctor", "-c", str(config), "--json", "--timeout", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1  # no brain, no keys, no Slack tokens: FAILs, each with its fix
    assert "Traceback" not in done.stderr and "paramiko" not in done.stderr, done.stderr
    rows = {r["name"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert files_under(tmp_path) == before
    assert not (tmp_path / "state").exists()
    assert rows["state db"]["status"] == "OK" and "does not exist yet" in rows["state db"]["detail"]
    assert rows["budget"]["status"] == "OK" and rows["decision key"]["status"] == "OK"
    orchestrator, workerpc = rows["host orchestrator"], rows["host workerpc"]
    assert orchestrator["status"] == "FAIL" and "closed it before any SSH greeting" in orchestrator["detail"]
    assert workerpc["status"] == "FAIL" and "is not an SSH server" in workerpc["detail"]
    assert "HTTP/1.1 400 Bad Request" in workerpc["detail"]
    for row in rows.values():
        assert "\n" not in row["detail"] + row["fix"] and "Traceback" not in row["detail"], row


def test_doctor_reads_an_existing_state_db_without_writing(tmp_path: Path) -> None:
    """The budget comes from the ledger as the agent left it; no -wal/-shm file and no schema are added."""
    home = tmp_path / "home"
    script = (
        "import sys; from llm.ledger import TokenLedger; ledger = TokenLedger(sys.argv[1], window_tokens=10_000); "
        "r = ledger.reserve('cheap', 2000); ledger.settle(r, tokens_in=1000, tokens_out=234, cost=0.5)"
    )
    home.mkdir()
    subprocess.run([sys.executable, "-c", script, str(home / "state.db")], check=True, timeout=60)
    config = write_config(tmp_path, "[budget]", "window_tokens = 10000")
    before = {p: p.stat().st_mtime_ns for p in home.rglob("*")}
    report = doctor(config)
    assert {p: p.stat().st_mtime_ns for p in home.rglob("*")} == before
    assert report.find("state db").status == "OK" and "writable" in report.find("state db").detail
    budget = report.find("budget")
    assert budget.detail.startswith("1,234 of 10,000 tokens (12%) in the window"), budget
    assert "$0.50 today" in budget.detail


def test_unwritable_or_broken_state_is_named(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("not a directory")
    check = doctor(write_config(tmp_path)).find("state db")
    assert check.status == "FAIL" and "is a file, not a directory" in check.detail
    (tmp_path / "home").unlink()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "state.db").write_text("this is not SQLite")
    check = doctor(write_config(tmp_path)).find("state db")
    assert check.status == "FAIL" and "not a usable SQLite database" in check.detail and "move" in check.fix


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("refused", "unreachable: nothing listens on 127.0.0.1:{port} (connection refused)"),
        ("close", "127.0.0.1:{port} accepted the connection and closed it before any SSH greeting"),
        ("garbage", "127.0.0.1:{port} is not an SSH server: it answered 'HTTP/1.1 400 Bad Request'"),
        ("silent", "127.0.0.1:{port} accepts connections but sent no SSH greeting within 1 s"),
        ("ssh1", "the SSH key exchange with 127.0.0.1:{port} failed: it speaks an SSH version this agent cannot use"),
    ],
)
def test_each_way_a_host_fails_is_one_sentence_without_a_traceback(
    mode: str, expected: str, fake_servers: dict[str, FakeServer], caplog: pytest.LogCaptureFixture
) -> None:
    from agent.cli.doctor import check_remote_host
    from core.settings import HostConfig

    port = free_port() if mode == "refused" else fake_servers[mode].port
    host = HostConfig(name="pc", address="127.0.0.1", port=port, user="ops")
    with caplog.at_level(logging.DEBUG):
        check = check_remote_host(host, 1.0)
    assert check.status == "FAIL" and check.detail.startswith(expected.format(port=port)), check
    assert "\n" not in check.detail + check.fix and "Traceback" not in check.detail
    assert not [r for r in caplog.records if r.name.startswith("paramiko")]  # held back, never on stderr


def test_an_unresolvable_host_name_is_named(tmp_path: Path) -> None:
    from agent.cli.doctor import check_remote_host
    from core.settings import HostConfig

    check = check_remote_host(HostConfig(name="pc", address="no-such-host.invalid", user="ops"), 2.0)
    assert check.status == "FAIL" and "the name 'no-such-host.invalid' does not resolve" in check.detail


def test_metrics_warnings_say_which_errno(tmp_path: Path) -> None:
    """EADDRNOTAVAIL: the address is not this machine's (no other process is involved); EADDRINUSE: another
    process holds the port, named as a brainops agent when its /metrics answers like one."""
    not_mine = doctor(write_config(tmp_path, "metrics_port = 9464", 'metrics_address = "198.51.100.7"'))
    check = not_mine.find("metrics")
    assert check.status == "WARN"
    assert "198.51.100.7 is not an address of this machine (this machine has 127.0.0.1" in check.detail
    assert "process" not in check.detail + check.fix and "metrics_address" in check.fix

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        check = doctor(write_config(tmp_path, f"metrics_port = {port}")).find("metrics")
    assert check.status == "WARN" and f"port {port} on 127.0.0.1 is in use by another process" in check.detail
    assert f"sport = :{port}" in check.fix

    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    registry = CollectorRegistry()
    Gauge("brainops_up", "the agent runs", registry=registry).set(1)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        port = server.server_address[1]
        check = doctor(write_config(tmp_path, f"metrics_port = {port}")).find("metrics")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert check.status == "WARN" and "in use by a running brainops agent" in check.detail
