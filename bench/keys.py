"""Signatures per second through scm's token signer next to raw PKCS#11 calls.

Both sign in the same embedded SoftHSM2 token with the same key. "raw" hands a
precomputed digest straight to python-pkcs11 on the calling thread; "signer" is what
``cryptography`` builders call: hash in Python, the hop to the PKCS#11 worker thread,
the token call, and the DER encoding of ECDSA signatures. "signer x8" is eight threads
signing at once, as the SDS server's coroutines do. Rounds alternate between the two to
even out a shared machine's noise; each figure is the median round.
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial

import pkcs11
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from scm.config import load_settings
from scm.keys import KeyType, Signer, open_keystore
from scm.keys.settings import SOFTHSM2_MODULE

ROUND_S = 0.5
ROUNDS = 5
THREADS = 8
MESSAGE = b"x" * 512
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def rate(fn: Callable[[], object]) -> float:
    """Calls per second of ``fn`` over about ROUND_S (after a short warm-up)."""
    for _ in range(3):
        fn()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < ROUND_S:
        fn()
        count += 1
    return count / elapsed


def concurrent_rate(fn: Callable[[], object]) -> float:
    """Calls per second of ``fn`` made by THREADS threads at once."""
    counts = [0] * THREADS
    start = time.perf_counter()

    def loop(index: int) -> None:
        while time.perf_counter() - start < ROUND_S:
            fn()
            counts[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - start)


def medians(*fns: Callable[[], object]) -> list[float]:
    """Median rate of each function over ROUNDS alternating rounds."""
    rounds: list[list[float]] = [[] for _ in fns]
    for _ in range(ROUNDS):
        for samples, fn in zip(rounds, fns, strict=True):
            samples.append(fn())
    return [statistics.median(samples) for samples in rounds]


def measure(signer: Signer, raw_key: pkcs11.SignMixin) -> list[float]:
    """Median rates of raw PKCS#11, the signer, and the signer with THREADS callers."""
    digest = hashlib.sha256(MESSAGE).digest()
    if isinstance(signer, ec.EllipticCurvePrivateKey):
        raw_sign = partial(raw_key.sign, digest, mechanism=pkcs11.Mechanism.ECDSA)
        scm_sign = partial(signer.sign, MESSAGE, ec.ECDSA(hashes.SHA256()))
    else:
        digest_info = SHA256_DIGEST_INFO + digest
        raw_sign = partial(raw_key.sign, digest_info, mechanism=pkcs11.Mechanism.RSA_PKCS)
        scm_sign = partial(signer.sign, MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    return medians(
        partial(rate, raw_sign), partial(rate, scm_sign), partial(concurrent_rate, scm_sign)
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as state:
        store = open_keystore(load_settings(environ={"SCM_STATE_DIR": state}))
        # The keystore logged this process in; a second session shares that login.
        session = pkcs11.lib(SOFTHSM2_MODULE).get_token(token_label="scm").open()
        print(f"{'key':10} {'raw/s':>8} {'signer/s':>9} {'ratio':>6} {'signer x8/s':>12}")
        for key_type in (KeyType.EC_P256, KeyType.RSA_3072):
            store.generate(key_type.value, key_type)
            raw_key = session.get_key(
                object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=key_type.value
            )
            raw, through, parallel = measure(store.signer(key_type.value), raw_key)
            print(
                f"{key_type.value:10} {raw:8.0f} {through:9.0f} {through / raw:6.0%} "
                f"{parallel:12.0f}"
            )
        session.close()
        store.close()


if __name__ == "__main__":
    main()
