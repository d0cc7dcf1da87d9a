"""The attestation form: bounded, and every bad input is a one-line message on the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from scm.attestation import parse_quote
from scm.attestation.pccs import PccsClient, PlatformKey
from scm.console import ConsoleSources, console_app
from scm.console.attestation_page import MAX_QUOTE_BYTES
from tests.attestation_cases import FIXTURES, case
from tests.pcs_server import running_pcs
from tests.unit.console.helpers import with_client

COLLATERAL = FIXTURES / "collateral" / "tdx_v4_uptodate.collateral.json"
QUOTE = FIXTURES / "quotes" / "tdx_v4_uptodate.quote.bin"
AT = "2025-07-04T10:00:00Z"


def post(
    fields: dict[str, bytes | str],
    collateral: Path | None = COLLATERAL,
    pccs: PccsClient | None = None,
) -> tuple[int, str]:
    app = console_app(ConsoleSources(collateral=collateral, pccs=pccs))

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


def test_without_a_bundle_collateral_is_fetched_from_the_pccs(tmp_path: Path) -> None:
    tdx = case("tdx_v4_uptodate")
    key = PlatformKey.of(parse_quote(tdx.quote))
    with running_pcs() as pcs:
        pcs.serve(key.tee, key.fmspc, key.ca, tdx.collateral)
        client = PccsClient(pcs.url, cache_dir=tmp_path)
        _, page = post({"quote_file": tdx.quote, "verify_at": AT}, collateral=None, pccs=client)
    assert "Accepted: TCB status UpToDate" in page
    assert f"fetched from {pcs.url}" in page


def test_a_pccs_that_does_not_answer_is_a_one_line_message(tmp_path: Path) -> None:
    with running_pcs() as pcs:  # serves nothing for this platform
        client = PccsClient(pcs.url, cache_dir=tmp_path)
        status, page = post({"quote_file": QUOTE.read_bytes(), "verify_at": AT},
                            collateral=None, pccs=client)  # fmt: skip
    assert status == 200 and 'class="error" id="result"' in page and "Traceback" not in page
