"""How long `scm inspect` takes: discovery and rendering in-process, and the whole command.

Prints figures; asserts nothing. Run with `make bench`, which puts the repository on PYTHONPATH.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.hostroots import HOST_NAMES, materialize

from scm.platform import RENDERERS, discover

ROUNDS = 200


def per_call_ms(func: object, rounds: int = ROUNDS) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        func()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    print(f"scm inspect: discovery + all four renderers, {ROUNDS} rounds each (median / p99 ms)")
    with tempfile.TemporaryDirectory() as tmp:
        roots = {name: materialize(name, Path(tmp)) for name in HOST_NAMES}
        roots["this machine (/)"] = Path("/")
        for name, root in roots.items():
            p50, p99 = per_call_ms(
                lambda root=root: [render(discover(root)) for render in RENDERERS.values()]
            )
            print(f"  {name:22s} {p50:7.3f} / {p99:7.3f}")
    scm = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"
    p50, p99 = per_call_ms(
        lambda: subprocess.run([scm, "inspect", "--format", "json"], capture_output=True), 20
    )
    print(f"  whole command incl. Python start-up (20 runs): {p50:.1f} / {p99:.1f} ms")


if __name__ == "__main__":
    main()
