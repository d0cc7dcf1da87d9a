"""Where the console's pages read from: the host root, the SDS status, collateral, the fleet.

The console computes nothing itself: each source is another domain's object or the SDS
server's own ``/status`` document (read in-process when mounted on the monitor, over
HTTP from a separate ``scm console``).
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from scm.attestation.pccs import PccsClient
from scm.attestation.policy import DEFAULT_POLICY, Policy
from scm.console.html import Html
from scm.errors import UnavailableError

# The SDS status document (``scm.sds.monitor.status_document``), however it is obtained.
StatusSource = Callable[[], Awaitable[dict[str, Any]]]
# Its Prometheus metrics in the text exposition format.
MetricsSource = Callable[[], Awaitable[str]]
Clock = Callable[[], datetime.datetime]

STATUS_MAX_BYTES = 4 * 1024 * 1024
STATUS_TIMEOUT_S = 5.0


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class ConsoleSources:
    """Everything the pages show, each optional: a page says what is not configured."""

    host_root: Path = Path("/")
    status: StatusSource | None = None
    metrics: MetricsSource | None = None
    collateral: Path | None = None
    # Fetches collateral for a quote's platform (a PCCS or Intel PCS, with its disk cache).
    pccs: PccsClient | None = None
    policy: Policy = DEFAULT_POLICY
    fleet: tuple[FleetSource, ...] = ()
    # A fleet's API that hangs must not hang the page (openstacksdk has no default timeout).
    fleet_timeout: float = 20.0
    clock: Clock = utc_now
    # How often live parts look for a change (seconds), and how they wait; tests drive it.
    poll_interval: float = 1.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


class FleetSource(Protocol):
    """One configured fleet (a Kubernetes cluster, an OpenStack cloud) for the fleet page."""

    title: str

    async def section(self) -> Html:
        """The fleet as a rendered section; raises an ``ScmError`` when it cannot be read."""
        ...


def in_process_status(document: Callable[[], dict[str, Any]]) -> StatusSource:
    """A status source for a console mounted in the SDS server's own process."""

    async def read() -> dict[str, Any]:
        return document()

    return read


def remote_status(base_url: str) -> StatusSource:
    """A status source reading a running SDS server's ``/status`` over HTTP (bounded)."""
    url = _base(base_url) + "/status"

    async def read() -> dict[str, Any]:
        body = await _fetch(url)
        try:
            document = json.loads(body)
        except ValueError:
            raise UnavailableError(f"{url} did not send JSON") from None
        if not isinstance(document, dict):
            raise UnavailableError(f"{url} did not send a status document")
        return document

    return read


def remote_metrics(base_url: str) -> MetricsSource:
    """A metrics source reading a running SDS server's ``/metrics`` over HTTP (bounded)."""
    url = _base(base_url) + "/metrics"

    async def read() -> str:
        return (await _fetch(url)).decode(errors="replace")

    return read


async def _fetch(url: str) -> bytes:
    timeout = aiohttp.ClientTimeout(total=STATUS_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            if response.status != 200:
                raise UnavailableError(f"{url} answered HTTP {response.status}")
            body = await response.content.read(STATUS_MAX_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UnavailableError(f"cannot read {url}: {exc or type(exc).__name__}") from None
    if len(body) > STATUS_MAX_BYTES:
        raise UnavailableError(f"{url} sent more than {STATUS_MAX_BYTES} bytes")
    return body


def _base(url: str) -> str:
    """The server's --http base URL, also when given as its /status URL."""
    return url.rstrip("/").removesuffix("/status")
