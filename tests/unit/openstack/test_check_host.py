from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from nova.virt.libvirt import driver as nova_libvirt

from scm.errors import InputError
from scm.openstack import check_host as ch
from scm.platform import discover
from tests.hostroots import HOSTS

NEW = ch.HostVersions(libvirt=(10, 0, 0), qemu=(8, 2, 0))


def by_name(readiness: ch.HostReadiness) -> dict[str, ch.Check]:
    return {c.name: c for c in readiness.checks}


def test_minimums_match_the_installed_nova() -> None:
    assert tuple(nova_libvirt.MIN_LIBVIRT_VERSION) == ch.NOVA_MIN_LIBVIRT
    assert tuple(nova_libvirt.MIN_QEMU_VERSION) == ch.NOVA_MIN_QEMU
    assert (
        tuple(nova_libvirt.MIN_LIBVIRT_STATELESS_FIRMWARE) == ch.NOVA_MIN_LIBVIRT_STATELESS_FIRMWARE
    )


def test_sgx_host_is_ready_for_sgx_guests_not_tdx() -> None:
    readiness = ch.check_host(discover(HOSTS / "sgx-2socket" / "root"), NEW)
    assert readiness.ready("sgx")
    assert not readiness.ready("tdx")
    assert by_name(readiness)["TDX host (kvm_intel tdx)"].ok is False


def test_tdx_host_needs_qgs_and_tdx_firmware(host_root: Callable[[str], Path]) -> None:
    root = host_root("tdx-host")
    checks = by_name(ch.check_host(discover(root), NEW))
    assert checks["quote generation service"].ok is False
    assert checks["UEFI firmware for TDX"].ok is False
    (root / ch.QGS_SOCKET).parent.mkdir(parents=True)
    (root / ch.QGS_SOCKET).touch()
    firmware = root / ch.FIRMWARE_DESCRIPTORS
    firmware.mkdir(parents=True)
    (firmware / "50-ovmf.json").write_text(json.dumps({"features": ["secure-boot"]}))
    (firmware / "60-tdx.json").write_text(json.dumps({"features": ["intel-tdx"]}))
    readiness = ch.check_host(discover(root), NEW)
    assert readiness.ready("tdx"), ch.render_text(readiness)
    assert by_name(readiness)["UEFI firmware for TDX"].detail.endswith("60-tdx.json")


def test_old_libvirt_fails_with_the_minimum_named() -> None:
    old = ch.HostVersions(libvirt=(8, 0, 0), qemu=(6, 2, 0))
    readiness = ch.check_host(discover(HOSTS / "sgx-2socket" / "root"), old)
    check = by_name(readiness)["libvirt sgx-epc devices"]
    assert check.ok is False and "need 8.10.0+" in check.detail
    assert not readiness.ready("sgx")


def test_unknown_versions_are_unknown_not_failures() -> None:
    readiness = ch.check_host(discover(HOSTS / "sgx-2socket" / "root"))
    check = by_name(readiness)["QEMU for SGX guests"]
    assert check.ok is None
    assert not readiness.ready("sgx")  # unknown is not ready either
    assert "[?   ] QEMU for SGX guests" in ch.render_text(readiness)


def test_failed_checks_show_their_fix() -> None:
    text = ch.render_text(ch.check_host(discover(HOSTS / "sgx-bios-disabled" / "root"), NEW))
    assert "SGX guests: not ready" in text
    assert "fix: enable SGX and a PRMRR size in the BIOS" in text


@pytest.mark.parametrize(
    ("text", "version"), [("9.0.0", (9, 0, 0)), ("7.2", (7, 2, 0)), ("9000000", (9, 0, 0))]
)
def test_versions_parse(text: str, version: tuple[int, int, int]) -> None:
    assert ch.parse_version(text) == version


def test_bad_version_is_input_error() -> None:
    with pytest.raises(InputError):
        ch.parse_version("nine")
