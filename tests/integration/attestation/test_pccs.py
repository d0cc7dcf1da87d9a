"""The PCCS/PCS client against a loopback server speaking PCS API v4 with real collateral."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from scm.attestation import parse_quote, verify
from scm.attestation.errors import CollateralUnavailableError
from scm.attestation.pccs import PccsClient, PlatformKey, fresh_until
from tests.attestation_cases import FIXTURES, case, cases
from tests.integration.attestation.test_cli import scm
from tests.pcs_server import PcsServer, running_pcs
from tests.tls import make_tls


@pytest.fixture
def pcs() -> Iterator[PcsServer]:
    with running_pcs() as server:
        yield server


def _serve(server: PcsServer, name: str) -> PlatformKey:
    c = case(name)
    key = PlatformKey.of(parse_quote(c.quote))
    server.serve(key.tee, key.fmspc, key.ca, c.collateral)
    return key


@pytest.mark.parametrize("name", [c.name for c in cases()][::2])
def test_fetched_collateral_gives_the_same_verdict_as_the_bundle(pcs: PcsServer, name: str) -> None:
    c = case(name)
    _serve(pcs, name)
    fetched = PccsClient(pcs.url).collateral_for(parse_quote(c.quote), c.verify_at)
    assert fetched == c.collateral
    assert verify(c.quote, fetched, c.verify_at) == verify(c.quote, c.collateral, c.verify_at)


def test_cache_is_used_until_next_update(pcs: PcsServer, tmp_path: Path) -> None:
    c = case("tdx_v4_uptodate")
    key = _serve(pcs, c.name)
    client = PccsClient(pcs.url, cache_dir=tmp_path)
    quote = parse_quote(c.quote)
    client.collateral_for(quote, c.verify_at)
    assert pcs.hits["tcb"] == 1
    assert client.collateral_for(quote, c.verify_at) == c.collateral
    assert pcs.hits["tcb"] == 1  # served from the cache
    assert (tmp_path / key.file_name).stat().st_mode & 0o777 == 0o600
    stale = fresh_until(c.collateral) + 1
    client.collateral_for(quote, stale)
    assert pcs.hits["tcb"] == 2  # past nextUpdate: fetched again


def test_unknown_platform_is_an_unavailable_error(pcs: PcsServer) -> None:
    c = case("tdx_v4_uptodate")
    with pytest.raises(CollateralUnavailableError, match="HTTP 404"):
        PccsClient(pcs.url).collateral_for(parse_quote(c.quote), c.verify_at)


def test_unreachable_pccs_is_an_unavailable_error() -> None:
    client = PccsClient("http://127.0.0.1:9", timeout=2)
    with pytest.raises(CollateralUnavailableError, match="cannot reach"):
        client.collateral_for(parse_quote(case("tdx_v4_uptodate").quote))


def test_cli_fetches_an_offline_bundle_and_verifies_online(pcs: PcsServer, tmp_path: Path) -> None:
    c = case("tdx_v5_td15_uptodate")
    _serve(pcs, c.name)
    quote = str(FIXTURES / c.entry["quote"])
    bundle = tmp_path / "bundle.json"
    fetched = scm(
        "attest", "collateral", "fetch", quote, "--pccs-url", pcs.url, "--output", str(bundle)
    )
    assert fetched.returncode == 0, fetched.stderr
    offline = scm(
        "attest",
        "verify",
        quote,
        "--collateral",
        str(bundle),
        "--at",
        str(c.verify_at),
        "--format",
        "json",
    )
    online = scm(
        "--state-dir", str(tmp_path / "state"), "attest", "verify", quote,
        "--pccs-url", pcs.url, "--at", str(c.verify_at), "--format", "json",
    )  # fmt: skip
    assert offline.returncode == online.returncode == 0, online.stderr
    assert json.loads(offline.stdout) == json.loads(online.stdout)
    assert json.loads(online.stdout)["status"] == c.expected["status"]


def test_a_cache_that_cannot_be_written_does_not_lose_the_collateral(
    pcs: PcsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    c = case("tdx_v4_uptodate")
    _serve(pcs, c.name)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    client = PccsClient(pcs.url, cache_dir=blocker / "cache")
    assert client.collateral_for(parse_quote(c.quote), c.verify_at) == c.collateral
    assert "cannot cache collateral" in caplog.text


def test_pccs_verify_tls_off_accepts_a_self_signed_pccs(tmp_path: Path) -> None:
    """pccs_verify_tls = false (built from public ssl API): a PCCS with a certificate from
    no known CA is reached; with verification on it is refused."""
    files = make_tls(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(files.cert, files.key)
    c = case(cases()[0].name)
    with running_pcs(tls) as server:
        _serve(server, c.name)
        with pytest.raises(CollateralUnavailableError):
            PccsClient(server.url).collateral_for(parse_quote(c.quote), c.verify_at)
        fetched = PccsClient(server.url, verify_tls=False).collateral_for(
            parse_quote(c.quote), c.verify_at
        )
    assert fetched == c.collateral
