"""Listeners on the command line: one option, ``HOST:PORT`` (``[::1]:8443`` for IPv6)."""

from __future__ import annotations

import click


class HostPort(click.ParamType[tuple[str, int]]):
    """``HOST:PORT`` -> (host, port); port 0 asks the kernel for a free one."""

    name = "HOST:PORT"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value  # a default, already converted
        text = str(value)
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            self.fail(f"{text!r} is not HOST:PORT (port 0-65535)", param, ctx)
        return host.strip("[]"), int(port)


HOST_PORT = HostPort()
