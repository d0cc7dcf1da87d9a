"""Loopback by default; elsewhere TLS and a bearer token, checked on every request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scm.console import ConsoleSources, console_app
from scm.console.access import COOKIE, access_for, is_loopback
from scm.errors import ConfigError, InputError, NotFoundError
from tests.unit.console.helpers import with_client

TOKEN = "a-console-token-of-enough-length"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("example.org", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::"])
def test_a_non_loopback_listener_needs_tls_and_a_token(host: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    with pytest.raises(ConfigError, match="not loopback"):
        access_for(host, None, None, None)
    with pytest.raises(ConfigError, match="not loopback"):
        access_for(host, None, None, token)


def test_loopback_needs_nothing() -> None:
    access = access_for("127.0.0.1", None, None, None)
    assert access.ssl_context is None and access.token is None


def test_token_files_are_checked(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("1234\n")
    with pytest.raises(InputError, match="at least"):
        access_for("127.0.0.1", None, None, short)
    with pytest.raises(NotFoundError):
        access_for("127.0.0.1", None, None, tmp_path / "missing")


def test_a_tls_key_that_is_not_one_is_a_one_line_error(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate")
    key.write_text("not a key")
    with pytest.raises(InputError, match="cannot load"):
        access_for("127.0.0.1", cert, key, None)


def test_without_the_token_nothing_but_the_login_form_is_served() -> None:
    app = console_app(ConsoleSources(), token=TOKEN)

    async def body(client: Any) -> dict[str, int]:
        seen = {}
        for path in ("/console/host", "/console/events/identities", "/console/fleet"):
            response = await client.get(path, allow_redirects=False)
            seen[path] = response.status
        wrong = await client.get("/console/host", headers={"Authorization": "Bearer nope"})
        seen["wrong"] = wrong.status
        browser = await client.get(
            "/console/host", headers={"Accept": "text/html"}, allow_redirects=False
        )
        seen["browser"] = browser.status
        seen["login"] = (await client.get("/console/login")).status
        return seen

    seen = with_client(app, body)
    assert seen == {
        "/console/host": 401,
        "/console/events/identities": 401,
        "/console/fleet": 401,
        "wrong": 401,
        "browser": 303,  # to the login form
        "login": 200,
    }


def test_the_bearer_token_or_the_login_cookie_opens_the_pages() -> None:
    app = console_app(ConsoleSources(), token=TOKEN)

    async def body(client: Any) -> tuple[int, int, str, int]:
        header = await client.get("/console/fleet", headers={"Authorization": f"Bearer {TOKEN}"})
        refused = await client.post("/console/login", data={"token": "wrong-token-wrong"})
        login = await client.post("/console/login", data={"token": TOKEN}, allow_redirects=False)
        cookie = login.cookies[COOKIE]
        with_cookie = await client.get("/console/fleet", cookies={COOKIE: cookie.value})
        attributes = cookie.OutputString()
        return header.status, refused.status, attributes, with_cookie.status

    header, refused, attributes, with_cookie = with_client(app, body)
    assert header == 200 and refused == 401 and with_cookie == 200
    assert "HttpOnly" in attributes and "Secure" in attributes and "SameSite=Strict" in attributes


def test_pages_forbid_inline_and_third_party_content() -> None:
    async def body(client: Any) -> dict[str, str]:
        response = await client.get("/console/host")
        return dict(response.headers)

    headers = with_client(console_app(ConsoleSources(host_root=Path("/nonexistent"))), body)
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
