"""``scm sds``: the Envoy SDS server."""

from __future__ import annotations

from pathlib import Path

import click

from scm.cli.context import CliContext, pass_cli
from scm.cli.paths import PathParam

# scm.sds.leafkeys.KEY_MODES and scm.sds.keyprovider.PIN_SOURCES, written out so that
# `--help` need not load the SDS server (a test checks they are the same).
KEY_MODES = ("hsm", "software")
PIN_SOURCES = ("secret", "envoy")

FILE = PathParam(dir_okay=False)


@click.group("sds")
def sds_group() -> None:
    """Envoy Secret Discovery Service."""


@sds_group.command("serve")
@click.option("--socket", "socket_path", type=FILE, help="Workload socket [<state_dir>/sds.sock].")
@click.option("--gateway-socket", type=FILE, help="A second socket, for a gateway.")
@click.option("--socket-group", help="Group that may connect too (sockets become 0660).")
@click.option("--allow-uid", type=int, multiple=True, help="Only these uids (SO_PEERCRED).")
@click.option("--tcp", help="Also listen on HOST:PORT with mutual TLS.")
@click.option("--tls-cert", type=FILE, help="Certificate chain of the TCP listener.")
@click.option("--tls-key", type=FILE, help="Private key of the TCP listener.")
@click.option("--tls-client-ca", type=FILE, help="CA that TCP clients' certificates chain to.")
@click.option("--http", help="Serve /healthz, /readyz, /metrics, /status on HOST:PORT.")
@click.option(
    "--workers", type=click.IntRange(min=1), help="Processes serving SDS [sds.workers, 1]."
)
@click.option(
    "--credential",
    "credentials",
    multiple=True,
    metavar="NAME=CERT.pem,KEY.pem",
    help="Serve a chain with its key inline (software key mode).",
)
@click.option(
    "--hsm-credential",
    "hsm_credentials",
    multiple=True,
    metavar="NAME=CERT.pem,KEY_LABEL",
    help="Serve a chain whose key is KEY_LABEL in the token (hsm key mode).",
)
@click.option("--trust-bundle", type=FILE, help="CA certificates served as ROOTCA.")
@click.option(
    "--issue/--no-issue",
    default=True,
    help="Issue 'default' (and serve ROOTCA, imported keys) from the configured CA.",
)
@click.option(
    "--key-mode",
    type=click.Choice(KEY_MODES),
    help="Workload keys inline for stock Envoy (software) or in the token (hsm) [software].",
)
@click.option("--cert-ttl", help="Lifetime of issued certificates, e.g. 24h [sds.cert_ttl].")
@click.option("--token-label", help="Token holding --hsm-credential keys.")
@click.option("--provider-config", type=FILE, help="Key provider JSON (default: Envoy's sgx).")
@click.option("--pin-source", type=click.Choice(PIN_SOURCES), help="Where Envoy gets PINs.")
@click.option("--user-pin-file", type=FILE, help="Token user PIN, for --pin-source secret.")
@click.option("--so-pin-file", type=FILE, help="Token SO PIN, for --pin-source secret.")
@pass_cli
def serve_command(
    cli: CliContext,
    socket_path: Path | None,
    gateway_socket: Path | None,
    socket_group: str | None,
    allow_uid: tuple[int, ...],
    tcp: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
    http: str | None,
    workers: int | None,
    credentials: tuple[str, ...],
    hsm_credentials: tuple[str, ...],
    trust_bundle: Path | None,
    issue: bool,
    key_mode: str | None,
    cert_ttl: str | None,
    token_label: str | None,
    provider_config: Path | None,
    pin_source: str | None,
    user_pin_file: Path | None,
    so_pin_file: Path | None,
) -> None:
    """Serve Envoy its certificates over SDS: issued by the configured CA, or imported.

    With issuance (the default) the first request for 'default' generates a key, has the
    CA sign a certificate for the [sds] identity and renews it before it expires; ROOTCA
    is the CA's trust bundle, and in hsm key mode keys imported with `scm keys import`
    are served under their label.
    """
    import asyncio

    from scm.sds.assembly import SdsOverrides, build_plan, serve_plan_until_stopped

    overrides = SdsOverrides(
        socket=socket_path,
        gateway_socket=gateway_socket,
        socket_group=socket_group,
        allowed_uids=allow_uid,
        tcp=tcp,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        http=http,
        credentials=credentials,
        hsm_credentials=hsm_credentials,
        trust_bundle=trust_bundle,
        issue=issue,
        key_mode=key_mode,
        cert_ttl=cert_ttl,
        token_label=token_label,
        provider_config=provider_config,
        pin_source=pin_source,
        user_pin_file=user_pin_file,
        so_pin_file=so_pin_file,
        workers=workers,
    )
    plan = build_plan(cli.settings, overrides)
    try:
        announce = lambda what: click.echo(f"scm sds: serving {what}", err=True)  # noqa: E731
        asyncio.run(serve_plan_until_stopped(plan, announce))
    finally:
        plan.close()
