"""``scm inspect``: the host's SGX and TDX report."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from scm.cli.paths import PathParam
from scm.cli.roots import root_option
from scm.files import write_output
from scm.platform import RENDERERS, discover

if TYPE_CHECKING:  # annotations only: `scm inspect` never loads pathlib
    from pathlib import Path


@click.command("inspect")
@root_option("Read /proc, /sys and /dev below this directory.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted(RENDERERS)),
    default="text",
    show_default=True,
)
@click.option(
    "--domcaps",
    type=PathParam(dir_okay=False),
    help="libvirt domain capabilities XML (virsh domcapabilities).",
)
@click.option("--libvirt-uri", help="Read domain capabilities from this libvirt connection.")
@click.option(
    "--output",
    type=PathParam(dir_okay=False),
    help="Write to this file atomically instead of standard output.",
)
def inspect_command(
    root: str,
    output_format: str,
    domcaps: Path | None,
    libvirt_uri: str | None,
    output: Path | None,
) -> None:
    """Report what this host can do for SGX and TDX, and what to fix."""
    if domcaps is not None and libvirt_uri:
        raise click.UsageError("--domcaps and --libvirt-uri are mutually exclusive")
    domcaps_xml = None
    # The domain capabilities module loads only when asked for (start-up time).
    if domcaps is not None:
        from scm.platform.domcaps import read_domcaps_file

        domcaps_xml = read_domcaps_file(domcaps)
    elif libvirt_uri:
        from scm.platform.domcaps import read_domcaps_from_libvirt

        domcaps_xml = read_domcaps_from_libvirt(libvirt_uri)
    report = discover(root, domcaps_xml)
    text = RENDERERS[output_format](report)
    if output is None:
        click.echo(text, nl=False)
        return
    write_output(output, text)
