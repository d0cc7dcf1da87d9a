"""Does a recorded chain still certify the workload identity under the CA's current bundle?

The one place the SDS server verifies a chain before serving it again after a restart
through the shared X.509-SVID policy (:func:`scm.pki.check_svid`), plus the exact DNS
names a record must have been issued for.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from scm.pki import InvalidSvidError, WorkloadIdentity, check_svid


def anchor_fingerprint(bundle: Sequence[x509.Certificate]) -> str:
    """SHA-256 over the bundle's certificates (order-independent), as hex."""
    digests = sorted(
        hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest() for c in bundle
    )
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def chain_problem(
    chain: Sequence[x509.Certificate],
    bundle: Sequence[x509.Certificate],
    identity: WorkloadIdentity,
    now: datetime.datetime,
) -> str | None:
    """Why ``chain`` must not be served for ``identity`` at ``now``; None when it may.

    The leaf must name exactly the identity's SPIFFE ID and DNS names, and the chain must
    verify (signatures, validity at ``now``, CA constraints, client-auth usage, as an
    SVID is) against ``bundle``.
    """
    if not chain:
        return "the record holds no certificate"
    if not bundle:
        return "the CA's trust bundle is empty"
    leaf = chain[0]
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "the certificate names no identity"
    if sorted(sans.get_values_for_type(x509.DNSName)) != sorted(identity.dns_names):
        return "the certificate's DNS names differ from the configured ones"
    try:
        check_svid(
            list(chain),
            list(bundle),
            expected_spiffe_id=identity.spiffe_id,
            allowed_dns=identity.dns_names,
            source="the certificate",
            now=now,
        )
    except InvalidSvidError as exc:
        return str(exc)
    return None
