"""The real quotes and Intel collateral in tests/fixtures/attestation, with dcap-qvl's verdicts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from scm.attestation import Collateral

FIXTURES = Path(__file__).parent / "fixtures" / "attestation"

# dcap-qvl 0.7.0's error messages (manifest "error") and the reason code scm gives for each.
DCAP_QVL_ERRORS = {
    "Debug mode is enabled": "debug_enabled",
    "No matching TCB level found": "tcb_not_supported",
}


@dataclass(frozen=True)
class Case:
    name: str
    quote: bytes
    collateral_json: str
    verify_at: int
    window: tuple[int, int]
    expected: dict[str, Any]
    entry: dict[str, Any]

    @property
    def collateral(self) -> Collateral:
        return Collateral.from_json(self.collateral_json)


@cache
def cases() -> tuple[Case, ...]:
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    return tuple(_case(entry) for entry in manifest)


def case(name: str) -> Case:
    return next(c for c in cases() if c.name == name)


def case_names() -> list[str]:
    return [c.name for c in cases()]


def _case(entry: dict[str, Any]) -> Case:
    start, end = (
        int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp())
        for t in entry["valid_window"]
    )
    return Case(
        name=entry["name"],
        quote=(FIXTURES / entry["quote"]).read_bytes(),
        collateral_json=(FIXTURES / entry["collateral"]).read_text(),
        verify_at=int(entry["verify_at"]),
        window=(start, end),
        expected=entry["expected_dcap_qvl_0_7_0"],
        entry=entry,
    )
