"""The pools' worker-handling thread: how often it wakes in a run, and what the driver spends,
with CPython's own pool and with curate's (`curate.engine._Pool`), on the whole-pipeline
benchmark input (see bench_pipeline.py).

    .venv/bin/python bench/pool_rounds.py [--corpora ../shared/corpora] [--rounds 5] [--workers 2]

Runs `curate run` (report included) alternately with each pool, each run in a fresh process,
and prints per run: the rounds the worker-handling thread of the driver's pools made (one call of
`Pool._maintain_pool` each), that thread's CPU seconds in `Pool._wait_for_updates`, the driver's
CPU seconds (`getrusage`, its own process only) and the run's wall seconds; then the paired
differences (the two runs of a round) and the medians per pool. CPython's pool also wakes that thread on the results pipe, so it goes round while a
result waits there to be read. Exits 0 with a "skipped" line when the corpora are absent.
"""

from __future__ import annotations

import json
import multiprocessing.pool
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def one_run(pool: str, inputs: Path, out: Path, workers: int) -> dict[str, float]:
    """One run in this process, with the named pool; what it measured."""
    from curate import config, engine, runner

    if pool == "stock":
        engine._Pool = multiprocessing.pool.Pool  # type: ignore[misc]  # (what _forked_pool makes)
    driver = os.getpid()
    rounds = [0]
    waited = [0.0]
    maintain, wait = multiprocessing.pool.Pool._maintain_pool, multiprocessing.pool.Pool._wait_for_updates

    def counted_maintain(*args: object) -> None:
        if os.getpid() == driver:
            rounds[0] += 1
        maintain(*args)

    def timed_wait(*args: object, **kwargs: object) -> None:
        began = time.thread_time()
        wait(*args, **kwargs)
        if os.getpid() == driver:
            waited[0] += time.thread_time() - began

    multiprocessing.pool.Pool._maintain_pool = staticmethod(counted_maintain)  # type: ignore[method-assign]
    multiprocessing.pool.Pool._wait_for_updates = staticmethod(timed_wait)  # type: ignore[method-assign]
    assert threading.current_thread() is threading.main_thread()
    settings = config.build({"run": {"workers": workers}})
    began = time.perf_counter()
    runner.run(
        settings, inputs=[str(inputs)], corpus=out / "corpus", reports=out / "reports", write_report=True
    )
    wall = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rounds": rounds[0],
        "wait_cpu": waited[0],
        "driver_cpu": usage.ru_utime + usage.ru_stime,
        "wall": wall,
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        _, _, pool, inputs, out, workers = sys.argv
        print(json.dumps(one_run(pool, Path(inputs), Path(out), int(workers))))
        return 0
    from bench_pipeline import corpora_parser, found_corpora, prepare_inputs

    parser = corpora_parser(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    corpora = found_corpora(args.corpora)
    if corpora is None:
        return 0
    with tempfile.TemporaryDirectory(prefix="curate-pool-rounds-") as tmp:
        folder = Path(tmp)
        files, size = prepare_inputs(corpora, folder / "input")
        print(f"input: {files} files, {size / 1e6:.1f} MB; {args.workers} workers, report included")
        results: dict[str, list[dict[str, float]]] = {"stock": [], "curate": []}
        for number in range(args.rounds):
            for pool in results:
                out = folder / f"{pool}-{number}"
                made = subprocess.run(
                    [sys.executable, __file__, "--one", pool, str(folder / "input"), str(out), str(args.workers)],
                    capture_output=True, text=True, check=True, cwd=ROOT,
                )
                found = json.loads(made.stdout.strip().splitlines()[-1])
                results[pool].append(found)
                print(
                    f"{pool:6s} rounds {found['rounds']:6d}  thread CPU in wait {found['wait_cpu']:.3f} s  "
                    f"driver CPU {found['driver_cpu']:.2f} s  wall {found['wall']:.2f} s"
                )
        for key, what in (("wall", "wall"), ("driver_cpu", "driver CPU")):
            differences = [c[key] - s[key] for s, c in zip(results["stock"], results["curate"], strict=True)]
            print(
                f"curate - stock, {what}, per round: median {statistics.median(differences):+.2f} s; "
                f"less in {sum(d < 0 for d in differences)} of {len(differences)} rounds"
            )
        for pool, runs in results.items():
            medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            print(
                f"median, {pool}: rounds {medians['rounds']:.0f}, thread CPU in wait {medians['wait_cpu']:.3f} s, "
                f"driver CPU {medians['driver_cpu']:.2f} s, wall {medians['wall']:.2f} s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
