"""``scm openstack``: compute host readiness and confidential flavor specs."""

from __future__ import annotations

from pathlib import Path

import click

from scm.cli.output import emit, format_option
from scm.cli.paths import PathParam
from scm.cli.roots import root_option
from scm.errors import RefusedError
from scm.openstack import check_host as readiness
from scm.openstack import flavor_spec as specs
from scm.platform import discover
from scm.platform.domcaps import read_domcaps_file, read_domcaps_from_libvirt


@click.group("openstack")
def openstack_group() -> None:
    """OpenStack: nova compute host checks and confidential flavors."""


@openstack_group.command("check-host")
@root_option("Read /proc, /sys and /dev below this directory.")
@click.option("--domcaps", type=PathParam(dir_okay=False))
@click.option("--libvirt-uri", help="Read versions and domain capabilities from libvirt.")
@click.option("--libvirt-version", help="libvirt version, e.g. 9.0.0.")
@click.option("--qemu-version", help="QEMU version, e.g. 7.2.0.")
@format_option()
@click.option(
    "--require",
    type=click.Choice(["sgx", "tdx"]),
    multiple=True,
    help="Exit non-zero unless the host is ready for these guests.",
)
def check_host_command(
    root: str,
    domcaps: Path | None,
    libvirt_uri: str | None,
    libvirt_version: str | None,
    qemu_version: str | None,
    output_format: str,
    require: tuple[str, ...],
) -> None:
    """Report whether this host can run SGX and TDX guests under nova, and what to fix."""
    domcaps_xml = read_domcaps_file(domcaps) if domcaps is not None else None
    versions = readiness.HostVersions(
        libvirt=readiness.parse_version(libvirt_version) if libvirt_version else None,
        qemu=readiness.parse_version(qemu_version) if qemu_version else None,
    )
    if libvirt_uri:
        domcaps_xml = domcaps_xml or read_domcaps_from_libvirt(libvirt_uri)
        versions = readiness.versions_from_libvirt(libvirt_uri, versions)
    result = readiness.check_host(discover(root, domcaps_xml), versions)
    emit(output_format, result.to_dict(), lambda: readiness.render_text(result))
    missing = [kind.upper() for kind in require if not result.ready(kind)]
    if missing:
        raise RefusedError(f"this host is not ready for {' and '.join(missing)} guests")


@openstack_group.command("flavor-spec")
@click.option("--sgx-epc", help="EPC for the guest, e.g. 64M or 1G.")
@click.option("--tdx", is_flag=True, help="A TDX trust domain (nova's in-tree support).")
@format_option()
@click.option("--apply", "flavor", metavar="FLAVOR", help="Set the specs on this flavor.")
@click.option("--image", help="With --apply: also set the image properties on this image.")
@click.option("--os-cloud", help="clouds.yaml entry for --apply (default: OS_CLOUD / OS_*).")
def flavor_spec_command(
    sgx_epc: str | None,
    tdx: bool,
    output_format: str,
    flavor: str | None,
    image: str | None,
    os_cloud: str | None,
) -> None:
    """Print (or --apply) the extra specs and image properties of a confidential flavor."""
    epc_mb = specs.parse_epc_size(sgx_epc) if sgx_epc is not None else None
    spec = specs.confidential_flavor(epc_mb, tdx)
    if flavor is not None:
        from scm.openstack import sdk

        sdk.apply_flavor_spec(sdk.connect(os_cloud), spec, flavor, image)
        applied = {"flavor": flavor, "image": image, **spec.to_dict()}
        text = f"set {len(spec.extra_specs)} extra specs on flavor {flavor}"
        if image is not None:
            text += f" and {len(spec.image_properties)} properties on image {image}"
        emit(output_format, applied, text)
        return
    emit(output_format, spec.to_dict(), lambda: specs.render_text(spec))
