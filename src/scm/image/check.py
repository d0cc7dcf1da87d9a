"""``scm image check``: what stops an image from being a good TDX or SGX guest.

Everything is read in place from the image file: the GPT by scm, the ESP through
mtools (``image@@offset``) and the root filesystem through debugfs (``image?offset=N``).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from scm.image.disk import ESP_TYPE, ROOT_TYPE_X86_64
from scm.image.errors import ImageSpecError
from scm.image.gpt import Partition, read_gpt
from scm.image.imagefile import MAX_VIRTUAL_SIZE, ImageFile, open_image
from scm.image.rootfs import version_key
from scm.image.tools import READ_LIMITS, probe, require_tools, run

LINUX_DATA_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
TDX_GUEST_MODULE_DIR = "kernel/drivers/virt/coco/tdx-guest"
CONFIGFS_TSM_KERNEL = (6, 7)
TDX_GUEST_KERNEL = (6, 2)  # first kernel with the tdx_guest driver (/dev/tdx_guest)
CHECK_TOOLS = ("qemu-img", "mdir", "mcopy", "debugfs", "objdump", "objcopy")


@dataclass(frozen=True)
class Finding:
    ok: bool
    subject: str
    detail: str
    blocking: bool = True


@dataclass
class ImageReport:
    path: str
    tee: str
    format: str = "unknown"
    kernel: str | None = None
    cmdline: str | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def good(self) -> bool:
        return all(f.ok or not f.blocking for f in self.findings)

    def add(self, ok: bool, subject: str, detail: str, blocking: bool = True) -> None:
        self.findings.append(Finding(ok, subject, detail, blocking))

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "good": self.good}, indent=2) + "\n"

    def to_text(self) -> str:
        verdict = "a good" if self.good else "NOT a good"
        lines = [f"{self.path}: {verdict} {self.tee.upper()} guest image ({self.format})"]
        for f in self.findings:
            mark = "ok  " if f.ok else ("FAIL" if f.blocking else "warn")
            lines.append(f"  {mark} {f.subject}: {f.detail}")
        return "\n".join(lines) + "\n"


def check_image(path: Path, tee: str, max_virtual_size: int = MAX_VIRTUAL_SIZE) -> ImageReport:
    """Inspect ``path`` (qcow2 or raw) as a guest image for ``tee`` ("tdx" or "sgx").

    The file is untrusted: see :mod:`scm.image.imagefile` for what is refused before reading.
    """
    require_tools(CHECK_TOOLS)
    image = open_image(path, max_virtual_size)
    report = ImageReport(str(path), tee, image.format)
    with _raw_view(image) as raw:
        try:
            with raw.open("rb") as handle:
                partitions = read_gpt(handle)
        except ImageSpecError as exc:
            report.add(False, "partition table", str(exc))
            return report
        report.add(True, "partition table", f"GPT with {len(partitions)} partition(s)")
        _check_esp(raw, partitions, report)
        _check_root(raw, partitions, report)
    return report


@contextmanager
def _raw_view(image: ImageFile) -> Iterator[Path]:
    """The image as raw bytes: itself, or a sparse raw copy of a qcow2."""
    if image.format == "raw":
        yield image.path
        return
    # The copy may be as large as the (bounded) virtual size, and no larger.
    limits = replace(READ_LIMITS, file_size=image.virtual_size + 1, cpu_seconds=600, timeout=900)
    with tempfile.TemporaryDirectory(prefix="scm-image-check-") as tmp:
        raw = Path(tmp) / "disk.raw"
        run(
            "convert to raw (qemu-img)",
            ["qemu-img", "convert", "-f", image.format, "-O", "raw", image.path, raw],
            limits=limits,
        )
        yield raw


def _check_esp(raw: Path, partitions: list[Partition], report: ImageReport) -> None:
    esp = next((p for p in partitions if p.type_guid == ESP_TYPE), None)
    if esp is None:
        report.add(
            False,
            "EFI system partition",
            "missing: UEFI firmware (OVMF, TDVF) cannot boot the image",
        )
        return
    image = f"{raw}@@{esp.offset}"
    listing = probe(
        "list the EFI system partition (mdir)", ["mdir", "-b", "-i", image, "::/EFI/BOOT"]
    )
    if listing.returncode != 0 or not any(
        line.upper().endswith("/BOOTX64.EFI")
        for line in listing.stdout.decode(errors="replace").splitlines()
    ):
        report.add(
            False,
            "EFI system partition",
            "no \\EFI\\BOOT\\BOOTX64.EFI: a TD (no NVRAM boot entries) has nothing to start",
        )
        return
    report.add(
        True, "EFI system partition", f"partition {esp.number} with \\EFI\\BOOT\\BOOTX64.EFI"
    )
    with tempfile.TemporaryDirectory(prefix="scm-image-check-") as tmp:
        loader = Path(tmp) / "BOOTX64.EFI"
        run(
            "read the boot loader (mcopy)",
            ["mcopy", "-n", "-i", image, "::/EFI/BOOT/BOOTX64.EFI", loader],
            limits=READ_LIMITS,
        )
        sections = run(
            "read the boot loader (objdump)", ["objdump", "-h", loader], limits=READ_LIMITS
        )
        if ".cmdline" not in sections or ".linux" not in sections:
            report.add(
                True,
                "boot loader",
                "not a unified kernel image; command line not checked",
                blocking=False,
            )
            return
        cmdline_file = Path(tmp) / "cmdline"
        run(
            "read the command line (objcopy)",
            ["objcopy", "-O", "binary", "--only-section=.cmdline", loader, cmdline_file],
            limits=READ_LIMITS,
        )
        raw_cmdline = cmdline_file.read_bytes()[:4096].rstrip(b"\0\n")
        report.cmdline = _printable(raw_cmdline.decode(errors="replace"))
    report.add(
        True,
        "boot loader",
        "unified kernel image (kernel, initramfs and command line measured as one)",
    )
    has_root = re.search(r"(^| )root=", report.cmdline) is not None
    report.add(
        has_root,
        "kernel command line",
        report.cmdline if has_root else "no root= in the command line",
    )
    serial = "console=ttyS0" in report.cmdline
    report.add(
        serial,
        "serial console",
        "console=ttyS0" if serial else "no console=ttyS0: cloud console logs stay empty",
        blocking=False,
    )


def _check_root(raw: Path, partitions: list[Partition], report: ImageReport) -> None:
    root = next((p for p in partitions if p.type_guid == ROOT_TYPE_X86_64), None) or next(
        (p for p in partitions if p.type_guid == LINUX_DATA_TYPE), None
    )
    if root is None:
        report.add(False, "root filesystem", "no Linux root partition")
        return
    fs = _Ext4(raw, root.offset)
    modules = fs.list_dir("/usr/lib/modules") or fs.list_dir("/lib/modules")
    if modules is None:
        report.add(
            False, "root filesystem", f"partition {root.number} is not a readable ext4 filesystem"
        )
        return
    report.add(True, "root filesystem", f"ext4 on partition {root.number}")
    versions = sorted((m for m in modules if m[:1].isdigit()), key=version_key)
    if not versions:
        report.add(False, "kernel", "no kernel modules directory: no kernel installed")
        return
    report.kernel = _printable(versions[-1])
    version = version_key(report.kernel)
    config = _parse_config(fs.read(f"/boot/config-{report.kernel}"))
    if config is None:
        report.add(False, "kernel", f"{report.kernel} has no /boot/config-{report.kernel} to check")
        return
    if report.tee == "tdx":
        _check_tdx_kernel(fs, report, version, config)
    else:
        has_sgx = config.get("CONFIG_X86_SGX") == "y"
        report.add(
            has_sgx,
            "kernel",
            f"{report.kernel} "
            + ("has the SGX driver" if has_sgx else "lacks CONFIG_X86_SGX: enclaves cannot run"),
        )
    cloud_init = fs.exists("/usr/bin/cloud-init")
    report.add(
        cloud_init,
        "cloud-init",
        "installed"
        if cloud_init
        else "missing: the guest cannot take its SSH keys or user data from the cloud",
    )
    has_scm = fs.exists("/usr/local/bin/scm")
    report.add(
        has_scm,
        "scm",
        "installed (scm inspect, scm attest quote)" if has_scm else "not installed",
        blocking=False,
    )


def _check_tdx_kernel(
    fs: _Ext4, report: ImageReport, version: tuple[int, ...], config: dict[str, str]
) -> None:
    kernel = report.kernel
    if config.get("CONFIG_INTEL_TDX_GUEST") != "y":
        report.add(
            False, "kernel", f"{kernel} lacks CONFIG_INTEL_TDX_GUEST: it cannot boot as a TD"
        )
        return
    if version < TDX_GUEST_KERNEL:
        report.add(
            False, "kernel", f"{kernel} is older than 6.2: no tdx_guest driver, so no quotes"
        )
        return
    report.add(True, "kernel", f"{kernel} with TDX guest support")
    driver = config.get("CONFIG_TDX_GUEST_DRIVER")
    module_dir = f"/usr/lib/modules/{kernel}/{TDX_GUEST_MODULE_DIR}"
    if driver == "m" and not any(
        n.startswith("tdx-guest.ko") for n in fs.list_dir(module_dir) or []
    ):
        report.add(
            False, "tdx_guest", f"the kernel builds tdx_guest as a module but {module_dir} has none"
        )
    elif driver in ("m", "y"):
        report.add(True, "tdx_guest", "module present" if driver == "m" else "built in")
    else:
        report.add(False, "tdx_guest", "CONFIG_TDX_GUEST_DRIVER is off: no way to get a quote")
    tsm = config.get("CONFIG_TSM_REPORTS") in ("m", "y") and version >= CONFIGFS_TSM_KERNEL
    detail = "available (/sys/kernel/config/tsm/report)"
    if not tsm:
        detail = (
            "unavailable (needs Linux 6.7+, CONFIG_TSM_REPORTS): quotes only via /dev/tdx_guest"
        )
    report.add(tsm, "configfs-tsm", detail, blocking=False)


class _Ext4:
    """Read-only access to an ext4 filesystem at an offset of an image, through debugfs."""

    def __init__(self, image: Path, offset: int) -> None:
        self._spec = f"{image}?offset={offset}"

    def _debugfs(self, request: str) -> subprocess.CompletedProcess[bytes]:
        return probe("read the root filesystem (debugfs)", ["debugfs", "-R", request, self._spec])

    def list_dir(self, path: str) -> list[str] | None:
        result = self._debugfs(f"ls -p {path}")
        if result.returncode != 0 or b"not found" in result.stderr or b"Bad magic" in result.stderr:
            return None
        names = []
        for line in result.stdout.decode(errors="replace").splitlines():
            parts = line.split("/")
            if len(parts) >= 6 and parts[5] not in ("", ".", ".."):
                names.append(parts[5])
        return names

    def read(self, path: str) -> bytes | None:
        result = self._debugfs(f"cat {path}")
        if (
            result.returncode != 0
            or b"File not found" in result.stderr
            or b"not found" in result.stderr
        ):
            return None
        return result.stdout

    def exists(self, path: str) -> bool:
        return b"File not found" not in self._debugfs(f"stat {path}").stderr


def _printable(text: str) -> str:
    """``text`` from the image with control characters (terminal escapes) made visible."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _parse_config(data: bytes | None) -> dict[str, str] | None:
    if not data:
        return None
    config = {}
    for line in data.decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("CONFIG_"):
            config[key] = value
    return config
