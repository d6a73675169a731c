"""How fast `autoq --help` and `autoq CMD --help` answer (target: under 0.5 s).

Each command runs N times in a fresh interpreter; printed: the minimum wall time and the
minimum CPU time (user + system of the child, which a loaded machine inflates less than wall
time), and the ratio of the 0.5 s target to the CPU time.

    python benchmarks/bench_cli_help.py [--runs 10]
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

COMMANDS = [["--help"], ["--version"], ["search", "--help"], ["pareto", "-h"], ["export", "--help"],
            ["train", "--help"]]
TARGET_S = 0.5


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(args: list[str], runs: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(runs):
        cpu0, t0 = child_cpu(), time.perf_counter()
        subprocess.run([sys.executable, "-m", "autoq.cli", *args], check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
        cpus.append(child_cpu() - cpu0)
    return min(walls), min(cpus)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    runs = ap.parse_args().runs
    print(f"{'command':24} {'min wall s':>10} {'min CPU s':>10} {'target/CPU':>10}")
    for args in COMMANDS:
        wall, cpu = measure(args, runs)
        print(f"{'autoq ' + ' '.join(args):24} {wall:10.3f} {cpu:10.3f} {TARGET_S / cpu:9.2f}x")


if __name__ == "__main__":
    main()
