"""The CA the settings name: ``[ca] backend = "local" | "kubernetes" | "istio"``.

Callers such as the SDS server and ``scm ca issue`` ask here and get a
``CertificateAuthority``; which one is configured is none of their business.
"""

from __future__ import annotations

from scm.attestation.pccs import AttestationSettings
from scm.config import Settings
from scm.errors import ConfigError
from scm.keys import Keystore
from scm.pki.attested import gate_from_settings
from scm.pki.authority import CertificateAuthority
from scm.pki.istio_ca import IstioCA, IstioCASettings
from scm.pki.kubernetes_ca import KubernetesCA, KubernetesCASettings
from scm.pki.local_ca import CASettings, LocalCA
from scm.pki.ttl import parse_ttl

BACKENDS = ("local", "kubernetes", "istio")


def configured_ca(settings: Settings, keystore: Keystore) -> CertificateAuthority:
    """The CA of ``settings``; the local CA (its key in ``keystore``) by default.

    With ``[ca] require_attestation`` every backend sits behind the attestation gate, so
    no caller can reach a CA without the evidence check.
    """
    ca_settings = settings.section("ca", CASettings)
    return gate_from_settings(
        _backend(settings, ca_settings.backend, keystore),
        ca_settings,
        settings.section("attestation", AttestationSettings),
        settings.state_dir,
    )


def _backend(settings: Settings, backend: str, keystore: Keystore) -> CertificateAuthority:
    if backend == "local":
        return load_local_ca(settings, keystore)
    if backend == "kubernetes":
        return KubernetesCA.from_settings(settings.section("kubernetes_ca", KubernetesCASettings))
    if backend == "istio":
        return IstioCA.from_settings(settings.section("istio_ca", IstioCASettings))
    raise ConfigError(f"ca.backend {backend!r} is not one of {', '.join(BACKENDS)}")


def load_local_ca(settings: Settings, keystore: Keystore) -> LocalCA:
    """The local CA ``scm ca init`` created, with the ``[ca]`` policy settings."""
    ca = settings.section("ca", CASettings)
    return LocalCA.load(settings.state_dir, keystore, ca.dns_suffixes, parse_ttl(ca.max_ttl))
