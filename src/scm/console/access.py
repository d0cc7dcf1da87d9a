"""Who may read the console: loopback by default; elsewhere TLS and a bearer token.

A browser cannot add an ``Authorization`` header to a page load or an EventSource, so the
login form trades the token for an HttpOnly, Secure, SameSite=Strict cookie holding it.
"""

from __future__ import annotations

import hmac
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from scm.errors import ConfigError, InputError, NotFoundError
from scm.files import read_input

COOKIE = "scm_console"
MIN_TOKEN_LENGTH = 16
# What the pages may load: only themselves (no inline script, no third party).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Access:
    """How the console is reached: TLS context and token, both None on loopback."""

    ssl_context: ssl.SSLContext | None = None
    token: str | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def access_for(
    host: str, tls_cert: Path | None, tls_key: Path | None, token_file: Path | None
) -> Access:
    """Refuse a non-loopback listener without TLS and a token; load what is given."""
    if not is_loopback(host) and not (tls_cert and tls_key and token_file):
        raise ConfigError(
            f"--listen {host} is not loopback: it needs --tls-cert, --tls-key and --token-file"
        )
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    context = None
    if tls_cert and tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(tls_cert, tls_key)
        except FileNotFoundError as exc:
            raise NotFoundError(f"TLS file {exc.filename} does not exist") from None
        except (ssl.SSLError, OSError) as exc:
            raise InputError(f"cannot load --tls-cert/--tls-key: {exc}") from None
    return Access(context, read_token(token_file) if token_file else None)


def read_token(path: Path) -> str:
    try:
        token = read_input(path, "token file").decode().strip()
    except UnicodeDecodeError:
        raise InputError(f"token file {path} is not text") from None
    if len(token) < MIN_TOKEN_LENGTH:
        raise InputError(f"token file {path}: the token needs at least {MIN_TOKEN_LENGTH} chars")
    return token


def presented_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.cookies.get(COOKIE)


def token_matches(expected: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(expected.encode(), presented.encode())


def security_headers(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
