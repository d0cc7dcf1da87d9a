"""Envoy SDS v3 server: secrets from a store, rendered inline or for a key provider.

The parts, each in its own module: :mod:`~scm.sds.credentials` (what is served),
:mod:`~scm.sds.store` (versions, watchers, on-demand issuance), :mod:`~scm.sds.render`
and :mod:`~scm.sds.keyprovider` (Envoy Secret messages), :mod:`~scm.sds.protocol` (the
ACK/NACK/nonce rules), :mod:`~scm.sds.service` (the three RPCs),
:mod:`~scm.sds.wire` (the gRPC method table, lenient parsing),
:mod:`~scm.sds.listeners` and :mod:`~scm.sds.server` (sockets and lifecycle),
:mod:`~scm.sds.peergate`, :mod:`~scm.sds.admission` and :mod:`~scm.sds.refusal` (who may
connect, and refusals as gRPC statuses), :mod:`~scm.sds.peertext` (peer text made safe to
log), :mod:`~scm.sds.assembly` (settings and overrides to a running server, for
``scm sds serve`` and ``scm up``), :mod:`~scm.sds.issuer` and :mod:`~scm.sds.renewal`
(issuance from the configured CA, renewal), :mod:`~scm.sds.up` (``scm up``: the server
with a real Envoy).
"""

from scm.sds.credentials import DEFAULT, ROOTCA, Credential, HsmKey, InlineKey, TrustBundle
from scm.sds.keyprovider import KeyProviderConfig, Pins
from scm.sds.render import SecretRenderer
from scm.sds.server import SdsServer, ServerOptions
from scm.sds.store import CredentialProvider, SecretStore, StoredSecret, UnknownSecretError

__all__ = [
    "DEFAULT",
    "ROOTCA",
    "Credential",
    "CredentialProvider",
    "HsmKey",
    "InlineKey",
    "KeyProviderConfig",
    "Pins",
    "SdsServer",
    "SecretRenderer",
    "SecretStore",
    "ServerOptions",
    "StoredSecret",
    "TrustBundle",
    "UnknownSecretError",
]
