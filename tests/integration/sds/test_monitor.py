"""The HTTP monitor: health, readiness, Prometheus metrics and JSON status."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import ClientSession

from scm.sds import DEFAULT, ROOTCA, SecretStore
from scm.sds.monitor import start_monitor
from tests.certs import TestCA
from tests.integration.sds.client import read, request, serving


def test_monitor_reports_secrets_streams_and_metrics(ca: TestCA, socket_path: Path) -> None:
    store = SecretStore()
    credential = ca.credential()

    async def main() -> None:
        async with serving(store, socket_path) as (server, stub):
            runner = await start_monitor(server, "127.0.0.1", 0)
            port = runner.addresses[0][1]
            base = f"http://127.0.0.1:{port}"
            try:
                async with ClientSession() as http:
                    async with http.get(f"{base}/healthz") as response:
                        assert response.status == 200
                    async with http.get(f"{base}/readyz") as response:
                        assert response.status == 503  # nothing to serve yet
                    store.put(ROOTCA, ca.bundle())
                    store.put(DEFAULT, credential)
                    async with http.get(f"{base}/readyz") as response:
                        assert response.status == 200

                    call = stub.StreamSecrets()
                    await call.write(request([DEFAULT]))
                    first = await read(call)
                    await call.write(request([DEFAULT], first.nonce, first.version_info))
                    await call.write(request([DEFAULT], first.nonce, first.version_info))  # stale

                    async with http.get(f"{base}/metrics") as response:
                        metrics = await response.text()
                    assert 'scm_sds_streams{api="sotw"} 1.0' in metrics
                    assert 'scm_sds_pushes_total{api="sotw"} 1.0' in metrics
                    assert 'scm_sds_certificate_expiry_seconds{name="default"}' in metrics

                    async with http.get(f"{base}/status") as response:
                        status = await response.json()
                    secrets = {s["name"]: s for s in status["secrets"]}
                    assert secrets[DEFAULT]["serials"] == [
                        format(credential.leaf.serial_number, "x")
                    ]
                    assert secrets[DEFAULT]["key"] == "inline"
                    assert 0 < secrets[DEFAULT]["seconds_to_expiry"] <= 3600
                    (stream,) = status["streams"]
                    assert (stream["node"], stream["names"]) == ("test-node", [DEFAULT])
                    assert "PRIVATE KEY" not in str(status)
                    call.cancel()
            finally:
                await runner.cleanup()

    asyncio.run(main())
