"""CPUID decoding, from the real device and from ``cpuid -1 -r`` dumps."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from scm.platform.cpuid import CpuidReader, Registers, read_cpuid
from scm.platform.root import HostRoot

VENDOR = "ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69"


def facts_for(tmp_path, lines):
    device = tmp_path / "dev/cpu/0/cpuid"
    device.parent.mkdir(parents=True)
    device.write_text("CPU:\n" + "\n".join(lines) + "\n")
    root = HostRoot.open(tmp_path)
    return read_cpuid(root), root


def test_epc_sections_decode_52_bit_addresses(tmp_path):
    facts, _ = facts_for(
        tmp_path,
        [
            f"   0x00000000 0x00: eax=0x00000012 {VENDOR}",
            "   0x00000007 0x00: eax=0x00000000 ebx=0x00000004 ecx=0x40000000 edx=0x00000000",
            "   0x00000012 0x00: eax=0x00000001 ebx=0x00000000 ecx=0x00000000 edx=0x00002400",
            "   0x00000012 0x02: eax=0xabcde001 ebx=0x000f1234 ecx=0x00400001 edx=0x00000002",
        ],
    )
    assert facts.sgx and facts.sgx_lc and facts.sgx1 and not facts.sgx2
    assert facts.max_enclave_size_64 == 1 << 0x24
    (section,) = facts.epc_sections
    assert section.base == 0xF1234_ABCDE000
    assert section.size_bytes == 0x2_00400000


def test_low_max_leaf_hides_sgx_leaves(tmp_path):
    facts, _ = facts_for(
        tmp_path,
        [
            f"   0x00000000 0x00: eax=0x00000005 {VENDOR}",
            "   0x00000007 0x00: eax=0x00000000 ebx=0x00000004 ecx=0x00000000 edx=0x00000000",
        ],
    )
    assert facts.sgx is None and facts.epc_sections == ()


def test_only_the_first_cpu_of_a_dump_counts(tmp_path):
    facts, root = facts_for(
        tmp_path,
        [
            f"   0x00000000 0x00: eax=0x00000007 {VENDOR}",
            "   0x00000007 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000",
            "CPU 1:",
            "   0x00000007 0x00: eax=0x00000000 ebx=0x00000004 ecx=0x00000000 edx=0x00000000",
            "garbage",
        ],
    )
    assert facts.sgx is False
    assert root.problems == []


def test_garbage_dump_lines_are_reported(tmp_path):
    _, root = facts_for(tmp_path, ["   0x00000000 0x00: eax=0x0000", "nonsense"])
    assert len(root.problems) == 2
    assert "not a cpuid -r record" in root.problems[0]


def test_no_device_means_no_facts(tmp_path):
    assert read_cpuid(HostRoot.open(tmp_path)) is None


@pytest.mark.skipif(not os.access("/dev/cpu/0/cpuid", os.R_OK), reason="no cpuid device here")
def test_real_cpuid_device_agrees_with_cpuinfo():
    facts = read_cpuid(HostRoot.open("/"))
    cpuinfo = Path("/proc/cpuinfo").read_text()
    flags = cpuinfo.split("flags", 1)[1].split("\n", 1)[0].split()
    # The kernel may clear a disabled feature's flag, never set one CPUID lacks.
    assert facts is not None and facts.sgx is not None
    assert not ("sgx" in flags and not facts.sgx)


class DeviceAnswers(HostRoot):
    """A host root whose cpuid device answers from a table: position -> 16 bytes."""

    def __init__(self, answers: dict[int, bytes]) -> None:
        super().__init__("/nonexistent")
        self.answers = answers

    def pread(self, linux_path: str, size: int, offset: int) -> bytes | None:
        return self.answers.get(offset)


def test_device_answers_decode_as_four_little_endian_words(monkeypatch):
    # The device file gives EAX, EBX, ECX, EDX as little-endian 32-bit words (struct encodes
    # them here independently of the decoder). Leaf 0x21's EBX, EDX, ECX spell "IntelTDX    ".
    signature = struct.unpack("<3I", b"IntelTDX    ")
    answers = {
        0x0: struct.pack("<4I", 0x21, 0x756E6547, 0x6C65746E, 0x49656E69),
        0x7: struct.pack("<4I", 0, 0, 0, 0),
        0x21: struct.pack("<4I", 0, signature[0], signature[2], signature[1]),
    }
    monkeypatch.setattr(CpuidReader, "available", lambda self: True)
    root = DeviceAnswers(answers)
    assert CpuidReader(root).leaf(0) == Registers(0x21, 0x756E6547, 0x6C65746E, 0x49656E69)
    facts = read_cpuid(root)
    assert facts is not None and facts.tdx_guest is True and facts.sgx is False


def test_a_truncated_device_answer_is_a_problem_not_a_leaf():
    root = DeviceAnswers({0x0: b"\x01\x00\x00\x00"})
    assert CpuidReader(root).leaf(0) is None
    assert "truncated (4 of 16 bytes)" in root.problems[0]
