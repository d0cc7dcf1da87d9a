"""``scm kube``: the Kubernetes device plugin, node agent and admission webhook."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from scm.cli.context import CliContext, pass_cli
from scm.cli.listen import HOST_PORT
from scm.cli.output import deprecated
from scm.cli.paths import PathParam
from scm.cli.roots import root_option as host_root_option
from scm.errors import ConfigError

if TYPE_CHECKING:  # the kube servers (asyncio, gRPC, aiohttp) load when a command runs
    import asyncio

    from scm.kube.agent import Publisher

EPC_REGISTRATIONS = ("nfd", "node-status")

root_option = host_root_option("Read the host's /proc, /sys and /dev below this directory.")
kubelet_dir_option = click.option(
    "--kubelet-dir",
    type=PathParam(file_okay=False),
    help="The kubelet's device-plugin directory (default: [kube] kubelet_dir).",
)


@click.group("kube")
def kube_group() -> None:
    """Kubernetes: device plugin, node agent, admission webhook."""


@kube_group.command("device-plugin")
@root_option
@kubelet_dir_option
@pass_cli
def device_plugin_command(cli: CliContext, root: str, kubelet_dir: Path | None) -> None:
    """Serve sgx.intel.com/enclave, sgx.intel.com/provision and tdx.intel.com/keys."""
    from scm.kube.manager import DevicePluginManager
    from scm.kube.service import run_until_signalled
    from scm.kube.settings import KubeSettings

    settings = cli.settings.section("kube", KubeSettings)
    manager = DevicePluginManager(
        Path(root), kubelet_dir or settings.kubelet_dir, settings.sgx_shares
    )

    async def serve(stop: asyncio.Event) -> None:
        await manager.run(stop, settings.poll_interval)

    run_until_signalled(serve)


@kube_group.command("node-agent")
@root_option
@kubelet_dir_option
@click.option(
    "--epc-registration",
    type=click.Choice(EPC_REGISTRATIONS),
    help="nfd: keep the NFD features file; node-status: patch the Node (default: [kube]).",
)
@click.option(
    "--features-file",
    type=PathParam(dir_okay=False),
    help="The NFD features.d file to keep current (default: [kube] features_file).",
)
@click.option("--node-name", help="This node's name (default: [kube] node_name).")
@pass_cli
def node_agent_command(
    cli: CliContext,
    root: str,
    kubelet_dir: Path | None,
    epc_registration: str | None,
    features_file: Path | None,
    node_name: str | None,
) -> None:
    """Run the device plugin and keep the node's EPC and TEE features registered."""
    from scm.kube.agent import NodeAgent
    from scm.kube.features import FeaturesFile
    from scm.kube.manager import DevicePluginManager
    from scm.kube.node_status import node_status_publisher
    from scm.kube.service import run_until_signalled
    from scm.kube.settings import KubeSettings

    settings = cli.settings.section("kube", KubeSettings)
    manager = DevicePluginManager(
        Path(root), kubelet_dir or settings.kubelet_dir, settings.sgx_shares
    )
    mode = epc_registration or settings.epc_registration
    if mode not in EPC_REGISTRATIONS:
        raise ConfigError(f"kube.epc_registration must be one of {', '.join(EPC_REGISTRATIONS)}")
    publisher: Publisher
    if mode == "nfd":
        publisher = FeaturesFile(features_file or settings.features_file)
    else:
        publisher = node_status_publisher(node_name or settings.node_name)
    agent = NodeAgent(manager, publisher)

    async def run(stop: asyncio.Event) -> None:
        await agent.run(stop, settings.poll_interval)

    run_until_signalled(run)


@kube_group.command("webhook")
@click.option("--tls-cert", type=PathParam(dir_okay=False), required=True)
@click.option("--tls-key", type=PathParam(dir_okay=False), required=True)
@click.option(
    "--listen",
    type=HOST_PORT,
    help="HOST:PORT to serve on (default: [kube] webhook_host and webhook_port).",
)
@click.option("--host", hidden=True, help="Deprecated: --listen HOST:PORT.")
@click.option("--port", type=click.IntRange(0, 65535), hidden=True, help="Deprecated: --listen.")
@pass_cli
def webhook_command(
    cli: CliContext,
    tls_cert: Path,
    tls_key: Path,
    listen: tuple[str, int] | None,
    host: str | None,
    port: int | None,
) -> None:
    """Serve the SGX mutating admission webhook over HTTPS at /mutate."""
    if listen is not None and (host is not None or port is not None):
        raise click.UsageError("--listen replaces --host and --port: give only --listen")
    if host is not None or port is not None:
        deprecated("--host/--port", "--listen HOST:PORT")
    elif listen is not None:
        host, port = listen
    from scm.kube.service import run_until_signalled
    from scm.kube.settings import KubeSettings
    from scm.kube.webhook.server import make_app, serve, tls_context

    settings = cli.settings.section("kube", KubeSettings)
    context = tls_context(tls_cert, tls_key)
    app = make_app()

    async def run(stop: asyncio.Event) -> None:
        await serve(
            app,
            host or settings.webhook_host,
            settings.webhook_port if port is None else port,
            context,
            stop,
        )

    run_until_signalled(run)
