"""``scm ca``: the local certificate authority, its key in the token."""

from __future__ import annotations

from pathlib import Path

import click

from scm.cli.attest import tee_root_option
from scm.cli.context import CliContext, pass_cli
from scm.cli.keys import KEY_TYPES, keystore
from scm.cli.output import deprecated, emit, format_option
from scm.cli.paths import PathParam
from scm.files import read_input, write_output

# The PKI and key domains (cryptography, python-pkcs11) load inside each command, so that
# `scm ca --help` stays fast.


@click.group("ca")
def ca_group() -> None:
    """The local CA: issues workload certificates within one SPIFFE trust domain."""


@ca_group.command("init")
@click.option("--trust-domain", help="SPIFFE trust domain (default: ca.trust_domain).")
@click.option("--key-type", type=click.Choice(KEY_TYPES), help="Default: ca.key_type.")
@click.option(
    "--parent-cert",
    type=PathParam(dir_okay=False),
    help="Make an intermediate under this CA certificate (PEM chain).",
)
@click.option(
    "--parent-key",
    type=PathParam(dir_okay=False),
    help="The parent CA's PEM key: used once in memory, never stored.",
)
@format_option()
@pass_cli
def init_command(
    cli: CliContext,
    trust_domain: str | None,
    key_type: str | None,
    parent_cert: Path | None,
    parent_key: Path | None,
    output_format: str,
) -> None:
    """Create the CA: a new root, or an intermediate under an existing root."""
    from scm.keys import KeyType
    from scm.keys.pem import load_certificate_chain, load_private_key
    from scm.pki import CASettings, LocalCA, parse_ttl

    settings = cli.settings.section("ca", CASettings)
    if (parent_cert is None) != (parent_key is None):
        raise click.UsageError("--parent-cert and --parent-key go together")
    parent = None
    if parent_cert is not None and parent_key is not None:
        chain = load_certificate_chain(read_input(parent_cert, "parent certificate file"))
        parent = (chain, load_private_key(read_input(parent_key, "parent key file"))[0])
    with keystore(cli) as store:
        ca = LocalCA.init(
            cli.settings.state_dir,
            store,
            settings.trust_domain if trust_domain is None else trust_domain,
            KeyType(key_type or settings.key_type),
            settings.key_label,
            parent,
            parse_ttl(settings.max_ttl),
        )
    subject = ca.certificate.subject.rfc4514_string()
    emit(
        output_format,
        {"subject": subject, "key_label": ca.key_label, "key_location": store.location},
        f"CA {subject} created, key {ca.key_label!r} in {store.location}",
    )


@ca_group.command("show")
@format_option("pem")
@click.option("--pem", is_flag=True, hidden=True, help="Deprecated: --format pem.")
@pass_cli
def show_command(cli: CliContext, output_format: str, pem: bool) -> None:
    """The local CA's certificate and trust domain (--format pem: the configured CA's roots)."""
    from cryptography.hazmat.primitives import serialization

    from scm.pki import configured_ca
    from scm.pki.configured import load_local_ca

    if pem:
        deprecated("--pem", "--format pem")
        output_format = "pem"
    with keystore(cli) as store:
        if output_format == "pem":
            # Exactly the roots ROOTCA serves: what relying parties should trust.
            for cert in configured_ca(cli.settings, store).trust_bundle():
                click.echo(cert.public_bytes(serialization.Encoding.PEM).decode(), nl=False)
            return
        ca = load_local_ca(cli.settings, store)
        location = store.location
    chain_pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in ca.chain)
    cert = ca.certificate
    document = {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "trust_domain": ca.policy.trust_domain,
        "key_label": ca.key_label,
        "key_location": location,
        "not_after": cert.not_valid_after_utc.isoformat(),
        "chain_pem": chain_pem,
    }
    text = (
        f"subject:      {document['subject']}\n"
        f"issuer:       {document['issuer']}\n"
        f"trust domain: {document['trust_domain']}\n"
        f"key:          {ca.key_label} in {location}\n"
        f"not after:    {document['not_after']}\n"
    )
    emit(output_format, document, text)


@ca_group.command("issue")
@click.option(
    "--csr",
    "csr_file",
    type=PathParam(dir_okay=False),
    required=True,
    help="PEM certificate signing request.",
)
@click.option("--ttl", default="24h", show_default=True, help="Lifetime: 90s, 15m, 24h, 30d.")
@click.option(
    "--output",
    type=PathParam(dir_okay=False),
    help="Write the chain to this file instead of standard output.",
)
@pass_cli
def issue_command(cli: CliContext, csr_file: Path, ttl: str, output: Path | None) -> None:
    """Have the configured CA (ca.backend) sign a CSR; print the chain, leaf first."""
    import asyncio

    from scm.pki import configured_ca, load_csr, parse_ttl

    lifetime = parse_ttl(ttl)
    csr = load_csr(read_input(csr_file, "CSR file"))
    with keystore(cli) as store:
        issued = asyncio.run(configured_ca(cli.settings, store).sign(csr, lifetime))
    if output is None:
        click.echo(issued.chain_pem().decode(), nl=False)
    else:
        write_output(output, issued.chain_pem())


@ca_group.command("csr")
@click.argument("label")
@click.option("--namespace", required=True, help="Kubernetes namespace of the workload.")
@click.option("--service-account", required=True, help="Its service account.")
@click.option("--trust-domain", help="SPIFFE trust domain (default: ca.trust_domain).")
@click.option("--dns", "dns_names", multiple=True, help="A DNS SAN (repeatable).")
@click.option(
    "--attest",
    is_flag=True,
    help="Embed a quote from this TEE binding the key (for CAs with require_attestation).",
)
@tee_root_option
@click.option(
    "--output",
    type=PathParam(dir_okay=False),
    help="Write the PEM CSR to this file instead of standard output.",
)
@pass_cli
def csr_command(
    cli: CliContext,
    label: str,
    namespace: str,
    service_account: str,
    trust_domain: str | None,
    dns_names: tuple[str, ...],
    attest: bool,
    root: str,
    output: Path | None,
) -> None:
    """A CSR for the SPIFFE identity of a workload, signed by the token key LABEL."""
    from scm.pki import CASettings, WorkloadIdentity, build_csr, csr_to_pem
    from scm.pki.csr_evidence import collect_evidence

    settings = cli.settings.section("ca", CASettings)
    identity = WorkloadIdentity(
        settings.trust_domain if trust_domain is None else trust_domain,
        namespace,
        service_account,
        dns_names,
    )
    with keystore(cli) as store:
        signer = store.signer(label)
        evidence = collect_evidence(signer.public_key(), Path(root)) if attest else None
        pem = csr_to_pem(build_csr(identity, signer, evidence))
    if output is None:
        click.echo(pem.decode(), nl=False)
    else:
        write_output(output, pem)
