"""Assemble issuance from settings: identity, keys by key mode, the configured CA, records."""

from __future__ import annotations

from scm.config import Settings
from scm.keys import KeysSettings, Pkcs11Keystore, SoftwareKeystore
from scm.keys.softhsm import EmbeddedToken
from scm.pki import CertificateAuthority, WorkloadIdentity, parse_ttl
from scm.pki.local_ca import CASettings
from scm.sds.attested import evidence_provider
from scm.sds.daemon import SdsSettings
from scm.sds.issuer import CertificateIssuer, IssuancePolicy
from scm.sds.keyprovider import Pins
from scm.sds.leafkeys import HSM, LeafKeys
from scm.sds.records import CredentialRecords


def workload_identity(settings: Settings) -> WorkloadIdentity:
    """The identity ``default`` certifies, from ``[sds]`` (trust domain: ``[ca]``'s)."""
    sds = settings.section("sds", SdsSettings)
    trust_domain = sds.trust_domain or settings.section("ca", CASettings).trust_domain
    return WorkloadIdentity(trust_domain, sds.namespace, sds.service_account, sds.dns_names)


def build_issuer(
    settings: Settings,
    keystore: Pkcs11Keystore,
    ca: CertificateAuthority,
    key_mode: str,
    ttl: str,
) -> CertificateIssuer:
    """An issuer whose keys are in ``keystore`` (hsm) or in memory (software)."""
    sds = settings.section("sds", SdsSettings)
    token_label = settings.section("keys", KeysSettings).token_label
    leaf_store = keystore if key_mode == HSM else SoftwareKeystore()
    # the token is passed in software mode too, to retire keys of earlier hsm-mode records
    keys = LeafKeys(leaf_store, key_mode, token_label, token=keystore)
    policy = IssuancePolicy(ttl=parse_ttl(ttl), grace_ratio=sds.grace_ratio)
    records = CredentialRecords(settings.state_dir / "sds")
    require = settings.section("ca", CASettings).require_attestation
    evidence = evidence_provider(sds.attest, require, sds.tee_root)
    identity = workload_identity(settings)
    return CertificateIssuer(
        ca, keys, identity, records, policy, pool_size=sds.key_pool, evidence=evidence
    )


def embedded_token_pins(settings: Settings) -> Pins | None:
    """The embedded SoftHSM token's PINs, for providers that need them in the Secret."""
    keys = settings.section("keys", KeysSettings)
    if not keys.embedded_token:
        return None
    token = EmbeddedToken(settings.state_dir / "softhsm", keys.token_label)
    try:
        return Pins(token.user_pin(), token.so_pin_file.read_text().strip())
    except OSError:
        return None
