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
from http import HTTPStatus
from pathlib import Path
from typing import cast

import httpx2  # lightkube's HTTP client: its errors are the transport failures
from cryptography import x509
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube import ConfigError as KubeConfigError
from lightkube.config.kubeconfig import SERVICE_ACCOUNT
from lightkube.models.certificates_v1 import CertificateSigningRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.certificates_v1 import CertificateSigningRequest

from scm.errors import ConfigError
from scm.pki.authority import IssuedCertificate, check_issued, csr_to_pem, parse_chain
from scm.pki.bundle import TrustBundleFile
from scm.pki.errors import CAUnavailableError
from scm.pki.svid import CLIENT_AUTH, SERVER_AUTH

log = logging.getLogger(__name__)

# The API refuses expirationSeconds below ten minutes.
MIN_EXPIRATION_SECONDS = 600
# kube-controller-manager backdates notBefore by five minutes; more than this is ignored TTL.
LIFETIME_SLACK = datetime.timedelta(minutes=10)
FIELD_MANAGER = "scm"
KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
UNUSABLE_SIGNERS = {
    "kubernetes.io/kube-apiserver-client-kubelet": "it signs only node client certificates "
    "(subject O=system:nodes, CN=system:node:NAME)",
    "kubernetes.io/kubelet-serving": "it forbids URI SANs and signs only node serving certificates",
    "kubernetes.io/legacy-unknown": "the certificates.k8s.io/v1 API never signs for it",
}
# Every usage the certificates.k8s.io/v1 API knows.
API_USAGES = frozenset(
    {
        "signing",
        "digital signature",
        "content commitment",
        "key encipherment",
        "key agreement",
        "data encipherment",
        "cert sign",
        "crl sign",
        "encipher only",
        "decipher only",
        "any",
        "server auth",
        "client auth",
        "code signing",
        "email protection",
        "s/mime",
        "ipsec end system",
        "ipsec tunnel",
        "ipsec user",
        "timestamping",
        "ocsp signing",
        "microsoft sgc",
        "netscape sgc",
    }
)
DEFAULT_USAGES = ("digital signature", "key encipherment", "client auth", "server auth")

_Events = AsyncGenerator[tuple[str, CertificateSigningRequest], None]


@dataclass(frozen=True)
class KubernetesCASettings:
    """The ``[kubernetes_ca]`` settings table (``SCM_KUBERNETES_CA_*``).

    ``kubeconfig`` unset: the service account in ``service_account_dir`` when running in
    a pod, else ``$KUBECONFIG`` or ``~/.kube/config``. ``trust_bundle_file`` holds the
    signer's root certificates (the API does not distribute them); it is re-read when it
    changes. ``usages`` are the key usages asked of a custom signer (empty: digital
    signature, key encipherment, client auth, server auth); the built-in
    ``kubernetes.io/kube-apiserver-client`` signer gets client-auth usages only.
    """

    signer_name: str = ""
    trust_bundle_file: Path | None = None
    kubeconfig: Path | None = None
    service_account_dir: Path = Path(SERVICE_ACCOUNT)
    timeout_seconds: float = 60.0
    usages: tuple[str, ...] = ()


class KubernetesCA:
    """Signs CSRs through a Kubernetes signer; implements ``CertificateAuthority``."""

    def __init__(
        self,
        config: KubeConfig,
        signer_name: str,
        trust_bundle: TrustBundleFile,
        timeout: datetime.timedelta,
        usages: tuple[str, ...] = (),
    ) -> None:
        self._config = config
        self.signer_name = signer_name
        self._trust_bundle = trust_bundle
        self.timeout = timeout
        self.usages = signer_usages(signer_name, usages)

    @classmethod
    def from_settings(cls, settings: KubernetesCASettings) -> KubernetesCA:
        if not settings.signer_name:
            raise ConfigError("kubernetes_ca.signer_name is not set")
        usages = signer_usages(settings.signer_name, settings.usages)  # fail before any I/O
        if settings.trust_bundle_file is None:
            raise ConfigError(
                "kubernetes_ca.trust_bundle_file is not set: the CSR API does not say "
                "which root verifies the signer's certificates"
            )
        bundle = TrustBundleFile(settings.trust_bundle_file, "kubernetes_ca.trust_bundle_file")
        config = kube_config(settings.kubeconfig, settings.service_account_dir)
        timeout = datetime.timedelta(seconds=settings.timeout_seconds)
        return cls(config, settings.signer_name, bundle, timeout, usages)

    def trust_bundle(self) -> list[x509.Certificate]:
        return self._trust_bundle.certificates()

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
        issued = check_issued(
            parse_chain(pem, source), csr, source, self.trust_bundle(), _auth_usages(self.usages)
        )
        _report_ignored_lifetime(issued.leaf, _expiration_seconds(ttl), created, source)
        return issued

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
            if _status_code(exc) == HTTPStatus.NOT_FOUND:
                return  # already gone: deleted by someone else, or garbage-collected
            # Only a warning: failing here would mask the result the caller is waiting for.
            log.warning("could not delete CSR %s: %s", name, _api_failure("delete", exc))

    async def _create(
        self, client: AsyncClient, csr: x509.CertificateSigningRequest, ttl: datetime.timedelta
    ) -> CertificateSigningRequest:
        try:
            return await client.create(_request(csr, ttl, self.signer_name, self.usages))
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
                detail = f" ({why})" if why else ""
                if condition.type == "Denied":
                    message = f"CSR {self.name} for signer {self.signer_name} was denied"
                else:
                    message = f"signer {self.signer_name} failed to sign CSR {self.name}"
                raise CAUnavailableError(message + detail)
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


def signer_usages(signer_name: str, configured: tuple[str, ...]) -> tuple[str, ...]:
    """The key usages a CSR for ``signer_name`` asks for; ConfigError when none can work.

    The built-in signers check usages (kube-controller-manager fails a CSR otherwise):
    kube-apiserver-client allows digital signature, key encipherment and client auth
    only. The kubelet signers demand a node's subject and kubelet-serving forbids URI
    SANs, so neither can issue an SVID; legacy-unknown is never signed in the v1 API.
    """
    if signer_name in UNUSABLE_SIGNERS:
        raise ConfigError(
            f"kubernetes_ca.signer_name {signer_name} cannot issue SPIFFE X.509-SVIDs: "
            f"{UNUSABLE_SIGNERS[signer_name]}"
        )
    if signer_name == KUBE_APISERVER_CLIENT:
        allowed = {"digital signature", "key encipherment", "client auth"}
        if configured and not set(configured) <= allowed:
            extra = ", ".join(sorted(set(configured) - allowed))
            raise ConfigError(
                f"kubernetes_ca.usages: signer {signer_name} refuses {extra} "
                "(it allows digital signature, key encipherment, client auth)"
            )
        return configured or ("digital signature", "key encipherment", "client auth")
    unknown = sorted(set(configured) - API_USAGES)
    if unknown:
        raise ConfigError(f"kubernetes_ca.usages: {', '.join(unknown)} is not a Kubernetes usage")
    return configured or DEFAULT_USAGES


def _auth_usages(usages: tuple[str, ...]) -> frozenset[x509.ObjectIdentifier]:
    """The extended key usages the issued leaf must carry, as asked for."""
    asked = {"server auth": SERVER_AUTH, "client auth": CLIENT_AUTH}
    return frozenset(oid for usage, oid in asked.items() if usage in usages)


def _expiration_seconds(ttl: datetime.timedelta) -> int:
    return max(MIN_EXPIRATION_SECONDS, int(ttl.total_seconds()))


def _request(
    csr: x509.CertificateSigningRequest,
    ttl: datetime.timedelta,
    signer_name: str,
    usages: tuple[str, ...],
) -> CertificateSigningRequest:
    """The CSR object; the server names it (generateName) so retries never collide."""
    return CertificateSigningRequest(
        metadata=ObjectMeta(generateName="scm-"),
        spec=CertificateSigningRequestSpec(
            request=base64.b64encode(csr_to_pem(csr)).decode(),
            signerName=signer_name,
            expirationSeconds=_expiration_seconds(ttl),
            usages=list(usages),
        ),
    )


def _report_ignored_lifetime(
    leaf: x509.Certificate,
    requested_seconds: int,
    created: CertificateSigningRequest,
    source: str,
) -> None:
    """Warn when the signer ignored ``spec.expirationSeconds`` (API servers before 1.22
    drop the field silently), so an operator knows certificates outlive what was asked."""
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    requested = datetime.timedelta(seconds=requested_seconds)
    if lifetime <= requested + LIFETIME_SLACK:
        return
    dropped = created.spec is None or created.spec.expirationSeconds is None
    why = (
        "the API server dropped spec.expirationSeconds (Kubernetes before 1.22)"
        if dropped
        else "the signer does not honour spec.expirationSeconds"
    )
    log.warning(
        "%s issued a certificate valid for %s although %s was requested: %s",
        source,
        lifetime,
        requested,
        why,
    )


def _name(obj: CertificateSigningRequest) -> str:
    assert obj.metadata is not None and obj.metadata.name is not None
    return obj.metadata.name


def _resource_version(obj: CertificateSigningRequest) -> str | None:
    return obj.metadata.resourceVersion if obj.metadata else None


def _status_code(exc: Exception) -> int | None:
    if isinstance(exc, ApiError):
        return exc.status.code
    if isinstance(exc, httpx2.HTTPStatusError):
        return exc.response.status_code
    return None


def _api_failure(what: str, exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"Kubernetes API refused to {what}: {exc.status.code} {exc.status.message}"
    if isinstance(exc, httpx2.HTTPStatusError):  # an answer that is not a Status (e.g. 401)
        response = exc.response
        return f"Kubernetes API refused to {what}: {response.status_code} {response.reason_phrase}"
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"cannot {what}: Kubernetes API unreachable ({first_line})"
