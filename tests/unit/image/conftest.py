"""Small but real guest disks for the checker: made with the same tools the builder uses."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from scm.image import boot, disk
from scm.image.disk import MIB

HOST_STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
GOOD_KERNEL = "6.12.95+deb12-amd64"
TDX_CONFIG = (
    "CONFIG_INTEL_TDX_GUEST=y\nCONFIG_TDX_GUEST_DRIVER=m\nCONFIG_TSM_REPORTS=m\nCONFIG_X86_SGX=y\n"
)


def make_tree(
    root: Path, kernel: str = GOOD_KERNEL, config: str = TDX_CONFIG, module: bool = True
) -> Path:
    """A tiny root tree with what the checker looks at: kernel config, modules, cloud-init."""
    (root / "boot").mkdir(parents=True)
    (root / "boot" / f"config-{kernel}").write_text(config)
    coco = root / "usr/lib/modules" / kernel / "kernel/drivers/virt/coco/tdx-guest"
    coco.mkdir(parents=True)
    if module:
        (coco / "tdx-guest.ko.xz").write_bytes(b"\xfd7zXZ\0module")
    for tool in ("usr/bin/cloud-init", "usr/local/bin/scm"):
        (root / tool).parent.mkdir(parents=True, exist_ok=True)
        (root / tool).write_text("#!/bin/sh\n")
    stub = root / boot.EFI_STUB
    stub.parent.mkdir(parents=True)
    shutil.copy(HOST_STUB, stub)
    (root / "usr/lib/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    return root


@pytest.fixture
def make_disk(tmp_path: Path) -> Callable[..., Path]:
    """Build a raw GPT disk (ESP with a unified kernel image, ext4 root) from a tiny tree."""

    def build(name: str = "guest.raw", **tree_options: object) -> Path:
        work = tmp_path / f"work-{name}"
        tree = make_tree(work / "tree", **tree_options)  # type: ignore[arg-type]
        layout = disk.plan_layout(160 * MIB, 64 * MIB, str(uuid.uuid4()), str(uuid.uuid4()))
        vmlinuz = work / "vmlinuz"
        vmlinuz.write_bytes(b"MZ" + bytes(4096))
        initrd = work / "initrd"
        initrd.write_bytes(bytes(2048))
        uki = work / "BOOTX64.EFI"
        boot.build_uki(tree, vmlinuz, initrd, boot.kernel_cmdline(layout.root_partuuid), uki)
        esp = work / "esp.img"
        boot.make_esp(esp, layout.esp_size, uki)
        root_image = work / "root.img"
        disk.make_ext4(root_image, tree, layout.root_size)
        raw = tmp_path / name
        disk.write_partition_table(raw, layout)
        disk.copy_into(raw, esp, layout.esp_offset)
        disk.copy_into(raw, root_image, layout.root_offset)
        return raw

    return build


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def archive(tmp_path: Path):
    """A loopback HTTP server that looks like a Debian archive but holds no packages."""
    (tmp_path / "mirror/dists/bookworm").mkdir(parents=True)
    (tmp_path / "mirror/dists/bookworm/Release").write_text("Suite: bookworm\n")
    handler = functools.partial(_QuietFiles, directory=str(tmp_path / "mirror"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
