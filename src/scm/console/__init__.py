"""The scm console: read-only web pages over the other domains (no domain logic of its own).

Server-rendered HTML from aiohttp, a little plain JavaScript, Server-Sent Events for the
parts that change. :func:`add_console_routes` mounts the pages under ``/console/`` on any
aiohttp application (the SDS monitor does); :func:`serve_console` runs them on their own.
"""

from scm.console.app import CONSOLE_PREFIX, add_console_routes, console_app
from scm.console.sources import ConsoleSources, StatusSource

__all__ = [
    "CONSOLE_PREFIX",
    "ConsoleSources",
    "StatusSource",
    "add_console_routes",
    "console_app",
]
