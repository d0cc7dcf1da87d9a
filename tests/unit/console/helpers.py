"""Run the console app in-process with aiohttp's test server (ephemeral loopback port)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

T = TypeVar("T")


def with_client(app: web.Application, body: Callable[[TestClient[Any, Any]], Awaitable[T]]) -> T:
    async def run() -> T:
        async with TestClient(TestServer(app)) as client:
            return await body(client)

    return asyncio.run(run())


def status_document(**overrides: Any) -> dict[str, Any]:
    """A status document shaped like scm.sds.monitor.status_document's."""
    document: dict[str, Any] = {
        "ready": True,
        "issuance": {
            "ca_reachable": True,
            "consecutive_failures": 0,
            "last_error": None,
            "last_issued_at": "2026-01-01T00:00:00+00:00",
            "next_renewal": "2026-01-01T12:00:00+00:00",
            "next_retry": None,
        },
        "secrets": [
            {
                "name": "default",
                "version": "0123456789abcdef",
                "kind": "tls_certificate",
                "serials": ["1a2b"],
                "subject": "O=cluster.local",
                "spiffe_id": "spiffe://cluster.local/ns/default/sa/default",
                "not_before": "2026-01-01T00:00:00+00:00",
                "not_after": "2026-01-02T00:00:00+00:00",
                "seconds_to_expiry": 3600,
                "key": "inline",
                "updated_at": "2026-01-01T00:00:00+00:00",
            }
        ],
        "streams": [
            {
                "id": 1,
                "api": "sotw",
                "node": "sidecar~10.0.0.1~web.default~cluster.local",
                "cluster": "web",
                "names": ["default"],
                "acked": {"default": "0123456789abcdef"},
                "nacks": 0,
                "last_nack": None,
                "opened_at": "2026-01-01T00:00:01+00:00",
            }
        ],
    }
    document.update(overrides)
    return document
