"""A CA behind the Kubernetes CSR API (``certificates.k8s.io/v1``).

Each certificate is one CertificateSigningRequest object for the configured ``signerName``
(a cluster signer such as Intel's trusted-certificate-issuer, or a ``kubernetes.io/...``
one). The client creates it, watches it until it is approved and ``status.certificate``
is set, denied, failed, or the timeout passes, and deletes it in every case.
Credentials: the pod's service account (token file re-read on rotation), else a
kubeconfig.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx2  # lightkube's HTTP client: its errors are the transport failures
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube import ConfigError as KubeConfigError
from lightkube.config.kubeconfig import SERVICE_ACCOUNT
from lightkube.models.certificates_v1 import CertificateSigningRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.certificates_v1 import CertificateSigningRequest

from scm.errors import ConfigError
from scm.pki.authority import (
    IssuedCertificate,
    check_issued,
    csr_to_pem,
    load_trust_bundle,
    parse_chain,
)
from scm.pki.errors import CAUnavailableError

log = logging.getLogger(__name__)

# The API refuses expirationSeconds below ten minutes.
MIN_EXPIRATION_SECONDS = 600
FIELD_MANAGER = "scm"

_Events = AsyncGenerator[tuple[str, CertificateSigningRequest], None]


@dataclass(frozen=True)
class KubernetesCASettings:
    """The ``[kubernetes_ca]`` settings table (``SCM_KUBERNETES_CA_*``).

    ``kubeconfig`` unset: the service account in ``service_account_dir`` when running in
    a pod, else ``$KUBECONFIG`` or ``~/.kube/config``. ``trust_bundle_file`` holds the
    signer's root certificates (the API does not distribute them).
    """

    signer_name: str = ""
    trust_bundle_file: Path | None = None
    kubeconfig: Path | None = None
    service_account_dir: Path = Path(SERVICE_ACCOUNT)
    timeout_seconds: float = 60.0


class KubernetesCA:
    """Signs CSRs through a Kubernetes signer; implements ``CertificateAuthority``."""

    def __init__(
        self,
        config: KubeConfig,
        signer_name: str,
        trust_bundle: list[x509.Certificate],
        timeout: datetime.timedelta,
    ) -> None:
        self._config = config
        self.signer_name = signer_name
        self._trust_bundle = trust_bundle
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: KubernetesCASettings) -> KubernetesCA:
        if not settings.signer_name:
            raise ConfigError("kubernetes_ca.signer_name is not set")
        if settings.trust_bundle_file is None:
            raise ConfigError(
                "kubernetes_ca.trust_bundle_file is not set: the CSR API does not say "
                "which root verifies the signer's certificates"
            )
        bundle = load_trust_bundle(settings.trust_bundle_file, "kubernetes_ca.trust_bundle_file")
        config = kube_config(settings.kubeconfig, settings.service_account_dir)
        timeout = datetime.timedelta(seconds=settings.timeout_seconds)
        return cls(config, settings.signer_name, bundle, timeout)

    def trust_bundle(self) -> list[x509.Certificate]:
        return list(self._trust_bundle)

    async def sign(
        self, csr: x509.CertificateSigningRequest, ttl: datetime.timedelta
    ) -> IssuedCertificate:
        # A client per request: certificates are asked for rarely, and a client bound to
        # no event loop can serve callers on any loop.
        client = AsyncClient(config=self._config, field_manager=FIELD_MANAGER)
        try:
            created = await self._create(client, csr, ttl)
            name = _name(created)
            try:
                pem = await self._wait(client, created)
            finally:
                await self._delete(client, name)
        finally:
            await client.close()
        source = f"signer {self.signer_name}"
        return check_issued(parse_chain(pem, source), csr, source)

    async def _wait(self, client: AsyncClient, created: CertificateSigningRequest) -> str:
        """The PEM chain once issued; CAUnavailableError when denied, failed or too late."""
        name = _name(created)
        progress = _Progress(name, self.signer_name)
        try:
            async with asyncio.timeout(self.timeout.total_seconds()):
                if (pem := progress.update(created)) is not None:
                    return pem
                # Watching from the version create returned misses no change in between.
                events = client.watch(
                    CertificateSigningRequest,
                    fields={"metadata.name": name},
                    resource_version=_resource_version(created),
                    server_timeout=max(1, int(self.timeout.total_seconds())),
                )
                # Closed explicitly so the HTTP stream ends with this call, not at collection.
                async with contextlib.aclosing(cast(_Events, events)) as stream:
                    async for event, obj in stream:
                        if event == "DELETED":
                            raise CAUnavailableError(f"CSR {name} was deleted before it was signed")
                        if (pem := progress.update(obj)) is not None:
                            return pem
        except TimeoutError:
            raise CAUnavailableError(progress.timeout_message(self.timeout)) from None
        except (ApiError, httpx2.HTTPError) as exc:
            raise CAUnavailableError(_api_failure("watch CSR " + name, exc)) from None
        raise CAUnavailableError(f"the watch of CSR {name} ended before it was signed")

    async def _delete(self, client: AsyncClient, name: str) -> None:
        try:
            await client.delete(CertificateSigningRequest, name)
        except (ApiError, httpx2.HTTPError) as exc:
            # The API server also garbage-collects finished CSRs; do not mask the result.
            log.warning("could not delete CSR %s: %s", name, _api_failure("delete", exc))

    async def _create(
        self, client: AsyncClient, csr: x509.CertificateSigningRequest, ttl: datetime.timedelta
    ) -> CertificateSigningRequest:
        try:
            return await client.create(_request(csr, ttl, self.signer_name))
        except (ApiError, httpx2.HTTPError) as exc:
            raise CAUnavailableError(_api_failure("create a CSR", exc)) from None
        except KubeConfigError as exc:
            raise ConfigError(f"Kubernetes API credentials: {exc}") from None


class _Progress:
    """What the CSR has reached so far, to say why it was not signed in time."""

    def __init__(self, name: str, signer_name: str) -> None:
        self.name = name
        self.signer_name = signer_name
        self.approved = False

    def update(self, obj: CertificateSigningRequest) -> str | None:
        """The issued PEM when ``obj`` carries it; raises when denied or failed."""
        status = obj.status
        for condition in (status.conditions or []) if status else []:
            if condition.status != "True":
                continue
            if condition.type in ("Denied", "Failed"):
                why = ": ".join(filter(None, [condition.reason, condition.message]))
                verb = "denied" if condition.type == "Denied" else "failed"
                raise CAUnavailableError(
                    f"CSR {self.name} for signer {self.signer_name} was {verb}"
                    + (f" ({why})" if why else "")
                )
            if condition.type == "Approved":
                self.approved = True
        if status is None or not status.certificate:
            return None
        try:
            return base64.b64decode(status.certificate, validate=True).decode()
        except ValueError:
            raise CAUnavailableError(
                f"CSR {self.name}: status.certificate is not base64-encoded PEM"
            ) from None

    def timeout_message(self, timeout: datetime.timedelta) -> str:
        state = "approved but not signed" if self.approved else "not approved"
        return (
            f"no certificate from signer {self.signer_name} within "
            f"{timeout.total_seconds():g}s: CSR {self.name} was {state}"
        )


def kube_config(kubeconfig: Path | None, service_account_dir: Path) -> KubeConfig:
    """Credentials for the API: ``kubeconfig`` if given, else in-cluster, else the default file."""
    try:
        if kubeconfig is not None:
            return KubeConfig.from_file(kubeconfig)
        return KubeConfig.from_env(service_account=service_account_dir)
    except (KubeConfigError, OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"no usable Kubernetes API credentials: {exc}") from None


def _request(
    csr: x509.CertificateSigningRequest, ttl: datetime.timedelta, signer_name: str
) -> CertificateSigningRequest:
    """The CSR object; the server names it (generateName) so retries never collide."""
    usages = ["digital signature", "server auth", "client auth"]
    if isinstance(csr.public_key(), rsa.RSAPublicKey):
        usages.insert(1, "key encipherment")
    return CertificateSigningRequest(
        metadata=ObjectMeta(generateName="scm-"),
        spec=CertificateSigningRequestSpec(
            request=base64.b64encode(csr_to_pem(csr)).decode(),
            signerName=signer_name,
            expirationSeconds=max(MIN_EXPIRATION_SECONDS, int(ttl.total_seconds())),
            usages=usages,
        ),
    )


def _name(obj: CertificateSigningRequest) -> str:
    assert obj.metadata is not None and obj.metadata.name is not None
    return obj.metadata.name


def _resource_version(obj: CertificateSigningRequest) -> str | None:
    return obj.metadata.resourceVersion if obj.metadata else None


def _api_failure(what: str, exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"Kubernetes API refused to {what}: {exc.status.code} {exc.status.message}"
    if isinstance(exc, httpx2.HTTPStatusError):  # an answer that is not a Status (e.g. 401)
        response = exc.response
        return f"Kubernetes API refused to {what}: {response.status_code} {response.reason_phrase}"
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"cannot {what}: Kubernetes API unreachable ({first_line})"
