"""Where Debian packages come from: the host's own apt configuration, or ``--mirror``."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from scm.image.errors import ImageSpecError

APT_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))


def host_debian_mirror(paths: tuple[Path, ...] = APT_SOURCES) -> str | None:
    """The Debian archive URI this host's apt uses (deb822 or one-line format), if any.

    Using the host's mirror means a build reaches the same archive, through the same
    proxy or local mirror, that the operator already trusts for the host itself.
    """
    for path in paths:
        files = (
            sorted(path.glob("*.sources")) + sorted(path.glob("*.list"))
            if path.is_dir()
            else [path]
        )
        for file in files:
            try:
                text = file.read_text()
            except OSError:
                continue
            uri = _debian_uri(text)
            if uri:
                return uri
    return None


def _debian_uri(text: str) -> str | None:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] == ["URIs:"]:
            candidates = words[1:]
        elif words[:1] == ["deb"]:
            candidates = [w for w in words[1:] if "://" in w][:1]
        else:
            continue
        for uri in candidates:
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return None


def check_reachable(mirror: str, suite: str, timeout: float = 20.0) -> None:
    """Fail fast, before any long work, when the archive does not serve ``suite``."""
    url = f"{mirror}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read(64)
    except urllib.error.HTTPError as exc:
        raise ImageSpecError(
            f"the Debian archive at {mirror} has no {suite} ({exc.code})"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImageSpecError(f"cannot reach the Debian archive at {mirror}: {reason}") from None


def validate_mirror(mirror: str) -> str:
    if not mirror.startswith(("http://", "https://", "file://")):
        raise ImageSpecError(f"mirror {mirror!r} must be an http(s):// or file:// URL")
    return mirror.rstrip("/")
