"""``scm keys``: key pairs in the configured PKCS#11 token."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from scm.cli.context import CliContext, pass_cli
from scm.cli.output import emit, format_option
from scm.cli.paths import PathParam
from scm.files import read_input

if TYPE_CHECKING:
    from scm.keys import Pkcs11Keystore
    from scm.keys.orphans import KeyClaims

# The values of scm.keys.KeyType, written out so that `--help` need not load the PKCS#11
# stack (a test checks they are the same). Commands import the domain when they run.
KEY_TYPES = ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"]


@contextmanager
def keystore(cli: CliContext) -> Iterator[Pkcs11Keystore]:
    from scm.keys import open_keystore

    store = open_keystore(cli.settings)
    try:
        yield store
    finally:
        store.close()


@click.group("keys")
def keys_group() -> None:
    """Key pairs kept inside the PKCS#11 token (PIN from SCM_PKCS11_PIN or keys.pin_file)."""


@keys_group.command("generate")
@click.argument("label")
@click.option(
    "--type", "key_type", type=click.Choice(KEY_TYPES), default="ec-p256", show_default=True
)
@format_option()
@pass_cli
def generate_command(cli: CliContext, label: str, key_type: str, output_format: str) -> None:
    """Create a sensitive, non-extractable key pair named LABEL in the token."""
    from scm.keys import KeyType

    with keystore(cli) as store:
        info = store.generate(label, KeyType(key_type))
    text = f"{info.label}: {info.key_type.value} key {info.key_id} in {info.location}"
    emit(output_format, info.as_dict(), text)


def key_claims(cli: CliContext) -> KeyClaims:
    """What the records under the state directory say about which keys are in use."""
    from scm.keys.orphans import KeyClaims
    from scm.pki import CASettings, LocalCA
    from scm.processes import process_alive
    from scm.sds.records import IN_PROGRESS, CredentialRecords

    state_dir = cli.settings.state_dir
    claimed = {label for label in [LocalCA.key_label_in(state_dir)] if label}
    records = CredentialRecords(state_dir / "sds")
    for path in sorted(records.directory.glob("*.json")):
        if path.name == IN_PROGRESS:
            continue
        record = records.load(path.stem)
        if record is not None:
            claimed.add(record.key_label)
            claimed.update(retired.key_label for retired in record.retired)
    # Keys a running SDS server made and has not recorded yet (its pool, an issuance).
    claimed.update(k.label for k in records.in_progress().values() if process_alive(k.pid))
    return KeyClaims(frozenset(claimed), cli.settings.section("ca", CASettings).key_label)


@keys_group.command("list")
@format_option()
@pass_cli
def list_command(cli: CliContext, output_format: str) -> None:
    """Keys in the token, with their protection attributes as the token reports them.

    A key marked "orphan" was made by scm for a record that does not exist (an interrupted
    `ca init` or issuance); "staging" marks what an interrupted change left. `scm keys
    prune` removes both.
    """
    from scm.keys.orphans import KeyState

    with keystore(cli) as store:
        infos = store.list()
    claims = key_claims(cli)
    if output_format == "json":
        listed = [{**info.as_dict(), "state": claims.state(info.label).value} for info in infos]
        emit(output_format, listed, "")
        return
    if not infos:
        click.echo(f"no keys in {store.location}")
        return
    for info in infos:
        state = claims.state(info.label)
        flags = [
            "sensitive" if info.sensitive else "NOT sensitive",
            "extractable" if info.extractable else "non-extractable",
        ]
        if info.never_extractable:
            flags.append("never extractable")
        if info.has_certificate:
            flags.append("certificate")
        if state in (KeyState.ORPHAN, KeyState.STAGING):
            flags.append(f"{state.value.upper()}: remove with `scm keys prune`")
        click.echo(f"{info.label}\t{info.key_type.value}\t{', '.join(flags)}")


@keys_group.command("import")
@click.argument("label")
@click.option(
    "--key",
    "key_file",
    type=PathParam(dir_okay=False),
    required=True,
    help="Unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1).",
)
@click.option(
    "--cert",
    "cert_file",
    type=PathParam(dir_okay=False),
    help="PEM certificate chain for the key, leaf first.",
)
@format_option()
@pass_cli
def import_command(
    cli: CliContext, label: str, key_file: Path, cert_file: Path | None, output_format: str
) -> None:
    """Move an existing private key into the token as sensitive and non-extractable.

    scm never writes the key anywhere; delete KEY.pem yourself once the import succeeded.
    """
    key_pem = read_input(key_file, "key file")
    cert_pem = read_input(cert_file, "certificate file") if cert_file else None
    with keystore(cli) as store:
        info = store.import_key(label, key_pem, cert_pem)
    text = f"{info.label}: imported {info.key_type.value} key {info.key_id} into {info.location}"
    emit(output_format, info.as_dict(), text)


@keys_group.command("delete")
@click.argument("label")
@format_option()
@pass_cli
def delete_command(cli: CliContext, label: str, output_format: str) -> None:
    """Destroy the key LABEL, its public key and its certificate in the token."""
    with keystore(cli) as store:
        store.delete(label)
        location = store.location
    emit(
        output_format, {"label": label, "deleted": True, "location": location}, f"{label}: deleted"
    )


@keys_group.command("prune")
@format_option()
@pass_cli
def prune_command(cli: CliContext, output_format: str) -> None:
    """Remove orphan keys and what interrupted changes left in the token.

    Orphans are keys scm made for its CA or SDS records (ca.key_label, sds-*) that no
    record under the state directory names; keys of other labels are never touched.
    """
    from scm.state_mutation import mutating

    with keystore(cli) as store, mutating(cli.settings.state_dir):
        removed = store.sweep()
        claims = key_claims(cli)  # read under the lock: no record is being written now
        for info in claims.leftovers(store.list()):
            store.delete(info.label)
            removed.append(info.label)
    text = "".join(f"{label}: removed\n" for label in removed) or "nothing to remove"
    emit(output_format, {"removed": removed}, text)
