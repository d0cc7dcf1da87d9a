"""The webhook's HTTPS server: POST /mutate, GET /healthz, GET /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from scm.errors import InputError, NotFoundError, UnavailableError
from scm.kube.webhook.review import BadReview, review

log = logging.getLogger(__name__)

# kube-apiserver caps request bodies at 3 MiB; a review carries the object (and oldObject).
MAX_BODY = 8 * 1024 * 1024


class WebhookMetrics:
    """Counters and latency of admission reviews, in a registry of the app's own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.reviews = Counter(
            "scm_webhook_reviews",
            "Admission reviews answered, by outcome (patched, unchanged, denied, rejected).",
            ["outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "scm_webhook_review_seconds",
            "Time to answer one admission review.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=registry,
        )


_METRICS_KEY = web.AppKey("metrics", WebhookMetrics)


def make_app() -> web.Application:
    """The aiohttp application; each app has its own metrics registry."""
    app = web.Application(client_max_size=MAX_BODY)
    app[_METRICS_KEY] = WebhookMetrics(CollectorRegistry())
    app.router.add_post("/mutate", _mutate)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    return app


def tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or newer) from PEM files; clear errors when they are bad."""
    for path in (cert_file, key_file):
        if not path.is_file():
            raise NotFoundError(f"TLS file {path} does not exist")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        # A password callback stops OpenSSL from prompting on the terminal for an encrypted key.
        context.load_cert_chain(cert_file, key_file, password=_no_password(key_file))
    except ssl.SSLError:
        raise InputError(
            f"{cert_file} and {key_file} are not a PEM certificate and its matching private key"
        ) from None
    return context


def _no_password(key_file: Path) -> Callable[[], str]:
    def refuse() -> str:
        raise InputError(f"TLS key {key_file} is encrypted: give the webhook an unencrypted key")

    return refuse


async def start(
    app: web.Application, host: str, port: int, context: ssl.SSLContext
) -> web.AppRunner:
    """Listen for HTTPS on ``host:port`` (0 picks a free port; see ``runner.addresses``)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UnavailableError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return runner


async def serve(
    app: web.Application, host: str, port: int, context: ssl.SSLContext, stop: asyncio.Event
) -> None:
    """Serve ``app`` over HTTPS until ``stop`` is set."""
    runner = await start(app, host, port, context)
    log.info("webhook listening on https://%s:%d/mutate", host, port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def _mutate(request: web.Request) -> web.Response:
    metrics = request.app[_METRICS_KEY]
    started = time.perf_counter()
    body = await request.read()
    try:
        result = review(body)
    except BadReview as exc:
        metrics.reviews.labels("rejected").inc()
        return web.Response(status=400, text=f"{exc}\n")
    metrics.reviews.labels(result.outcome).inc()
    metrics.latency.observe(time.perf_counter() - started)
    if result.outcome == "denied":
        log.info("denied: %s", result.document["response"]["status"]["message"])
    return web.json_response(result.document)


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _metrics(request: web.Request) -> web.Response:
    registry = request.app[_METRICS_KEY].registry
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
