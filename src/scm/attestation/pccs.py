"""Fetch collateral from a PCCS or Intel PCS (API v4), cached on disk until ``nextUpdate``.

The cache holds one bundle per (TEE, FMSPC, PCK CA) under ``<state dir>/attestation/collateral``.
A bundle is reused until the earliest ``nextUpdate`` of its TCB Info, QE Identity and CRLs; after
that it is fetched again. Paths are those of the PCS API v4, which a PCCS serves as well; the root
CA CRL comes from the PCCS ``rootcacrl`` endpoint.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote as url_quote

from cryptography import x509

from scm.attestation import tcb
from scm.attestation.collateral import Collateral
from scm.attestation.errors import CollateralError, CollateralUnavailableError
from scm.attestation.pck import pck_extension
from scm.attestation.pcs import (
    PCK_CRL_CHAIN_HEADER,
    QE_IDENTITY_CHAIN_HEADER,
    TCB_INFO_CHAIN_HEADERS,
    collateral_from_pcs,
    issuer_chain,
)
from scm.attestation.quote import Quote
from scm.attestation.trust import MALFORMED_CERTIFICATE_ERRORS
from scm.errors import ConfigError
from scm.files import write_atomic

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 4 * 1024 * 1024


def collateral_cache_dir(state_dir: Path) -> Path:
    """Where the PCCS client caches collateral bundles under scm's state directory."""
    return state_dir / "attestation" / "collateral"


@dataclass(frozen=True)
class AttestationSettings:
    """The ``[attestation]`` settings table (``SCM_ATTESTATION_*`` variables)."""

    pccs_url: str = "https://localhost:8081"
    pccs_timeout_seconds: float = 10.0
    pccs_verify_tls: bool = True

    def __post_init__(self) -> None:
        # NaN fails both comparisons, so it is refused too.
        if not 0 < self.pccs_timeout_seconds <= 3600:
            raise ConfigError(
                f"attestation.pccs_timeout_seconds must be between 0 and 3600, "
                f"not {self.pccs_timeout_seconds}"
            )


@dataclass(frozen=True)
class PlatformKey:
    """What collateral is fetched for: the TEE, the platform's FMSPC and its PCK CA."""

    tee: str  # "sgx" or "tdx"
    fmspc: str  # upper-case hex
    ca: str  # "processor" or "platform"

    @classmethod
    def of(cls, quote: Quote) -> PlatformKey:
        try:
            leaf = x509.load_pem_x509_certificates(quote.pck_chain_pem)[0]
            issuer = leaf.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            fmspc = pck_extension(leaf).fmspc.hex().upper()
        except (IndexError, *MALFORMED_CERTIFICATE_ERRORS):
            # Fields parse lazily: a forged issuer or extension fails here, not at load.
            raise CollateralError("the quote's PCK certificate chain cannot be read") from None
        name = str(issuer[0].value).lower() if issuer else ""
        ca = "processor" if "processor" in name else "platform" if "platform" in name else ""
        if not ca:
            raise CollateralError(f"PCK certificate issuer {name[:80]!r} is not a PCK CA")
        return cls("tdx" if quote.is_tdx else "sgx", fmspc, ca)

    @property
    def file_name(self) -> str:
        return f"{self.tee}-{self.fmspc}-{self.ca}.json"


class PccsClient:
    """A small synchronous client for the PCS v4 collateral endpoints, with a disk cache."""

    def __init__(
        self,
        base_url: str,
        cache_dir: Path | None = None,
        timeout: float = 10.0,
        verify_tls: bool = True,
    ) -> None:
        self.base_url = _check_url(base_url).rstrip("/")
        self.cache_dir = cache_dir
        self.timeout = timeout
        self._tls = None if verify_tls else _unverified_tls()

    @classmethod
    def from_settings(
        cls, settings: AttestationSettings, url: str | None = None, cache_dir: Path | None = None
    ) -> PccsClient:
        """A client for ``url`` (default: ``pccs_url``) with the ``[attestation]`` options."""
        return cls(
            url or settings.pccs_url,
            cache_dir=cache_dir,
            timeout=settings.pccs_timeout_seconds,
            verify_tls=settings.pccs_verify_tls,
        )

    def collateral_for(self, quote: Quote, now: float | None = None) -> Collateral:
        """Collateral for the platform that produced ``quote``: from the cache while fresh."""
        key = PlatformKey.of(quote)
        when = time.time() if now is None else now
        cached = self._cached(key, when)
        if cached is not None:
            return cached
        collateral = self.fetch(key)
        self._store(key, collateral)
        return collateral

    def fetch(self, key: PlatformKey) -> Collateral:
        """Fetch every piece from the server (no cache)."""
        tcb_body, tcb_headers = self._get(f"/{key.tee}/certification/v4/tcb?fmspc={key.fmspc}")
        qe_body, qe_headers = self._get(f"/{key.tee}/certification/v4/qe/identity")
        crl_body, crl_headers = self._get(
            f"/sgx/certification/v4/pckcrl?ca={url_quote(key.ca)}&encoding=der"
        )
        root_body, _ = self._get("/sgx/certification/v4/rootcacrl")
        tcb_chain = next((tcb_headers[h] for h in TCB_INFO_CHAIN_HEADERS if h in tcb_headers), None)
        return collateral_from_pcs(
            tcb_info_body=tcb_body,
            tcb_info_chain=issuer_chain(tcb_chain, TCB_INFO_CHAIN_HEADERS[0]),
            qe_identity_body=qe_body,
            qe_identity_chain=issuer_chain(
                qe_headers.get(QE_IDENTITY_CHAIN_HEADER), QE_IDENTITY_CHAIN_HEADER
            ),
            pck_crl_body=crl_body,
            pck_crl_chain=issuer_chain(crl_headers.get(PCK_CRL_CHAIN_HEADER), PCK_CRL_CHAIN_HEADER),
            root_ca_crl_body=root_body,
        )

    def _get(self, path: str) -> tuple[bytes, dict[str, str]]:
        url = self.base_url + path
        request = urllib.request.Request(url, headers={"Accept": "application/json, */*"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._tls) as reply:
                body: bytes = reply.read(MAX_RESPONSE_BYTES + 1)
                headers = {k: v for k, v in reply.headers.items()}
        except urllib.error.HTTPError as exc:
            raise CollateralUnavailableError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CollateralUnavailableError(f"cannot reach {url}: {reason}") from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise CollateralUnavailableError(f"{url}: response larger than {MAX_RESPONSE_BYTES}")
        return body, headers

    def _cached(self, key: PlatformKey, now: float) -> Collateral | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / key.file_name
        try:
            entry = json.loads(path.read_text())
            if now < float(entry["fresh_until"]):
                return Collateral.from_dict(entry["collateral"])
        except (OSError, ValueError, KeyError, TypeError, CollateralError):
            pass  # missing, stale or damaged: fetch again
        return None

    def _store(self, key: PlatformKey, collateral: Collateral) -> None:
        if self.cache_dir is None:
            return
        entry = {"fresh_until": fresh_until(collateral), "collateral": collateral.to_dict()}
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.cache_dir / key.file_name, json.dumps(entry), mode=0o600)
        except OSError as exc:
            # The cache only saves a fetch next time: the collateral in hand is still good.
            log.warning("cannot cache collateral in %s: %s", self.cache_dir, exc.strerror)


def _check_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host; urllib would fail late and obscurely."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"PCCS URL {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"PCCS URL {url!r} must be an http:// or https:// URL with a host")
    return url


def fresh_until(collateral: Collateral) -> float:
    """The earliest ``nextUpdate`` among TCB Info, QE Identity and both CRLs (Unix seconds)."""
    info = tcb.parse_tcb_info(collateral.tcb_info)
    identity = tcb.parse_qe_identity(collateral.qe_identity)
    times = [info.next_update.timestamp(), identity.next_update.timestamp()]
    for der in (collateral.root_ca_crl, collateral.pck_crl):
        try:
            next_update = x509.load_der_x509_crl(der).next_update_utc
        except ValueError:
            raise CollateralError("collateral holds a CRL that is not DER") from None
        if next_update is not None:
            times.append(next_update.timestamp())
    return min(times)


def _unverified_tls() -> ssl.SSLContext:
    """TLS that checks neither name nor chain (a PCCS with a self-signed certificate).

    Collateral is signed by Intel and verified on use, so the channel needs no trust.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
