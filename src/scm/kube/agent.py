"""The node agent: the device plugin plus EPC registration, one process per node."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from scm.errors import UnavailableError
from scm.kube.manager import DevicePluginManager
from scm.kube.service import every
from scm.platform import HostReport

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where the host's EPC is made schedulable: the NFD features file or the Node object."""

    async def publish(self, report: HostReport) -> None: ...


class NodeAgent:
    """Each pass reconciles the device plugins, then publishes the host's features."""

    def __init__(self, manager: DevicePluginManager, publisher: Publisher) -> None:
        self.manager = manager
        self.publisher = publisher
        self._last_problem: str | None = None

    async def run(self, stop: asyncio.Event, poll_interval: float) -> None:
        try:
            await every(poll_interval, stop, self.step)
        finally:
            await self.manager.close()

    async def step(self) -> None:
        await self.manager.reconcile()
        if self.manager.report is None:
            return
        try:
            await self.publisher.publish(self.manager.report)
        except UnavailableError as exc:
            if str(exc) != self._last_problem:
                log.warning("%s (will retry)", exc)
            self._last_problem = str(exc)
        else:
            self._last_problem = None
