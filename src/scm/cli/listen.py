"""Listeners on the command line: one option, ``HOST:PORT`` (``[::1]:8443`` for IPv6)."""

from __future__ import annotations

import click

from scm.addresses import split_host_port


class HostPort(click.ParamType[tuple[str, int]]):
    """``HOST:PORT`` -> (host, port); port 0 asks the kernel for a free one."""

    name = "HOST:PORT"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value  # a default, already converted
        text = str(value)
        address = split_host_port(text)
        if address is None:
            self.fail(f"{text!r} is not HOST:PORT (port 0-65535)", param, ctx)
        return address


HOST_PORT = HostPort()
