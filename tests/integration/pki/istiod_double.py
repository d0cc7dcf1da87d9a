"""An istiod double: ``istio.v1.auth.IstioCertificateService`` over gRPC with TLS on loopback.

It authenticates callers by their bearer token as istiod does, signs the CSR with a test
CA for the requested lifetime and answers with the chain, leaf first and the root last.
``delay`` makes it answer late; ``issue`` replaces how it signs (a misbehaving CA);
every call's request and metadata are recorded.
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from scm._proto.istio.v1.auth import ca_pb2, ca_pb2_grpc
from scm.pki import LocalCA
from tests.integration.pki.csr_apiserver import Issue
from tests.tls import TlsFiles

TOKEN = "istio-token-of-shop-web"


@dataclass(frozen=True)
class Call:
    csr: str
    validity_duration: int
    metadata: dict[str, str]


class IstiodDouble(ca_pb2_grpc.IstioCertificateServiceServicer):
    def __init__(
        self, tls: TlsFiles, signing_ca: LocalCA, delay: float = 0.0, issue: Issue | None = None
    ) -> None:
        self.tls = tls
        self.signing_ca = signing_ca
        self.delay = delay
        self.issue = issue or signing_ca.issue
        self.calls: list[Call] = []
        self._server: grpc.aio.Server | None = None

    async def start(self) -> str:
        server = grpc.aio.server()
        ca_pb2_grpc.add_IstioCertificateServiceServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        credentials = grpc.ssl_server_credentials(
            [(self.tls.key.read_bytes(), self.tls.cert.read_bytes())]
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
        await server.start()
        self._server = server
        return f"127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)

    async def CreateCertificate(
        self, request: ca_pb2.IstioCertificateRequest, context: grpc.aio.ServicerContext
    ) -> ca_pb2.IstioCertificateResponse:
        metadata = {key: str(value) for key, value in context.invocation_metadata()}
        self.calls.append(Call(request.csr, request.validity_duration, metadata))
        if metadata.get("authorization") != f"Bearer {TOKEN}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "authentication failure")
        await asyncio.sleep(self.delay)
        csr = x509.load_pem_x509_csr(request.csr.encode())
        lifetime = datetime.timedelta(seconds=request.validity_duration)
        issued = self.issue(csr, lifetime)
        chain = [cert.public_bytes(Encoding.PEM).decode() for cert in issued.chain]
        return ca_pb2.IstioCertificateResponse(cert_chain=chain)
