"""The check a recorded chain passes before it is served again after a restart."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from pathlib import Path

from scm.pki import WorkloadIdentity
from scm.sds.chaincheck import anchor_fingerprint, chain_problem
from scm.sds.credentials import DEFAULT
from scm.sds.records import IssuedRecord
from tests.unit.sds.clocked import WORKLOAD, ClockCA, FakeClock, clocked_issuer


def issue(tmp_path: Path, ca: ClockCA, clock: FakeClock) -> IssuedRecord:
    return asyncio.run(clocked_issuer(tmp_path, ca, clock).obtain())


def test_a_chain_is_served_again_only_for_its_identity_its_ca_and_its_lifetime(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    ca = ClockCA(clock)
    record = issue(tmp_path, ca, clock)
    now = clock.now()
    assert chain_problem(record.chain, ca.trust_bundle(), WORKLOAD, now) is None

    checkout = WorkloadIdentity("cluster.local", "shop", "checkout", ("localhost",))
    assert "names 'spiffe://cluster.local/ns/shop/sa/frontend' instead of" in str(
        chain_problem(record.chain, ca.trust_bundle(), checkout, now)
    )
    no_dns = dataclasses.replace(WORKLOAD, dns_names=())
    assert "DNS names" in str(chain_problem(record.chain, ca.trust_bundle(), no_dns, now))
    other = ClockCA(clock, "another root")
    assert "does not verify to the trust bundle" in str(
        chain_problem(record.chain, other.trust_bundle(), WORKLOAD, now)
    )
    later = now + datetime.timedelta(days=2)
    assert "not valid at validation time" in str(
        chain_problem(record.chain, ca.trust_bundle(), WORKLOAD, later)
    )


def test_a_record_whose_chain_does_not_verify_is_reissued_even_with_the_right_fingerprint(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    ca = ClockCA(clock)
    forged_ca = ClockCA(clock, "forged root")
    # a record claiming the current CA's fingerprint over a chain from another CA
    forged = issue(tmp_path, forged_ca, clock)
    records = clocked_issuer(tmp_path, ca, clock).records
    records.save(
        DEFAULT,
        dataclasses.replace(forged, anchor_fingerprint=anchor_fingerprint(ca.trust_bundle())),
    )
    issuer = clocked_issuer(tmp_path, ca, clock)
    issuer.keys.keystore.generate(forged.key_label, issuer.policy.key_type)  # its key "exists"
    served = asyncio.run(issuer.obtain())
    assert served.key_label != forged.key_label
    assert served.chain[-1] == ca.certificate
    assert forged.key_label in {r.key_label for r in served.retired}
