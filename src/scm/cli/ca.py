"""``scm ca``: the local certificate authority, its key in the token."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization

from scm.cli.context import CliContext, pass_cli
from scm.cli.keys import KEY_TYPES, keystore, read_input
from scm.files import write_atomic
from scm.keys import Keystore, KeyType
from scm.keys.pem import load_certificate_chain, load_private_key
from scm.pki import CASettings, LocalCA, load_csr, parse_ttl


@click.group("ca")
def ca_group() -> None:
    """The local CA: issues workload certificates within one SPIFFE trust domain."""


@ca_group.command("init")
@click.option("--trust-domain", help="SPIFFE trust domain (default: ca.trust_domain).")
@click.option("--key-type", type=click.Choice(KEY_TYPES), help="Default: ca.key_type.")
@click.option(
    "--parent-cert",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Make an intermediate under this CA certificate (PEM chain).",
)
@click.option(
    "--parent-key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The parent CA's PEM key: used once in memory, never stored.",
)
@pass_cli
def init_command(
    cli: CliContext,
    trust_domain: str | None,
    key_type: str | None,
    parent_cert: Path | None,
    parent_key: Path | None,
) -> None:
    """Create the CA: a new root, or an intermediate under an existing root."""
    settings = cli.settings.section("ca", CASettings)
    if (parent_cert is None) != (parent_key is None):
        raise click.UsageError("--parent-cert and --parent-key go together")
    parent = None
    if parent_cert is not None and parent_key is not None:
        chain = load_certificate_chain(read_input(parent_cert, "parent certificate"))
        parent = (chain, load_private_key(read_input(parent_key, "parent key"))[0])
    with keystore(cli) as store:
        ca = LocalCA.init(
            cli.settings.state_dir,
            store,
            trust_domain or settings.trust_domain,
            KeyType(key_type or settings.key_type),
            settings.key_label,
            parent,
            parse_ttl(settings.max_ttl),
        )
    click.echo(
        f"CA {ca.certificate.subject.rfc4514_string()} created, key "
        f"{ca.key_label!r} in {store.location}"
    )


@ca_group.command("show")
@click.option("--pem", is_flag=True, help="Print the CA certificate chain as PEM.")
@pass_cli
def show_command(cli: CliContext, pem: bool) -> None:
    """The CA's certificate and trust domain."""
    with keystore(cli) as store:
        ca = _load(cli, store)
    if pem:
        for cert in ca.chain:
            click.echo(cert.public_bytes(serialization.Encoding.PEM).decode(), nl=False)
        return
    cert = ca.certificate
    click.echo(f"subject:      {cert.subject.rfc4514_string()}")
    click.echo(f"issuer:       {cert.issuer.rfc4514_string()}")
    click.echo(f"trust domain: {ca.policy.trust_domain}")
    click.echo(f"key:          {ca.key_label} in {store.location}")
    click.echo(f"not after:    {cert.not_valid_after_utc.isoformat()}")


@ca_group.command("issue")
@click.option(
    "--csr",
    "csr_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="PEM certificate signing request.",
)
@click.option("--ttl", default="24h", show_default=True, help="Lifetime: 90s, 15m, 24h, 30d.")
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the chain to this file instead of standard output.",
)
@pass_cli
def issue_command(cli: CliContext, csr_file: Path, ttl: str, output: Path | None) -> None:
    """Sign a CSR whose SANs the policy allows; print the chain, leaf first."""
    lifetime = parse_ttl(ttl)
    csr = load_csr(read_input(csr_file, "CSR"))
    with keystore(cli) as store:
        issued = asyncio.run(_load(cli, store).sign(csr, lifetime))
    if output is None:
        click.echo(issued.chain_pem().decode(), nl=False)
    else:
        write_atomic(output, issued.chain_pem())


def _load(cli: CliContext, store: Keystore) -> LocalCA:
    settings = cli.settings.section("ca", CASettings)
    return LocalCA.load(
        cli.settings.state_dir, store, settings.dns_suffixes, parse_ttl(settings.max_ttl)
    )
