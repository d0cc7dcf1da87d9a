"""How long the `scm` command takes to start, next to the interpreter's own start-up.

Each command runs ROUNDS times, interleaved so that load from other processes falls on all
of them alike; prints median and p90 wall time, and how many runs failed. Asserts nothing.
Run from the repository with PYTHONPATH=src (or after `make install`).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROUNDS = 25
TIMEOUT = 30.0
HOST = Path(__file__).parents[1] / "tests" / "fixtures" / "hosts" / "tdx-host" / "root"


def commands() -> dict[str, list[str]]:
    scm = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        "scm inspect --root <fixture>": [scm, "inspect", "--root", str(HOST)],
        "scm inspect": [scm, "inspect"],
        "scm --help": [scm, "--help"],
        "scm keys --help": [scm, "keys", "--help"],
    }


def run_once(argv: list[str]) -> float | None:
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return None
    elapsed = (time.perf_counter() - start) * 1000
    return elapsed if done.returncode == 0 else None


def main() -> None:
    table = commands()
    samples: dict[str, list[float]] = {name: [] for name in table}
    failures = dict.fromkeys(table, 0)
    for _ in range(ROUNDS):
        for name, argv in table.items():
            result = run_once(argv)
            if result is None:
                failures[name] += 1
            else:
                samples[name].append(result)
    print(f"start-up, {ROUNDS} interleaved runs each: median / p90 wall ms (failures)")
    baseline = statistics.median(samples["python -c pass"] or [float("nan")])
    for name, values in samples.items():
        if not values:
            print(f"  {name:32s} all {failures[name]} runs failed")
            continue
        values.sort()
        median = statistics.median(values)
        p90 = values[max(0, int(len(values) * 0.9) - 1)]
        extra = median - baseline
        print(
            f"  {name:32s} {median:7.1f} / {p90:7.1f}  (+{extra:6.1f} over python)"
            f"  ({failures[name]} failed)"
        )


if __name__ == "__main__":
    main()
