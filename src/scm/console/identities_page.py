"""The identities page: what the SDS server serves, to which Envoys, and how issuance goes.

Rendered from the server's ``/status`` document and its Prometheus metrics only; neither
carries key bytes or PINs, so nothing here can show one.
"""

from __future__ import annotations

import datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from scm.console.html import Html, facts, join, moment, table, tag, text, yes_no

# Without a change, the fragment is re-rendered this often anyway (to move "now").
REDRAW_EVERY = datetime.timedelta(seconds=30)
TIMELINE_WIDTH = 480
MARGIN = 40  # room for the labels centred on the first and last marks


def render_identities(
    status: dict[str, Any], metrics_text: str | None, now: datetime.datetime
) -> Html:
    """The live part of the identities page (replaced as a whole on every change)."""
    issuance = status.get("issuance")
    secrets = status.get("secrets") or []
    streams = status.get("streams") or []
    return join(
        [
            tag("p", "Serving: ", yes_no(bool(status.get("ready"))), class_="ready"),
            tag("section", tag("h2", "Secrets"), _secrets(secrets, issuance, now), id="secrets"),
            tag("section", tag("h2", "Issuance"), _issuance(issuance), id="issuance"),
            tag("section", tag("h2", "Connected Envoys"), _streams(streams), id="envoys"),
            tag("section", tag("h2", "Counters"), _counters(metrics_text), id="counters"),
        ]
    )


class IdentitiesCache:
    """The last fragment, re-used while the status and metrics are unchanged.

    Every open page polls once a second; with a thousand Envoys a render costs about a
    tenth of a second, so it is only done on a change (or every REDRAW_EVERY).
    """

    def __init__(self) -> None:
        self._key: tuple[Any, str | None] | None = None
        self._at: datetime.datetime | None = None
        self._html = Html()

    def render(
        self, status: dict[str, Any], metrics_text: str | None, now: datetime.datetime
    ) -> Html:
        key = (_without_countdowns(status), metrics_text)
        stale = self._at is None or not (self._at <= now < self._at + REDRAW_EVERY)
        if stale or key != self._key:
            self._html = render_identities(status, metrics_text, now)
            self._key, self._at = key, now
        return self._html


def _without_countdowns(status: dict[str, Any]) -> dict[str, Any]:
    """The status without ``seconds_to_expiry``: it changes every second, no page shows it."""
    secrets = [
        {k: v for k, v in secret.items() if k != "seconds_to_expiry"}
        for secret in status.get("secrets") or []
    ]
    return dict(status, secrets=secrets)


def _secrets(
    secrets: list[dict[str, Any]], issuance: dict[str, Any] | None, now: datetime.datetime
) -> Html:
    if not secrets:
        return tag("p", "No secret yet: the first Envoy request for 'default' issues one.")
    cards = []
    for secret in secrets:
        is_default = secret.get("name") == "default" and secret.get("kind") == "tls_certificate"
        renewal = (issuance or {}).get("next_renewal") if is_default else None
        cards.append(
            tag(
                "article",
                tag("h3", secret.get("name")),
                facts(
                    [
                        ("kind", secret.get("kind")),
                        ("SPIFFE ID", tag("code", secret["spiffe_id"], class_="spiffe-id")
                                      if secret.get("spiffe_id") else None),
                        ("subject", secret.get("subject") or None),
                        ("serial", tag("code", (secret.get("serials") or ["?"])[0],
                                       class_="serial")),
                        ("version", tag("code", secret.get("version"), class_="version")),
                        ("key", _key_location(secret.get("key"))),
                        ("expires", tag("span", moment(secret.get("not_after")),
                                        class_="expiry")),
                    ]
                ),
                timeline(secret, renewal, now),
                class_="secret",
                data_name=secret.get("name"),
            )
        )  # fmt: skip
    return join(cards)


def timeline(secret: dict[str, Any], renewal: str | None, now: datetime.datetime) -> Html:
    """Issued, renewal point and expiry of one certificate on a line, with "now" marked."""
    start = _parse(secret.get("not_before") or secret.get("updated_at"))
    end = _parse(secret.get("not_after"))
    if start is None or end is None or end <= start:
        return text("")
    span = (end - start).total_seconds()

    def x(moment_: datetime.datetime) -> int:
        fraction = (moment_ - start).total_seconds() / span
        return round(MARGIN + TIMELINE_WIDTH * min(1.0, max(0.0, fraction)))

    # Certificates are valid from a little before issuance (clock skew), so "valid from".
    marks = [("valid from", start, "issued"), ("expires", end, "expiry")]
    renew_at = _parse(renewal)
    if renew_at is not None:
        marks.append(("renews", renew_at, "renewal"))
    shapes = [tag("line", x1=MARGIN, y1=28, x2=MARGIN + TIMELINE_WIDTH, y2=28, class_="axis")]
    for label, when, kind in marks:
        shapes.append(
            tag("g", tag("title", f"{label} {when:%Y-%m-%d %H:%M:%S} UTC"),
                tag("circle", cx=x(when), cy=28, r=5, class_=kind),
                # the renewal label sits above the line: it is often close to expiry
                tag("text", label, x=x(when), y=14 if kind == "renewal" else 48,
                    text_anchor="middle"))
        )  # fmt: skip
    shapes.append(tag("line", x1=x(now), y1=18, x2=x(now), y2=38, class_="now"))
    legend = join(
        [
            "valid from ", moment(start), " · renewal ",
            moment(renew_at) if renew_at else text("not scheduled"), " · expires ", moment(end),
        ]
    )  # fmt: skip
    svg = tag("svg", *shapes, xmlns="http://www.w3.org/2000/svg", width=TIMELINE_WIDTH + 2 * MARGIN,
              height=56, role="img", aria_label="certificate timeline")  # fmt: skip
    return tag("figure", svg, tag("figcaption", legend), class_="timeline")


def _key_location(location: Any) -> Html:
    """Where the private key lives, from the status document's ``key`` field."""
    if location is None:
        return text("none (trust bundle)")
    where = str(location)
    if where == "inline":
        shown = "in memory, sent inline to Envoy"
    elif where.startswith("hsm:"):
        token, _, label = where[4:].partition("/")
        shown = f"in the token {token}, key {label} (never leaves it)"
    else:
        shown = where
    return tag("span", shown, class_="key-location")


def _issuance(issuance: dict[str, Any] | None) -> Html:
    if issuance is None:
        return tag("p", "This server does not issue: it serves imported credentials.")
    return facts(
        [
            ("CA reachable", yes_no(issuance.get("ca_reachable"))),
            ("consecutive failures", issuance.get("consecutive_failures")),
            ("last issued", moment(issuance.get("last_issued_at"))),
            ("next renewal", moment(issuance.get("next_renewal"))),
            ("last error", tag("span", issuance.get("last_error") or "none", class_="last-error")),
            ("next retry", moment(issuance.get("next_retry"))),
        ]
    )


def _streams(streams: list[dict[str, Any]]) -> Html:
    if not streams:
        return tag("p", "No Envoy is connected.")
    rows = []
    for stream in streams:
        acked = stream.get("acked") or {}
        rows.append(
            [
                tag("span", stream.get("node"), class_="node"),
                stream.get("cluster") or None,
                stream.get("api"),
                ", ".join(stream.get("names") or []),
                join(tag("div", f"{name}: {version}") for name, version in sorted(acked.items())),
                str(stream.get("nacks", 0)),
                tag("span", stream.get("last_nack") or "none", class_="last-nack"),
                moment(stream.get("opened_at")),
            ]
        )
    headers = ["node", "cluster", "API", "watching", "ACKed version", "NACKs", "last NACK",
               "connected since"]  # fmt: skip
    return table(headers, rows)


def _counters(metrics_text: str | None) -> Html:
    if metrics_text is None:
        return tag("p", "No metrics available.")
    rows = []
    for family in text_string_to_metric_families(metrics_text):
        if family.type != "counter":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = ", ".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            rows.append([tag("code", sample.name), labels or None, f"{sample.value:g}"])
    if not rows:
        return tag("p", "No counters yet.")
    return table(["counter", "labels", "value"], rows)


def _parse(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
