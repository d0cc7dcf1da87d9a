"""Issued credentials kept in the state directory, so a restart serves the same identity.

One JSON file per secret name under ``<state dir>/sds/``: the certificate chain, the
label of its key (the key itself stays in the token, or in memory in software mode),
when it was issued, and the keys of earlier certificates still waiting to be retired.
Nothing secret is written: certificates and labels only.
"""

from __future__ import annotations

import datetime
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from scm.files import write_atomic
from scm.sds.credentials import certificates_pem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetiredKey:
    """A key whose certificate was replaced; deleted once that certificate has expired."""

    key_label: str
    not_after: datetime.datetime


@dataclass(frozen=True)
class IssuedRecord:
    """What was issued for one name: chain, key label, key mode and when."""

    chain: tuple[x509.Certificate, ...]
    key_label: str
    key_mode: str
    issued_at: datetime.datetime
    retired: tuple[RetiredKey, ...] = field(default_factory=tuple)

    @property
    def not_after(self) -> datetime.datetime:
        return self.chain[0].not_valid_after_utc


class CredentialRecords:
    """Reads and writes :class:`IssuedRecord` files in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def load(self, name: str) -> IssuedRecord | None:
        """The record for ``name``; None when there is none or it cannot be read."""
        path = self.path(name)
        try:
            document = json.loads(path.read_text())
            return IssuedRecord(
                chain=tuple(x509.load_pem_x509_certificates(document["chain"].encode())),
                key_label=document["key_label"],
                key_mode=document["key_mode"],
                issued_at=datetime.datetime.fromisoformat(document["issued_at"]),
                retired=tuple(
                    RetiredKey(r["key_label"], datetime.datetime.fromisoformat(r["not_after"]))
                    for r in document.get("retired", [])
                ),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, x509.InvalidVersion) as exc:
            # A damaged record only costs a fresh issuance; say so and carry on.
            log.warning("ignoring unreadable credential record %s: %s", path, exc)
            return None

    def save(self, name: str, record: IssuedRecord) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        document = {
            "key_label": record.key_label,
            "key_mode": record.key_mode,
            "issued_at": record.issued_at.isoformat(),
            "not_after": record.not_after.isoformat(),
            "chain": certificates_pem(record.chain).decode(),
            "retired": [
                {"key_label": r.key_label, "not_after": r.not_after.isoformat()}
                for r in record.retired
            ],
        }
        write_atomic(self.path(name), json.dumps(document, indent=2) + "\n", mode=0o600)
