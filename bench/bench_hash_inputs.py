"""Hashing the inputs, the first work of every run (the version id is made of their sha256):
on one thread and on one per core (`runner.hash_inputs`), over files made here.

    .venv/bin/python bench/bench_hash_inputs.py [--files 16] [--mb 64] [--small 20000] [--rounds 3]

Writes `--files` files of `--mb` MiB of random bytes into a temporary folder (in the page cache,
as a corpus read a second time is: the figure is the hashing, not the disk), then times, in
alternating rounds, hashing them all on one thread and on `engine.default_workers()` threads,
and prints the fastest round of each in MiB/s; then the same for `--small` files of 8 KiB (a
folder of pages: hashed on the run's own thread whatever the threads, `runner.THREADED_HASH_BYTES`,
so both lines time the same path: what the threads must not slow down).
No corpora needed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curate.config import IngestSettings  # noqa: E402
from curate.engine import default_workers  # noqa: E402
from curate.ingest import scan  # noqa: E402
from curate.runner import hash_inputs  # noqa: E402


def timed(folder: str, rounds: int, cores: int) -> tuple[dict[int, float], bool]:
    """The fastest of `rounds` hashings of the folder's files on 1 and on `cores` threads, and
    whether both gave the same digests."""
    best: dict[int, float] = {}
    digests: dict[int, list[str]] = {}
    for _ in range(rounds):
        for threads in (1, cores):
            files, _ = scan([folder], IngestSettings())
            started = time.perf_counter()
            hash_inputs(files, threads)
            best[threads] = min(best.get(threads, float("inf")), time.perf_counter() - started)
            digests[threads] = [file.sha256 for file in files]
    return best, digests[1] == digests[cores]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--small", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cores = default_workers()
    for count, size in ((args.files, args.mb << 20), (args.small, 8 << 10)):
        with tempfile.TemporaryDirectory(prefix="curate-hash-") as folder:
            for n in range(count):
                (Path(folder) / f"{n:05d}.txt").write_bytes(os.urandom(size))
            best, same = timed(folder, args.rounds, cores)
        total = count * size / (1 << 20)
        print(f"{count:,} files of {size >> 10:,} KiB ({total:,.0f} MiB), the fastest of {args.rounds} rounds:")
        for threads, seconds in best.items():
            print(f"  {threads} thread(s): {seconds:.3f} s, {total / seconds:,.0f} MiB/s")
        print(f"  the same digests: {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
