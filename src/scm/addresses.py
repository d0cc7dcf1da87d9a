"""Listener addresses as operators write them: ``HOST:PORT`` (``[::1]:8443`` for IPv6)."""

from __future__ import annotations

from scm.errors import ConfigError


def split_host_port(text: str) -> tuple[str, int] | None:
    """(host, port) from ``HOST:PORT``, or None when it is not one (port 0-65535)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        return None
    return host.strip("[]"), int(port)


def parse_host_port(text: str, option: str) -> tuple[str, int]:
    """(host, port) from the value of ``option``, or a one-line configuration error."""
    address = split_host_port(text)
    if address is None:
        raise ConfigError(f"{option} {text!r}: expected HOST:PORT (port 0-65535)")
    return address
