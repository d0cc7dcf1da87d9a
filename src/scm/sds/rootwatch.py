"""Keep ``ROOTCA`` equal to the CA's trust bundle as it is now, without a restart.

Remote backends read their bundle file again when it changes on disk
(:class:`scm.pki.bundle.TrustBundleFile`); this task asks the CA every ``interval``
seconds and puts the answer in the store, which pushes it to every stream watching
``ROOTCA`` only when the content differs (versions are content digests).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from scm.errors import ScmError
from scm.pki import CertificateAuthority
from scm.sds.credentials import ROOTCA, TrustBundle
from scm.sds.store import SecretStore

log = logging.getLogger(__name__)

BUNDLE_POLL_SECONDS = 5.0


def refresh_trust_bundle(store: SecretStore, ca: CertificateAuthority) -> bool:
    """Put the CA's current bundle as ``ROOTCA`` if it is served; True when it changed."""
    current = store.get(ROOTCA)
    if current is None:
        return False  # nobody asked yet: the first request gets the bundle as it is then
    try:
        roots = tuple(ca.trust_bundle())
    except ScmError as exc:
        log.warning("cannot read the trust bundle (%s); still serving the previous one", exc)
        return False
    return store.put(ROOTCA, TrustBundle(roots)).version != current.version


async def follow_trust_bundle(
    store: SecretStore,
    ca: CertificateAuthority,
    interval: float = BUNDLE_POLL_SECONDS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Refresh ``ROOTCA`` every ``interval`` seconds until cancelled."""
    while True:
        await sleep(interval)
        await asyncio.to_thread(refresh_trust_bundle, store, ca)
