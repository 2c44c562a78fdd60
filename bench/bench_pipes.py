"""What a pool's pipe size costs the driver: a pool of 2 forked workers returns 225 results of
1 MB each (225 MB), through pipes of the system's default size (64 KiB on Linux) and through
pipes widened to 1 MiB as curate's pools are (`curate.stages.base.widen_pipe`).

    .venv/bin/python bench/bench_pipes.py [--rounds 3] [--results 225] [--size 1000000]

Each round runs both, each in a child process of its own (so the CPU seconds, user + system,
of its driver, all threads, from the pool's start to its end, and of its workers are its own),
alternated; the medians are printed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_BLOB = b""


def _result(_: int) -> bytes:
    return _BLOB


def child(widen: bool, results: int, size: int) -> None:
    """One measurement, in this (child) process: prints wall, driver CPU and workers' CPU."""
    global _BLOB
    from curate.engine import _widen_pipes

    _BLOB = os.urandom(size)
    began, cpu = time.perf_counter(), time.process_time()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        if widen:
            _widen_pipes(pool)  # as the engine widens its pools'
        total = sum(len(r) for r in pool.imap(_result, range(results)))
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu  # all of its threads
    assert total == results * size
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(wall, cpu, workers.ru_utime + workers.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", type=int, default=225)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--child", choices=["default", "widened"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child == "widened", args.results, args.size)
        return 0
    figures: dict[str, list[list[float]]] = {"default": [], "widened": []}
    for _ in range(args.rounds):
        for kind in figures:
            out = subprocess.run(
                [sys.executable, __file__, "--child", kind, "--results", str(args.results),
                 "--size", str(args.size)],
                capture_output=True, text=True, check=True,
            )
            figures[kind].append([float(x) for x in out.stdout.split()])
    print(f"{args.results} results of {args.size:,} bytes from a pool of 2, {args.rounds} rounds (medians):")
    for kind, rows in figures.items():
        wall, driver, workers = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"  {kind} pipes: wall {wall:.2f} s, driver CPU {driver:.2f} s, workers' CPU {workers:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
