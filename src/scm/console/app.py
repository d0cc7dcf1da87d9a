"""The console's routes: one handler per page, mounted under a prefix on any aiohttp app."""

from __future__ import annotations

import asyncio
import logging
from importlib import resources

from aiohttp import web
from aiohttp.typedefs import Middleware

from scm.console import access
from scm.console.attestation_page import form, read_submission, verify_submission
from scm.console.events import stream_fragment
from scm.console.host_page import host_section
from scm.console.html import Html, join, page, tag
from scm.console.identities_page import IdentitiesCache
from scm.console.sources import ConsoleSources
from scm.errors import ScmError

log = logging.getLogger(__name__)

CONSOLE_PREFIX = "/console/"
STATIC = {"console.js": "text/javascript", "console.css": "text/css"}


def add_console_routes(
    app: web.Application, sources: ConsoleSources, prefix: str = CONSOLE_PREFIX
) -> None:
    """Mount the console's pages under ``prefix`` (which ends with a slash) on ``app``."""
    pages = _Pages(sources, prefix)
    app.router.add_get(prefix, pages.index)
    app.router.add_get(prefix + "host", pages.host)
    app.router.add_get(prefix + "identities", pages.identities)
    app.router.add_get(prefix + "events/identities", pages.identity_events)
    app.router.add_get(prefix + "attestation", pages.attestation)
    app.router.add_post(prefix + "attestation", pages.attest)
    app.router.add_get(prefix + "fleet", pages.fleet)
    app.router.add_get(prefix + "static/{name}", pages.static)
    # Live streams never end by themselves: end them so the app stops without waiting.
    app.on_shutdown.append(pages.end_streams)


def console_app(sources: ConsoleSources, token: str | None = None) -> web.Application:
    """The console on its own (``scm console``): ``/`` leads to it; ``token`` guards it."""
    middlewares = [_token_guard(token)] if token else []
    app = web.Application(middlewares=middlewares)
    add_console_routes(app, sources)

    async def root(_: web.Request) -> web.Response:
        raise web.HTTPFound(CONSOLE_PREFIX)

    app.router.add_get("/", root)
    if token:
        app.router.add_get(CONSOLE_PREFIX + "login", _login_form)
        app.router.add_post(CONSOLE_PREFIX + "login", _login(token))
    return app


class _Pages:
    def __init__(self, sources: ConsoleSources, prefix: str) -> None:
        self.sources = sources
        self.prefix = prefix
        self.closing = asyncio.Event()
        self._identities_cache = IdentitiesCache()

    async def end_streams(self, _: web.Application) -> None:
        self.closing.set()

    def _html(self, current: str, title: str, body: Html, live: str | None = None) -> web.Response:
        response = web.Response(
            text=page(self.prefix, current, title, body, live), content_type="text/html"
        )
        access.security_headers(response)
        return response

    async def index(self, _: web.Request) -> web.Response:
        raise web.HTTPFound(self.prefix + "host")

    async def host(self, _: web.Request) -> web.Response:
        body = await host_section(self.sources.host_root)
        return self._html("host", "Host", body)

    async def identities(self, _: web.Request) -> web.Response:
        body = join(
            [
                tag("p", "loading…", id="live-state"),
                tag("div", await self._identities_fragment(), id="live"),
            ]
        )
        return self._html("identities", "Identities", body, self.prefix + "events/identities")

    async def identity_events(self, request: web.Request) -> web.StreamResponse:
        return await stream_fragment(
            request,
            "update",
            self._identities_fragment,
            self.sources.poll_interval,
            self.closing,
            self.sources.sleep,
        )

    async def _identities_fragment(self) -> Html:
        sources = self.sources
        if sources.status is None:
            return tag("p", "No SDS server is configured (scm console --sds URL).")
        try:
            status = await sources.status()
            metrics = await sources.metrics() if sources.metrics else None
        except ScmError as exc:
            return tag("p", f"Cannot read the SDS server: {exc}", class_="error")
        return self._identities_cache.render(status, metrics, sources.clock())

    async def attestation(self, _: web.Request) -> web.Response:
        return self._html(
            "attestation", "Attestation", form(self.sources.collateral, self.sources.pccs)
        )

    async def attest(self, request: web.Request) -> web.Response:
        sources = self.sources
        try:
            submission = await read_submission(request)
            result = await verify_submission(
                submission, sources.collateral, sources.policy, sources.clock(), sources.pccs
            )
        except ScmError as exc:
            result = tag("p", str(exc), class_="error", id="result")
        except ValueError as exc:  # a malformed multipart body
            result = tag("p", f"cannot read the form: {exc}", class_="error", id="result")
        page_form = form(sources.collateral, sources.pccs)
        return self._html("attestation", "Attestation", join([page_form, result]))

    async def fleet(self, _: web.Request) -> web.Response:
        if not self.sources.fleet:
            body = tag(
                "p",
                "No fleet is configured (scm console --kubeconfig FILE and/or --os-cloud NAME).",
            )
            return self._html("fleet", "Fleet", body)
        parts = []
        for fleet in self.sources.fleet:
            try:
                section = await asyncio.wait_for(fleet.section(), self.sources.fleet_timeout)
            except ScmError as exc:
                section = tag("p", f"Cannot read {fleet.title}: {exc}", class_="error")
            except TimeoutError:
                section = tag(
                    "p",
                    f"{fleet.title} did not answer within {self.sources.fleet_timeout:g} s",
                    class_="error",
                )
            parts.append(tag("section", tag("h2", fleet.title), section))
        return self._html("fleet", "Fleet", join(parts))

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        body = resources.files("scm.console").joinpath("static", name).read_bytes()
        response = web.Response(body=body, content_type=STATIC[name])
        access.security_headers(response)
        return response


def _token_guard(token: str) -> Middleware:
    open_paths = {CONSOLE_PREFIX + "login"} | {CONSOLE_PREFIX + f"static/{n}" for n in STATIC}

    @web.middleware
    async def guard(request: web.Request, handler: access.Handler) -> web.StreamResponse:
        if request.path in open_paths or access.token_matches(
            token, access.presented_token(request)
        ):
            return await handler(request)
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPSeeOther(CONSOLE_PREFIX + "login")
        raise web.HTTPUnauthorized(
            text="a bearer token is needed\n", headers={"WWW-Authenticate": "Bearer"}
        )

    return guard


async def _login_form(_: web.Request) -> web.Response:
    body = tag(
        "form",
        tag("label", "Console token", Html('<input type="password" name="token">')),
        Html('<button type="submit">Open the console</button>'),
        method="post",
    )
    response = web.Response(
        text=page(CONSOLE_PREFIX, "login", "Sign in", body), content_type="text/html"
    )
    access.security_headers(response)
    return response


def _login(token: str) -> access.Handler:
    async def login(request: web.Request) -> web.StreamResponse:
        data = await request.post()
        presented = data.get("token")
        if not isinstance(presented, str) or not access.token_matches(token, presented.strip()):
            log.warning("console: refused a sign-in from %s", request.remote)
            raise web.HTTPUnauthorized(text="wrong token\n")
        redirect = web.HTTPSeeOther(CONSOLE_PREFIX)
        redirect.set_cookie(
            access.COOKIE, token, httponly=True, secure=True, samesite="Strict", path="/"
        )
        raise redirect

    return login
