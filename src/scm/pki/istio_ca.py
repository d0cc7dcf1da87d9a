"""A CA that speaks Istio's certificate service, as istio-agent does with istiod.

One gRPC call, ``istio.v1.auth.IstioCertificateService/CreateCertificate``, over TLS
verified against the mesh root file, authenticated by the workload's bearer token (read
from its file on every call, since the kubelet rotates it) and the cluster ID header.
The answer is the chain, leaf first and the root last.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from scm._proto.istio.v1.auth import ca_pb2, ca_pb2_grpc
from scm.errors import ConfigError
from scm.pki.authority import IssuedCertificate, check_issued, csr_to_pem, parse_chain
from scm.pki.bundle import TrustBundleFile
from scm.pki.errors import CAUnavailableError


@dataclass(frozen=True)
class IstioCASettings:
    """The ``[istio_ca]`` settings table (``SCM_ISTIO_CA_*``); defaults are istio-agent's.

    ``tls_server_name`` is the name istiod's certificate carries when ``address`` is not
    that name; ``trust_bundle_file`` defaults to ``root_cert_file`` (the mesh root).
    """

    address: str = "istiod.istio-system.svc:15012"
    root_cert_file: Path = Path("/var/run/secrets/istio/root-cert.pem")
    token_file: Path = Path("/var/run/secrets/tokens/istio-token")
    cluster_id: str = "Kubernetes"
    tls_server_name: str = ""
    trust_bundle_file: Path | None = None
    timeout_seconds: float = 30.0


class IstioCA:
    """Signs CSRs through an Istio CA; implements ``CertificateAuthority``."""

    def __init__(
        self,
        settings: IstioCASettings,
        tls_roots: TrustBundleFile,
        trust_bundle: TrustBundleFile,
    ) -> None:
        self.settings = settings
        self._tls_roots = tls_roots
        self._trust_bundle = trust_bundle

    @classmethod
    def from_settings(cls, settings: IstioCASettings) -> IstioCA:
        # Both files are re-read when they change: Istio rotates its mesh root in place.
        roots = TrustBundleFile(settings.root_cert_file, "istio_ca.root_cert_file")
        bundle = roots
        if settings.trust_bundle_file is not None:
            bundle = TrustBundleFile(settings.trust_bundle_file, "istio_ca.trust_bundle_file")
        return cls(settings, roots, bundle)

    def trust_bundle(self) -> list[x509.Certificate]:
        return self._trust_bundle.certificates()

    async def sign(
        self, csr: x509.CertificateSigningRequest, ttl: datetime.timedelta
    ) -> IssuedCertificate:
        request = ca_pb2.IstioCertificateRequest(
            csr=csr_to_pem(csr).decode(), validity_duration=int(ttl.total_seconds())
        )
        metadata = (
            ("authorization", f"Bearer {self._token()}"),
            ("clusterid", self.settings.cluster_id),
        )
        source = f"Istio CA at {self.settings.address}"
        # A channel per request: certificates are asked for rarely, and a channel is
        # bound to the event loop that made it.
        async with self._channel() as channel:
            stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)  # type: ignore[no-untyped-call]
            try:
                response = await stub.CreateCertificate(
                    request, metadata=metadata, timeout=self.settings.timeout_seconds
                )
            except grpc.aio.AioRpcError as exc:
                raise CAUnavailableError(f"{source} {_rpc_failure(exc, self.settings)}") from None
        if not response.cert_chain:
            raise CAUnavailableError(f"{source} returned no certificate")
        chain = parse_chain("\n".join(response.cert_chain), source)
        return check_issued(chain, csr, source, self.trust_bundle())

    def _channel(self) -> grpc.aio.Channel:
        roots = self._tls_roots.certificates()
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in roots)
        credentials = grpc.ssl_channel_credentials(root_certificates=pem)
        options = []
        if self.settings.tls_server_name:
            options.append(("grpc.ssl_target_name_override", self.settings.tls_server_name))
        return grpc.aio.secure_channel(self.settings.address, credentials, options)

    def _token(self) -> str:
        path = self.settings.token_file
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read istio_ca.token_file {path}: {exc.strerror}") from None
        if not token:
            raise ConfigError(f"istio_ca.token_file {path} is empty")
        return token


def _rpc_failure(exc: grpc.aio.AioRpcError, settings: IstioCASettings) -> str:
    """Why the call failed, in words, on one line."""
    code = exc.code()
    details = (exc.details() or "").splitlines()[0] if exc.details() else ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"did not answer within {settings.timeout_seconds:g}s"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return f"rejected the token in {settings.token_file} (unauthenticated: {details})"
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"is unavailable ({details})"
    return f"refused the request ({code.name.lower()}: {details})"
