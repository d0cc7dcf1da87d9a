"""``scm console``: the read-only web console."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from scm.cli.context import CliContext, pass_cli
from scm.cli.paths import PathParam
from scm.cli.roots import root_option
from scm.errors import NotFoundError

if TYPE_CHECKING:  # the console's server stack loads when it runs, not for --help
    from scm.attestation.pccs import PccsClient

FILE = PathParam(dir_okay=False)


@click.command("console")
@click.option("--listen", help="HOST:PORT to serve [console.listen: 127.0.0.1:8480].")
@root_option("Host root for the host page [/].", default=None)
@click.option(
    "--sds", "sds_url", help="A running SDS server's --http URL, e.g. http://127.0.0.1:9901."
)
@click.option("--collateral", type=FILE, help="Collateral bundle for the attestation page.")
@click.option(
    "--pccs-url", help="Fetch collateral from this PCCS or PCS (cached in the state dir)."
)
@click.option("--policy", "policy_file", type=FILE, help="Appraisal policy (TOML).")
@click.option(
    "--kubeconfig", type=FILE, help="Show this Kubernetes cluster's nodes on the fleet page."
)
@click.option("--os-cloud", help="Show this OpenStack cloud's placement (clouds.yaml name).")
@click.option("--tls-cert", type=FILE, help="Certificate chain (required off loopback).")
@click.option("--tls-key", type=FILE, help="Private key (required off loopback).")
@click.option("--token-file", type=FILE, help="Bearer token file (required off loopback).")
@pass_cli
def console_command(
    cli: CliContext,
    listen: str | None,
    root: str | None,
    sds_url: str | None,
    collateral: Path | None,
    pccs_url: str | None,
    policy_file: Path | None,
    kubeconfig: Path | None,
    os_cloud: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    token_file: Path | None,
) -> None:
    """Serve the read-only web console: host, identities, attestation and fleet pages.

    It binds to loopback unless told otherwise; another address needs TLS and a token.
    Every option can also be set in the [console] settings table (SCM_CONSOLE_*).
    """
    import asyncio

    from scm.addresses import parse_host_port
    from scm.attestation.policy import DEFAULT_POLICY, Policy
    from scm.console import ConsoleSources
    from scm.console.access import access_for
    from scm.console.fleet import fleet_sources
    from scm.console.serve import serve_console
    from scm.console.settings import ConsoleSettings
    from scm.console.sources import remote_metrics, remote_status
    from scm.sds.daemon import wait_for_stop_signal

    settings = cli.settings.section("console", ConsoleSettings)
    host, port = parse_host_port(listen or settings.listen, "--listen")
    access = access_for(
        host,
        tls_cert or settings.tls_cert,
        tls_key or settings.tls_key,
        token_file or settings.token_file,
    )
    sds = sds_url or settings.sds
    bundle = collateral or settings.collateral
    if bundle is not None and not bundle.is_file():
        raise NotFoundError(f"collateral bundle {bundle} does not exist")
    policy = policy_file or settings.policy
    pccs = pccs_url or settings.pccs_url
    sources = ConsoleSources(
        host_root=Path(root) if root else settings.root,
        status=remote_status(sds) if sds else None,
        metrics=remote_metrics(sds) if sds else None,
        collateral=bundle,
        pccs=_pccs(cli, pccs) if pccs else None,
        policy=Policy.from_file(policy) if policy else DEFAULT_POLICY,
        fleet=fleet_sources(kubeconfig or settings.kubeconfig, os_cloud or settings.os_cloud),
    )

    def started(url: str) -> None:
        click.echo(f"scm console: {url}", err=True)

    asyncio.run(serve_console(sources, host, port, access, started, wait_for_stop_signal))


def _pccs(cli: CliContext, url: str) -> PccsClient:
    from scm.attestation.pccs import AttestationSettings, PccsClient, collateral_cache_dir

    settings = cli.settings.section("attestation", AttestationSettings)
    cache = collateral_cache_dir(cli.settings.state_dir)
    return PccsClient.from_settings(settings, url, cache)
