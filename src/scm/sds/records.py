"""Issued credentials kept in the state directory, so a restart serves the same identity.

One JSON file per secret name under ``<state dir>/sds/``: the certificate chain, the
label of its key (the key itself stays in the token, or in memory in software mode),
what it was issued for (SPIFFE ID, DNS names, key mode, the CA bundle's fingerprint),
when, and the keys of earlier certificates still waiting to be retired. Nothing secret
is written: certificates and labels only.

Token keys that exist but are not in a record yet (being issued, or pre-generated for
the pool) are listed in ``keys-in-progress.json`` with the pid that made them, before
they are made; a later start deletes those of dead processes, so a ``kill -9`` in the
middle of an issuance leaves no orphan key.

Writers hold the state directory's lock (:meth:`CredentialRecords.locked`); readers do
not need it (files are replaced by rename).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from scm.files import write_atomic
from scm.sds.credentials import certificates_pem
from scm.state_mutation import mutating

log = logging.getLogger(__name__)

IN_PROGRESS = "keys-in-progress.json"


@dataclass(frozen=True)
class RetiredKey:
    """A key whose certificate was replaced; deleted once that certificate has expired."""

    key_label: str
    not_after: datetime.datetime
    key_mode: str = "hsm"


@dataclass(frozen=True)
class IssuedRecord:
    """What was issued for one name: chain, key, the identity and CA it was issued under."""

    chain: tuple[x509.Certificate, ...]
    key_label: str
    key_mode: str
    issued_at: datetime.datetime
    retired: tuple[RetiredKey, ...] = field(default_factory=tuple)
    spiffe_id: str = ""
    dns_names: tuple[str, ...] = field(default_factory=tuple)
    anchor_fingerprint: str = ""

    @property
    def not_after(self) -> datetime.datetime:
        return self.chain[0].not_valid_after_utc

    def labels(self) -> set[str]:
        """Every key label this record still accounts for (current and retired)."""
        return {self.key_label, *(r.key_label for r in self.retired)}


@dataclass(frozen=True)
class KeyInProgress:
    """A token key made by process ``pid`` that no record holds yet."""

    label: str
    pid: int
    since: datetime.datetime


class CredentialRecords:
    """Reads and writes :class:`IssuedRecord` files in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state directory's lock (the parent of the records directory)."""
        with mutating(self.directory.parent):
            yield

    def load(self, name: str) -> IssuedRecord | None:
        """The record for ``name``; None when there is none or it cannot be read."""
        path = self.path(name)
        try:
            document = json.loads(path.read_text())
            mode = document["key_mode"]
            return IssuedRecord(
                chain=tuple(x509.load_pem_x509_certificates(document["chain"].encode())),
                key_label=document["key_label"],
                key_mode=mode,
                issued_at=datetime.datetime.fromisoformat(document["issued_at"]),
                retired=tuple(
                    RetiredKey(
                        r["key_label"],
                        datetime.datetime.fromisoformat(r["not_after"]),
                        r.get("key_mode", mode),
                    )
                    for r in document.get("retired", [])
                ),
                # records written before these fields existed match nothing: re-issued
                spiffe_id=document.get("spiffe_id", ""),
                dns_names=tuple(document.get("dns_names", ())),
                anchor_fingerprint=document.get("anchor_fingerprint", ""),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, x509.InvalidVersion) as exc:
            # A damaged record only costs a fresh issuance; say so and carry on.
            log.warning("ignoring unreadable credential record %s: %s", path, exc)
            return None

    def save(self, name: str, record: IssuedRecord) -> None:
        document = {
            "spiffe_id": record.spiffe_id,
            "dns_names": list(record.dns_names),
            "key_label": record.key_label,
            "key_mode": record.key_mode,
            "anchor_fingerprint": record.anchor_fingerprint,
            "issued_at": record.issued_at.isoformat(),
            "not_after": record.not_after.isoformat(),
            "chain": certificates_pem(record.chain).decode(),
            "retired": [
                {
                    "key_label": r.key_label,
                    "not_after": r.not_after.isoformat(),
                    "key_mode": r.key_mode,
                }
                for r in record.retired
            ],
        }
        self._write(self.path(name), document)

    def in_progress(self) -> dict[str, KeyInProgress]:
        """Keys made but not recorded yet, by label (empty when none or unreadable)."""
        path = self.directory / IN_PROGRESS
        try:
            document = json.loads(path.read_text())
            return {
                label: KeyInProgress(
                    label, int(entry["pid"]), datetime.datetime.fromisoformat(entry["since"])
                )
                for label, entry in document.items()
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
            return {}

    def set_in_progress(self, keys: dict[str, KeyInProgress]) -> None:
        """Replace the list of keys in progress (hold :meth:`locked`)."""
        document = {k.label: {"pid": k.pid, "since": k.since.isoformat()} for k in keys.values()}
        self._write(self.directory / IN_PROGRESS, document)

    def _write(self, path: Path, document: object) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(path, json.dumps(document, indent=2) + "\n", mode=0o600)
