"""ROOTCA follows a trust bundle file that operators replace while the server runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest
from cryptography import x509

from scm.pki import IstioCA, IstioCASettings
from scm.sds import ROOTCA, SecretStore
from scm.sds.credentials import TrustBundle
from scm.sds.rootwatch import follow_trust_bundle, refresh_trust_bundle
from tests.certs import TestCA, cert_pem
from tests.integration.sds.client import read, request, secrets_of, serving


def _roots_in(secret: object) -> list[x509.Certificate]:
    pem = secret.validation_context.trusted_ca.inline_bytes  # type: ignore[attr-defined]
    return x509.load_pem_x509_certificates(pem)


def _ca_with_bundle(path: Path) -> IstioCA:
    """A remote backend whose bundle is ``path`` (nothing is signed, so no peer is needed)."""
    return IstioCA.from_settings(IstioCASettings(root_cert_file=path))


def test_a_replaced_bundle_file_is_pushed_on_the_open_stream(
    tmp_path: Path, socket_path: Path
) -> None:
    old, new = TestCA("old root"), TestCA("new root")
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(cert_pem(old.certificate))
    ca = _ca_with_bundle(bundle)
    store = SecretStore()
    store.put(ROOTCA, TrustBundle(tuple(ca.trust_bundle())))

    async def main() -> None:
        async with serving(store, socket_path) as (_, stub):
            follower = asyncio.create_task(follow_trust_bundle(store, ca, interval=0.05))
            try:
                call = stub.StreamSecrets()
                await call.write(request([ROOTCA]))
                first = await read(call)
                assert _roots_in(secrets_of(first)[0]) == [old.certificate]
                await call.write(request([ROOTCA], first.nonce, first.version_info))
                # Rotation in two steps, as operators do it: both roots, then the new alone.
                bundle.write_bytes(cert_pem(old.certificate) + cert_pem(new.certificate))
                both = await read(call, timeout=20)
                assert _roots_in(secrets_of(both)[0]) == [old.certificate, new.certificate]
                await call.write(request([ROOTCA], both.nonce, both.version_info))
                bundle.write_bytes(cert_pem(new.certificate))
                last = await read(call, timeout=20)
                assert _roots_in(secrets_of(last)[0]) == [new.certificate]
                call.cancel()
            finally:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower

    asyncio.run(main())


def test_a_broken_bundle_file_keeps_the_last_good_roots(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = TestCA("root")
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(cert_pem(root.certificate))
    ca = _ca_with_bundle(bundle)
    store = SecretStore()
    assert not refresh_trust_bundle(store, ca)  # not served yet: nothing to push
    assert store.get(ROOTCA) is None
    store.put(ROOTCA, TrustBundle(tuple(ca.trust_bundle())))
    version = store.get(ROOTCA).version  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING):
        bundle.write_text("half-written\n")
        assert not refresh_trust_bundle(store, ca)
        assert not refresh_trust_bundle(store, ca)
        bundle.unlink()
        assert not refresh_trust_bundle(store, ca)
    assert store.get(ROOTCA).version == version  # type: ignore[union-attr]
    assert ca.trust_bundle() == [root.certificate]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2  # once per bad state, not once per poll
    assert "holds no valid PEM certificate; still serving the previous roots" in warnings[0]
    assert "cannot read istio_ca.root_cert_file" in warnings[1]
