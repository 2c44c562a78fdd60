"""The best speed-up this machine allows a 2-worker run: two independent 1-worker runs at once.

    .venv/bin/python bench/bench_ceiling.py [--rounds 4] [--corpora ../shared/corpora]

Two copies of the same 1-worker `curate run` of the benchmark input (bench_pipeline's), started
together, share nothing but the machine: no serial part, nothing sent between processes. Their
throughput against one copy alone, 2 x alone / (both done), is the most any 2-worker run of this
work could get here; below 2 when two busy processes slow each other (shared caches and memory
bandwidth, a virtual machine's cores). Each round times, in a rotating order, one 1-worker run
alone, the two copies at once, and one 2-worker run; the medians of the per-round ratios are
printed (this machine's share of its cores moves from minute to minute), with the 2-worker
run's speed-up as a share of the ceiling. Every run is a fresh process writing a fresh corpus
and reports folder, default settings, report included.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import (  # noqa: E402
    compile_checkout,
    corpora_parser,
    found_corpora,
    parallel_capacity,
    prepare_inputs,
    start_curate_run,
)


def timed(inputs: Path, scratch: Path, workers: list[int]) -> float:
    """Wall seconds until every run of `workers` (one run per entry, started together) is done."""
    started = time.perf_counter()
    runs = [start_curate_run(ROOT, inputs, Path(tempfile.mkdtemp(dir=scratch)), count) for count in workers]
    for run in runs:
        if run.wait() != 0:
            raise SystemExit(f"bench_ceiling: a run failed (exit {run.returncode})")
    seconds = time.perf_counter() - started
    for child in scratch.iterdir():
        shutil.rmtree(child, ignore_errors=True)
    return seconds


def main() -> int:
    parser = corpora_parser(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    corpora = found_corpora(args.corpora)
    if corpora is None:
        return 0
    compile_checkout(ROOT)
    kinds = {"1 worker alone": [1], "two 1-worker runs at once": [1, 1], "2 workers": [2]}
    with tempfile.TemporaryDirectory(prefix="curate-ceiling-") as folder:
        inputs, scratch = Path(folder) / "input", Path(folder) / "runs"
        scratch.mkdir()
        files, size = prepare_inputs(corpora, inputs)
        print(f"input: {files} files, {size / 1e6:.1f} MB; parallel capacity of 2 processes before: "
              f"{parallel_capacity(2):.2f} cores")
        timed(inputs, scratch, [1])  # untimed: the table cache filled, the files in the page cache
        walls: dict[str, list[float]] = {kind: [] for kind in kinds}
        names = list(kinds)
        for round_number in range(args.rounds):
            for kind in names[round_number % 3 :] + names[: round_number % 3]:
                walls[kind].append(timed(inputs, scratch, kinds[kind]))
        print(f"parallel capacity after: {parallel_capacity(2):.2f} cores")
    alone, pair, two = (walls[kind] for kind in names)
    for kind in names:
        print(f"{kind}: " + ", ".join(f"{w:.2f}" for w in walls[kind]) + f" s (median {statistics.median(walls[kind]):.2f})")
    ceiling = [2 * a / p for a, p in zip(alone, pair, strict=True)]
    speedup = [a / t for a, t in zip(alone, two, strict=True)]
    share = [s / c for s, c in zip(speedup, ceiling, strict=True)]
    print(f"ceiling (2 x alone / both done), median of {args.rounds} rounds: {statistics.median(ceiling):.2f}x "
          f"({min(ceiling):.2f}-{max(ceiling):.2f})")
    print(f"2-worker speed-up (alone / 2 workers): {statistics.median(speedup):.2f}x "
          f"({min(speedup):.2f}-{max(speedup):.2f}); share of the ceiling {statistics.median(share):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
