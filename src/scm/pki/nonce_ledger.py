"""Single-use attestation nonces: every accepted nonce is recorded until its evidence expires.

A CSR's evidence is fresh for ``attestation_max_age`` after its nonce was made; within that
window the same CSR must not yield a second certificate. The ledger is a file under the state
directory, one line per nonce (``<expiry, Unix seconds> <SHA-256 of the nonce, hex>``),
appended under the state directory's lock (:func:`scm.state_mutation.mutating`), so every CA
process sharing the state directory sees every claim, and a restart forgets nothing.

Each process keeps the live entries in memory and reads only what other processes appended
since its last look; when expired lines outnumber live ones the file is rewritten atomically
(other processes notice the new inode and reload). The ledger is bounded: when ``capacity``
nonces are live it refuses new ones rather than forget one that could then be replayed.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

from scm.errors import ConfigError
from scm.files import write_atomic
from scm.state_mutation import mutating

LEDGER_NAME = "attestation-nonces"
# Live nonces kept at most (each ~150 bytes in memory, 76 on disk): 100,000 certificates per
# freshness window is far beyond what one CA signs.
DEFAULT_CAPACITY = 100_000
_COMPACT_SLACK = 1024


class NonceLedgerFull(Exception):
    """``capacity`` nonces are live: accepting another would mean forgetting one."""


class NonceLedger:
    """Claims of single-use nonces, shared through ``path`` (or process-local when None)."""

    def __init__(self, path: Path | None, capacity: int = DEFAULT_CAPACITY) -> None:
        self.path = path
        self.capacity = capacity
        self._live: dict[str, int] = {}
        self._lines = 0  # lines in the file, live or not: when to compact
        self._inode: int | None = None
        self._offset = 0
        self._ends_cleanly = True

    @classmethod
    def in_state_dir(cls, state_dir: Path, capacity: int = DEFAULT_CAPACITY) -> NonceLedger:
        return cls(state_dir / LEDGER_NAME, capacity)

    def claim(self, nonce: bytes, expires_at: float, now: float) -> bool:
        """Record ``nonce`` until ``expires_at``; False when it is already recorded (a replay).

        Raises :class:`NonceLedgerFull` when ``capacity`` nonces are live.
        """
        digest = hashlib.sha256(nonce).hexdigest()
        expires = math.ceil(expires_at)
        if self.path is None:
            return self._claim_in_memory(digest, expires, now)
        # A CA in front of a remote backend may have no state directory yet.
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the state directory {self.path.parent}: {exc.strerror}"
            ) from None
        with mutating(self.path.parent):
            self._catch_up()
            if not self._claim_in_memory(digest, expires, now):
                return False
            self._append(digest, expires)
            if self._lines > 2 * len(self._live) + _COMPACT_SLACK:
                self._compact()
        return True

    def __len__(self) -> int:
        return len(self._live)

    def _claim_in_memory(self, digest: str, expires_at: int, now: float) -> bool:
        self._live = {d: t for d, t in self._live.items() if t >= now}
        if digest in self._live:
            return False
        if len(self._live) >= self.capacity:
            raise NonceLedgerFull(
                f"{len(self._live)} attested requests are still within their freshness window"
            )
        self._live[digest] = expires_at
        return True

    def _catch_up(self) -> None:
        """Read what other processes appended (or everything, after a compaction)."""
        assert self.path is not None
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._live, self._lines, self._inode, self._offset = {}, 0, None, 0
            self._ends_cleanly = True
            return
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            self._live, self._lines, self._inode, self._offset = {}, 0, stat.st_ino, 0
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        if data:
            self._ends_cleanly = data.endswith(b"\n")
        for line in data.splitlines():
            self._lines += 1
            parts = line.split()
            # A line cut short by a crash is skipped; the claim it held was never answered.
            if len(parts) == 2 and len(parts[1]) == 64:
                try:
                    self._live[parts[1].decode()] = int(parts[0])
                except ValueError:
                    continue

    def _append(self, digest: str, expires: int) -> None:
        assert self.path is not None
        line = f"{expires} {digest}\n".encode()
        if not self._ends_cleanly:
            line = b"\n" + line
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)  # the certificate is signed after this: the claim must survive
            self._inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        self._offset += len(line)
        self._lines += 1
        self._ends_cleanly = True

    def _compact(self) -> None:
        assert self.path is not None
        text = "".join(f"{int(t)} {d}\n" for d, t in self._live.items())
        write_atomic(self.path, text, mode=0o600)
        self._inode = self.path.stat().st_ino
        self._offset = len(text.encode())
        self._lines = len(self._live)
