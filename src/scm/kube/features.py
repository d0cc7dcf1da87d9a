"""EPC registration through NFD: the features file its local source reads."""

from __future__ import annotations

import logging
from pathlib import Path

from scm.errors import UnavailableError
from scm.files import write_atomic
from scm.platform import HostReport
from scm.platform.render import render_nfd

log = logging.getLogger(__name__)


class FeaturesFile:
    """Keeps ``path`` equal to the host's NFD features, rewriting it only when they change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def publish(self, report: HostReport) -> None:
        text = render_nfd(report)
        try:
            if self.path.is_file() and self.path.read_text() == text:
                return
            write_atomic(self.path, text)
        except OSError as exc:
            raise UnavailableError(f"cannot write NFD features to {self.path}: {exc}") from None
        log.info("NFD features written to %s", self.path)
