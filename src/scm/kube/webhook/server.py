"""The webhook's HTTPS server: POST /mutate, GET /healthz, GET /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import multiprocessing
import ssl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Metric
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from scm.errors import InputError, NotFoundError, UnavailableError
from scm.kube.webhook.review import BadReview, ReviewResult, answer, review

log = logging.getLogger(__name__)

# kube-apiserver stores no object over 3 MiB, so no honest review of a pod is larger; a body
# over it is refused with 413 before it is read, which bounds the work of any one review
# (parsing and mutation are linear in the body).
MAX_BODY = 3 * 1024 * 1024
# Reviews of bodies this large or larger run in the app's own worker process, so that a few
# huge pods never hold up the event loop: an ordinary pod (a few KiB) is answered at once
# beside them. A process, not a thread: a review of a pod of thousands of containers holds
# Python's GIL for a second or more, and a thread would stall the event loop just the same.
LARGE_BODY = 64 * 1024
# Large reviews queued or running at once; more are answered 503 at once rather than left to
# pile up past the API server's timeout.
MAX_LARGE_IN_FLIGHT = 4

Review = Callable[[bytes], ReviewResult]


# Upper bounds (seconds) of the review latency histogram's buckets.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class WebhookMetrics(Collector):
    """Counters and latency of admission reviews, in a registry of the app's own.

    Kept as plain numbers and turned into Prometheus metrics only when scraped: the event
    loop is the only writer, so a review pays a dict update and a bisect rather than
    prometheus_client's locked label lookup and histogram (a measurable share of a review).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._outcomes: dict[str, int] = {}
        self._first_counted: dict[str, float] = {}
        # One count per bucket of LATENCY_BUCKETS, then one for longer reviews.
        self._latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        registry.register(self)

    def count(self, outcome: str) -> None:
        """One more review with ``outcome`` (patched, unchanged, denied, rejected, ...)."""
        if outcome in self._outcomes:
            self._outcomes[outcome] += 1
        else:
            self._outcomes[outcome] = 1
            self._first_counted[outcome] = time.time()

    def observe(self, seconds: float) -> None:
        """One answered review took ``seconds``."""
        self._latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._latency_sum += seconds

    def collect(self) -> Iterator[Metric]:
        reviews = CounterMetricFamily(
            "scm_webhook_reviews",
            "Admission reviews answered, by outcome (patched, unchanged, denied, rejected, "
            "too_large, busy).",
            labels=["outcome"],
        )
        for outcome, count in self._outcomes.items():
            reviews.add_metric([outcome], count, created=self._first_counted[outcome])
        yield reviews
        cumulative = list(itertools.accumulate(self._latency_counts))
        bounds = [repr(bound) for bound in LATENCY_BUCKETS] + ["+Inf"]  # as Go prints them
        yield HistogramMetricFamily(
            "scm_webhook_review_seconds",
            "Time to answer one admission review.",
            buckets=list(zip(bounds, cumulative, strict=True)),
            sum_value=self._latency_sum,
        )


def large_review_process() -> Executor:
    """One worker process for large reviews, started by the first one ("spawn": the server
    runs threads, which forking would copy in whatever state they are)."""
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


class LargeReviews:
    """Where large reviews run, and the count of those queued or running."""

    def __init__(self, new_executor: Callable[[], Executor], review_large: Review) -> None:
        self.review = review_large
        self._new_executor = new_executor
        self.executor = new_executor()
        self.in_flight = 0

    def replace_broken(self, broken: Executor) -> None:
        """A worker that died (killed for memory, say) breaks its pool for good: start anew,
        once, however many reviews saw it break."""
        if self.executor is broken:
            broken.shutdown(wait=False, cancel_futures=True)
            self.executor = self._new_executor()

    async def close(self, app: web.Application) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


_METRICS_KEY = web.AppKey("metrics", WebhookMetrics)
_LARGE_KEY = web.AppKey("large_reviews", LargeReviews)


def make_app(
    large_executor: Callable[[], Executor] = large_review_process, review_large: Review = review
) -> web.Application:
    """The aiohttp application; each app has its own metrics registry and large-review worker.

    ``review_large`` answers large bodies in ``large_executor()`` (tests pass a thread and
    hold it, to show that small reviews do not wait for it).
    """
    app = web.Application(client_max_size=MAX_BODY)
    app[_METRICS_KEY] = WebhookMetrics(CollectorRegistry())
    app[_LARGE_KEY] = large = LargeReviews(large_executor, review_large)
    app.on_cleanup.append(large.close)
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
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _too_large(metrics)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:  # a chunked body that grew past the limit
        return _too_large(metrics)
    try:
        if len(body) < LARGE_BODY:
            result, response = answer(review, body)
        else:
            large = request.app[_LARGE_KEY]
            if large.in_flight >= MAX_LARGE_IN_FLIGHT:
                metrics.count("busy")
                return web.Response(
                    status=503,
                    text=f"{MAX_LARGE_IN_FLIGHT} large reviews already in flight\n",
                    headers={"Retry-After": "1"},
                )
            large.in_flight += 1
            executor = large.executor
            try:
                loop = asyncio.get_running_loop()
                result, response = await loop.run_in_executor(executor, answer, large.review, body)
            except BrokenExecutor:
                large.replace_broken(executor)
                metrics.count("busy")
                log.warning("the large-review worker died; a new one takes the next review")
                return web.Response(
                    status=503,
                    text="the worker reviewing large pods died; retry\n",
                    headers={"Retry-After": "1"},
                )
            finally:
                large.in_flight -= 1
    except BadReview as exc:
        metrics.count("rejected")
        return web.Response(status=400, text=f"{exc}\n")
    metrics.count(result.outcome)
    metrics.observe(time.perf_counter() - started)
    if result.outcome == "denied":
        status = result.response.response.status
        log.info("denied: %s", status.message if status is not None else "")
    return web.Response(body=response, content_type="application/json")


def _too_large(metrics: WebhookMetrics) -> web.Response:
    metrics.count("too_large")
    return web.Response(
        status=413, text=f"an AdmissionReview is at most {MAX_BODY} bytes (3 MiB)\n"
    )


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _metrics(request: web.Request) -> web.Response:
    registry = request.app[_METRICS_KEY].registry
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
