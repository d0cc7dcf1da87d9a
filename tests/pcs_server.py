"""A PCS API v4 server on loopback that serves real Intel collateral, for client tests.

It speaks the wire format of Intel's PCS and of a PCCS: signed JSON bodies with the issuer
chains in URL-encoded PEM headers, DER CRLs. ``hits`` counts requests per path.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from aiohttp import web

from scm.attestation import Collateral
from scm.attestation.pcs import PCK_CRL_CHAIN_HEADER, QE_IDENTITY_CHAIN_HEADER


class PcsServer:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.tcb: dict[tuple[str, str], Collateral] = {}  # (tee, FMSPC) -> collateral
        self.qe: dict[str, Collateral] = {}  # tee -> collateral
        self.crl: dict[str, Collateral] = {}  # CA -> collateral
        self.url = ""

    def serve(self, tee: str, fmspc: str, ca: str, collateral: Collateral) -> None:
        self.tcb[(tee, fmspc.upper())] = collateral
        self.qe[tee] = collateral
        self.crl[ca] = collateral

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tee}/certification/v4/tcb", self._tcb)
        app.router.add_get("/{tee}/certification/v4/qe/identity", self._qe)
        app.router.add_get("/sgx/certification/v4/pckcrl", self._pck_crl)
        app.router.add_get("/sgx/certification/v4/rootcacrl", self._root_crl)
        return app

    async def _tcb(self, request: web.Request) -> web.Response:
        self.hits["tcb"] += 1
        key = (request.match_info["tee"], request.query.get("fmspc", "").upper())
        if key not in self.tcb:
            return web.Response(status=404)
        c = self.tcb[key]
        body = f'{{"tcbInfo":{c.tcb_info},"signature":"{c.tcb_info_signature.hex()}"}}'
        headers = {"TCB-Info-Issuer-Chain": quote(c.tcb_info_issuer_chain)}
        return web.Response(text=body, content_type="application/json", headers=headers)

    async def _qe(self, request: web.Request) -> web.Response:
        self.hits["qe"] += 1
        c = self.qe.get(request.match_info["tee"])
        if c is None:
            return web.Response(status=404)
        body = (
            f'{{"enclaveIdentity":{c.qe_identity},"signature":"{c.qe_identity_signature.hex()}"}}'
        )
        headers = {QE_IDENTITY_CHAIN_HEADER: quote(c.qe_identity_issuer_chain)}
        return web.Response(text=body, content_type="application/json", headers=headers)

    async def _pck_crl(self, request: web.Request) -> web.Response:
        self.hits["pckcrl"] += 1
        c = self.crl.get(request.query.get("ca", ""))
        if c is None:
            return web.Response(status=404)
        headers = {PCK_CRL_CHAIN_HEADER: quote(c.pck_crl_issuer_chain)}
        return web.Response(body=c.pck_crl, content_type="application/pkix-crl", headers=headers)

    async def _root_crl(self, request: web.Request) -> web.Response:
        self.hits["rootcacrl"] += 1
        c = next(iter(self.crl.values()))
        return web.Response(text=c.root_ca_crl.hex())  # a PCCS sends it hex-encoded


@contextmanager
def running_pcs(tls: ssl.SSLContext | None = None) -> Iterator[PcsServer]:
    """Run a :class:`PcsServer` on 127.0.0.1 in a background thread for the ``with`` block
    (over HTTPS with ``tls``)."""
    server = PcsServer()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(server.app())
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()
