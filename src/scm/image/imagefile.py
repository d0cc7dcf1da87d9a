"""What an untrusted image file is, decided from its own bytes before any tool reads it.

qemu-img guesses a format when none is given and follows a qcow2's backing file or
external data file wherever it points: an image handed to the checker could make it read
any host file or disk. So the format comes from the magic bytes, the qcow2 header is read
here (no backing file, no external data file, a bounded virtual size), and qemu-img is
always told the format and run with limits; its own answer is checked again.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from scm.errors import InputError
from scm.files import open_input
from scm.image.tools import READ_LIMITS, Limits, run

TIB = 1 << 40
# The largest disk the checker will convert: guest images are a few GiB; the bound
# keeps a 64 TiB sparse qcow2 from filling the temporary directory.
MAX_VIRTUAL_SIZE = TIB

QCOW2_MAGIC = b"QFI\xfb"
_QCOW2_HEADER = struct.Struct(">4sIQIIQ")  # magic, version, backing offset, size, bits, size
_QCOW2_INCOMPATIBLE_OFFSET = 72
_QCOW2_EXTERNAL_DATA_FILE = 1 << 2

# Formats qemu-img would open that the checker refuses to: (offset, magic, name).
_OTHER_FORMATS = (
    (0, b"KDMV", "VMDK"),
    (0, b"# Disk DescriptorFile", "VMDK descriptor"),
    (0, b"vhdxfile", "VHDX"),
    (0, b"conectix", "VHD"),
    (0, b"QED\0", "QED"),
    (0, b"LUKS\xba\xbe", "LUKS"),
    (64, b"\x7f\x10\xda\xbe", "VDI"),
    (0, b"WithoutFreeSpace", "Parallels"),
    (0, b"WithouFreSpacExt", "Parallels"),
    (0, b"Bochs Virtual HD Image", "Bochs"),
)


@dataclass(frozen=True)
class ImageFile:
    path: Path
    format: str  # "qcow2" or "raw"
    virtual_size: int


def open_image(path: Path, max_virtual_size: int = MAX_VIRTUAL_SIZE) -> ImageFile:
    """Check that ``path`` is a plain qcow2 or raw image the checker may read; say what it is."""
    header = _read_header(path)
    if header.startswith(QCOW2_MAGIC):
        declared = _qcow2_size(path, header)
        fmt = "qcow2"
    else:
        for offset, magic, name in _OTHER_FORMATS:
            if header[offset : offset + len(magic)] == magic:
                raise InputError(f"image {path} is a {name} image: only qcow2 and raw are checked")
        declared = path.stat().st_size
        fmt = "raw"
    _check_size(path, declared, max_virtual_size)
    info = qemu_img_info(path, fmt)
    return ImageFile(path, fmt, _check_info(path, info, max_virtual_size))


def qemu_img_info(path: Path, fmt: str, limits: Limits = READ_LIMITS) -> dict[str, object]:
    """``qemu-img info`` with the format given, so it never probes or guesses."""
    output = run(
        "read the image (qemu-img info)",
        ["qemu-img", "info", "-f", fmt, "--output=json", path],
        limits=limits,
    )
    try:
        info = json.loads(output)
    except ValueError:
        raise InputError(f"image {path}: qemu-img info gave no JSON") from None
    if not isinstance(info, dict):
        raise InputError(f"image {path}: qemu-img info gave no JSON object")
    return info


def _read_header(path: Path) -> bytes:
    # O_NONBLOCK: a FIFO planted at the path must not hang the open; fstat then refuses it.
    fd = open_input(path, "image", os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(f"image {path} is not a regular file (a device, FIFO or socket)")
        return os.pread(fd, 4096, 0)
    finally:
        os.close(fd)


def _qcow2_size(path: Path, header: bytes) -> int:
    if len(header) < _QCOW2_HEADER.size:
        raise InputError(f"image {path}: qcow2 header is truncated")
    _, version, backing_offset, _, _, size = _QCOW2_HEADER.unpack_from(header)
    if version not in (2, 3):
        raise InputError(f"image {path}: qcow2 version {version} is not supported")
    if backing_offset != 0:
        raise InputError(f"image {path} has a backing file: refused (it could name any host file)")
    if version == 3:
        if len(header) < _QCOW2_INCOMPATIBLE_OFFSET + 8:
            raise InputError(f"image {path}: qcow2 header is truncated")
        (incompatible,) = struct.unpack_from(">Q", header, _QCOW2_INCOMPATIBLE_OFFSET)
        if incompatible & _QCOW2_EXTERNAL_DATA_FILE:
            raise InputError(
                f"image {path} has an external data file: refused (it could name any host file)"
            )
    return int(size)


def _check_size(path: Path, size: int, limit: int) -> None:
    if size > limit:
        raise InputError(
            f"image {path} has a virtual size of {size / TIB:.1f} TiB, "
            f"over the {limit / TIB:g} TiB the checker reads"
        )


def _check_info(path: Path, info: dict[str, object], limit: int) -> int:
    """qemu-img's own view must agree: no backing file, no data file, size in bounds."""
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise InputError(f"image {path} has a backing file: refused (it could name any host file)")
    specific = info.get("format-specific")
    data = specific.get("data") if isinstance(specific, dict) else None
    if isinstance(data, dict) and data.get("data-file"):
        raise InputError(
            f"image {path} has an external data file: refused (it could name any host file)"
        )
    size = info.get("virtual-size")
    if not isinstance(size, int) or size < 0:
        raise InputError(f"image {path}: qemu-img reports no virtual size")
    _check_size(path, size, limit)
    return size
