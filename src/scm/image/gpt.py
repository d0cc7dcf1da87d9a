"""Reading a GUID partition table from a raw disk image (header and entries, CRC-checked)."""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from scm.image.errors import ImageSpecError

SECTOR = 512
SIGNATURE = b"EFI PART"
_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")
_ENTRY = struct.Struct("<16s16sQQQ72s")


@dataclass(frozen=True)
class Partition:
    number: int
    type_guid: str
    unique_guid: str
    first_lba: int
    last_lba: int
    name: str

    @property
    def offset(self) -> int:
        return self.first_lba * SECTOR

    @property
    def size(self) -> int:
        return (self.last_lba - self.first_lba + 1) * SECTOR


def read_gpt(handle: BinaryIO) -> list[Partition]:
    """The used entries of the primary GPT; ImageSpecError when there is none or it is corrupt."""
    handle.seek(0)
    mbr = handle.read(SECTOR)
    header_sector = handle.read(SECTOR)
    if len(header_sector) < _HEADER.size or header_sector[:8] != SIGNATURE:
        kind = "an MBR partition table" if mbr[510:512] == b"\x55\xaa" else "no partition table"
        raise ImageSpecError(f"the image has {kind}, not a GPT: UEFI guests need a GPT disk")
    (_, _, header_size, header_crc, _, _, _, _, _, _, entries_lba, count, entry_size,
     entries_crc) = _HEADER.unpack_from(header_sector)  # fmt: skip
    if not 92 <= header_size <= SECTOR or entry_size < _ENTRY.size or count > 1024:
        raise ImageSpecError("the GPT header has impossible sizes")
    header = bytearray(header_sector[:header_size])
    header[16:20] = b"\0\0\0\0"
    if zlib.crc32(header) != header_crc:
        raise ImageSpecError("the GPT header's checksum does not match: the table is corrupt")
    handle.seek(entries_lba * SECTOR)
    table = handle.read(count * entry_size)
    if len(table) != count * entry_size or zlib.crc32(table) != entries_crc:
        raise ImageSpecError("the GPT partition entries' checksum does not match")
    partitions = []
    for index in range(count):
        type_raw, unique_raw, first, last, _, name = _ENTRY.unpack_from(table, index * entry_size)
        if type_raw == bytes(16):
            continue
        partitions.append(
            Partition(
                number=index + 1,
                type_guid=str(uuid.UUID(bytes_le=type_raw)).upper(),
                unique_guid=str(uuid.UUID(bytes_le=unique_raw)),
                first_lba=first,
                last_lba=last,
                name=name.decode("utf-16-le", errors="replace").rstrip("\0"),
            )
        )
    return partitions
