"""Doctor checks of the SSH hosts: reach each one, verify its key against known_hosts, run the probe.

Each failure is one sentence that says what happened at which step (nothing listens, no answer, no route,
not an SSH server, the key exchange failed, the key is unknown or changed, the probe failed), never a
traceback: paramiko logs its transport thread's exceptions, tracebacks included, through the `paramiko`
logger, which without a handler Python prints to stderr; `quiet_paramiko` holds those records while hosts
are checked. A host key is never trusted here (that is `brainops hosts trust`).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from agent.cli.doctor_checks import Check, fail, ok

if TYPE_CHECKING:
    from core.settings import HostConfig, Settings

_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_propagate = True
_DROP = logging.NullHandler()


@contextmanager
def quiet_paramiko() -> Iterator[None]:
    """While inside (nestable, from several threads), paramiko's log records stay off stderr: its logger gets
    a handler (so Python's last-resort stderr handler stays out) and stops propagating to the root's."""
    global _quiet_depth, _saved_propagate
    logger = logging.getLogger("paramiko")
    with _quiet_lock:
        if _quiet_depth == 0:
            _saved_propagate = logger.propagate
            logger.addHandler(_DROP)
            logger.propagate = False
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                logger.removeHandler(_DROP)
                logger.propagate = _saved_propagate


def check_hosts(settings: Settings, timeout_s: float) -> list[Check]:
    remote = [h for h in settings.hosts if not h.is_local]
    local = [ok(f"host {h.name}", "local (no SSH)") for h in settings.hosts if h.is_local]
    if not remote:
        return local
    with quiet_paramiko(), ThreadPoolExecutor(max_workers=min(8, len(remote))) as pool:
        return local + list(pool.map(lambda h: check_remote_host(h, timeout_s), remote))


class _Refused(Exception):
    """One step of reaching a host failed: `detail` says which and how, `fix` what to do."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail, self.fix = detail, fix


def check_remote_host(host: HostConfig, timeout_s: float) -> Check:
    """Reach the host, verify its key against known_hosts (never trusting a new one), run the probe."""
    from fleet.host_keys import host_key_fingerprint, host_key_status
    from fleet.host_keys import known_hosts_path as path_of

    name, where = f"host {host.name}", f"{host.address}:{host.port}"
    timeout_s = min(timeout_s, host.connect_timeout_s)
    with quiet_paramiko():
        try:
            key = _server_key(host, timeout_s)
        except _Refused as exc:
            return fail(name, exc.detail, exc.fix)
        known_hosts = path_of(host)
        status = host_key_status(known_hosts, host.address, host.port, key)
        fingerprint = f"{key.get_name()} {host_key_fingerprint(key)}"
        if status == "unknown":
            return fail(
                name,
                f"host key {fingerprint} is not in {known_hosts}",
                f"compare the fingerprint on the host, then `brainops hosts trust {host.name}`",
            )
        if status == "changed":
            return fail(
                name,
                f"host key CHANGED: {where} presents {fingerprint}, {known_hosts} lists another",
                "possible attack: if the host was reinstalled, delete its old known_hosts line, then "
                f"`brainops hosts trust {host.name}`",
            )
        return _probe(host, name, fingerprint, timeout_s)


def _server_key(host: HostConfig, timeout_s: float) -> Any:
    """The key the server presents in a key exchange (no authentication, nothing trusted yet)."""
    import paramiko

    sock = _connect(host, timeout_s)
    where = f"{host.address}:{host.port}"
    try:
        _expect_ssh_banner(sock, host, timeout_s)
        transport = paramiko.Transport(sock)
    except BaseException:
        sock.close()
        raise
    transport.banner_timeout = timeout_s
    try:
        transport.start_client(timeout=timeout_s)
        return transport.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        cause = transport.get_exception() or exc
        if isinstance(cause, paramiko.IncompatiblePeer):
            reason = f"it speaks an SSH version this agent cannot use: {cause}"
        elif "timed out" in str(cause).lower() or isinstance(cause, TimeoutError):
            reason = f"no reply within {timeout_s:g} s"
        else:
            reason = _one_line(str(cause) or type(cause).__name__)
        raise _Refused(
            f"the SSH key exchange with {where} failed: {reason}",
            f"check sshd on {host.address} (its log names the reason); try `ssh -p {host.port} {_login(host)}`",
        ) from exc
    finally:
        transport.close()


def _connect(host: HostConfig, timeout_s: float) -> socket.socket:
    where = f"{host.address}:{host.port}"
    retry = f"try `ssh -p {host.port} {_login(host)}`"
    start = f"start sshd on {where} or fix address/port in [[hosts]] {host.name}; {retry}"
    try:
        return socket.create_connection((host.address, host.port), timeout=timeout_s)
    except socket.gaierror as exc:
        raise _Refused(
            f"unreachable: the name {host.address!r} does not resolve ({exc.strerror})",
            f"fix address in [[hosts]] {host.name}: an IP address, or a name this machine resolves",
        ) from exc
    except ConnectionRefusedError as exc:
        raise _Refused(f"unreachable: nothing listens on {where} (connection refused)", start) from exc
    except TimeoutError as exc:
        raise _Refused(
            f"unreachable: no answer from {where} within {timeout_s:g} s "
            "(the host is off, the address is wrong, or a firewall drops the connection)",
            f"power on {host.name} or fix address/port in [[hosts]] {host.name}; {retry}",
        ) from exc
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            raise _Refused(
                f"unreachable: no route to {host.address} ({exc.strerror})",
                f"check this machine's network and the address in [[hosts]] {host.name}; {retry}",
            ) from exc
        raise _Refused(f"unreachable: connecting to {where} failed ({exc.strerror or exc})", start) from exc


def _expect_ssh_banner(sock: socket.socket, host: HostConfig, timeout_s: float) -> None:
    """Peek at what the server says first (an SSH server starts with "SSH-2.0-..."), consuming nothing."""
    where = f"{host.address}:{host.port}"
    wrong_port = f"set port in [[hosts]] {host.name} to sshd's port (its `Port` in sshd_config)"
    sock.settimeout(timeout_s)
    try:
        head = sock.recv(256, socket.MSG_PEEK)
    except TimeoutError as exc:
        raise _Refused(
            f"{where} accepts connections but sent no SSH greeting within {timeout_s:g} s (not an SSH server, "
            "or an overloaded sshd)",
            wrong_port,
        ) from exc
    except OSError as exc:
        head = b""
        if exc.errno != errno.ECONNRESET:
            raise _Refused(f"reading from {where} failed ({exc.strerror or exc})", wrong_port) from exc
    if not head:
        raise _Refused(
            f"{where} accepted the connection and closed it before any SSH greeting (an sshd refusing this client, "
            "e.g. MaxStartups or a tcp_wrappers rule, or a service that is not sshd)",
            f"check sshd's log on {host.address} and the port in [[hosts]] {host.name}; "
            f"try `ssh -p {host.port} {_login(host)}`",
        )
    if b"\n" in head and not any(line.startswith(b"SSH-") for line in head.splitlines()):
        said = head.decode("ascii", "replace").splitlines()[0].strip()[:60]
        raise _Refused(f"{where} is not an SSH server: it answered {said!r}", wrong_port)


def _probe(host: HostConfig, name: str, fingerprint: str, timeout_s: float) -> Check:
    from fleet.remote import RemoteHost

    try:
        remote = RemoteHost(host)
    except ValueError as exc:
        return fail(name, f"bad host config: {exc}", f"fix [[hosts]] {host.name} in brainops.toml")
    try:
        snap = remote.snapshot(timeout_s)
    finally:
        remote.close()
    if not snap.metrics.reachable:
        return fail(
            name,
            f"key verified ({fingerprint}) but the probe failed: {_one_line(snap.metrics.error or 'no reason given')}",
            f"check user/key_file for {host.name} and that `{host.python} -m fleet.probe` runs there",
        )
    return ok(
        name, f"key verified ({fingerprint}); probe {snap.metrics.observed_in_ms:.0f} ms, {len(snap.workers)} workers"
    )


def _login(host: HostConfig) -> str:
    return f"{host.user or '<user>'}@{host.address}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def check_ray(settings: Settings) -> list[Check]:
    """`[ray]`: something answers at the cluster's address (a TCP connect; Ray itself is not imported)."""
    from fleet.ray_host import answers, ray_endpoint

    if settings.ray is None:
        return []
    address = settings.ray.address
    if address == "local":
        known = settings.home / "ray.address"
        running = known.read_text().strip() if known.is_file() else ""
        if running and answers(running):
            return [ok("ray", f"local: joins the Ray this home's `brainops run` started at {running}")]
        return [ok("ray", "local: none running; the first tick starts one on this machine")]
    endpoint = ray_endpoint(address)
    if endpoint is None:
        return [ok("ray", f"{address!r}: ray.init finds the cluster this machine last started")]
    if answers(endpoint, timeout_s=2.0):
        return [ok("ray", f"{address!r} answers")]
    return [
        fail(
            "ray",
            f"nothing answers at [ray] address {address!r}",
            "start the cluster (`ray up`, `ray start --head`) or fix [ray] address; `ray status` on its head shows it",
        )
    ]
