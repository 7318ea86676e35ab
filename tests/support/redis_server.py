"""A real Redis server (Debian package `redis-server`) on a loopback port, for the shared response cache.

Installs the package with apt-get when the binary is missing and we are root (CI is); the caller skips with
`redis_unavailable_reason()` otherwise. Persistence is off (`--save '' --appendonly no`): a kill loses
everything, exactly like an outage of a cache. `kill()` is SIGKILL (no shutdown handshake); `start()` again
brings a fresh, empty server up on the same port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from . import wait_for

REDIS_SERVER = "redis-server"

_install_attempted = False


def _install() -> None:
    global _install_attempted
    if _install_attempted or shutil.which(REDIS_SERVER) or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    _install_attempted = True
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "redis-server"]
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=600)


def redis_unavailable_reason() -> str | None:
    """None when redis-server can run here; otherwise why not."""
    _install()
    if shutil.which(REDIS_SERVER) is None:
        return "redis-server missing and could not be installed (apt-get install redis-server needs root)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """`with RedisServer(tmp) as server: RedisResponseCache(server.url)`; `kill()` / `start()` for outages."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = base
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.base.mkdir(parents=True, exist_ok=True)
        log = (self.base / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.base),
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                tail = (self.base / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{tail}")
            return _accepts(self.port)

        wait_for(up, f"redis-server on 127.0.0.1:{self.port}", timeout_s=15.0)
        return self

    def kill(self) -> None:
        """SIGKILL, and wait until the port refuses connections."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=15)
        self.proc = None
        wait_for(lambda: not _accepts(self.port), f"port {self.port} to close", timeout_s=15.0)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
