"""Directory trees shaped like the TEE quote interfaces, with a real quote as their output."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from scm.attestation.evidence import GRAMINE_DIR, TSM_REPORT_DIR

TD_REPORT_DATA = slice(48 + 520, 48 + 584)  # TDX v4 quote: header, then REPORTDATA in the body


def tsm_tree(root: Path, quote: bytes, generation: str = "1", entry: str = "scm-test") -> Path:
    """A configfs-tsm report entry whose ``outblob`` is ``quote``; returns ``root``."""
    directory = root / TSM_REPORT_DIR / entry
    directory.mkdir(parents=True)
    (directory / "provider").write_text("tdx_guest\n")
    (directory / "generation").write_text(generation + "\n")
    (directory / "inblob").write_bytes(b"")
    (directory / "outblob").write_bytes(quote)
    return root


def gramine_tree(root: Path, quote: bytes) -> Path:
    """Gramine's ``/dev/attestation`` (DCAP) whose ``quote`` is ``quote``; returns ``root``."""
    device = root / GRAMINE_DIR
    device.mkdir(parents=True)
    (device / "attestation_type").write_text("dcap")
    (device / "quote").write_bytes(quote)
    return root


class LiveTsmEntry:
    """A configfs-tsm entry that answers like the kernel's: reading ``outblob`` returns a quote
    over what was last written to ``inblob``.

    ``outblob`` is a FIFO served by a thread; the quote is a real TDX quote with its REPORTDATA
    replaced by ``inblob``, so its signature no longer verifies: tests pair it with a stand-in
    for DCAP verification and say so. Everything else (paths, provider, generation, the
    REPORTDATA the CSR's key binding needs) is what a TDX guest's configfs-tsm gives.
    """

    def __init__(self, root: Path, quote: bytes, entry: str = "scm-test") -> None:
        self.directory = root / TSM_REPORT_DIR / entry
        self.directory.mkdir(parents=True)
        (self.directory / "provider").write_text("tdx_guest\n")
        (self.directory / "generation").write_text("1\n")
        (self.directory / "inblob").write_bytes(b"")
        self.outblob = self.directory / "outblob"
        os.mkfifo(self.outblob)
        self.quote = quote
        self.requests: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        served = b""
        while not self._stop:
            # One quote per request: wait for a new inblob (each request has a fresh nonce),
            # so a reader still draining the previous quote never gets a second one.
            report_data = (self.directory / "inblob").read_bytes()
            if len(report_data) != 64 or report_data == served:
                time.sleep(0.005)
                continue
            with self.outblob.open("wb") as out:  # blocks until a reader opens it
                if self._stop:
                    return
                served = report_data
                self.requests.append(report_data)
                quote = bytearray(self.quote)
                quote[TD_REPORT_DATA] = report_data
                out.write(bytes(quote))

    def close(self) -> None:
        self._stop = True
        reader = os.open(self.outblob, os.O_RDONLY | os.O_NONBLOCK)  # wakes the writer
        self._thread.join(timeout=30)
        os.close(reader)
