"""What the X.509-SVID policy costs: scm's checks beside the SPIFFE library's parse.

Figures per call, on one chain (EC P-256 leaf under a local CA, keys in memory):

- ``approve``: the policy's CSR checks (signature, key, SANs, extensions);
- ``issue``: approve plus building and signing the leaf;
- ``check_svid``: the leaf profile plus RFC 5280 path validation (``cryptography``);
- ``spiffe parse+verify``: the ``spiffe`` library's X509Svid.parse and X509Bundle.parse,
  plus the chain verified with OpenSSL (pyOpenSSL), the independent check the tests use.

Each is run for a bounded time; a failed call is counted and printed, never retried.
"""

from __future__ import annotations

import datetime
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from tests.spiffe_check import assert_spiffe_svid

from scm.keys import SoftwareKeystore
from scm.pki import LocalCA, WorkloadIdentity, build_csr, check_svid

SECONDS = 1.5
DAY = datetime.timedelta(days=1)


def measure(name: str, call: Callable[[], object]) -> int:
    """Calls per second of ``call`` over SECONDS; returns the number of failures."""
    calls = failures = 0
    started = time.perf_counter()
    deadline = started + SECONDS
    while time.perf_counter() < deadline:
        try:
            call()
        except Exception as exc:  # counted and shown, the loop goes on
            failures += 1
            if failures == 1:
                print(f"  {name}: first failure: {exc}", file=sys.stderr)
        calls += 1
    elapsed = time.perf_counter() - started
    rate, micros = calls / elapsed, elapsed / calls * 1e6
    print(f"{name:<22} {rate:>9.0f} /s  {micros:>8.1f} us  failures {failures}")
    return failures


def main() -> int:
    with tempfile.TemporaryDirectory() as state:
        ca = LocalCA.init(Path(state), SoftwareKeystore(), "example.org")
        identity = WorkloadIdentity("example.org", "shop", "web")
        key = ec.generate_private_key(ec.SECP256R1())
        csr = build_csr(identity, key)
        issued = ca.issue(csr, DAY)
        bundle = ca.trust_bundle()
        failures = sum(
            [
                measure("approve", lambda: ca.policy.approve(csr)),
                measure("issue", lambda: ca.issue(csr, DAY)),
                measure(
                    "check_svid",
                    lambda: check_svid(issued.chain, bundle, identity.spiffe_id, key.public_key()),
                ),
                measure(
                    "spiffe parse+verify",
                    lambda: assert_spiffe_svid(issued.chain, key, bundle, identity.spiffe_id),
                ),
            ]
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
