"""``scm image``: build confidential guest images and check existing ones."""

from __future__ import annotations

from pathlib import Path

import click

from scm.cli.context import CliContext, pass_cli
from scm.cli.output import emit, format_option
from scm.cli.paths import PathParam
from scm.errors import ConfigError
from scm.image.errors import ImageSpecError
from scm.image.properties import DEFAULT_SGX_EPC_MB
from scm.image.spec import RELEASES, TEES

# Building and checking (subprocess, HTTP) load inside each command, not for --help.


@click.group("image")
def image_group() -> None:
    """Confidential guest images for TDX and SGX."""


@image_group.command("build")
@click.option("--tee", type=click.Choice(TEES), required=True, help="The guest's TEE.")
@click.option("--release", type=click.Choice(sorted(RELEASES)), default="bookworm",
              show_default=True)  # fmt: skip
@click.option("--size", default="4G", show_default=True, help="Disk size, e.g. 4G.")
@click.option("--output", type=PathParam(dir_okay=False),
              default=Path("guest.qcow2"), show_default=True)  # fmt: skip
@click.option("--user", help="A login user baked into the image (needs --ssh-key).")
@click.option("--ssh-key", type=PathParam(dir_okay=False),
              help="The user's OpenSSH public key file.")  # fmt: skip
@click.option("--packages", multiple=True, help="Extra Debian packages (repeat or comma-separate).")
@click.option("--mirror", help="Debian archive URL (default: the one this host's apt uses).")
@pass_cli
def build_command(
    cli: CliContext,
    tee: str,
    release: str,
    size: str,
    output: Path,
    user: str | None,
    ssh_key: Path | None,
    packages: tuple[str, ...],
    mirror: str | None,
) -> None:
    """Build a Debian guest image from scratch, ready for a confidential flavor."""
    from scm.image.build import ImageSettings, build_image
    from scm.image.sources import host_debian_mirror, validate_mirror
    from scm.image.spec import make_spec

    wanted = tuple(p.strip() for item in packages for p in item.split(",") if p.strip())
    spec = make_spec(tee, release, size, output.absolute(), user, ssh_key, wanted)
    settings = cli.settings.section("image", ImageSettings)
    chosen = mirror or settings.mirror or host_debian_mirror()
    if chosen is None:
        raise ConfigError("no Debian archive configured on this host: pass --mirror URL")
    build_image(spec, validate_mirror(chosen), settings, lambda line: click.echo(line, err=True))
    click.echo(f"{spec.output}: {tee.upper()} guest, Debian {release}")


@image_group.command("check")
@click.argument("image", type=PathParam(dir_okay=False))
@click.option("--tee", type=click.Choice(TEES), default="tdx", show_default=True)
@format_option()
def check_command(image: Path, tee: str, output_format: str) -> None:
    """Say what stops IMAGE (qcow2 or raw) from being a good TDX or SGX guest."""
    from scm.image.check import check_image

    report = check_image(image, tee)
    click.echo(report.to_json() if output_format == "json" else report.to_text(), nl=False)
    if not report.good:
        raise SystemExit(1)  # checked and refused; the report above says why


@image_group.command("properties")
@click.option("--tee", type=click.Choice(TEES), required=True, help="The guest's TEE.")
@click.option("--sgx-epc", help=f"EPC for an SGX flavor, e.g. 64M (default {DEFAULT_SGX_EPC_MB}M).")
@format_option()
@click.option("--apply", "image", metavar="IMAGE", help="Set the properties on this Glance image.")
@click.option("--os-cloud", help="clouds.yaml entry for --apply (default: OS_CLOUD / OS_*).")
def properties_command(
    tee: str, sgx_epc: str | None, output_format: str, image: str | None, os_cloud: str | None
) -> None:
    """The Glance image properties (and matching flavor extra specs) for a guest image."""
    from scm.image.properties import guest_properties
    from scm.openstack.flavor_spec import parse_epc_size, render_text

    if sgx_epc is not None and tee != "sgx":
        raise ImageSpecError("--sgx-epc goes with --tee sgx")
    spec = guest_properties(tee, parse_epc_size(sgx_epc) if sgx_epc else None)
    if image is not None:
        from scm.openstack import sdk  # openstacksdk is only needed to apply

        sdk.apply_image_properties(sdk.connect(os_cloud), spec.image_properties, image)
        text = f"set {len(spec.image_properties)} properties on image {image}"
        emit(output_format, {"image": image, **spec.to_dict()}, text)
        return
    emit(output_format, spec.to_dict(), lambda: render_text(spec))
