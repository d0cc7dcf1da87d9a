"""The SDS server's HTTP side: /healthz, /readyz, Prometheus /metrics and JSON /status.

Meant for 127.0.0.1: /status names secrets, serials and connected nodes (never keys).
"""

from __future__ import annotations

import datetime
from typing import Any, Protocol

from aiohttp import web
from cryptography import x509
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from scm.console import ConsoleSources, add_console_routes
from scm.sds.credentials import DEFAULT, Credential
from scm.sds.health import IssuanceHealth
from scm.sds.store import SecretStore, StoredSecret


class Served(Protocol):
    """What the monitor shows: one server (:class:`SdsServer`) or a worker pool."""

    @property
    def ready(self) -> bool: ...

    store: SecretStore

    @property
    def metrics_registry(self) -> CollectorRegistry: ...

    async def refresh(self, with_streams: bool) -> None:
        """Bring what :meth:`stream_entries` and the registry report up to date."""

    def stream_entries(self) -> list[dict[str, Any]]: ...


def status_document(server: Served, issuance: IssuanceHealth | None = None) -> dict[str, Any]:
    """What the server serves and to whom (and how issuance goes), as JSON-ready data."""
    return {
        "ready": server.ready,
        "issuance": issuance.status() if issuance else None,
        "secrets": [_describe(stored) for stored in server.store],
        "streams": server.stream_entries(),
    }


def readiness_problem(
    server: Served, issuance: IssuanceHealth | None = None, now: datetime.datetime | None = None
) -> str | None:
    """Why the server is not ready to serve, or None.

    Not ready: no listener yet, nothing to serve yet, a served certificate that has
    expired (renewal kept failing), or ``default`` missing after issuance failed.
    """
    if not server.ready:
        return "no listener yet"
    if len(server.store) == 0 and not (issuance and issuance.consecutive_failures):
        return "no secret yet"
    moment = now or datetime.datetime.now(datetime.UTC)
    for stored in server.store:
        if stored.value.not_after <= moment:
            expired = f"{stored.value.not_after:%Y-%m-%dT%H:%M:%SZ}"
            return f"the served certificate {stored.name} expired at {expired}"
    if issuance and issuance.consecutive_failures and server.store.get(DEFAULT) is None:
        return f"{DEFAULT} is missing: issuance failed ({issuance.last_error})"
    return None


def _describe(stored: StoredSecret) -> dict[str, Any]:
    value = stored.value
    certificates = value.chain if isinstance(value, Credential) else value.certificates
    now = datetime.datetime.now(datetime.UTC)
    return {
        "name": stored.name,
        "version": stored.version,
        "kind": "tls_certificate" if isinstance(value, Credential) else "validation_context",
        "serials": [format(c.serial_number, "x") for c in certificates],
        "subject": certificates[0].subject.rfc4514_string(),
        "spiffe_id": _spiffe_id(certificates[0]),
        "not_before": certificates[0].not_valid_before_utc.isoformat(),
        "not_after": value.not_after.isoformat(),
        "seconds_to_expiry": int((value.not_after - now).total_seconds()),
        "key": value.key.location if isinstance(value, Credential) else None,
        "updated_at": stored.updated_at.isoformat(),
    }


def monitor_app(server: Served, issuance: IssuanceHealth | None = None) -> web.Application:
    """The aiohttp application exposing ``server``'s health, metrics and status."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        problem = readiness_problem(server, issuance)
        if problem is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {problem}\n")

    async def metrics(_: web.Request) -> web.Response:
        await server.refresh(with_streams=False)
        body = generate_latest(server.metrics_registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def status(_: web.Request) -> web.Response:
        await server.refresh(with_streams=True)
        return web.json_response(status_document(server, issuance))

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)

    async def console_status() -> dict[str, Any]:
        await server.refresh(with_streams=True)
        return status_document(server, issuance)

    async def console_metrics() -> str:
        await server.refresh(with_streams=False)
        return generate_latest(server.metrics_registry).decode()

    # The console's pages under /console/, reading this server's status and metrics.
    add_console_routes(app, ConsoleSources(status=console_status, metrics=console_metrics))
    return app


async def start_monitor(
    server: Served, host: str, port: int, issuance: IssuanceHealth | None = None
) -> web.AppRunner:
    """Serve the monitor on ``host:port``; the caller cleans up the returned runner."""
    runner = web.AppRunner(monitor_app(server, issuance), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def _spiffe_id(certificate: x509.Certificate) -> str | None:
    """The certificate's spiffe:// URI SAN (an X.509-SVID has exactly one), if any."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    return next((uri for uri in uris if uri.startswith("spiffe://")), None)
