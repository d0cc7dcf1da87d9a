"""The shipped systemd unit lets a non-root Envoy in group envoy reach the SDS socket.

systemd is not PID 1 where these tests run, so the unit's effect is reproduced the way
systemd documents it: RuntimeDirectory= is created with RuntimeDirectoryMode= and owned by
the unit's User= (root) and Group=; the server then runs with that group and the unit's
ExecStart arguments. A real non-root process (setpriv to another uid) then connects, and
a secret is fetched over its connection; one outside the group must be refused by the file
system. The group
"envoy" is rendered as this machine's "nogroup" (gid 65534, member: nobody).
"""

from __future__ import annotations

import grp
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from envoy.service.discovery.v3 import discovery_pb2

from tests.integration.sds.client import request, secrets_of
from tests.integration.sds.harness import wait_for
from tests.integration.sds.rawh2 import RawGrpcClient, grpc_frame

REPO = Path(__file__).parents[3]
UNIT = REPO / "deploy" / "systemd" / "scm-sds.service"
SCM = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"
CLIENT_GROUP = "nogroup"
CLIENT_UID = 65534  # nobody
OUTSIDER_GID = 65533

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to act as a non-root client",
)


def unit_settings(text: str) -> tuple[dict[str, str], list[str]]:
    """The [Service] key=value settings (last wins) and ExecStart's argv."""
    joined = text.replace("\\\n", " ")
    settings = dict(re.findall(r"^(\w+)=(.*)$", joined, re.M))
    return settings, shlex.split(settings["ExecStart"])


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_unit_puts_the_socket_in_a_directory_of_the_socket_group() -> None:
    settings, argv = unit_settings(UNIT.read_text())
    assert settings.get("User", "root") == "root"
    assert settings["Group"] == option(argv, "--socket-group") == "envoy"
    socket_path = Path(option(argv, "--socket"))
    assert socket_path.parent == Path("/run") / settings["RuntimeDirectory"]
    mode = int(settings["RuntimeDirectoryMode"], 8)
    assert mode & 0o050 == 0o050 and mode & 0o007 == 0  # group may enter, others may not


def render_runtime_directory(settings: dict[str, str], top: Path) -> Path:
    """What systemd does for RuntimeDirectory=: the mode given, owner User:Group."""
    directory = top / settings["RuntimeDirectory"]
    directory.mkdir()
    group = settings.get("Group", "root").replace("envoy", CLIENT_GROUP)
    os.chown(directory, 0, grp.getgrnam(group).gr_gid)
    directory.chmod(int(settings["RuntimeDirectoryMode"], 8))
    return directory


# Run as the client: the standard library only, so that it runs whoever may read this
# checkout. It connects (the kernel checks the directory's and the socket's permissions
# there, and the server reads the credentials of the process that connected) and hands
# the connection over to this test, which then speaks SDS on it.
CONNECT = """
import socket, sys
peer = socket.socket(socket.AF_UNIX)
peer.connect(sys.argv[1])
socket.send_fds(socket.socket(fileno=int(sys.argv[2])), [b"c"], [peer.fileno()])
"""


def connect_as(
    gid: int, socket_path: Path
) -> tuple[subprocess.CompletedProcess[str], socket.socket | None]:
    """Connect as uid nobody with primary group ``gid``: how the process ended, and the
    connection it made (None when it could not connect)."""
    setpriv = ["setpriv", f"--reuid={CLIENT_UID}", f"--regid={gid}", "--clear-groups"]
    ours, theirs = socket.socketpair()
    with ours, theirs:
        done = subprocess.run(
            [*setpriv, sys.executable, "-c", CONNECT, str(socket_path), str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), capture_output=True, text=True, env={"HOME": "/"},
            timeout=60, cwd="/",
        )  # fmt: skip
        if done.returncode != 0:
            return done, None
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    return done, socket.socket(fileno=fds[0])


def fetch_root_ca(connection: socket.socket) -> bytes:
    """The ROOTCA secret's CA certificates, fetched over ``connection`` with FetchSecrets."""
    peer = RawGrpcClient(connection, read_window=1 << 20)
    try:
        stream = peer.open("FetchSecrets")
        message = request(["ROOTCA"]).SerializeToString()
        assert peer.send(stream, grpc_frame(message), time.monotonic() + 20)
        peer.end(stream)
        status = peer.status_of(stream)
        assert status.get("grpc-status") == "0", status
        (payload,) = peer.payloads(stream)
        (secret,) = secrets_of(discovery_pb2.DiscoveryResponse.FromString(payload))
        return bytes(secret.validation_context.trusted_ca.inline_bytes)
    finally:
        peer.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.timeout(240)
def test_non_root_envoy_in_the_group_reaches_the_socket(open_tmp: Path, tmp_path: Path) -> None:
    settings, argv = unit_settings(UNIT.read_text())
    directory = render_runtime_directory(settings, open_tmp)
    socket_path = directory / Path(option(argv, "--socket")).name
    state = tmp_path / "state"
    subprocess.run([SCM, "--state-dir", str(state), "ca", "init"], check=True, capture_output=True)
    served = [SCM if a == "/usr/local/bin/scm" else a for a in argv]
    served[served.index("--socket") + 1] = str(socket_path)
    served[served.index("--state-dir") + 1] = str(state)
    served[served.index("--socket-group") + 1] = CLIENT_GROUP
    if "--http" in served:
        served[served.index("--http") + 1] = f"127.0.0.1:{free_port()}"
    gid = grp.getgrnam(CLIENT_GROUP).gr_gid
    server = subprocess.Popen(
        ["setpriv", f"--regid={gid}", "--clear-groups", *served],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(socket_path.is_socket, timeout=120, what="the SDS socket")
        wait_for(lambda: socket_path.stat().st_gid == gid, what="the socket's group")
        info = socket_path.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o660, gid)
        member, connection = connect_as(gid, socket_path)
        assert connection is not None, member
        assert b"BEGIN CERTIFICATE" in fetch_root_ca(connection)
        outsider, refused = connect_as(OUTSIDER_GID, socket_path)
        assert refused is None and outsider.returncode != 0
        assert "PermissionError" in outsider.stderr, outsider
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr


def test_without_group_the_directory_shuts_envoy_out(open_tmp: Path) -> None:
    """The shipped unit before the fix (no Group=): the same client cannot even enter."""
    settings, _ = unit_settings(UNIT.read_text())
    settings.pop("Group")
    directory = render_runtime_directory(settings, open_tmp)
    socket_path = directory / "sds.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(socket_path))
    listener.listen()
    try:
        os.chown(socket_path, 0, grp.getgrnam(CLIENT_GROUP).gr_gid)
        socket_path.chmod(0o660)
        result, connection = connect_as(grp.getgrnam(CLIENT_GROUP).gr_gid, socket_path)
    finally:
        listener.close()
    assert connection is None
    assert result.returncode != 0 and "PermissionError" in result.stderr, result
