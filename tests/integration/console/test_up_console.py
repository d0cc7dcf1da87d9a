"""``scm up`` (what ``make run`` runs) prints the console's URL and it shows the identity."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.integration.console.conftest import SCM
from tests.integration.sds.test_up import read_until, state_dir

__all__ = ["state_dir"]


@pytest.fixture
def scm_up(state_dir: Path) -> Iterator[str]:
    """The output of a running ``scm up`` up to its stop hint; SIGINT afterwards."""
    process = subprocess.Popen(
        [SCM, "--state-dir", str(state_dir), "up", "--port", "0"],
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


def test_scm_up_prints_the_console_url_and_the_page_shows_the_running_identity(
    scm_up: str, browser: webdriver.Chrome
) -> None:
    match = re.search(r"console: open (http://127\.0\.0\.1:\d+/console/) in a browser", scm_up)
    assert match, scm_up
    identity = re.search(r"identity +(spiffe://\S+?)(,|\s)", scm_up)
    serial = re.search(r"serial ([0-9a-f]+)", scm_up)
    assert identity and serial
    browser.get(match.group(1) + "identities")
    secret = browser.find_element(By.CSS_SELECTOR, 'article.secret[data-name="default"]')
    assert secret.find_element(By.CSS_SELECTOR, ".spiffe-id").text == identity.group(1)
    assert secret.find_element(By.CSS_SELECTOR, ".serial").text == serial.group(1)
    assert "scm-up" in browser.find_element(By.ID, "envoys").text  # Envoy's node id
