"""How long the `scm` command takes to start, next to the interpreter's own start-up.

Each command runs ROUNDS times (SCM_BENCH_STARTUP_ROUNDS, default 25), interleaved so that
load from other processes falls on all of them alike; prints median, p90 and best wall time
(the best run is the nearest to an idle machine), the median CPU time (user + system) of the
process, which other processes' load inflates far less than wall time, and how many runs
failed. Asserts nothing.
Run from the repository with PYTHONPATH=src (or after `make install`).

Two conditions, both with the same interpreter and the same `.pth` files as `python -c pass`:
- "bytecode": every module, scm's included, is loaded from cached bytecode, as after
  `pip install` (which compiles) or any second run where Python may write `__pycache__`.
  The cache lives in a temporary PYTHONPYCACHEPREFIX, filled by one warm-up run of each
  command, so the checkout stays clean; `python -c pass` uses the same prefix.
- "source": scm's modules are compiled on every run, as in a checkout run with
  PYTHONDONTWRITEBYTECODE=1 (the standard library and site-packages keep their bytecode).
SCM_BENCH_COMPARE=DIR adds the same scm commands run from another checkout's DIR/src
(e.g. main), side by side in the same interleaving.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = int(os.environ.get("SCM_BENCH_STARTUP_ROUNDS", "25"))
TIMEOUT = 30.0
HOST = Path(__file__).parents[1] / "tests" / "fixtures" / "hosts" / "tdx-host" / "root"


Command = tuple[list[str], dict[str, str]]


def scm_runs() -> dict[str, list[str]]:
    scm = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"
    return {
        "scm inspect --root <fixture>": [scm, "inspect", "--root", str(HOST)],
        "scm inspect": [scm, "inspect"],
        "scm --help": [scm, "--help"],
        "scm keys --help": [scm, "keys", "--help"],
    }


def commands(pycache: Path) -> dict[str, Command]:
    cached = {**os.environ, "PYTHONPYCACHEPREFIX": str(pycache)}
    source = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    source["PYTHONDONTWRITEBYTECODE"] = "1"
    runs = scm_runs()
    table: dict[str, Command] = {
        "python -c pass": ([sys.executable, "-c", "pass"], cached),
        "python -c 'import click'": ([sys.executable, "-c", "import click"], cached),
    }
    table.update({name: (argv, cached) for name, argv in runs.items()})
    for name in ("scm inspect --root <fixture>", "scm --help"):
        table[f"{name} (source)"] = (runs[name], source)
    other = os.environ.get("SCM_BENCH_COMPARE")
    if other:
        path = {"PYTHONPATH": str(Path(other) / "src")}
        table.update({f"{other}: {n}": (argv, {**cached, **path}) for n, argv in runs.items()})
    return table


def warm_up(table: dict[str, Command]) -> None:
    """Run each command once with bytecode writing on, so the cached runs find it."""
    for argv, env in table.values():
        if "PYTHONPYCACHEPREFIX" in env:
            writable = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
            subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False, env=writable)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(command: Command) -> tuple[float, float] | None:
    """Wall and CPU milliseconds of one run, None when it failed or timed out."""
    argv, env = command
    cpu = _children_cpu()
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False, env=env)
    except subprocess.TimeoutExpired:
        return None
    elapsed = (time.perf_counter() - start) * 1000
    used = (_children_cpu() - cpu) * 1000
    return (elapsed, used) if done.returncode == 0 else None


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="scm-bench-pycache-") as pycache:
        table = commands(Path(pycache))
        warm_up(table)
        samples: dict[str, list[float]] = {name: [] for name in table}
        cpu: dict[str, list[float]] = {name: [] for name in table}
        failures = dict.fromkeys(table, 0)
        for _ in range(ROUNDS):
            for name, command in table.items():
                result = run_once(command)
                if result is None:
                    failures[name] += 1
                else:
                    samples[name].append(result[0])
                    cpu[name].append(result[1])
    load = os.getloadavg()[0]
    print(
        f"start-up, {ROUNDS} interleaved runs each, load average {load:.2f} at the end:\n"
        "  wall ms median / p90 / best (+ median over python), median CPU ms, failures"
    )
    baseline = statistics.median(samples["python -c pass"] or [float("nan")])
    for name, values in samples.items():
        if not values:
            print(f"  {name:40s} all {failures[name]} runs failed")
            continue
        values.sort()
        median = statistics.median(values)
        p90 = values[max(0, int(len(values) * 0.9) - 1)]
        extra = median - baseline
        print(
            f"  {name:40s} {median:6.1f} / {p90:6.1f} / {values[0]:6.1f} (+{extra:6.1f})"
            f"  cpu {statistics.median(cpu[name]):6.1f}  ({failures[name]} failed)"
        )


if __name__ == "__main__":
    main()
