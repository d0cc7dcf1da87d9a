"""UEFI boot: a unified kernel image on an EFI system partition, built without mounting.

OVMF, and TDVF in a trust domain, starts ``\\EFI\\BOOT\\BOOTX64.EFI`` when no boot entry
is stored; TDs have no persistent NVRAM, so that fallback path is the one that counts.
A unified kernel image (the EFI stub with the kernel, initramfs, command line and
os-release as PE sections) boots from there as one file, which the firmware measures
as a whole.
"""

from __future__ import annotations

import re
from pathlib import Path

from scm.image.errors import ImageBuildError
from scm.image.tools import run

EFI_STUB = "usr/lib/systemd/boot/efi/linuxx64.efi.stub"
FALLBACK_LOADER = "::/EFI/BOOT/BOOTX64.EFI"
SECTION_ALIGN = 0x1000
_SECTION = re.compile(r"^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s", re.MULTILINE)


def kernel_cmdline(root_partuuid: str) -> str:
    # Serial first so a cloud's console log (and our boot test) sees the boot.
    return f"root=PARTUUID={root_partuuid} rw console=tty0 console=ttyS0,115200n8"


def build_uki(root: Path, vmlinuz: Path, initrd: Path, cmdline: str, out: Path) -> None:
    """Join the guest's own EFI stub with its kernel, initramfs and command line."""
    stub = root / EFI_STUB
    if not stub.exists():
        raise ImageBuildError(f"the guest has no EFI stub at /{EFI_STUB} (systemd-boot-efi)")
    cmdline_file = out.with_suffix(".cmdline")
    cmdline_file.write_text(cmdline + "\n")
    sections = [
        (".osrel", root / "usr/lib/os-release"),
        (".cmdline", cmdline_file),
        (".linux", vmlinuz),
        (".initrd", initrd),
    ]
    # Place each section after the stub's last one (and after each other), aligned.
    address = _align(stub_end(stub))
    argv: list[str | Path] = ["objcopy"]
    for name, path in sections:
        argv += ["--add-section", f"{name}={path}", "--change-section-vma", f"{name}={address:#x}"]
        address = _align(address + path.stat().st_size)
    run("unified kernel image (objcopy)", [*argv, stub, out])


def stub_end(stub: Path) -> int:
    """The first address after the stub's sections, read from ``objdump -h``."""
    listing = run("read the EFI stub (objdump)", ["objdump", "-h", stub])
    ends = [int(size, 16) + int(vma, 16) for _, size, vma in _SECTION.findall(listing)]
    if not ends:
        raise ImageBuildError(f"objdump found no sections in {stub}")
    return max(ends)


def make_esp(image: Path, size_bytes: int, loader: Path) -> None:
    """A FAT32 EFI system partition image holding ``loader`` at the fallback path."""
    run("EFI system partition (mkfs.vfat)", ["mkfs.vfat", "-C", "-F", "32", "-n", "ESP",
        image, str(size_bytes // 1024)])  # fmt: skip
    run("EFI system partition (mmd)", ["mmd", "-i", image, "::/EFI", "::/EFI/BOOT"])
    run("EFI system partition (mcopy)", ["mcopy", "-i", image, loader, FALLBACK_LOADER])


def _align(value: int) -> int:
    return (value + SECTION_ALIGN - 1) // SECTION_ALIGN * SECTION_ALIGN
