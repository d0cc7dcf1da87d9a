"""``scm openstack``: compute host readiness and confidential flavor specs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from scm.errors import UnavailableError
from scm.openstack import check_host as readiness
from scm.openstack import flavor_spec as specs
from scm.platform import discover
from scm.platform.domcaps import read_domcaps_file, read_domcaps_from_libvirt


@click.group("openstack")
def openstack_group() -> None:
    """OpenStack: nova compute host checks and confidential flavors."""


@openstack_group.command("check-host")
@click.option("--root", type=click.Path(path_type=Path), default=Path("/"), show_default=True)
@click.option("--domcaps", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--libvirt-uri", help="Read versions and domain capabilities from libvirt.")
@click.option("--libvirt-version", help="libvirt version, e.g. 9.0.0.")
@click.option("--qemu-version", help="QEMU version, e.g. 7.2.0.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--require",
    type=click.Choice(["sgx", "tdx"]),
    multiple=True,
    help="Exit non-zero unless the host is ready for these guests.",
)
def check_host_command(
    root: Path,
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
    if output_format == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(readiness.render_text(result), nl=False)
    missing = [kind.upper() for kind in require if not result.ready(kind)]
    if missing:
        raise UnavailableError(f"this host is not ready for {' and '.join(missing)} guests")


@openstack_group.command("flavor-spec")
@click.option("--sgx-epc", help="EPC for the guest, e.g. 64M or 1G.")
@click.option("--tdx", is_flag=True, help="A TDX trust domain (nova's in-tree support).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
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
        click.echo(f"set {len(spec.extra_specs)} extra specs on flavor {flavor}")
        return
    if output_format == "json":
        document = {"extra_specs": spec.extra_specs, "image_properties": spec.image_properties}
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(specs.render_text(spec), nl=False)
