"""``scm image build``: every step from a Debian archive to a bootable guest image."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import scm
from scm.image import boot, customize, disk, rootfs
from scm.image.sources import check_reachable
from scm.image.spec import ImageSpec
from scm.image.tools import BUILD_TOOLS, require_tools

MIB = 1024 * 1024


@dataclass(frozen=True)
class ImageSettings:
    """The ``[image]`` settings table."""

    cache_dir: Path | None = None  # default: $XDG_CACHE_HOME/scm/images
    mirror: str | None = None  # default: the Debian archive this host's apt uses
    esp_size_mib: int = 256


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scm" / "images"


def build_image(
    spec: ImageSpec,
    mirror: str,
    settings: ImageSettings,
    progress: Callable[[str], None],
) -> None:
    """Build ``spec.output``; on any failure nothing is left at that path."""
    require_tools(sorted(BUILD_TOOLS))
    cache_dir = settings.cache_dir or default_cache_dir()
    check_reachable(mirror, spec.release.name)
    esp_size = settings.esp_size_mib * MIB
    layout = disk.plan_layout(spec.size_bytes, esp_size, str(uuid.uuid4()), str(uuid.uuid4()))
    steps = _Steps(progress, total=7)
    work = Path(tempfile.mkdtemp(prefix=f".{spec.output.name}.", dir=spec.output.parent))
    try:
        with steps("root filesystem"):
            cached = rootfs.cached_rootfs(spec, mirror, cache_dir, progress)
            tree = work / "rootfs"
            rootfs.copy_tree(cached, tree)
        with steps("guest configuration and scm"):
            customize.customize(tree, spec, layout.root_partuuid, layout.esp_partuuid)
            customize.install_scm(tree, spec, work, _constraints_file())
        with steps("unified kernel image"):
            version, vmlinuz, initrd = rootfs.kernel_files(tree)
            progress(f"kernel {version}")
            uki = work / "BOOTX64.EFI"
            boot.build_uki(tree, vmlinuz, initrd, boot.kernel_cmdline(layout.root_partuuid), uki)
        with steps("EFI system partition"):
            esp = work / "esp.img"
            boot.make_esp(esp, layout.esp_size, uki)
        with steps("root filesystem image (mkfs.ext4 -d)"):
            root_image = work / "root.img"
            disk.make_ext4(root_image, tree, layout.root_size)
            shutil.rmtree(tree)
        with steps("disk image with GPT"):
            raw = work / "disk.raw"
            disk.write_partition_table(raw, layout)
            disk.copy_into(raw, esp, layout.esp_offset)
            disk.copy_into(raw, root_image, layout.root_offset)
            esp.unlink()
            root_image.unlink()
        with steps(f"write {spec.output.name}"):
            disk.finish(raw, spec.output)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _constraints_file() -> Path | None:
    """The checkout's constraints.txt, so the guest gets the versions scm was tested with."""
    candidate = Path(scm.__file__).resolve().parents[2] / "constraints.txt"
    return candidate if candidate.exists() else None


class _Steps:
    """Numbered progress lines with the time each step took."""

    def __init__(self, progress: Callable[[str], None], total: int) -> None:
        self._progress = progress
        self._total = total
        self._number = 0
        self._name = ""
        self._started = 0.0

    def __call__(self, name: str) -> _Steps:
        self._number += 1
        self._name = name
        return self

    def __enter__(self) -> None:
        self._started = time.monotonic()
        self._progress(f"[{self._number}/{self._total}] {self._name}...")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            elapsed = time.monotonic() - self._started
            self._progress(f"[{self._number}/{self._total}] {self._name}: done in {elapsed:.1f} s")
