"""The guest's root filesystem: bootstrapped into a directory, cached, then customised.

Nothing is mounted and no block device is used: mmdebstrap installs into a plain
directory (skipping its /proc and /sys mounts), and customisation writes files into it,
running only a few package-level commands inside it with chroot.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from scm.image.errors import ImageBuildError
from scm.image.spec import ImageSpec, Release
from scm.image.tools import run

CACHE_FORMAT = 1  # bump when the bootstrap command changes what a cached tree contains

BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "systemd-resolved",
    "udev",
    "dbus",
    "cloud-init",
    "openssh-server",
    "sudo",
    "python3",
    "python3-venv",
    "ca-certificates",
    "initramfs-tools",
    "e2fsprogs",
    "netbase",
    "iproute2",
    "systemd-boot-efi",  # its EFI stub makes the unified kernel image
)


def bootstrap_packages(spec: ImageSpec) -> list[str]:
    """Packages for mmdebstrap's --include, the kernel pinned to the release's TEE kernel."""
    kernel = "linux-image-amd64"
    if spec.release.kernel_suite != spec.release.name:
        kernel += f"/{spec.release.kernel_suite}"
    return [*BASE_PACKAGES, kernel, *spec.packages]


def apt_sources(release: Release, mirror: str) -> list[str]:
    suites = [release.name, f"{release.name}-updates"]
    if release.kernel_suite not in suites:
        suites.append(release.kernel_suite)
    return [f"deb {mirror} {suite} main" for suite in suites]


def cached_rootfs(
    spec: ImageSpec, mirror: str, cache_dir: Path, progress: Callable[[str], None]
) -> Path:
    """The bootstrapped tree for this release and package set, built once and reused."""
    packages = bootstrap_packages(spec)
    key = hashlib.sha256(
        json.dumps([CACHE_FORMAT, spec.release.name, mirror, sorted(packages)]).encode()
    ).hexdigest()[:16]
    target = cache_dir / f"rootfs-{spec.release.name}-{key}"
    if (target / "etc" / "os-release").exists():
        progress(f"using the cached root filesystem {target}")
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f".{target.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    progress(f"bootstrapping Debian {spec.release.name} with {len(packages)} packages")
    try:
        run(
            "bootstrap (mmdebstrap)",
            [
                "mmdebstrap",
                "--mode=root",
                "--variant=apt",
                "--skip=chroot/mount",
                "--format=directory",
                f"--include={','.join(packages)}",
                spec.release.name,
                partial,
                *apt_sources(spec.release, mirror),
            ],
            stream=True,
        )
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def copy_tree(source: Path, destination: Path) -> None:
    """Copy a root tree keeping owners, modes, links and device nodes."""
    run("copying the root filesystem", ["cp", "-a", "--reflink=auto", source, destination])


def kernel_files(root: Path) -> tuple[str, Path, Path]:
    """(version, vmlinuz, initrd) of the newest kernel installed in ``root``."""
    kernels = sorted(root.glob("boot/vmlinuz-*"), key=lambda p: version_key(p.name[8:]))
    if not kernels:
        raise ImageBuildError("the root filesystem has no kernel in /boot")
    version = kernels[-1].name[len("vmlinuz-") :]
    initrd = root / "boot" / f"initrd.img-{version}"
    if not initrd.exists():
        raise ImageBuildError(f"the root filesystem has no initramfs for kernel {version}")
    return version, kernels[-1], initrd


def version_key(version: str) -> tuple[int, ...]:
    """``6.12.95+deb12-amd64`` -> (6, 12, 95): the numeric part, for ordering kernels."""
    numbers = []
    for part in re.split(r"[.+-]", version):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)
