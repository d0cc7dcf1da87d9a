"""Small file-system helpers shared by every domain."""

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new content, never half.

    The data goes to a dot-file in the same directory, is flushed to disk, gets its
    permissions before any content is visible, and is renamed over ``path``.
    """
    payload = data.encode() if isinstance(data, str) else data
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
