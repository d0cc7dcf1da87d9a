"""The embedded default token: a SoftHSM2 token created under the state directory.

Layout of ``<state dir>/softhsm`` (mode 0700)::

    softhsm2.conf   SoftHSM2 configuration pointing at tokens/
    tokens/         SoftHSM2's token store
    user.pin        random user PIN (0600)
    so.pin          random security-officer PIN (0600)

The token is built complete in ``<state dir>/.softhsm.tmp-*`` and renamed to ``softhsm``
in one step, so ``softhsm`` either does not exist or holds a usable token and its PINs;
a creation killed half-way leaves only a temporary directory, removed by the next one.
Creation holds the state directory's lock; using an existing token takes no lock, so it
works on a read-only state directory.

SoftHSM2 reads ``SOFTHSM2_CONF`` when the module is initialised, so the caller sets it
from :attr:`EmbeddedToken.conf` before loading the module.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import subprocess
import tempfile
import termios
import time
from dataclasses import dataclass
from pathlib import Path

from scm import crashpoints
from scm.files import fsync_directory, storage_error, write_atomic
from scm.keys.errors import TokenLoginError, TokenUnavailableError
from scm.state_mutation import mutating

INIT_TIMEOUT_S = 30.0
_STAGING_PREFIX = ".softhsm.tmp-"


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
        """The user PIN; OSError when the file cannot be read (see ``read_pin_file`` for
        a one-line error instead)."""
        return self.user_pin_file.read_text().strip()


def ensure_embedded_token(
    state_dir: Path, label: str, timeout: float = INIT_TIMEOUT_S
) -> EmbeddedToken:
    """Create the embedded token on first use; later calls only return where it is."""
    token = EmbeddedToken(state_dir / "softhsm", label)
    if token.user_pin_file.exists():
        return token
    with mutating(state_dir):
        if token.user_pin_file.exists():  # another process made it while we waited
            return token
        _remove_abandoned(state_dir)
        if token.root.exists():
            _refuse_or_clear_incomplete(token)
        try:
            _create(token, state_dir, timeout)
        except OSError as exc:
            raise storage_error(exc, state_dir) or TokenUnavailableError(
                f"cannot create the embedded token in {state_dir}: {exc.strerror}"
            ) from None
    return token


def _remove_abandoned(state_dir: Path) -> None:
    """Temporary tokens of creations that were killed (we hold the lock: none is live)."""
    for leftover in state_dir.glob(f"{_STAGING_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _refuse_or_clear_incomplete(token: EmbeddedToken) -> None:
    """A ``softhsm`` directory without its PIN file: left by an older scm, or damaged."""
    if token.tokens_dir.is_dir() and any(token.tokens_dir.iterdir()):
        # It may hold keys: never delete it on our own.
        raise TokenLoginError(
            f"embedded token in {token.tokens_dir} exists but its PIN file "
            f"{token.user_pin_file} is missing: restore the PIN file, or move "
            f"{token.root} aside to start with a new, empty token"
        )
    shutil.rmtree(token.root)  # no token in it: a leftover of an interrupted creation


def _create(token: EmbeddedToken, state_dir: Path, timeout: float) -> None:
    staging = EmbeddedToken(Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=state_dir)), "")
    try:
        staging.tokens_dir.mkdir(mode=0o700)
        _write_conf(staging.conf, staging.tokens_dir)
        crashpoints.reach("token.conf-written")
        user_pin, so_pin = secrets.token_hex(16), secrets.token_hex(16)
        _init_token(staging.conf, token.label, so_pin, user_pin, timeout)
        crashpoints.reach("token.initialised")
        write_atomic(staging.so_pin_file, so_pin + "\n", mode=0o600)
        write_atomic(staging.user_pin_file, user_pin + "\n", mode=0o600)
        # SoftHSM2's token files hold no paths: only the configuration names the directory.
        _write_conf(staging.conf, token.tokens_dir)
        crashpoints.reach("token.staged")
        staging.root.rename(token.root)
        fsync_directory(state_dir)
    except BaseException:
        shutil.rmtree(staging.root, ignore_errors=True)
        raise
    crashpoints.reach("token.created")


def _write_conf(conf: Path, tokens_dir: Path) -> None:
    write_atomic(
        conf,
        f"directories.tokendir = {tokens_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n",
        mode=0o600,
    )


def _init_token(conf: Path, label: str, so_pin: str, user_pin: str, timeout: float) -> None:
    """Initialise a free SoftHSM2 slot with ``softhsm2-util``, within ``timeout`` seconds.

    The tool reads PINs from its terminal only; giving them as arguments would expose them
    in the process table, so they are typed into a pseudo-terminal with echo turned off.
    The child is always reaped, killed first when it overruns.
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
            [tool, "--init-token", "--free", "--label", label],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "SOFTHSM2_CONF": str(conf)},
            start_new_session=True,
        )
    finally:
        os.close(slave)
    deadline = time.monotonic() + timeout
    try:
        crashpoints.reach("token.util-started")
        os.write(master, f"{so_pin}\n{so_pin}\n{user_pin}\n{user_pin}\n".encode())
        output = _read_until_closed(master, deadline)
        code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except (TimeoutError, subprocess.TimeoutExpired):
        raise TokenUnavailableError(
            f"softhsm2-util did not finish within {timeout:g} s; it was stopped"
        ) from None
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if code != 0:
        last = output.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise TokenUnavailableError(f"softhsm2-util could not create the token: {last[0]}")


def _read_until_closed(fd: int, deadline: float) -> bytes:
    """Everything the child writes to its terminal until it closes it; TimeoutError after
    ``deadline`` (a child that never closes its terminal must not hang scm)."""
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
