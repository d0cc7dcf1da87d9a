"""Turn stored credentials into Envoy ``Secret`` messages.

- a :class:`~scm.sds.credentials.TrustBundle` becomes a ``validation_context`` (``ROOTCA``);
- a credential with an inline key becomes a ``tls_certificate`` with the chain and key
  bytes (software key mode, what stock Envoy needs);
- a credential with an HSM key becomes a ``tls_certificate`` with the chain and a
  ``private_key_provider``: no key bytes ever leave the token (hsm key mode).
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from scm.errors import ConfigError
from scm.sds.credentials import Credential, HsmKey, SecretValue, TrustBundle
from scm.sds.keyprovider import KeyProviderConfig

SECRET_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


class SecretRenderer:
    """Renders secrets; ``key_provider`` says how Envoy reaches keys held in a token."""

    def __init__(self, key_provider: KeyProviderConfig | None = None) -> None:
        self.key_provider = key_provider

    def render(self, name: str, value: SecretValue) -> secret_pb2.Secret:
        if isinstance(value, TrustBundle):
            return secret_pb2.Secret(
                name=name,
                validation_context=common_pb2.CertificateValidationContext(
                    trusted_ca=base_pb2.DataSource(inline_bytes=value.pem())
                ),
            )
        return secret_pb2.Secret(name=name, tls_certificate=self._tls_certificate(value))

    def _tls_certificate(self, credential: Credential) -> common_pb2.TlsCertificate:
        chain = base_pb2.DataSource(inline_bytes=credential.chain_pem())
        key = credential.key
        if not isinstance(key, HsmKey):
            return common_pb2.TlsCertificate(
                certificate_chain=chain, private_key=base_pb2.DataSource(inline_bytes=key.pem)
            )
        if self.key_provider is None:
            raise ConfigError("a credential's key is in a token but no key provider is configured")
        provider = common_pb2.PrivateKeyProvider(
            provider_name=self.key_provider.provider_name,
            typed_config=self.key_provider.typed_config(key),
        )
        return common_pb2.TlsCertificate(certificate_chain=chain, private_key_provider=provider)
