"""Evidence generation inside a TEE, bound to a key.

- TDX guests: Linux configfs-tsm (``/sys/kernel/config/tsm/report/<entry>/``): write exactly 64
  bytes to ``inblob``, read the quote from ``outblob``; ``generation`` is read before writing and
  after reading, and must have grown by exactly our one write, so a concurrent writer to the
  same entry is detected instead of returning its quote.
- SGX enclaves under Gramine: write 64 bytes to ``/dev/attestation/user_report_data`` and read
  ``/dev/attestation/quote``.

Every path is below a configurable root so tests run on directory trees. Binding: REPORTDATA =
SHA-256(SubjectPublicKeyInfo DER) || 32-byte nonce, checked by :func:`check_key_binding`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from scm.attestation.errors import EvidenceError
from scm.attestation.quote import Quote

REPORT_DATA_BYTES = 64
NONCE_BYTES = 32
TSM_REPORT_DIR = Path("sys/kernel/config/tsm/report")
GRAMINE_DIR = Path("dev/attestation")


def spki_der(public_key: PublicKeyTypes | bytes) -> bytes:
    """SubjectPublicKeyInfo DER of a key object (bytes are taken as SPKI DER already)."""
    if isinstance(public_key, bytes):
        return public_key
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_report_data(public_key: PublicKeyTypes | bytes, nonce: bytes) -> bytes:
    """REPORTDATA binding a key and a nonce: SHA-256(SPKI DER) || nonce."""
    if len(nonce) != NONCE_BYTES:
        raise EvidenceError(f"the nonce must be {NONCE_BYTES} bytes, not {len(nonce)}")
    return hashlib.sha256(spki_der(public_key)).digest() + nonce


def check_key_binding(quote: Quote, public_key: PublicKeyTypes | bytes, nonce: bytes) -> bool:
    """True when the quote's REPORTDATA binds ``public_key`` and ``nonce``."""
    expected = key_report_data(public_key, nonce)
    return secrets.compare_digest(quote.report.report_data, expected)


@dataclass(frozen=True)
class Evidence:
    quote: bytes
    report_data: bytes
    source: str  # "configfs-tsm" or "gramine"


def generate_quote(
    report_data: bytes, root: Path = Path("/"), tsm_entry: str | None = None
) -> Evidence:
    """A quote over ``report_data`` from whichever TEE interface exists below ``root``.

    ``tsm_entry`` names an existing configfs-tsm entry to use (one an administrator created and
    handed to an unprivileged user); by default a private entry is created and removed.
    """
    if len(report_data) != REPORT_DATA_BYTES:
        raise EvidenceError(f"REPORTDATA must be {REPORT_DATA_BYTES} bytes, not {len(report_data)}")
    if (root / TSM_REPORT_DIR).is_dir():
        quote = ConfigfsTsm(root, tsm_entry).quote(report_data)
        return Evidence(quote, report_data, "configfs-tsm")
    if (root / GRAMINE_DIR).is_dir():
        return Evidence(_gramine_quote(root / GRAMINE_DIR, report_data), report_data, "gramine")
    raise EvidenceError(
        f"no TEE quote interface below {root}: neither {TSM_REPORT_DIR} (TDX guest with "
        f"configfs-tsm) nor {GRAMINE_DIR} (SGX enclave under Gramine)"
    )


def generate_key_evidence(
    public_key: PublicKeyTypes | bytes,
    nonce: bytes | None = None,
    root: Path = Path("/"),
    tsm_entry: str | None = None,
) -> Evidence:
    """A quote whose REPORTDATA binds ``public_key`` and a nonce (fresh when not given)."""
    report_data = key_report_data(public_key, nonce or secrets.token_bytes(32))
    return generate_quote(report_data, root, tsm_entry)


class ConfigfsTsm:
    """One request through configfs-tsm; the entry directory is created and removed per call."""

    def __init__(self, root: Path = Path("/"), entry: str | None = None) -> None:
        self.base = root / TSM_REPORT_DIR
        self.entry = entry

    def quote(self, report_data: bytes) -> bytes:
        name = self.entry or f"scm-{os.getpid()}-{secrets.token_hex(4)}"
        entry = self.base / name
        created = not entry.exists()
        try:
            if created:
                entry.mkdir()  # configfs fills the directory with the report attributes
            provider = _read(entry / "provider").decode().strip()
            if provider and provider != "tdx_guest":
                raise EvidenceError(f"configfs-tsm provider is {provider!r}, not tdx_guest")
            # The kernel adds one to generation for every inblob write. Read it before ours:
            # read after, a writer between our write and that read would go unnoticed.
            before = self._generation(entry)
            self._write_inblob(entry, report_data)
            quote = self._read_outblob(entry)
            after = self._generation(entry)
            # before + 1: only our write. Unchanged is possible only in a directory tree that
            # stands for configfs (no kernel counts there), never on configfs itself.
            if after not in (before, before + 1):
                raise EvidenceError(
                    f"configfs-tsm entry {name} was written concurrently; retry the request"
                )
        except OSError as exc:
            raise EvidenceError(f"configfs-tsm request failed: {exc}") from None
        finally:
            if created:
                # configfs removes the attribute files with the directory
                with contextlib.suppress(OSError):
                    entry.rmdir()
        if not quote:
            raise EvidenceError("configfs-tsm returned an empty quote")
        return quote

    def _generation(self, entry: Path) -> int:
        text = _read(entry / "generation").decode().strip()
        try:
            return int(text)
        except ValueError:
            raise EvidenceError(f"configfs-tsm generation {text!r} is not a number") from None

    def _write_inblob(self, entry: Path, report_data: bytes) -> None:
        _write(entry / "inblob", report_data)

    def _read_outblob(self, entry: Path) -> bytes:
        return _read(entry / "outblob")


def _gramine_quote(directory: Path, report_data: bytes) -> bytes:
    try:
        kind = directory / "attestation_type"
        if kind.exists() and _read(kind).decode().strip() not in ("dcap", ""):
            raise EvidenceError(f"Gramine attestation type is {_read(kind).decode().strip()!r}")
        _write(directory / "user_report_data", report_data)
        quote = _read(directory / "quote")
    except OSError as exc:
        raise EvidenceError(f"Gramine /dev/attestation request failed: {exc}") from None
    if not quote:
        raise EvidenceError("Gramine returned an empty quote")
    return quote


def _read(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read()


def _write(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
