"""Keeps one plugin per resource the host can serve, registered with the current kubelet."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from scm.errors import DiscoveryError, UnavailableError
from scm.kube.plugin import KUBELET_SOCKET, ResourcePlugin
from scm.kube.resources import resources_for
from scm.kube.service import every
from scm.platform import HostReport, discover

log = logging.getLogger(__name__)


class DevicePluginManager:
    """Reconciles plugins with the host and the kubelet, once per ``reconcile`` call.

    A kubelet restart removes every socket in its directory and recreates ``kubelet.sock``;
    either sign makes the manager restart its servers and register again. Failures (no
    kubelet, a directory it cannot write) are logged and retried on the next pass.
    """

    def __init__(
        self,
        root: Path,
        kubelet_dir: Path,
        sgx_shares: int,
        read_host: Callable[[Path], HostReport] = discover,
    ) -> None:
        self.root = root
        self.kubelet_dir = kubelet_dir
        self.sgx_shares = sgx_shares
        self.plugins: dict[str, ResourcePlugin] = {}
        self.report: HostReport | None = None
        self._read_host = read_host
        self._kubelet_identity: tuple[int, int] | None = None
        self._unregistered: set[str] = set()
        self._last_problem: dict[str, str] = {}

    @property
    def kubelet_socket(self) -> Path:
        return self.kubelet_dir / KUBELET_SOCKET

    async def run(self, stop: asyncio.Event, poll_interval: float) -> None:
        """Reconcile every ``poll_interval`` seconds until ``stop`` is set, then shut down."""
        try:
            await every(poll_interval, stop, self.reconcile)
        finally:
            await self.close()

    async def reconcile(self) -> None:
        """One pass: re-read the host, update health, restart and register where needed."""
        try:
            self.report = self._read_host(self.root)
        except DiscoveryError as exc:
            self._problem("host", f"cannot read the host: {exc}")
            return
        wanted = resources_for(self.report, self.sgx_shares)
        for name, resource in wanted.items():
            plugin = self.plugins.get(name)
            if plugin is None:
                self.plugins[name] = ResourcePlugin(resource, self.kubelet_dir)
                log.info("%s: %d devices found", name, len(resource.device_ids))
            else:
                await plugin.update(resource, healthy=True)
        for name, plugin in self.plugins.items():
            if name not in wanted and plugin.service.healthy:
                log.warning("%s: device gone, marking its devices unhealthy", name)
                await plugin.update(plugin.service.resource, healthy=False)

        identity = self._kubelet_socket_identity()
        if identity is not None and identity != self._kubelet_identity:
            if self._kubelet_identity is not None:
                log.info("kubelet socket recreated: the kubelet restarted; registering again")
            self._kubelet_identity = identity
            self._unregistered = set(self.plugins)
        for plugin in self.plugins.values():
            if not plugin.serving:
                await self._start(plugin)
        if identity is None:
            if self.plugins:
                self._problem("kubelet", f"no kubelet socket at {self.kubelet_socket} yet")
            return
        for name in sorted(self._unregistered):
            plugin = self.plugins[name]
            if not plugin.serving:
                continue
            try:
                await plugin.register(self.kubelet_socket)
            except UnavailableError as exc:
                self._problem(name, str(exc))
                continue
            log.info("%s: registered with the kubelet", name)
            self._unregistered.discard(name)
            self._last_problem.pop(name, None)

    async def close(self) -> None:
        """Stop every server and remove its socket."""
        for plugin in self.plugins.values():
            await plugin.stop()

    async def _start(self, plugin: ResourcePlugin) -> None:
        try:
            await plugin.start()
        except (UnavailableError, OSError) as exc:
            self._problem(plugin.name, str(exc))
            return
        # A server on a new socket is unknown to the kubelet until it registers again.
        self._unregistered.add(plugin.name)

    def _kubelet_socket_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.kubelet_socket)
        except OSError:
            return None
        return (st.st_ino, st.st_ctime_ns)

    def _problem(self, key: str, message: str) -> None:
        """Log a problem once when it appears, not on every retry of the same failure."""
        if self._last_problem.get(key) != message:
            log.warning("%s (will retry)", message)
            self._last_problem[key] = message
