"""Quote verification throughput: scm against dcap-qvl on the real cases, with identical verdicts.

Both verifiers get the same raw quotes, the same parsed collateral object (parsing collateral
JSON is outside the loop for both) and the same ``verify_at``. scm caches what is the same for
many quotes (chains, CRLs, collateral signatures, a platform's QE report signature) by content;
the quote's own signature is verified on every call. dcap-qvl is installed only for this
benchmark (``pip install dcap-qvl``; ``make bench`` installs the ``bench`` extra).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable

from tests.attestation_cases import DCAP_QVL_ERRORS, cases

from scm.attestation import verify
from scm.attestation.verify import clear_caches

ROUNDS = 5
SECONDS_PER_ROUND = 0.6


def dcap_qvl_verdict(dcap_qvl: object, quote: bytes, collateral: object, at: int) -> str:
    try:
        report = dcap_qvl.verify(quote, collateral, at)  # type: ignore[attr-defined]
    except ValueError as exc:
        message = str(exc).removeprefix("Verification failed: ")
        return f"rejected:{DCAP_QVL_ERRORS.get(message, message)}"
    return f"{report.status} {sorted(report.advisory_ids)}"


def scm_verdict(quote: bytes, collateral: object, at: int) -> str:
    verdict = verify(quote, collateral, at)  # type: ignore[arg-type]
    if not verdict.ok:
        return f"rejected:{verdict.reason}"
    return f"{verdict.status} {sorted(verdict.advisory_ids)}"


def throughput(run_all: Callable[[], None], per_call: int) -> float:
    """Best quotes/s over several rounds (the least disturbed by the other jobs on the host)."""
    best = 0.0
    for _ in range(ROUNDS):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < SECONDS_PER_ROUND:
            run_all()
            calls += per_call
        best = max(best, calls / elapsed)
    return best


def main() -> int:
    try:
        import dcap_qvl
    except ImportError:
        print("dcap-qvl is not installed: pip install dcap-qvl (make bench does)")
        return 1
    work = [(c.quote, c.collateral, c.collateral_json, c.verify_at, c.name) for c in cases()]
    theirs = [(q, dcap_qvl.QuoteCollateralV3.from_json(text), at) for q, _, text, at, _ in work]
    ours = [(q, col, at) for q, col, _, at, _ in work]

    same = True
    for (q, col, at), (_, their_col, _), (*_, name) in zip(ours, theirs, work, strict=True):
        mine, other = scm_verdict(q, col, at), dcap_qvl_verdict(dcap_qvl, q, their_col, at)
        same &= mine == other
        print(f"{name:36} scm: {mine:58} dcap-qvl: {other}{'' if mine == other else '  DIFFERENT'}")

    def run_scm() -> None:
        for q, col, at in ours:
            verify(q, col, at)

    def run_dcap() -> None:
        for q, col, at in theirs:
            with contextlib.suppress(ValueError):
                dcap_qvl.verify(q, col, at)

    def run_scm_cold() -> None:
        for q, col, at in ours:
            clear_caches()
            verify(q, col, at)

    scm_rate = throughput(run_scm, len(ours))
    cold_rate = throughput(run_scm_cold, len(ours))
    dcap_rate = throughput(run_dcap, len(theirs))
    version = getattr(dcap_qvl, "__version__", "?")
    print(f"scm cold: {cold_rate:9.0f} quotes/s (caches cleared before every quote)")
    print(f"scm:      {scm_rate:9.0f} quotes/s")
    print(f"dcap-qvl: {dcap_rate:9.0f} quotes/s (version {version})")
    print(f"ratio:    {scm_rate / dcap_rate:9.2f}x  verdicts identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
