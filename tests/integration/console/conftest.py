"""A real ``scm sds serve`` (issuing from a local CA) with Envoy connected, a standalone
``scm console`` reading it, and one headless Chromium for the module."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from selenium import webdriver

from scm.config import load_settings
from scm.sds.issuing import embedded_token_pins
from tests.integration.console.browser import chromium
from tests.integration.sds.harness import Envoy, short_socket_path, wait_for

SCM = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"
REPO = Path(__file__).parents[3]
FIXTURES = REPO / "tests" / "fixtures"
# Relative to REPO (the console's working directory), as an operator would type it.
HOST_ROOT = Path("tests/fixtures/hosts/sgx-2socket/root")
ATTESTATION = FIXTURES / "attestation"
# Set to a directory (docs/console) to keep one screenshot per page for the README.
SCREENSHOTS_ENV = "SCM_CONSOLE_SCREENSHOTS"
# Short enough that a renewal happens while the test watches (at about half the lifetime).
CERT_TTL = "20s"
WINDOW_WIDTH = 1000


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@dataclass
class Sds:
    state_dir: Path
    socket: Path
    http: str  # base URL of the monitor, e.g. http://127.0.0.1:1234
    process: subprocess.Popen[str]

    def status(self) -> dict[str, Any]:
        document: dict[str, Any] = get_json(self.http + "/status")
        return document

    def default(self) -> dict[str, Any] | None:
        return next((s for s in self.status()["secrets"] if s["name"] == "default"), None)

    def secrets_never_shown(self) -> list[str]:
        """The token's PINs: what must never reach a page."""
        settings = load_settings(environ={"SCM_STATE_DIR": str(self.state_dir)})
        pins = embedded_token_pins(settings)
        assert pins is not None
        return [pins.user, pins.so]


@pytest.fixture(scope="module")
def sds() -> Iterator[Sds]:
    """``scm sds serve`` issuing ``default`` (software keys) from a fresh local CA."""
    state = short_socket_path("state")
    subprocess.run([SCM, "--state-dir", str(state), "ca", "init"], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    socket_path = state / "sds.sock"
    port = free_port()
    process = subprocess.Popen(
        [SCM, "--state-dir", str(state), "sds", "serve", "--socket", str(socket_path),
         "--http", f"127.0.0.1:{port}", "--key-mode", "software", "--cert-ttl", CERT_TTL],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    server = Sds(state, socket_path, f"http://127.0.0.1:{port}", process)
    try:
        wait_for(socket_path.is_socket, timeout=60, what="the SDS socket")
        wait_for(server.status, timeout=60, what="the SDS monitor")
        yield server
    finally:
        process.terminate()
        process.communicate(timeout=30)
        shutil.rmtree(state.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def envoy(sds: Sds, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envoy]:
    """Real Envoy whose TLS listener gets ``default`` and ``ROOTCA`` from the server."""
    with Envoy(tmp_path_factory.mktemp("envoy"), sds.socket) as proxy:
        wait_for(
            lambda: any("default" in s["acked"] for s in sds.status()["streams"]),
            timeout=60,
            what="Envoy to ACK default",
        )
        yield proxy


@dataclass
class Console:
    url: str  # ends with /console/
    process: subprocess.Popen[str]


def first_line_match(stream: IO[str] | None, pattern: str, what: str) -> re.Match[str]:
    """The match of ``pattern`` in the first line a started process writes to ``stream``."""
    assert stream is not None
    line = stream.readline()
    match = re.search(pattern, line)
    assert match, f"{what} did not start as expected: {line!r}"
    return match


def console_url(process: subprocess.Popen[str]) -> str:
    """The URL a starting ``scm console`` prints (its first line on stderr)."""
    return first_line_match(
        process.stderr, r"(http://127\.0\.0\.1:\d+/console/)", "scm console"
    ).group(1)


@pytest.fixture(scope="module")
def console(sds: Sds) -> Iterator[Console]:
    """A standalone ``scm console`` on a fixture host root, reading the SDS server."""
    collateral = ATTESTATION / "collateral" / "tdx_v4_uptodate.collateral.json"
    process = subprocess.Popen(
        [SCM, "--state-dir", str(sds.state_dir), "console", "--listen", "127.0.0.1:0",
         "--root", str(HOST_ROOT), "--sds", sds.http, "--collateral", str(collateral)],
        stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        yield Console(console_url(process), process)
    finally:
        process.terminate()
        process.communicate(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def screenshot(browser: webdriver.Chrome, tmp_path: Path) -> Any:
    """Save the page as ``name``.png under tmp_path (and under $SCM_CONSOLE_SCREENSHOTS)."""

    def take(name: str) -> Path:
        path = tmp_path / f"{name}.png"
        # The whole page (bounded), not just the first screenful.
        height = browser.execute_script("return document.documentElement.scrollHeight;")
        browser.set_window_size(WINDOW_WIDTH, min(int(height) + 120, 2000))
        try:
            assert browser.save_screenshot(str(path))
        finally:
            browser.set_window_size(WINDOW_WIDTH, 900)
        keep = os.environ.get(SCREENSHOTS_ENV)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(keep) / path.name)
        return path

    return take
