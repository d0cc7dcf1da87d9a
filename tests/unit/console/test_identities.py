"""The identities fragment: what it shows, and that peer-controlled text stays text."""

from __future__ import annotations

import datetime
import json
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest

from scm.console import ConsoleSources, console_app
from scm.console.identities_page import render_identities
from scm.console.sources import in_process_status
from tests.unit.console.helpers import status_document, with_client

NOW = datetime.datetime(2026, 1, 1, 6, tzinfo=datetime.UTC)
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_shows_identity_expiry_timeline_and_the_acked_version() -> None:
    html = render_identities(status_document(), None, NOW)
    assert "spiffe://cluster.local/ns/default/sa/default" in html
    assert "2026-01-02 00:00:00 UTC" in html  # expiry
    assert "renews" in html and "valid from" in html  # timeline marks
    assert "default: 0123456789abcdef" in html
    assert "in memory, sent inline to Envoy" in html


def test_envoy_controlled_node_id_and_nack_detail_are_escaped() -> None:
    stream = dict(status_document()["streams"][0], node=HOSTILE, last_nack=HOSTILE, nacks=1)
    html = render_identities(status_document(streams=[stream]), None, NOW)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html


def test_a_failing_ca_shows_the_last_error_and_next_retry() -> None:
    issuance = dict(
        status_document()["issuance"],
        ca_reachable=False,
        consecutive_failures=3,
        last_error="CA unreachable: connection refused",
        next_retry="2026-01-01T06:00:08+00:00",
    )
    html = render_identities(status_document(issuance=issuance), None, NOW)
    assert "CA unreachable: connection refused" in html
    assert "2026-01-01 06:00:08 UTC" in html
    assert '<span class="bad">no</span>' in html


def test_counters_come_from_the_metrics_exposition() -> None:
    registry = CollectorRegistry()
    Counter("scm_sds_acks", "Responses ACKed.", ["api"], registry=registry).labels("sotw").inc(4)
    metrics = generate_latest(registry).decode()
    html = render_identities(status_document(), metrics, NOW)
    assert "scm_sds_acks_total" in html and "api=sotw" in html and ">4<" in html


def test_a_hostile_status_source_is_escaped_in_the_page_and_the_event_stream() -> None:
    secret = dict(status_document()["secrets"][0], name=HOSTILE, subject=HOSTILE)
    document = status_document(secrets=[secret])
    sources = ConsoleSources(status=in_process_status(lambda: document), poll_interval=0.01)

    async def body(client: Any) -> tuple[str, str]:
        page = await (await client.get("/console/identities")).text()
        response = await client.get("/console/events/identities")
        lines = []
        while not any(line.startswith(b"data:") for line in lines):
            lines.append(await response.content.readline())
        response.close()
        event = next(line for line in lines if line.startswith(b"data:"))
        return page, json.loads(event[5:])["html"]

    page, event = with_client(console_app(sources), body)
    for html in (page, event):
        assert "<script>alert" not in html and "&lt;script&gt;" in html


def test_an_unreachable_sds_server_is_a_message_on_the_page() -> None:
    import socket

    from scm.console.sources import remote_metrics, remote_status

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    sources = ConsoleSources(status=remote_status(url), metrics=remote_metrics(url))

    async def body(client: Any) -> tuple[int, str]:
        response = await client.get("/console/identities")
        return response.status, await response.text()

    status, page = with_client(console_app(sources), body)
    assert status == 200 and f"Cannot read the SDS server: cannot read {url}/status" in page


def test_the_fragment_is_rendered_again_only_on_a_change_or_after_a_while() -> None:
    from scm.console.identities_page import REDRAW_EVERY, IdentitiesCache

    cache = IdentitiesCache()
    first = cache.render(status_document(), None, NOW)
    ticking = status_document()
    ticking["secrets"][0]["seconds_to_expiry"] -= 1  # a second later: nothing shown changed
    assert cache.render(ticking, None, NOW + datetime.timedelta(seconds=1)) is first
    renewed = status_document()
    renewed["secrets"][0]["serials"] = ["beef"]
    shown = cache.render(renewed, None, NOW + datetime.timedelta(seconds=2))
    assert "beef" in shown and shown is not first
    # unchanged, but redrawn after a while so that the timeline's "now" moves
    later = cache.render(renewed, None, NOW + REDRAW_EVERY + datetime.timedelta(seconds=3))
    assert later is not shown and "beef" in later
