"""How long the `scm` command takes to start, next to the interpreter's own start-up.

Each command runs ROUNDS times, interleaved so that load from other processes falls on all
of them alike; prints median and p90 wall time, and how many runs failed. Asserts nothing.
Run from the repository with PYTHONPATH=src (or after `make install`).
SCM_BENCH_COMPARE=DIR adds the same scm commands run from another checkout's DIR/src
(e.g. main), side by side in the same interleaving.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROUNDS = 25
TIMEOUT = 30.0
HOST = Path(__file__).parents[1] / "tests" / "fixtures" / "hosts" / "tdx-host" / "root"


Command = tuple[list[str], dict[str, str] | None]


def commands() -> dict[str, Command]:
    scm = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"
    scm_runs = {
        "scm inspect --root <fixture>": [scm, "inspect", "--root", str(HOST)],
        "scm inspect": [scm, "inspect"],
        "scm --help": [scm, "--help"],
        "scm keys --help": [scm, "keys", "--help"],
    }
    table: dict[str, Command] = {
        "python -c pass": ([sys.executable, "-c", "pass"], None),
        "python -c 'import click'": ([sys.executable, "-c", "import click"], None),
    }
    table.update({name: (argv, None) for name, argv in scm_runs.items()})
    other = os.environ.get("SCM_BENCH_COMPARE")
    if other:
        env = {**os.environ, "PYTHONPATH": str(Path(other) / "src")}
        table.update({f"{other}: {name}": (argv, env) for name, argv in scm_runs.items()})
    return table


def run_once(command: Command) -> float | None:
    argv, env = command
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False, env=env)
    except subprocess.TimeoutExpired:
        return None
    elapsed = (time.perf_counter() - start) * 1000
    return elapsed if done.returncode == 0 else None


def main() -> None:
    table = commands()
    samples: dict[str, list[float]] = {name: [] for name in table}
    failures = dict.fromkeys(table, 0)
    for _ in range(ROUNDS):
        for name, command in table.items():
            result = run_once(command)
            if result is None:
                failures[name] += 1
            else:
                samples[name].append(result)
    print(f"start-up, {ROUNDS} interleaved runs each: median / p90 wall ms (failures)")
    baseline = statistics.median(samples["python -c pass"] or [float("nan")])
    for name, values in samples.items():
        if not values:
            print(f"  {name:44s} all {failures[name]} runs failed")
            continue
        values.sort()
        median = statistics.median(values)
        p90 = values[max(0, int(len(values) * 0.9) - 1)]
        extra = median - baseline
        print(
            f"  {name:44s} {median:7.1f} / {p90:7.1f}  (+{extra:6.1f} over python)"
            f"  ({failures[name]} failed)"
        )


if __name__ == "__main__":
    main()
