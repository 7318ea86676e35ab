"""Test harness: real OpenSSH servers on loopback addresses, one per fake host.

Each fake host is an `sshd -D -e` child of the test process listening on 127.0.0.N:<free port>, with its
own generated ed25519 host key, its own sshd_config (key-only auth, no PAM) and its own workdir. All
hosts share one generated client key and one known_hosts file that lists every host key, so the code
under test verifies host keys exactly as it would in production.

Use `sshd_unavailable_reason()` to skip cleanly where sshd cannot run, then `SshFleet(base_dir, n)`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import HostConfig

from . import REPO

SSHD = "/usr/sbin/sshd"  # sshd re-execs itself, so it must be started by absolute path
PRIVSEP_DIR = Path("/run/sshd")
# The loopback "hosts" run the test's own interpreter (same venv, same packages) on the repo checkout
# (PYTHONPATH below). sys.executable, not its resolved target: a venv's python must be started by its venv path.
REMOTE_PYTHON = sys.executable
START_DEADLINE_S = 15.0

_install_attempted = False


def _install_openssh_server() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", "openssh-server", "openssh-client"]
    if subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(cmd, env=env, capture_output=True, timeout=600)


def sshd_unavailable_reason() -> str | None:
    """None when sshd can run here; otherwise why not. Installs openssh-server when root and apt exist."""
    global _install_attempted
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not Path(SSHD).exists() and is_root and shutil.which("apt-get") and not _install_attempted:
        _install_attempted = True
        _install_openssh_server()
    if not Path(SSHD).exists():
        return f"{SSHD} missing and could not be installed (needs root + apt-get: openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen missing (package openssh-client)"
    if not PRIVSEP_DIR.is_dir():
        if not is_root:
            return f"privilege separation dir {PRIVSEP_DIR} missing and not root to create it"
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    return None


def generate_key(path: Path, comment: str) -> str:
    """New ed25519 key pair at path / path.pub; returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def known_hosts_line(address: str, port: int, public_key: str) -> str:
    key_type, key_b64 = public_key.split()[:2]
    return f"[{address}]:{port} {key_type} {key_b64}"


@dataclass
class FakeHost:
    """One sshd process acting as one host of the fleet."""

    name: str
    address: str
    root: Path
    client_key: Path
    port: int = 0
    host_public_key: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    @property
    def log_path(self) -> Path:
        return self.root / "sshd.log"

    @property
    def pid(self) -> int:
        assert self.process is not None, "host not started"
        return self.process.pid

    def config(self, **overrides: object) -> HostConfig:
        fields: dict[str, object] = {
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "user": _current_user(),
            "key_file": str(self.client_key),
            "workdir": str(self.workdir),
            "python": REMOTE_PYTHON,
            "connect_timeout_s": 3.0,
            "command_timeout_s": 10.0,
        }
        fields.update(overrides)
        return HostConfig.model_validate(fields)

    def write_sshd_config(self, authorized_keys: Path) -> Path:
        path = self.root / "sshd_config"
        path.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.address}:{self.port}",
                    f"HostKey {self.root / 'host_ed25519'}",
                    f"AuthorizedKeysFile {authorized_keys}",
                    f"PidFile {self.root / 'sshd.pid'}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "PrintMotd no",
                    "LogLevel VERBOSE",
                    "MaxStartups 64:30:128",
                    f"SetEnv PYTHONPATH={REPO} HF_HUB_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True",
                    "",
                ]
            )
        )
        return path

    def start(self, authorized_keys: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(exist_ok=True)
        if not self.host_public_key:
            self.host_public_key = generate_key(self.root / "host_ed25519", f"host-{self.name}")
        last_error = ""
        for _attempt in range(3):  # another process may grab the free port between probe and bind
            self.port = free_port(self.address)
            config = self.write_sshd_config(authorized_keys)
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
                )
            last_error = self._wait_ready()
            if not last_error:
                return
            self.kill()
        raise RuntimeError(f"sshd for {self.name} did not start: {last_error}")

    def _wait_ready(self) -> str:
        """'' once the server sends its SSH banner; else why it failed. Polls up to START_DEADLINE_S."""
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return f"exited {self.process.returncode}: {self.log_path.read_text()[-2000:]}"
            try:
                with socket.create_connection((self.address, self.port), timeout=1.0) as sock:
                    if sock.recv(64).startswith(b"SSH-"):
                        return ""
            except OSError:
                time.sleep(0.02)
        return f"no SSH banner on {self.address}:{self.port} within {START_DEADLINE_S}s"

    def _tree_pids(self) -> list[int]:
        import psutil

        try:
            listener = psutil.Process(self.pid)
            return [listener.pid, *(child.pid for child in listener.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def signal_tree(self, signum: int) -> None:
        """Signal the listener and every per-connection sshd child (a whole "host" dies or freezes)."""
        for pid in self._tree_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def freeze(self) -> None:
        self.signal_tree(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal_tree(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is None:
            return
        self.signal_tree(signal.SIGKILL)
        self.signal_tree(signal.SIGCONT)
        self.process.wait(timeout=10)


def _current_user() -> str:
    import getpass

    return getpass.getuser()


class SshFleet:
    """n fake hosts on 127.0.0.2 ... 127.0.0.(n+1), sharing a client key and a known_hosts file."""

    def __init__(self, base: Path, count: int, *, first_octet: int = 2) -> None:
        if not 1 <= count <= 200:
            raise ValueError(f"count must be in 1..200, got {count}")
        self.base = base
        self.base.mkdir(parents=True, exist_ok=True)
        self.client_key = base / "client_ed25519"
        self.known_hosts = base / "known_hosts"
        self.authorized_keys = base / "authorized_keys"
        self.hosts = [
            FakeHost(
                name=f"h{i + first_octet}",
                address=f"127.0.0.{i + first_octet}",
                root=base / f"h{i + first_octet}",
                client_key=self.client_key,
            )
            for i in range(count)
        ]

    def start(self) -> SshFleet:
        self.authorized_keys.write_text(generate_key(self.client_key, "brainops-test-client") + "\n")
        try:
            for host in self.hosts:
                host.start(self.authorized_keys)
        except Exception:
            self.stop()
            raise
        self.known_hosts.write_text(
            "".join(known_hosts_line(h.address, h.port, h.host_public_key) + "\n" for h in self.hosts)
        )
        return self

    def host(self, name: str) -> FakeHost:
        return next(h for h in self.hosts if h.name == name)

    def configs(self, **overrides: object) -> list[HostConfig]:
        return [h.config(known_hosts=str(self.known_hosts), **overrides) for h in self.hosts]

    def stop(self) -> None:
        for host in self.hosts:
            host.kill()
        _kill_processes_mentioning(str(self.base))

    def __enter__(self) -> SshFleet:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _kill_processes_mentioning(marker: str) -> None:
    """Workers started "remotely" are detached from sshd; end the ones whose command line names our dirs."""
    import psutil

    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info["pid"] != me and any(marker in part for part in cmdline):
            with contextlib.suppress(psutil.Error):
                proc.kill()


if __name__ == "__main__":  # manual check: python -m tests.support.sshd -> starts 2 hosts, prints, stops
    reason = sshd_unavailable_reason()
    if reason:
        sys.exit(f"skip: {reason}")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, SshFleet(Path(tmp), 2) as fleet:
        for h in fleet.hosts:
            print(h.name, h.address, h.port, h.pid)
