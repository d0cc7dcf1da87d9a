"""Directory trees shaped like the TEE quote interfaces, with a real quote as their output."""

from __future__ import annotations

from pathlib import Path

from scm.attestation.evidence import GRAMINE_DIR, TSM_REPORT_DIR


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
