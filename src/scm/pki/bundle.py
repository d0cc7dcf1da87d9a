"""A trust bundle kept in a PEM file that operators replace while scm runs.

Roots rotate: a mesh root is re-issued, a signer gains a second root before the old one
is retired. :class:`TrustBundleFile` reads the file again whenever it changed on disk
(inode, size or modification time), so the SDS server can push the new ``ROOTCA``
without a restart. A file that turns unreadable or empty keeps the last good roots
served (and says so once in the log) rather than leaving peers with nothing to trust.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography import x509

from scm.errors import ConfigError
from scm.pki.authority import load_trust_bundle

log = logging.getLogger(__name__)

_Seen = tuple[int, int, int]


class TrustBundleFile:
    """The root certificates in ``path`` as it is now; ``setting`` names it in errors."""

    def __init__(self, path: Path, setting: str) -> None:
        self.path = path
        self.setting = setting
        self._seen = self._stat()
        self._roots = load_trust_bundle(path, setting)  # a bad file at start is a ConfigError
        self._complained: tuple[_Seen | None, str] | None = None

    def certificates(self) -> list[x509.Certificate]:
        """The roots in the file, read again if it changed since the last call."""
        try:
            seen = self._stat()
        except ConfigError as exc:
            self._complain(None, str(exc))
            return list(self._roots)
        if seen != self._seen:
            try:
                roots = load_trust_bundle(self.path, self.setting)
            except ConfigError as exc:
                self._complain(seen, str(exc))
                return list(self._roots)
            log.info("%s %s changed: now %d root(s)", self.setting, self.path, len(roots))
            self._roots, self._seen, self._complained = roots, seen, None
        return list(self._roots)

    def _stat(self) -> _Seen:
        try:
            status = os.stat(self.path)
        except OSError as exc:
            raise ConfigError(f"cannot read {self.setting} {self.path}: {exc.strerror}") from None
        return (status.st_ino, status.st_size, status.st_mtime_ns)

    def _complain(self, seen: _Seen | None, why: str) -> None:
        # Once per bad state of the file: a poller asking every few seconds must not flood.
        if (seen, why) != self._complained:
            log.warning("%s; still serving the previous roots", why)
            self._complained = (seen, why)
