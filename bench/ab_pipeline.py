"""Two checkouts of curate, the whole pipeline, alternated: is one faster than the other?

    .venv/bin/python bench/ab_pipeline.py OTHER_CHECKOUT [--rounds 6] [--workers 1,2]
        [--corpora ../shared/corpora] [--report] [--instructions] [--engine local|ray]
        [--shape short|copies|pages]

    (an older commit: git worktree add /tmp/curate-base <commit>)

This machine's share of its two cores changes from minute to minute (bench_pipeline.py prints
it as "parallel capacity"), so two runs made minutes apart do not compare two versions of the
code. Here each round runs the other checkout, then this one, back to back, on the same input
(as bench_pipeline.py prepares it, or with `--shape` one of bench_shapes.py's) and with the
same interpreter; the figure to read is the median of the paired differences. CPU seconds (of the run and every process it started) are
paired too: they move less than wall time when the machine is busy. Each run is a child
process (`curate.runner.run`; with `--report` it writes the report too, as `curate run` does)
that imports curate from its own checkout. The version id and the sha256 of every file of the
version (data files and index, from its manifest) are compared too, and with `--report` the
documents embedded in report.html (each checkout's across its rounds, and the two checkouts').
`--engine ray` runs both on a local Ray of `--workers` CPUs, started and stopped by each run
(its start, seconds, is in every run's wall; the CPU of Ray's own processes is not all counted).

Before the rounds, each checkout's `curate/` is compiled to bytecode (where Python is told not
to write it, or after an edit, a run would otherwise compile modules at start-up) and run once
untimed (the table cache then holds what its code derives, as after any earlier run).

`--instructions` also runs each checkout once on 1 worker under valgrind's callgrind and prints
the instructions executed by the run's process (start-up included; not the near-duplicate index
builder it forks, whose count callgrind starts from its parent's): a count that does not
move with the machine's load, for a change of a few percent of CPU work that timed rounds
cannot resolve. Both runs see the same hash seed (`PYTHONHASHSEED=0`: set and dict orders, and
so some work, otherwise differ from run to run) and reach their checkout through paths of the
same length (symlinks in the scratch folder: a path's length moves the count too). Identical
code in two checkouts then counted 0.05% apart (38.04 and 38.02 G), where they had counted
0.9% apart without. It is not time (memory stalls are not in it), and a run
takes about 50 times as long as without valgrind (Debian package valgrind; "skipped" when
absent). Exits 0 with a "skipped" line when the corpora are absent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

CHILD = """
import json, sys, time
try:  # (as the curate command's process: curate.cli.entry; a checkout from before it had none)
    from curate.allocator import keep_freed_memory
    keep_freed_memory()
except ImportError:
    pass
from curate import config, runner
started = time.perf_counter()
settings = config.build({"run": {"workers": int(sys.argv[1]), "engine": sys.argv[5]}})
report = sys.argv[4] == "report"
result = runner.run(settings, inputs=[sys.argv[2]], corpus=sys.argv[3], reports=sys.argv[3] + "/reports",
                    write_report=report)
seconds = time.perf_counter() - started
files = json.loads((result.version_dir / "manifest.json").read_text(encoding="utf-8"))["files"]
if report:  # the page's documents (its head shows each run's own folders)
    import hashlib
    page = result.reports["html"].read_bytes()
    start = page.index(b',"documents":[')
    files["report.html documents"] = hashlib.sha256(page[start : page.index(b"</script>", start)]).hexdigest()
print(json.dumps({"seconds": seconds, "version": result.version_id, "files": files}))
"""


def run_once(
    checkout: Path, workers: int, inputs: Path, scratch: Path, report: bool, engine: str = "local"
) -> dict:
    """One run in a child process: its figures, plus the CPU seconds of the child and every
    process it started and waited for (workers, the index builder), start-up included."""
    from bench_pipeline import children_cpu

    corpus = Path(tempfile.mkdtemp(dir=scratch))
    cpu = children_cpu()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(workers), str(inputs), str(corpus), "report" if report else "-", engine],
        cwd=checkout,  # the checkout's own rules/ and curate/
        env={**os.environ, "PYTHONPATH": str(checkout)},
        capture_output=True, text=True, check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["cpu"] = children_cpu() - cpu
    return figures


def instructions(checkout: Path, inputs: Path, scratch: Path, report: bool) -> int:
    """Instructions executed by the process of one 1-worker run of `checkout` (callgrind's
    "Collected" count). The index builder, a process the run forks, is left out: callgrind's
    count in a forked process starts from its parent's at the fork. The checkout is reached
    through a symlink of fixed length, with a fixed hash seed (see the module)."""
    corpus = Path(tempfile.mkdtemp(dir=scratch, prefix="count-"))
    via = corpus / "checkout"
    via.symlink_to(checkout, target_is_directory=True)
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={corpus}/callgrind.%p",
         sys.executable, "-c", CHILD, "1", str(inputs), str(corpus / "out"), "report" if report else "-", "local"],
        cwd=via, env={**os.environ, "PYTHONPATH": str(via), "PYTHONHASHSEED": "0"},
        capture_output=True, text=True, check=True,
    )
    driver = re.search(r"==(\d+)==", done.stderr)  # (valgrind's first line is the run's process)
    counts = dict(re.findall(r"==(\d+)== Collected : (\d+)", done.stderr))
    if driver is None or driver.group(1) not in counts:
        raise RuntimeError(f"no instruction count for {checkout} in valgrind's output")
    return int(counts[driver.group(1)])


def main() -> int:
    from bench_pipeline import compile_checkout, corpora_parser
    from bench_shapes import SHAPES, shape_input

    parser = corpora_parser(__doc__.splitlines()[0])
    parser.add_argument("other", help="the other checkout (a git worktree of another commit)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--report", action="store_true", help="runs write the report too, as `curate run` does")
    parser.add_argument("--engine", choices=["local", "ray"], default="local")
    parser.add_argument("--instructions", action="store_true",
                        help="also count each checkout's instructions on 1 worker (valgrind callgrind)")
    parser.add_argument("--shape", choices=sorted(SHAPES),
                        help="one of bench/bench_shapes.py's inputs instead of the benchmark's")
    args = parser.parse_args()
    found = shape_input(args.shape, args.corpora)
    if found is None:
        return 0
    corpora, prepare = found

    checkouts = {"other": Path(args.other).resolve(), "this": ROOT}
    with tempfile.TemporaryDirectory(prefix="curate-ab-") as folder:
        scratch = Path(folder)
        size = prepare(corpora.resolve(), scratch / "input")
        print(f"input: {args.shape or 'the benchmark'}, {size / 1e6:.1f} MB; "
              f"other = {checkouts['other']}, this = {ROOT}")
        for checkout in checkouts.values():  # bytecode, and the table cache filled: untimed
            compile_checkout(checkout)
            run_once(checkout, 2, scratch / "input", scratch, args.report, args.engine)
        # (--rounds 0: no timed rounds, only the instruction counts)
        worker_counts = [int(w) for w in args.workers.split(",")] if args.rounds > 0 else []
        for workers in worker_counts:
            walls: dict[str, list[float]] = {"other": [], "this": []}
            cpus: dict[str, list[float]] = {"other": [], "this": []}
            outputs, reports = set(), set()
            for _ in range(args.rounds):
                for name, checkout in checkouts.items():
                    figures = run_once(checkout, workers, scratch / "input", scratch, args.report, args.engine)
                    walls[name].append(figures["seconds"])
                    cpus[name].append(figures["cpu"])
                    page = figures["files"].pop("report.html documents", None)
                    outputs.add(json.dumps([figures["version"], figures["files"]], sort_keys=True))
                    reports.add((name, page))
            paired = [b - a for a, b in zip(walls["other"], walls["this"], strict=True)]
            print(f"\n{workers} worker(s), engine {args.engine}, {args.rounds} rounds, wall seconds in run order")
            for name in checkouts:
                print(f"  {name}: " + ", ".join(f"{w:.2f}" for w in walls[name])
                      + f"  (median {statistics.median(walls[name]):.2f}, "
                      f"{size / 1e6 / statistics.median(walls[name]):.2f} MB/s)")
            print(f"  this - other, per round: median {statistics.median(paired):+.2f} s "
                  f"({statistics.median(paired) / statistics.median(walls['other']):+.0%}); "
                  f"faster in {sum(d < 0 for d in paired)} of {len(paired)} rounds")
            cpu_paired = [b - a for a, b in zip(cpus["other"], cpus["this"], strict=True)]
            print("  CPU seconds, all processes: "
                  + ", ".join(f"{name} median {statistics.median(cpus[name]):.2f}" for name in checkouts)
                  + f"; this - other, per round: median {statistics.median(cpu_paired):+.2f} s "
                  f"({statistics.median(cpu_paired) / statistics.median(cpus['other']):+.0%}), "
                  f"less in {sum(d < 0 for d in cpu_paired)} of {len(cpu_paired)} rounds")
            print(f"  same version id and every file (data, index): {'yes' if len(outputs) == 1 else 'NO'}")
            if args.report:  # the report's format may differ between checkouts; each is compared with itself
                same = all(len({page for n, page in reports if n == name}) == 1 for name in checkouts)
                print(f"  each checkout's report documents the same in every round: {'yes' if same else 'NO'}; "
                      f"the same in both checkouts: {'yes' if len({page for _, page in reports}) == 1 else 'no'}")
        if args.instructions:
            if shutil.which("valgrind") is None:
                print("\ninstructions: skipped, valgrind not found (Debian package valgrind)")
                return 0
            counted = {name: instructions(checkout, scratch / "input", scratch, args.report)
                       for name, checkout in checkouts.items()}
            print("\ninstructions executed by the run's process, 1 worker, once each (valgrind callgrind): "
                  + ", ".join(f"{name} {counted[name] / 1e9:.3f} G" for name in checkouts)
                  + f"; this - other {(counted['this'] - counted['other']) / 1e9:+.3f} G"
                  f" ({(counted['this'] - counted['other']) / counted['other']:+.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
