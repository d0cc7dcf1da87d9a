from tests.integration.pki.workloads import signing_ca

__all__ = ["signing_ca"]
