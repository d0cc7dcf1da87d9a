"""Boot-to-ACTIVE time of SGX servers through nova's functional harness (prints figures).

Each boot goes through nova's API, conductor, scheduler (placement allocation candidates and
claim), the compute manager and scm's driver (guest XML with the EPC device) to nova's fake
libvirt. Run with the repository on PYTHONPATH (make bench does).
"""

from __future__ import annotations

import statistics
import time
import unittest

from tests.integration.openstack.nova_functional.nova_harness import ScmServersTestBase

BOOTS = 10
FIGURES: list[float] = []


class SgxBootBench(ScmServersTestBase):
    def test_boots(self) -> None:
        self.start_compute("compute1")
        flavor = self.sgx_flavor(64)
        for _ in range(BOOTS):
            body = self._build_server(flavor_id=flavor, networks="none")
            started = time.perf_counter()
            server = self.api.post_server({"server": body})
            # nova's own wait helper polls every 0.5 s; this one every 50 ms.
            if self.settled_status(server) != "ACTIVE":
                raise AssertionError(f"server {server['id']} did not become ACTIVE")
            FIGURES.append(time.perf_counter() - started)
            self._delete_server(server)  # the fake host's disk holds only a few servers


def main() -> None:
    result = unittest.TextTestRunner(verbosity=0).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(SgxBootBench)
    )
    if not result.wasSuccessful() or not FIGURES:
        raise SystemExit("benchmark run failed")
    ms = sorted(1000 * t for t in FIGURES)
    print(
        f"SGX server boot to ACTIVE ({BOOTS} boots, 64 MiB EPC): "
        f"median {statistics.median(ms):.0f} ms, min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms"
    )


if __name__ == "__main__":
    main()
