"""Turn a bootstrapped tree into a cloud guest: boot config, cloud-init, SSH, TEE access, scm.

Files are written straight into the tree; the few things that must run as the guest
(creating a group, enabling a unit, creating scm's virtualenv) run through chroot,
which needs no mounts.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import scm
from scm.image.spec import ImageSpec
from scm.image.tools import run

GUEST_VENV = "/opt/scm"
# What `scm inspect` and `scm attest` need; the guest gets nothing heavier.
GUEST_REQUIREMENTS = ("click", "cryptography", "msgspec")
DEFAULT_USER = "debian"


def customize(root: Path, spec: ImageSpec, root_partuuid: str, esp_partuuid: str) -> None:
    """Write the guest's configuration into ``root`` (a copy of the cached tree)."""
    _write(root / "etc/hostname", "scm-guest\n")
    _write(
        root / "etc/fstab",
        f"PARTUUID={root_partuuid} / ext4 defaults,errors=remount-ro 0 1\n"
        f"PARTUUID={esp_partuuid} /boot/efi vfat umask=0077,nofail 0 2\n",
    )
    (root / "boot/efi").mkdir(parents=True, exist_ok=True)
    # Every instance must get its own identity and host keys on first boot.
    _write(root / "etc/machine-id", "")
    for key in root.glob("etc/ssh/ssh_host_*"):
        key.unlink()
    _write(
        root / "etc/ssh/sshd_config.d/50-scm.conf",
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n",
    )
    _write(root / "etc/cloud/cloud.cfg.d/90-scm.cfg", cloud_config(spec))
    if spec.tee == "sgx":
        # systemd's udev rules give /dev/sgx_enclave and /dev/sgx_vepc to group sgx.
        _write(root / "usr/lib/sysusers.d/scm-sgx.conf", "g sgx - -\n")
        if b"sgx:" not in (root / "etc/group").read_bytes():
            _chroot(root, "create the sgx group", ["groupadd", "--system", "sgx"])
    _chroot(root, "enable networking", ["systemctl", "enable", "systemd-networkd"])
    _chroot(root, "enable DNS", ["systemctl", "enable", "systemd-resolved"])


def cloud_config(spec: ImageSpec) -> str:
    """cloud-init settings baked into the image: datasources, no passwords, the user."""
    groups = ["sudo", "sgx"] if spec.tee == "sgx" else ["sudo"]
    lines = [
        "# Written by scm image build.",
        "datasource_list: [NoCloud, ConfigDrive, OpenStack, None]",
        "ssh_pwauth: false",
        "disable_root: true",
        "locale: C.UTF-8  # always present; spares a locale-gen run on first boot",
        "system_info:",
        "  default_user:",
        f"    name: {spec.user or DEFAULT_USER}",
        "    lock_passwd: true",
        f"    groups: [{', '.join(groups)}]",
        '    sudo: ["ALL=(ALL) NOPASSWD:ALL"]',
        "    shell: /bin/bash",
    ]
    if spec.ssh_key:
        lines += ["ssh_authorized_keys:", f"  - {spec.ssh_key}"]
    return "\n".join(lines) + "\n"


def install_scm(root: Path, spec: ImageSpec, work: Path, constraints: Path | None) -> None:
    """Put scm and the wheels it needs for inspect and attest into /opt/scm in the guest."""
    wheels = work / "wheels"
    download = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--implementation", "cp",
        "--python-version", spec.release.python,
        "--platform", "manylinux_2_34_x86_64", "--platform", "manylinux_2_28_x86_64",
        "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
        "--dest", str(wheels), *GUEST_REQUIREMENTS,
    ]  # fmt: skip
    if constraints is not None:
        download += ["--constraint", str(constraints)]
    run("download scm's guest dependencies (pip download)", download)
    staged = root / "var/tmp/scm-wheels"
    shutil.copytree(wheels, staged)
    try:
        _chroot(root, "create /opt/scm", ["python3", "-m", "venv", GUEST_VENV])
        names = sorted(f"/var/tmp/scm-wheels/{w.name}" for w in wheels.glob("*.whl"))
        pip = f"{GUEST_VENV}/bin/pip"
        _chroot(root, "install scm's guest dependencies", [pip, "install", "--quiet",
                "--no-index", "--no-deps", "--disable-pip-version-check", *names])  # fmt: skip
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    site = root / GUEST_VENV.lstrip("/") / f"lib/python{spec.release.python}/site-packages"
    shutil.copytree(
        Path(scm.__file__).parent, site / "scm", ignore=shutil.ignore_patterns("__pycache__")
    )
    launcher = root / GUEST_VENV.lstrip("/") / "bin/scm"
    _write(launcher, f"#!{GUEST_VENV}/bin/python3\nfrom scm.cli.main import main\n\nmain()\n")
    launcher.chmod(0o755)
    link = root / "usr/local/bin/scm"
    link.unlink(missing_ok=True)
    link.symlink_to(f"{GUEST_VENV}/bin/scm")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _chroot(root: Path, step: str, argv: list[str]) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
    run(f"{step} in the guest tree", ["chroot", str(root), *argv], env=env)
