"""SSH host keys: fetch one from a server, fingerprint it, look it up in and append it to known_hosts.

Only `brainops hosts trust` writes known_hosts, after an operator has compared the fingerprint;
RemoteHost itself only reads the file and refuses anything not in it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from core.settings import HostConfig

KeyStatus = Literal["known", "unknown", "changed"]


class HostKeyFetchError(Exception):
    """The server could not be reached or did not complete the SSH key exchange."""


def known_hosts_path(config: HostConfig) -> Path:
    """The known_hosts file RemoteHost reads for this host (and `hosts trust` appends to)."""
    return Path(config.known_hosts or "~/.ssh/known_hosts").expanduser()


def host_key_fingerprint(key: Any) -> str:
    """OpenSSH-style 'SHA256:...' fingerprint of a paramiko PKey (what `ssh-keygen -lf` prints)."""
    import base64
    import hashlib

    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def fetch_host_key(address: str, port: int, timeout_s: float) -> Any:
    """The key the server presents in a key exchange (no authentication, nothing trusted yet)."""
    import socket

    import paramiko

    try:
        sock = socket.create_connection((address, port), timeout=timeout_s)
    except OSError as exc:
        raise HostKeyFetchError(f"connect to {address}:{port}: {exc}") from exc
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout_s
    try:
        transport.start_client(timeout=timeout_s)
        return transport.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise HostKeyFetchError(f"SSH key exchange with {address}:{port} failed: {exc}") from exc
    finally:
        transport.close()


def host_key_status(path: Path, address: str, port: int, key: Any) -> KeyStatus:
    """Whether path already lists this exact key for the host, lists a different one, or none."""
    import paramiko

    if not path.is_file():
        return "unknown"
    known = paramiko.HostKeys(str(path)).lookup(known_hosts_name(address, port))
    if not known:
        return "unknown"
    listed = known.get(key.get_name())
    if listed is not None and listed == key:
        return "known"
    return "changed" if listed is not None else "unknown"


def append_known_host(path: Path, address: str, port: int, key: Any) -> str:
    """Append one line for the host's key (creating the file 0600); returns the line."""
    line = f"{known_hosts_name(address, port)} {key.get_name()} {key.get_base64()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            out.write("\n")
        out.write(line + "\n")
    return line
