"""What a person reads in the console, in headless Chromium, against real servers."""

from __future__ import annotations

import datetime
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.integration.console.conftest import ATTESTATION, Console, Sds
from tests.integration.sds.harness import Envoy, wait_for

SPIFFE_ID = "spiffe://cluster.local/ns/default/sa/default"
ENVOY_NODE = "sidecar~127.0.0.1~test.default~cluster.local"
FORBIDDEN_MARKERS = ("PRIVATE KEY", "BEGIN EC PRIVATE", "BEGIN RSA PRIVATE")
Screenshot = Callable[[str], Path]


def texts(browser: webdriver.Chrome, selector: str) -> list[str]:
    return [element.text for element in browser.find_elements(By.CSS_SELECTOR, selector)]


def shown_time(iso: str) -> str:
    when = datetime.datetime.fromisoformat(iso).astimezone(datetime.UTC)
    return f"{when:%Y-%m-%d %H:%M:%S} UTC"


# Read a secret's card in one script run: the live part may be replaced between two reads.
CARD = """
const card = document.querySelector(`article.secret[data-name="${arguments[0]}"]`);
const text = (selector) => (card.querySelector(selector) || {}).textContent;
return card && {spiffe_id: text(".spiffe-id"), expiry: text(".expiry"),
                key: text(".key-location"), serial: text(".serial"),
                envoys: document.getElementById("envoys").innerText,
                issuance: document.getElementById("issuance").innerText};
"""


def card(browser: webdriver.Chrome, name: str) -> dict[str, str]:
    shown: dict[str, str] = wait_for(
        lambda: browser.execute_script(CARD, name), what=f"the card of {name}"
    )
    return shown


def test_identities_show_the_served_identity_and_envoy_and_a_renewal_without_reload(
    sds: Sds, envoy: Envoy, browser: webdriver.Chrome, screenshot: Screenshot
) -> None:
    browser.get(sds.http + "/console/identities")
    default = sds.default()
    assert default is not None
    shown = card(browser, "default")
    assert shown["spiffe_id"] == SPIFFE_ID
    assert shown["expiry"] == shown_time(default["not_after"])
    assert "in memory" in shown["key"]
    assert ENVOY_NODE in shown["envoys"]
    assert f"default: {default['version']}" in shown["envoys"]
    assert "CA reachable\tyes" in shown["issuance"] or "CA reachable\nyes" in shown["issuance"]
    screenshot("identities")

    # A renewal must appear by itself: mark this document, then wait for a new serial.
    browser.execute_script("window.scmConsoleMarker = 'same document';")
    first_serial = shown["serial"]
    if first_serial != default["serials"][0]:  # renewed while we looked: compare with that
        first_serial = default["serials"][0]

    def renewed_serial() -> str | None:
        serial = card(browser, "default")["serial"]
        return serial if serial != first_serial else None

    new_serial = wait_for(renewed_serial, timeout=90, what="a renewal to appear")
    assert browser.execute_script("return window.scmConsoleMarker;") == "same document"
    renewed = sds.default()
    assert renewed is not None and renewed["serials"] != default["serials"]
    assert int(new_serial, 16) != int(first_serial, 16)
    # The page keeps converging on what the server serves (renewals keep coming: poll).
    wait_for(
        lambda: card(browser, "default")["serial"] in sds.default()["serials"],  # type: ignore[index]
        timeout=30,
        what="the page to show the served serial",
    )
    # ...and Envoy's ACK of the current version shows up too (renewals keep coming: poll).
    wait_for(
        lambda: f"default: {sds.default()['version']}" in card(browser, "default")["envoys"],  # type: ignore[index]
        timeout=30,
        what="Envoy's ACK of the renewed version",
    )


def test_host_page_draws_an_epc_bar_per_numa_node(
    console: Console, browser: webdriver.Chrome, screenshot: Screenshot
) -> None:
    browser.get(console.url + "host")
    bars = browser.find_elements(By.CSS_SELECTOR, "#epc g.epc-node")
    assert [bar.get_attribute("data-node") for bar in bars] == ["0", "1"]
    for bar in bars:
        rect = bar.find_element(By.TAG_NAME, "rect")
        assert rect.size["width"] > 100  # drawn, as the browser lays it out
        assert "2028 MiB" in bar.text
    facts = browser.find_element(By.ID, "facts").text
    assert "Xeon(R) Platinum 8380" in facts and "4056 MiB" in facts
    placement = browser.find_element(By.ID, "placement").text
    assert "HW_CPU_X86_SGX" in placement and "CUSTOM_SGX_EPC_MB 4056" in placement
    screenshot("host")


def submit_quote(browser: webdriver.Chrome, url: str, case: str, at: str, collateral: bool) -> None:
    browser.get(url + "attestation")
    quote = ATTESTATION / "quotes" / f"{case}.quote.bin"
    browser.find_element(By.NAME, "quote_file").send_keys(str(quote))
    if collateral:
        bundle = ATTESTATION / "collateral" / f"{case}.collateral.json"
        browser.find_element(By.NAME, "collateral_file").send_keys(str(bundle))
    browser.find_element(By.NAME, "verify_at").send_keys(at)
    browser.find_element(By.ID, "verify").click()
    wait_for(lambda: browser.find_elements(By.ID, "result"), timeout=60, what="a verdict")


def test_attestation_page_accepts_a_real_tdx_quote_with_the_configured_collateral(
    console: Console, browser: webdriver.Chrome, screenshot: Screenshot
) -> None:
    submit_quote(browser, console.url, "tdx_v4_uptodate", "2025-07-04T10:00:00Z", False)
    assert browser.find_element(By.CSS_SELECTOR, ".verdict").text == (
        "Accepted: TCB status UpToDate"
    )
    steps = texts(browser, ".steps li")
    assert len(steps) == 11 and all(step.startswith("passed") for step in steps)
    assert "TDX" in browser.find_element(By.ID, "result").text
    screenshot("attestation")


def test_attestation_page_names_the_failed_step_advisories_and_deciding_rule(
    console: Console, browser: webdriver.Chrome
) -> None:
    submit_quote(browser, console.url, "tdx_v4_outofdate", "2025-07-22T09:00:00Z", True)
    verdict = browser.find_element(By.CSS_SELECTOR, ".verdict").text
    assert verdict.startswith("Rejected: policy_rejected")
    assert browser.find_element(By.CSS_SELECTOR, ".rule").text == "accepted_statuses"
    assert browser.find_element(By.CSS_SELECTOR, ".tcb-status").text == "OutOfDate"
    links = browser.find_elements(By.CSS_SELECTOR, "a.advisory")
    assert [a.text for a in links] == ["INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-00986"]
    assert (
        links[0]
        .get_attribute(
            "href",
        )
        .endswith("/intel-sa-00960.html")
    )
    failed = texts(browser, ".steps li.failed")
    assert failed == ["failed: the appraisal policy rejects the quote Appraisal policy accepts it"]


def test_expired_collateral_fails_its_step_and_later_steps_do_not_run(
    console: Console, browser: webdriver.Chrome
) -> None:
    submit_quote(browser, console.url, "tdx_v4_uptodate", "2030-01-01T00:00:00Z", False)
    assert browser.find_element(By.CSS_SELECTOR, ".verdict").text.startswith("Rejected")
    states = [
        li.get_attribute("class") for li in browser.find_elements(By.CSS_SELECTOR, ".steps li")
    ]
    failed_at = states.index("step failed")
    assert all(s == "step passed" for s in states[:failed_at])
    assert all(s == "step skipped" for s in states[failed_at + 1 :])


def test_no_pin_or_private_key_reaches_any_page_or_event(
    sds: Sds, envoy: Envoy, console: Console, browser: webdriver.Chrome
) -> None:
    secrets = sds.secrets_never_shown()
    assert all(len(pin) >= 4 for pin in secrets)
    pages = []
    for base in (sds.http + "/console/", console.url):
        for page in ("host", "identities", "attestation", "fleet"):
            browser.get(base + page)
            pages.append(browser.page_source)
        pages.append(read_events(base + "events/identities", messages=2))
    submit_quote(browser, console.url, "tdx_v4_uptodate", "2025-07-04T10:00:00Z", False)
    pages.append(browser.page_source)
    assert any(SPIFFE_ID in page for page in pages)  # the pages did show the identity
    for page in pages:
        for secret in (*secrets, *FORBIDDEN_MARKERS):
            assert secret not in page


def read_events(url: str, messages: int) -> str:
    """The first ``messages`` SSE events (bounded by the read timeout)."""
    seen: list[str] = []
    with urllib.request.urlopen(url, timeout=30) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        while len([line for line in seen if line.startswith("event:")]) < messages:
            line = stream.readline().decode()
            assert line, "the event stream ended"
            seen.append(line)
    events = [json.loads(line[5:]) for line in seen if line.startswith("data:")]
    assert all("html" in event for event in events)
    return "".join(seen)
