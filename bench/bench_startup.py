"""Start-up: `curate run` on the five sample files (corpus/incoming), a run that is mostly
start-up (imports, the rule packs, the derived tables, the first document before the pools
fork), timed from outside, as a user waits for it, and the CPU time its processes take.

    .venv/bin/python bench/bench_startup.py [--rounds 10] [--workers 2] [--other CHECKOUT]

Each round runs `python -m curate run corpus/incoming -q` in a fresh process, into a fresh
temporary corpus and reports folder, with the table cache as it is (filled by an untimed first
run) and then with it switched off (`CURATE_CACHE_DIR=off`: every table and memo derived
again, as on a machine's first run). With `--other` (a git worktree of another commit), each
round runs the other checkout first, then this one, back to back, and the median of the paired
differences is printed (this machine's share of its cores moves from minute to minute). Each
checkout's `curate/` is compiled to bytecode first (`bench_pipeline.compile_checkout`). The
sample files are in the repository: no corpora needed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def run_once(checkout: Path, workers: int, scratch: Path, cache: str | None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the run's process and every process it
    waited for) of one `curate run` of the sample files by `checkout`, in a new process."""
    from bench_pipeline import children_cpu, start_curate_run

    out = Path(tempfile.mkdtemp(dir=scratch))
    before = children_cpu()
    started = time.perf_counter()
    run = start_curate_run(
        checkout, ROOT / "corpus" / "incoming", out, workers, None if cache is None else {"CURATE_CACHE_DIR": cache}
    )
    if run.wait() != 0:
        raise SystemExit(f"bench_startup: the run by {checkout} failed (exit {run.returncode})")
    seconds = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)
    return seconds, children_cpu() - before


def main() -> int:
    from bench_pipeline import compile_checkout

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--other", help="another checkout (a git worktree of another commit)")
    args = parser.parse_args()
    checkouts = {"this": ROOT} if args.other is None else {"other": Path(args.other).resolve(), "this": ROOT}
    with tempfile.TemporaryDirectory(prefix="curate-startup-") as folder:
        scratch = Path(folder)
        for checkout in checkouts.values():
            compile_checkout(checkout)
            run_once(checkout, args.workers, scratch, None)  # fills the table cache: untimed
        for label, cache in (("table cache as it is", None), ("table cache off", "off")):
            walls: dict[str, list[float]] = {name: [] for name in checkouts}
            cpus: dict[str, list[float]] = {name: [] for name in checkouts}
            for _ in range(args.rounds):
                for name, checkout in checkouts.items():
                    wall, cpu = run_once(checkout, args.workers, scratch, cache)
                    walls[name].append(wall)
                    cpus[name].append(cpu)
            print(f"{label}, {args.workers} workers, {args.rounds} rounds: " + "; ".join(
                f"{name} median {statistics.median(walls[name]):.3f} s (fastest {min(walls[name]):.3f}), "
                f"CPU median {statistics.median(cpus[name]):.3f} s"
                for name in checkouts
            ))
            if "other" in walls:
                for what, seconds in (("wall", walls), ("CPU", cpus)):
                    paired = [b - a for a, b in zip(seconds["other"], seconds["this"], strict=True)]
                    print(f"  this - other, {what}, per round: median {statistics.median(paired):+.3f} s; "
                          f"less in {sum(d < 0 for d in paired)} of {len(paired)} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
