"""The embedded default token: a SoftHSM2 token created under the state directory.

Layout of ``<state dir>/softhsm`` (mode 0700)::

    softhsm2.conf   SoftHSM2 configuration pointing at tokens/
    tokens/         SoftHSM2's token store
    user.pin        random user PIN (0600)
    so.pin          random security-officer PIN (0600)

SoftHSM2 reads ``SOFTHSM2_CONF`` when the module is initialised, so the caller sets it
from :attr:`EmbeddedToken.conf` before loading the module.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import subprocess
import termios
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scm.files import write_atomic
from scm.keys.errors import TokenLoginError, TokenUnavailableError

INIT_TIMEOUT_S = 30


@dataclass(frozen=True)
class EmbeddedToken:
    """Where the embedded token lives and how to log in to it."""

    root: Path
    label: str

    @property
    def conf(self) -> Path:
        return self.root / "softhsm2.conf"

    @property
    def tokens_dir(self) -> Path:
        return self.root / "tokens"

    @property
    def user_pin_file(self) -> Path:
        return self.root / "user.pin"

    @property
    def so_pin_file(self) -> Path:
        return self.root / "so.pin"

    def user_pin(self) -> str:
        return self.user_pin_file.read_text().strip()


def ensure_embedded_token(state_dir: Path, label: str) -> EmbeddedToken:
    """Create the embedded token on first use; later calls only return where it is."""
    token = EmbeddedToken(state_dir / "softhsm", label)
    try:
        token.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise TokenUnavailableError(f"cannot create {token.root}: {exc.strerror}") from None
    with _locked(token.root / ".lock"):
        if token.user_pin_file.exists():
            return token
        if token.tokens_dir.exists() and any(token.tokens_dir.iterdir()):
            raise TokenLoginError(
                f"embedded token in {token.tokens_dir} exists but its PIN file "
                f"{token.user_pin_file} is missing"
            )
        _create(token)
    return token


def _create(token: EmbeddedToken) -> None:
    token.tokens_dir.mkdir(mode=0o700, exist_ok=True)
    write_atomic(
        token.conf,
        f"directories.tokendir = {token.tokens_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n",
        mode=0o600,
    )
    user_pin, so_pin = secrets.token_hex(16), secrets.token_hex(16)
    try:
        _init_token(token, so_pin, user_pin)
        write_atomic(token.so_pin_file, so_pin + "\n", mode=0o600)
        # Written last: its presence marks the token as complete.
        write_atomic(token.user_pin_file, user_pin + "\n", mode=0o600)
    except BaseException:
        token.so_pin_file.unlink(missing_ok=True)
        for child in token.tokens_dir.iterdir():
            shutil.rmtree(child, ignore_errors=True)
        raise


def _init_token(token: EmbeddedToken, so_pin: str, user_pin: str) -> None:
    """Initialise a free SoftHSM2 slot with ``softhsm2-util``.

    The tool reads PINs from its terminal only; giving them as arguments would expose them
    in the process table, so they are typed into a pseudo-terminal with echo turned off.
    """
    tool = shutil.which("softhsm2-util")
    if tool is None:
        raise TokenUnavailableError("softhsm2-util not found: install the Debian package softhsm2")
    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        proc = subprocess.Popen(
            [tool, "--init-token", "--free", "--label", token.label],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "SOFTHSM2_CONF": str(token.conf)},
            start_new_session=True,
        )
        os.close(slave)
        slave = -1
        os.write(master, f"{so_pin}\n{so_pin}\n{user_pin}\n{user_pin}\n".encode())
        output = _read_all(master)
        code = proc.wait(timeout=INIT_TIMEOUT_S)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    if code != 0:
        last = output.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise TokenUnavailableError(f"softhsm2-util could not create the token: {last[0]}")


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise token creation between scm processes sharing a state directory."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
