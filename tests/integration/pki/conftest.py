from tests.integration.pki.workloads import signing_ca, signing_keystore

__all__ = ["signing_ca", "signing_keystore"]
