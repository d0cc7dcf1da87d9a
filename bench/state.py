"""What crash-safe key creation costs: generate + delete in SoftHSM2, with and without it.

"staged" is what scm does for every new key: under the state directory's lock (a flock),
the key pair is generated under a staging label and renamed (two C_SetAttributeValue
calls, the private key last). "raw" is a bare python-pkcs11 generate + destroy with the
final label on the same token: the peer scm's bookkeeping is measured against. Rounds
alternate to even out a shared machine's noise; failures are counted and printed.
"""

from __future__ import annotations

import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pkcs11
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass

from scm.config import load_settings
from scm.keys import KeyType as ScmKeyType
from scm.keys import open_keystore, pkcs11_lock
from scm.keys.pkcs11_templates import EC_PARAMS, PRIVATE_KEY_POLICY, PUBLIC_KEY_POLICY
from scm.keys.settings import SOFTHSM2_MODULE

ROUNDS = 5
PER_ROUND = 20


def timed(fn: Callable[[], object], failures: list[str]) -> list[float]:
    """Milliseconds per call of ``fn`` over PER_ROUND calls; failures are kept, not raised."""
    samples = []
    for _ in range(PER_ROUND):
        start = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # a benchmark counts failures and carries on
            failures.append(type(exc).__name__)
            continue
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="scm-bench-state-"))
    store = open_keystore(load_settings(environ={"SCM_STATE_DIR": str(state_dir)}))
    session = pkcs11_lock().run(
        lambda: pkcs11.lib(SOFTHSM2_MODULE).get_token(token_label="scm").open(rw=True)
    )
    params = pkcs11_lock().run(
        session.create_domain_parameters,
        KeyType.EC,
        {Attribute.EC_PARAMS: EC_PARAMS[ScmKeyType.EC_P256]},
        local=True,
    )

    def staged() -> None:
        label = f"bench-{secrets.token_hex(4)}"
        store.generate(label, ScmKeyType.EC_P256)
        store.delete(label)

    def raw_call() -> None:
        label = f"raw-{secrets.token_hex(4)}"
        public, private = params.generate_keypair(
            id=secrets.token_bytes(8),
            label=label,
            store=True,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            public_template={**PUBLIC_KEY_POLICY, Attribute.TOKEN: True},
            private_template={**PRIVATE_KEY_POLICY, Attribute.TOKEN: True},
        )
        assert session.get_objects(
            {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
        )
        public.destroy()
        private.destroy()

    def raw() -> None:
        pkcs11_lock().run(raw_call)

    failures: list[str] = []
    medians: dict[str, list[float]] = {"raw": [], "staged": []}
    for _ in range(ROUNDS):
        for name, fn in (("raw", raw), ("staged", staged)):
            samples = timed(fn, failures)
            if samples:
                medians[name].append(statistics.median(samples))
    print(f"EC P-256 generate + delete in SoftHSM2, {ROUNDS} rounds of {PER_ROUND}")
    for name, values in medians.items():
        if values:
            print(f"  {name:7} median {statistics.median(values):7.2f} ms per key")
    if medians["raw"] and medians["staged"]:
        extra = statistics.median(medians["staged"]) - statistics.median(medians["raw"])
        print(f"  staging, lock and rename add {extra:.2f} ms per key")
    print(f"  failures: {len(failures)} {sorted(set(failures))}")
    store.close()


if __name__ == "__main__":
    main()
