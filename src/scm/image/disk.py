"""The disk image: a GPT written into a plain file, partition images copied in, converted.

No loop or device-mapper device is involved: sfdisk writes the partition table into
the file, and the filesystems are made as separate files and copied to their offsets
(sparsely, so a 4 GiB image costs only what it holds).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from scm.image.errors import ImageBuildError, ImageSpecError
from scm.image.tools import run

SECTOR = 512
MIB = 1024 * 1024
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
# The Discoverable Partitions type for an x86-64 root, so tools find it without fstab.
ROOT_TYPE_X86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
_CHUNK = 4 * MIB
MIN_ESP = 64 * MIB  # below this mkfs.vfat cannot make FAT32, which some firmware insists on


@dataclass(frozen=True)
class DiskLayout:
    size_bytes: int
    esp_offset: int
    esp_size: int
    root_offset: int
    root_size: int
    esp_partuuid: str
    root_partuuid: str


def plan_layout(
    size_bytes: int, esp_size: int, esp_partuuid: str, root_partuuid: str
) -> DiskLayout:
    """ESP at 1 MiB, root after it up to 1 MiB before the end (room for the backup GPT)."""
    if esp_size < MIN_ESP:
        raise ImageSpecError(f"the EFI system partition needs {MIN_ESP // MIB} MiB or more (FAT32)")
    root_offset = MIB + esp_size
    root_size = (size_bytes - root_offset - MIB) // MIB * MIB
    if root_size <= 0:
        raise ImageSpecError(
            f"a disk of {size_bytes // MIB} MiB leaves no room for a root partition"
        )
    return DiskLayout(
        size_bytes, MIB, esp_size, root_offset, root_size, esp_partuuid, root_partuuid
    )


def write_partition_table(disk: Path, layout: DiskLayout) -> None:
    """Create ``disk`` (sparse, full size) with a GPT holding the ESP and the root partition."""
    with disk.open("wb") as handle:
        handle.truncate(layout.size_bytes)
    script = (
        "label: gpt\n"
        f"start={layout.esp_offset // SECTOR}, size={layout.esp_size // SECTOR}, "
        f'type={ESP_TYPE}, uuid={layout.esp_partuuid}, name="EFI System Partition"\n'
        f"start={layout.root_offset // SECTOR}, size={layout.root_size // SECTOR}, "
        f'type={ROOT_TYPE_X86_64}, uuid={layout.root_partuuid}, name="root"\n'
    )
    run(
        "partition table (sfdisk)",
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", disk],
        stdin=script,
    )


def make_ext4(image: Path, tree: Path, size_bytes: int, label: str = "root") -> None:
    """An ext4 filesystem image of ``size_bytes`` populated from the directory ``tree``."""
    needed = tree_bytes(tree)
    # Journal, inode tables and reserved blocks take about 10%; keep some room to grow.
    if needed * 1.15 + 64 * MIB > size_bytes:
        wanted_gib = -(-(needed * 1.15 + 64 * MIB + 200 * MIB) // 1024**3)
        raise ImageSpecError(
            f"the root filesystem needs about {needed // MIB} MiB but the disk leaves "
            f"{size_bytes // MIB} MiB for it: use --size {int(wanted_gib)}G or more"
        )
    with image.open("wb") as handle:
        handle.truncate(size_bytes)
    run("root filesystem (mkfs.ext4 -d)", ["mkfs.ext4", "-q", "-F", "-L", label, "-d", tree,
        "-E", "root_owner=0:0", image])  # fmt: skip


def tree_bytes(tree: Path) -> int:
    """Bytes the files under ``tree`` occupy on disk (4 KiB blocks), without following links."""
    total = 0
    for directory, dirnames, filenames in os.walk(tree):
        for name in filenames + dirnames:
            try:
                info = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            total += info.st_blocks * 512 if name in filenames else 4096
    return total


def copy_into(disk: Path, image: Path, offset: int) -> None:
    """Copy ``image`` into ``disk`` at ``offset``, skipping all-zero chunks to stay sparse."""
    fd_out = os.open(disk, os.O_WRONLY)
    try:
        with image.open("rb") as source:
            position = offset
            while chunk := source.read(_CHUNK):
                if chunk.count(0) != len(chunk):
                    os.pwrite(fd_out, chunk, position)
                position += len(chunk)
    finally:
        os.close(fd_out)


def finish(raw: Path, output: Path) -> None:
    """Write the final image to ``output`` atomically: convert (qcow2) or move (raw)."""
    partial = output.with_name(f".{output.name}.partial")
    try:
        if output.suffix == ".qcow2":
            run("convert to qcow2 (qemu-img)", ["qemu-img", "convert", "-O", "qcow2", raw, partial])
        else:
            shutil.move(raw, partial)
        if output.exists():
            raise ImageBuildError(f"{output} appeared while building; not overwriting it")
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
