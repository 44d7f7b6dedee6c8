"""Benchmark: how long `emaildoctor --help` and `emaildoctor --version` take to start, and what they import.

    .venv/bin/python bench/cli_startup.py                # 15 runs of each, medians
    .venv/bin/python bench/cli_startup.py --runs 30 --command "--help" --command "test --help"

Each run starts the installed console script (next to this Python) in a fresh process, as a user's shell would,
and is timed from spawn to exit (wall time). The module count comes from one more run under ``python -X
importtime``. A bare ``python -c pass`` is measured alongside, as the floor the machine sets.

Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

EMAILDOCTOR = str(Path(sys.executable).parent / "emaildoctor")


def wall_times(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)  # noqa: S603
        times.append(time.perf_counter() - started)
    return times


def imported_modules(args: list[str]) -> int:
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-X", "importtime", EMAILDOCTOR, *args], capture_output=True, text=True, check=False
    )
    return sum(1 for line in done.stderr.splitlines() if line.startswith("import time:") and "|" in line) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--command", action="append", help='emaildoctor arguments, e.g. "--help" (repeatable)')
    options = parser.parse_args()
    commands = options.command or ["--help", "--version"]
    print(f"machine: nproc={os.cpu_count()}, Python {platform.python_version()}, {platform.platform()}")
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; {options.runs} runs each")
    floor = wall_times([sys.executable, "-c", "pass"], options.runs)
    print(f"{'python -c pass':<28} median {statistics.median(floor) * 1000:6.0f} ms  (the floor)")
    for command in commands:
        args = shlex.split(command)
        times = wall_times([EMAILDOCTOR, *args], options.runs)
        print(
            f"{'emaildoctor ' + command:<28} median {statistics.median(times) * 1000:6.0f} ms  "
            f"min {min(times) * 1000:6.0f} ms  max {max(times) * 1000:6.0f} ms  "
            f"{imported_modules(args)} modules imported"
        )


if __name__ == "__main__":
    main()
