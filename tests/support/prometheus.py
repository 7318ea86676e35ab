"""A real Prometheus server (Debian package `prometheus`) on loopback, scraping targets the test gives it.

Installs the package with apt-get when /usr/bin/prometheus is missing and we are root (CI is); the caller
skips with `prometheus_unavailable_reason()` otherwise. Storage lives in the test's tmp dir.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from . import wait_for

PROMETHEUS = Path("/usr/bin/prometheus")


def _install() -> None:
    if PROMETHEUS.exists() or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "prometheus"]
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=600)


def prometheus_unavailable_reason() -> str | None:
    _install()
    if not PROMETHEUS.exists():
        return "no /usr/bin/prometheus and it could not be installed (apt-get install prometheus needs root)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """`with PrometheusServer(tmp, ["127.0.0.1:9100"]) as prom: prom.wait_for("up == 1")`."""

    def __init__(self, base: Path, targets: list[str], scrape_interval_s: float = 1.0) -> None:
        self.base = base
        self.targets = targets
        self.scrape_interval_s = scrape_interval_s
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        interval = f"{int(self.scrape_interval_s * 1000)}ms"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {"job_name": "brainops", "scrape_interval": interval, "static_configs": [{"targets": self.targets}]}
            ],
        }
        self.base.mkdir(parents=True, exist_ok=True)
        path = self.base / "prometheus.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    def start(self) -> PrometheusServer:
        config = self.write_config()
        log = (self.base / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.base / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(30.0)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self.base / 'prometheus.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"prometheus not ready on {self.url} after {timeout_s}s")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query through /api/v1/query; the result vector (empty when nothing matches yet)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body}")
        return list(body["data"]["result"])

    def wait_for(self, expr: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Poll the query until it returns at least one series; fail after the deadline."""
        return wait_for(
            lambda: self.query(expr), f"prometheus to return a series for {expr!r}", timeout_s=timeout_s, interval_s=0.2
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
