"""An independent check of issued certificates with the SPIFFE project's own library.

``spiffe`` (PyPI) parses the chain and key as an X.509-SVID (one SPIFFE ID URI SAN with a
path, CA:FALSE, digitalSignature and never keyCertSign/cRLSign on the leaf, signing
certificates marked CA with keyCertSign) and the roots as the trust domain's X.509 bundle.
spiffe 0.3.2 has no path validation of its own, so the chain is verified against the
bundle's authorities with OpenSSL (pyOpenSSL), a verifier independent of the
``cryptography`` one scm uses.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from OpenSSL import crypto
from spiffe import SpiffeId, TrustDomain, X509Bundle, X509Svid


def _pem(certificates: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def assert_spiffe_svid(
    chain: Sequence[x509.Certificate],
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    bundle: Sequence[x509.Certificate],
    spiffe_id: str,
) -> X509Svid:
    """``chain`` (leaf first) and ``key`` are an X.509-SVID for ``spiffe_id`` that
    verifies to ``bundle``, as the SPIFFE library and OpenSSL see it."""
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    svid = X509Svid.parse(_pem(chain), key_pem)
    assert svid.spiffe_id == SpiffeId(spiffe_id)
    trust_domain = TrustDomain(svid.spiffe_id.trust_domain.name)
    parsed_bundle = X509Bundle.parse(trust_domain, _pem(bundle))
    store = crypto.X509Store()
    for authority in parsed_bundle.x509_authorities:
        store.add_cert(crypto.X509.from_cryptography(authority))
    leaf, *rest = svid.cert_chain
    context = crypto.X509StoreContext(
        store, crypto.X509.from_cryptography(leaf), [crypto.X509.from_cryptography(c) for c in rest]
    )
    context.verify_certificate()  # raises X509StoreContextError when no path leads to the bundle
    return svid
