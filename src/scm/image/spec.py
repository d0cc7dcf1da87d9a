"""What to build: an ImageSpec, checked before any long work starts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from scm.image.errors import ImageSpecError

GIB = 1024**3
MIB = 1024**2
MIN_SIZE = 2 * GIB  # the root filesystem alone is about 0.6 GiB; leave room to grow
# Far beyond any guest disk, and within what the file-size calls and mkfs.ext4 handle.
MAX_SIZE = 64 * 1024 * GIB
TEES = ("tdx", "sgx")
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# Debian's base-passwd accounts, which exist in every image before cloud-init runs.
_SYSTEM_USERS = frozenset(
    {
        "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
        "proxy", "www-data", "backup", "list", "irc", "_apt", "nobody",
    }
)  # fmt: skip
_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-", "sk-ssh-ed25519", "sk-ecdsa-sha2-")


@dataclass(frozen=True)
class Release:
    """A Debian release scm can build, and where its TEE-capable kernel comes from."""

    name: str
    python: str  # the guest's python3 version, for the wheels scm installs into it
    kernel_suite: str  # a 6.x kernel with TDX guest support and configfs-tsm


RELEASES = {
    "bookworm": Release("bookworm", "3.11", "bookworm-backports"),
    "trixie": Release("trixie", "3.13", "trixie"),
}


@dataclass(frozen=True)
class ImageSpec:
    tee: str
    release: Release
    size_bytes: int
    output: Path
    user: str | None = None
    ssh_key: str | None = None
    packages: tuple[str, ...] = field(default_factory=tuple)


def parse_size(text: str) -> int:
    """``4G``, ``4GiB``, ``512M``, ``2048MiB`` -> bytes (binary units)."""
    match = _SIZE.match(text)
    if not match:
        raise ImageSpecError(f"size {text!r} is not a size such as 4G or 512M")
    number, unit = int(match.group(1)), match.group(2).upper()
    return number * {"": 1, "K": 1024, "M": MIB, "G": GIB, "T": 1024 * GIB}[unit]


def make_spec(
    tee: str,
    release: str,
    size: str,
    output: Path,
    user: str | None = None,
    ssh_key_file: Path | None = None,
    packages: tuple[str, ...] = (),
) -> ImageSpec:
    """Validate every argument of ``scm image build``; raise ImageSpecError on the first bad one."""
    if tee not in TEES:
        raise ImageSpecError(f"unknown TEE {tee!r}: choose one of {', '.join(TEES)}")
    if release not in RELEASES:
        raise ImageSpecError(
            f"unknown release {release!r}: scm builds {', '.join(sorted(RELEASES))}"
        )
    size_bytes = parse_size(size)
    if size_bytes < MIN_SIZE:
        raise ImageSpecError(f"size {size} is too small: a guest needs at least 2G")
    if size_bytes > MAX_SIZE:
        raise ImageSpecError(f"size {size} is too large: scm builds images of at most 64T")
    if output.exists() or output.is_symlink():
        raise ImageSpecError(f"{output} exists: choose another --output or remove it first")
    if not output.parent.is_dir():
        raise ImageSpecError(f"directory {output.parent} does not exist")
    if output.suffix not in (".qcow2", ".raw", ".img"):
        raise ImageSpecError(f"{output}: the output must end in .qcow2, .raw or .img")
    if (user is None) != (ssh_key_file is None):
        raise ImageSpecError("--user and --ssh-key go together: a user without a key cannot log in")
    if user is not None and not _USER.match(user):
        raise ImageSpecError(f"user name {user!r} is not a valid Linux user name")
    if user in _SYSTEM_USERS:
        # root stays locked in scm images; the others are Debian's own accounts.
        raise ImageSpecError(f"user name {user!r} is a system account: choose another name")
    key = _read_public_key(ssh_key_file) if ssh_key_file else None
    for package in packages:
        if not re.match(r"^[a-z0-9][a-z0-9+.-]+$", package):
            raise ImageSpecError(f"{package!r} is not a Debian package name")
    return ImageSpec(tee, RELEASES[release], size_bytes, output, user, key, tuple(packages))


def _read_public_key(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise ImageSpecError(f"SSH key file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageSpecError(f"cannot read SSH key file {path}: {exc}") from None
    if "PRIVATE KEY" in text:
        raise ImageSpecError(f"{path} is a private key: pass the public key (.pub)")
    if not text.startswith(_KEY_TYPES) or len(text.splitlines()) != 1:
        raise ImageSpecError(f"{path} is not an OpenSSH public key line")
    return text
