"""The attestation form: bounded, and every bad input is a one-line message on the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from scm.console import ConsoleSources, console_app
from scm.console.attestation_page import MAX_QUOTE_BYTES
from tests.attestation_cases import FIXTURES

COLLATERAL = FIXTURES / "collateral" / "tdx_v4_uptodate.collateral.json"
QUOTE = FIXTURES / "quotes" / "tdx_v4_uptodate.quote.bin"
AT = "2025-07-04T10:00:00Z"


def post(fields: dict[str, bytes | str], collateral: Path | None = COLLATERAL) -> tuple[int, str]:
    from tests.unit.console.helpers import with_client

    app = console_app(ConsoleSources(collateral=collateral))

    async def body(client: Any) -> tuple[int, str]:
        form = aiohttp.FormData(default_to_multipart=True)
        for name, value in fields.items():
            if isinstance(value, bytes):
                form.add_field(name, value, filename=name, content_type="application/octet-stream")
            else:
                form.add_field(name, value)
        response = await client.post("/console/attestation", data=form)
        return response.status, await response.text()

    return with_client(app, body)


def test_a_pasted_hex_quote_is_verified_with_the_configured_collateral() -> None:
    status, page = post({"quote_text": QUOTE.read_bytes().hex(), "verify_at": AT})
    assert status == 200 and "Accepted: TCB status UpToDate" in page


def test_a_pasted_base64_quote_works_too() -> None:
    import base64

    _, page = post({"quote_text": base64.b64encode(QUOTE.read_bytes()).decode(),
                         "verify_at": AT})  # fmt: skip
    assert "Accepted: TCB status UpToDate" in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"quote_text": "zz not a quote !!"}, "neither hex nor base64"),
        ({}, "paste a quote or choose a quote file"),
        ({"quote_file": b"\0" * (MAX_QUOTE_BYTES * 2 + 1)}, "larger than"),
        ({"quote_file": b"\0" * (MAX_QUOTE_BYTES + 1)}, "larger than"),
        ({"quote_file": QUOTE.read_bytes(), "verify_at": "yesterday"}, "not an ISO 8601 time"),
        ({"quote_file": QUOTE.read_bytes(), "verify_at": "99999999999999999"}, "out of range"),
    ],
)
def test_bad_input_is_a_one_line_message(fields: dict[str, bytes | str], message: str) -> None:
    status, page = post(fields)
    assert status == 200 and message in page and "Traceback" not in page


def test_a_truncated_quote_fails_the_first_step() -> None:
    _, page = post({"quote_file": QUOTE.read_bytes()[:100], "verify_at": AT})
    assert "Rejected: malformed_quote" in page
    assert 'class="step failed"><span class="state">failed' in page


def test_uploaded_collateral_that_is_not_collateral_is_rejected_not_crashed() -> None:
    status, page = post({"quote_file": QUOTE.read_bytes(), "collateral_file": b"{not json"})
    assert status == 200 and "Rejected: malformed_collateral" in page


def test_without_configured_or_uploaded_collateral_the_page_says_so() -> None:
    _, page = post({"quote_file": QUOTE.read_bytes()}, collateral=None)
    assert "no collateral" in page
