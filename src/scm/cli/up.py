"""``scm up``: the SDS server, the local CA and a real Envoy, for a first look."""

from __future__ import annotations

import sys

import click

from scm.cli.context import CliContext, pass_cli
from scm.cli.sds import KEY_MODES


@click.command("up")
@click.option(
    "--key-mode",
    type=click.Choice(KEY_MODES),
    default="software",
    show_default=True,
    help="software: stock Envoy serves TLS. hsm: show the Secret for a key kept in the token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=10443,
    show_default=True,
    help="Envoy's TLS port.",
)
@click.option(
    "--http", default="127.0.0.1:0", show_default=True, help="Status and metrics HOST:PORT."
)
@click.option("--cert-ttl", default="24h", show_default=True, help="Certificate lifetime.")
@click.option("--check", is_flag=True, help="Stop once Envoy serves the certificate (for CI).")
@pass_cli
def up_command(
    cli: CliContext, key_mode: str, port: int, http: str, cert_ttl: str, check: bool
) -> None:
    """Run the SDS server with the local CA and a real Envoy that gets its TLS over SDS.

    Everything lives under <state dir>/up/ (its own token, CA, records and socket), apart
    from a production `scm sds serve`; the CA is created there on first use. One scm up
    per port. Stop with Ctrl-C or SIGTERM.
    """
    from scm.addresses import parse_host_port
    from scm.sds.up import UpOptions, run_up

    options = UpOptions(key_mode, port, parse_host_port(http, "--http"), cert_ttl, check)
    run_up(cli.settings, options, sys.stdout)
