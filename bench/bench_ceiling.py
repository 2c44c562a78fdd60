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

Then where the 2-worker run's time goes against that ceiling, from the same rounds: a run on
two cores lasts (its CPU seconds + core-seconds left idle) / 2, so its wall above the ceiling's
(both copies' wall / 2) is split into the CPU it spends beyond the two copies' (per copy of the
work) and the idle core-seconds beyond theirs; what the two leave is printed as the rest (other
work on the machine, busy without being any run's CPU; and medians of differences, which need
not add up). CPU seconds are each run's and its waited-for children's (`os.wait4`, as
`/usr/bin/time` counts them); idle core-seconds are the machine's (`/proc/stat`), from the start
to the end of the last run, sampled every 20 ms, and for the last 2-worker run printed as busy
cores per quarter second (the start-up, before the workers fork, shows as one core busy).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

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


class Timed(NamedTuple):
    wall: float  # seconds until every run started together is done
    cpu: float  # CPU seconds of the runs and their children
    idle: float  # core-seconds the machine left idle meanwhile
    busy: list[float]  # busy cores in each quarter second


def _idle_ticks() -> tuple[int, int]:
    """The machine's (idle + iowait ticks, all ticks) so far, over every core (the first eight
    fields of /proc/stat's "cpu" line: guest time is already inside user time)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:9]]
    return values[3] + values[4], sum(values)


def timed(inputs: Path, scratch: Path, workers: list[int]) -> Timed:
    """One run per entry of `workers` (its worker count), started together."""
    ticks = os.sysconf("SC_CLK_TCK")
    started = time.perf_counter()
    samples = [(0.0, *_idle_ticks())]  # (seconds, idle ticks, all ticks), every 20 ms
    runs = [start_curate_run(ROOT, inputs, Path(tempfile.mkdtemp(dir=scratch)), count) for count in workers]
    ended: list[tuple[float, int, int, float, int]] = []  # of each run: its end, as a sample; CPU-s; exit code

    def reap(run: subprocess.Popen[bytes]) -> None:
        """Wait for a run as `wait` does, keeping its rusage (which `wait` drops), the moment and
        the machine's ticks then."""
        _, status, usage = os.wait4(run.pid, 0)
        run.returncode = os.waitstatus_to_exitcode(status)
        at = (time.perf_counter() - started, *_idle_ticks())
        ended.append((*at, usage.ru_utime + usage.ru_stime, run.returncode))

    reapers = [threading.Thread(target=reap, args=(run,)) for run in runs]
    for reaper in reapers:
        reaper.start()
    while any(reaper.is_alive() for reaper in reapers):
        time.sleep(0.02)
        samples.append((time.perf_counter() - started, *_idle_ticks()))
    codes = [code for *_, code in ended]
    if len(ended) != len(runs) or any(codes):
        raise SystemExit(f"bench_ceiling: a run failed (exit codes {codes}, of {len(runs)} runs)")
    for child in scratch.iterdir():
        shutil.rmtree(child, ignore_errors=True)
    last = max(ended)[:3]  # the end of the last run: the samples stop there
    samples = [sample for sample in samples if sample[0] < last[0]] + [last]
    seconds = last[0]
    cpu = sum(used for *_, used, _ in ended)
    idle = (last[1] - samples[0][1]) / ticks
    return Timed(seconds, cpu, idle, _busy_quarters(samples, os.cpu_count() or 1))


def _busy_quarters(samples: list[tuple[float, int, int]], cores: int) -> list[float]:
    """Busy cores in each quarter second from the samples (NaN for a quarter no sample ends,
    the machine too busy to sample); the last value is the rest of the run, under a quarter."""
    busy, mark, quarter = [], 0, 1
    while True:
        if quarter / 4 >= samples[-1][0]:
            end = len(samples) - 1
        else:
            end = next(i for i, sample in enumerate(samples) if sample[0] >= quarter / 4)
        if end == mark:
            busy.append(float("nan"))
        else:
            span = samples[end][2] - samples[mark][2]
            busy.append(cores * (1 - (samples[end][1] - samples[mark][1]) / span) if span else float("nan"))
            mark = end
        if end == len(samples) - 1:
            return busy
        quarter += 1


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
        walls: dict[str, list[Timed]] = {kind: [] for kind in kinds}
        names = list(kinds)
        for round_number in range(args.rounds):
            for kind in names[round_number % 3 :] + names[: round_number % 3]:
                walls[kind].append(timed(inputs, scratch, kinds[kind]))
        print(f"parallel capacity after: {parallel_capacity(2):.2f} cores")
    alone, pair, two = ([t.wall for t in walls[kind]] for kind in names)
    for kind in names:
        runs = walls[kind]
        print(f"{kind}: " + ", ".join(f"{t.wall:.2f}" for t in runs) + f" s (median {median(runs, 'wall'):.2f}); "
              f"CPU {median(runs, 'cpu'):.2f} s, idle {median(runs, 'idle'):.2f} core-s (medians)")
    ceiling = [2 * a / p for a, p in zip(alone, pair, strict=True)]
    speedup = [a / t for a, t in zip(alone, two, strict=True)]
    share = [s / c for s, c in zip(speedup, ceiling, strict=True)]
    print(f"ceiling (2 x alone / both done), median of {args.rounds} rounds: {statistics.median(ceiling):.2f}x "
          f"({min(ceiling):.2f}-{max(ceiling):.2f})")
    print(f"2-worker speed-up (alone / 2 workers): {statistics.median(speedup):.2f}x "
          f"({min(speedup):.2f}-{max(speedup):.2f}); share of the ceiling {statistics.median(share):.0%}")
    # A run on `cores` cores lasts (CPU + idle core-seconds) / cores: the 2-worker run against
    # half of the two copies (one copy's work), term by term, medians of the rounds' differences.
    cores = os.cpu_count() or 1
    pairs, twos = walls["two 1-worker runs at once"], walls["2 workers"]
    # (per round: wall, CPU and idle of the 2-worker run beyond half of the two copies')
    beyond = [(t.wall - p.wall / 2, t.cpu - p.cpu / 2, t.idle - p.idle / 2) for t, p in zip(twos, pairs, strict=True)]
    above, more_cpu, more_idle = (statistics.median(column) for column in zip(*beyond, strict=True))
    # What the two terms leave: other work on the machine (busy, yet no run's CPU), and medians
    # of differences, which need not add up.
    rest = statistics.median(wall - (cpu + idle) / cores for wall, cpu, idle in beyond)
    print(f"2 workers against the ceiling (half of the two copies): {above:+.2f} s of wall; "
          f"{more_cpu:+.2f} CPU-s ({more_cpu / cores:+.2f} s on {cores} cores) and "
          f"{more_idle:+.2f} idle core-s ({more_idle / cores:+.2f} s); the rest {rest:+.2f} s "
          "(other work on the machine) (medians of the rounds)")
    print("busy cores per quarter second, the last 2-worker run (the last value: under a quarter): "
          + " ".join(f"{b:.1f}" for b in twos[-1].busy))
    return 0


def median(runs: list[Timed], field: str) -> float:
    return statistics.median(getattr(run, field) for run in runs)


if __name__ == "__main__":
    sys.exit(main())
