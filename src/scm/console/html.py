"""Building HTML safely: every value is escaped here, pages only compose fragments."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from html import escape

# Navigation: (path under the console prefix, title).
PAGES = (
    ("host", "Host"),
    ("identities", "Identities"),
    ("attestation", "Attestation"),
    ("fleet", "Fleet"),
)


class Html(str):
    """Markup that is already safe; plain ``str`` values are always escaped."""


def text(value: object) -> Html:
    """``value`` as escaped text (``None`` shows as a dash)."""
    if isinstance(value, Html):
        return value
    return Html(_escaped(value))


def _escaped(value: object) -> str:
    # Plain str on purpose: building an Html per fragment doubles the time of big pages.
    if isinstance(value, Html):
        return value
    return escape("—" if value is None else str(value))


def join(parts: Iterable[object]) -> Html:
    return Html("".join(_escaped(part) for part in parts))


def tag(element: str, /, *children: object, **attributes: object) -> Html:
    """``<name attr="...">children</name>``; a trailing ``_`` in an attribute name is dropped."""
    attrs = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{escape(str(value))}"'
        for key, value in attributes.items()
        if value is not None and value is not False
    )
    inner = "".join(_escaped(child) for child in children if child is not None)
    return Html(f"<{element}{attrs}>{inner}</{element}>")


def table(headers: Iterable[str], rows: Iterable[Iterable[object]]) -> Html:
    head = tag("tr", *(tag("th", header) for header in headers))
    body = join(tag("tr", *(tag("td", text(cell)) for cell in row)) for row in rows)
    return tag("table", tag("thead", head), tag("tbody", body))


def facts(pairs: Iterable[tuple[str, object]]) -> Html:
    """A definition list of label/value pairs."""
    return tag("dl", *(join([tag("dt", label), tag("dd", text(value))]) for label, value in pairs))


def yes_no(value: bool | None) -> Html:
    if value is None:
        return tag("span", "unknown", class_="unknown")
    return tag("span", "yes", class_="ok") if value else tag("span", "no", class_="bad")


def moment(value: str | datetime.datetime | None) -> Html:
    """An ISO time shown to the second in UTC, machine-readable in a ``<time>`` element."""
    if value is None:
        return text(None)
    when = datetime.datetime.fromisoformat(value) if isinstance(value, str) else value
    when = when.astimezone(datetime.UTC)
    return tag("time", f"{when:%Y-%m-%d %H:%M:%S} UTC", datetime=when.isoformat())


def page(prefix: str, current: str, title: str, body: Html, live: str | None = None) -> Html:
    """A whole page: navigation, ``body``, and the script when a part is ``live`` (SSE URL)."""
    nav = tag(
        "nav",
        tag("strong", "scm console"),
        *(
            tag(
                "a", label, href=f"{prefix}{path}", aria_current="page" if path == current else None
            )
            for path, label in PAGES
        ),
    )
    script = tag("script", src=f"{prefix}static/console.js", defer=True) if live else None
    head = tag(
        "head",
        Html('<meta charset="utf-8">'),
        Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
        tag("title", f"{title} · scm console"),
        Html(f'<link rel="stylesheet" href="{escape(prefix)}static/console.css">'),
        script,
    )
    main = tag("main", tag("h1", title), body, data_live=live)
    return Html("<!doctype html>\n" + tag("html", head, tag("body", nav, main), lang="en"))
