"""The fleet page: each fleet in its section; one that fails or hangs is a message."""

from __future__ import annotations

import asyncio
from typing import Any

from scm.console import ConsoleSources, console_app
from scm.console.html import Html, tag
from scm.errors import UnavailableError
from tests.unit.console.helpers import with_client


class Answering:
    title = "Kubernetes nodes"

    async def section(self) -> Html:
        return tag("p", "node-a 4056Mi")


class Failing:
    title = "OpenStack placement"

    async def section(self) -> Html:
        raise UnavailableError("cannot reach the cloud: connection refused")


class Hanging:
    title = "a hung API"

    async def section(self) -> Html:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def fleet_page(sources: ConsoleSources) -> str:
    async def body(client: Any) -> str:
        response = await client.get("/console/fleet")
        assert response.status == 200
        return str(await response.text())

    return with_client(console_app(sources), body)


def test_each_fleet_has_its_section_and_a_failure_stays_in_its_own() -> None:
    page = fleet_page(ConsoleSources(fleet=(Answering(), Failing())))
    assert "<h2>Kubernetes nodes</h2><p>node-a 4056Mi</p>" in page
    assert "Cannot read OpenStack placement: cannot reach the cloud: connection refused" in page


def test_a_hanging_fleet_api_does_not_hang_the_page() -> None:
    page = fleet_page(ConsoleSources(fleet=(Hanging(), Answering()), fleet_timeout=0.2))
    assert "a hung API did not answer within 0.2 s" in page
    assert "node-a 4056Mi" in page


def test_without_a_fleet_the_page_says_how_to_configure_one() -> None:
    assert "--kubeconfig FILE and/or --os-cloud NAME" in fleet_page(ConsoleSources())
