"""``scm up`` (what ``make run`` runs) prints the console's URL and it shows the identity."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from scm.config import load_settings
from scm.sds.issuing import embedded_token_pins
from tests.integration.console.conftest import SCM
from tests.integration.console.test_browser import read_events
from tests.integration.sds.harness import wait_for
from tests.integration.sds.test_up import read_until, state_dir

__all__ = ["state_dir"]


@pytest.fixture(params=["software"])
def scm_up(state_dir: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The output of a running ``scm up`` up to its stop hint; SIGINT afterwards."""
    process = subprocess.Popen(
        [SCM, "--state-dir", str(state_dir), "up", "--port", "0", "--key-mode", request.param],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield read_until(process, "Running until SIGINT or SIGTERM")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def text_of(browser: webdriver.Chrome, selector: str) -> str:
    """The text of the element at ``selector``, found again if the page's live update
    replaced it between finding and reading (it swaps the fragment every second)."""
    for _ in range(4):
        try:
            return str(browser.find_element(By.CSS_SELECTOR, selector).text)
        except StaleElementReferenceException:
            continue
    return str(browser.find_element(By.CSS_SELECTOR, selector).text)


def test_scm_up_prints_the_console_url_and_the_page_shows_the_running_identity(
    scm_up: str, browser: webdriver.Chrome
) -> None:
    match = re.search(r"console: open (http://127\.0\.0\.1:\d+/console/) in a browser", scm_up)
    assert match, scm_up
    identity = re.search(r"identity +(spiffe://\S+?)(,|\s)", scm_up)
    serial = re.search(r"serial ([0-9a-f]+)", scm_up)
    assert identity and serial
    browser.get(match.group(1) + "identities")
    secret = 'article.secret[data-name="default"]'
    assert text_of(browser, f"{secret} .spiffe-id") == identity.group(1)
    assert text_of(browser, f"{secret} .serial") == serial.group(1)
    assert "scm-up" in text_of(browser, "#envoys")  # Envoy's node id


@pytest.mark.parametrize("scm_up", ["hsm"], indirect=True)
def test_hsm_mode_shows_envoys_nack_and_never_the_pins_the_secret_carries(
    scm_up: str, state_dir: Path, browser: webdriver.Chrome
) -> None:
    match = re.search(r"console: open (http://127\.0\.0\.1:\d+/console/) in a browser", scm_up)
    assert match, scm_up
    browser.get(match.group(1) + "identities")
    envoys = wait_for(
        lambda: (
            (text := browser.find_element(By.ID, "envoys").text)
            and "Failed to load private key provider: sgx" in text
            and text
        ),
        timeout=30,
        what="Envoy's NACK on the page",
    )
    assert "hsm:" not in envoys  # (the key location is shown on the secret, not here)
    key = text_of(browser, 'article.secret[data-name="default"] .key-location')
    assert key.startswith("in the token")
    # In hsm mode the SDS Secret itself carries the token PINs: none may reach the console.
    # scm up keeps its own token under <state dir>/up
    up_state = str(state_dir / "up")
    pins = embedded_token_pins(load_settings(environ={"SCM_STATE_DIR": up_state}))
    assert pins is not None and len(pins.user) >= 4 and len(pins.so) >= 4
    seen = [browser.page_source, read_events(match.group(1) + "events/identities", messages=1)]
    for page in ("host", "attestation", "fleet"):
        browser.get(match.group(1) + page)
        seen.append(browser.page_source)
    for text in seen:
        assert pins.user not in text and pins.so not in text and "PRIVATE KEY" not in text
