"""HOST:PORT as operators write it, for every listener option and setting."""

from __future__ import annotations

import pytest

from scm.addresses import parse_host_port, split_host_port
from scm.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:8443", ("127.0.0.1", 8443)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:65535", ("localhost", 65535)),
        ("8443", None),
        (":8443", None),
        ("host:", None),
        ("host:65536", None),
        ("host:-1", None),
        ("host:\uff18\uff14", None),  # full-width digits are not a port
    ],
)
def test_split_host_port(text: str, address: tuple[str, int] | None) -> None:
    assert split_host_port(text) == address


def test_a_bad_setting_names_its_option() -> None:
    with pytest.raises(ConfigError, match=r"^--http 'nowhere': expected HOST:PORT"):
        parse_host_port("nowhere", "--http")
