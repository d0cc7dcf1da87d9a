"""Where the SDS server listens: Unix sockets (mode 0600, optional group) and mTLS TCP.

A Unix socket is the normal way: only processes that may open the file can ask for
secrets. gRPC binds it itself, so the permissions are tightened with a umask while it
binds (no moment where the socket is world-connectable) and set exactly afterwards.
"""

from __future__ import annotations

import contextlib
import grp
import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from scm.errors import ConfigError, InputError, UnavailableError


@dataclass(frozen=True)
class UnixListener:
    """A Unix socket path; with ``group``, members of it may connect too (mode 0660)."""

    path: Path
    group: str | None = None

    @property
    def mode(self) -> int:
        return 0o660 if self.group else 0o600

    def address(self) -> str:
        return f"unix:{self.path}"


@dataclass(frozen=True)
class TlsListener:
    """A TCP address whose clients must present a certificate signed by ``client_ca``."""

    host: str
    port: int
    certificate: Path
    private_key: Path
    client_ca: Path

    def credentials(self) -> grpc.ServerCredentials:
        try:
            key = self.private_key.read_bytes()
            chain = self.certificate.read_bytes()
            client_ca = self.client_ca.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read TLS listener file: {exc}") from None
        return grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=client_ca, require_client_auth=True
        )

    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def prepare_socket_path(path: Path) -> None:
    """Remove a stale socket at ``path``; refuse a live one or anything not a socket.

    The caller holds the socket's serving lock, so no scm server owns it; a socket that
    still accepts connections belongs to some other process and is left alone.
    """
    if not path.parent.is_dir():
        raise ConfigError(f"directory {path.parent} for socket {path.name} does not exist")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"{path} exists and is not a socket; refusing to replace it")
    if _accepts_connections(path):
        raise UnavailableError(f"another server is listening on {path}")
    path.unlink()


def _accepts_connections(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:  # ECONNREFUSED: nobody listens; the file is stale
            return False
    return True


@contextlib.contextmanager
def owner_only_umask() -> Iterator[None]:
    """Files created meanwhile get mode 0600 at most (the umask is process-wide: brief)."""
    previous = os.umask(0o177)
    try:
        yield
    finally:
        os.umask(previous)


def bind_unix(server: grpc.aio.Server, listener: UnixListener) -> None:
    """Bind ``listener`` on ``server``; nobody but the owner can connect until secured."""
    prepare_socket_path(listener.path)
    try:
        with owner_only_umask():
            server.add_insecure_port(listener.address())
    except RuntimeError as exc:
        raise UnavailableError(f"cannot listen on {listener.path}: {exc}") from None


def secure_unix_socket(listener: UnixListener) -> None:
    """Give the bound socket file its mode and group (after the server has started)."""
    if listener.group:
        os.chown(listener.path, -1, _group_id(listener.group))
    os.chmod(listener.path, listener.mode)


def _group_id(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"group {group!r} does not exist") from None


def port_lock_dir() -> Path:
    """Where TCP port locks live: host-wide, so scm servers of any state directory agree."""
    run_lock = Path("/run/lock")
    if run_lock.is_dir() and os.access(run_lock, os.W_OK):
        return run_lock
    return Path(tempfile.gettempdir())
