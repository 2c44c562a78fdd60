"""Where a run's CPU goes, process by process and part by part, with 1 and with 2 workers.

    .venv/bin/python bench/cpu_accounts.py [--workers 1,2] [--rounds 3] [--corpora ../shared/corpora]
        [--shape pages|short|copies]

`bench/bench_ceiling.py` says how much more CPU a 2-worker run spends than the work itself
needs; this says where it goes. Each run is `curate run` of bench_pipeline's input (or of one
of bench_shapes' shapes, `--shape`; default settings, report included) in a fresh process:
this script as its own child (`--child`), which installs the accounting below, then starts
curate's command line as `curate run` would.

- Every process of the run, the driver and each one it forks, writes as it ends its CPU seconds
  (user, system), its minor page faults, when it was born and ended (since the driver
  started), and its role: what its pool runs (the first pass, the early pass, the last pass,
  the input reader, the report's entries, the decision's parallel work) or the artifact build.
- The thread CPU time (`time.thread_time`) spent in each part of the work, its own (the parts
  it calls taken out): each stage's work (`run_list` of per-document stages; `summarise_many`,
  `observe`, `decide`, `apply` of corpus stages), documents pickled and unpickled between
  passes and written to the run's document file, summaries packed and unpacked, a task's own
  bookkeeping (`Phase.run`), inputs read, documents encoded and their report entries made, the
  version's writer, the report written after it, the artifact build, and the driver's start-up
  (imports and configuration, until `curate.runner.run`) and set-up (rules, inputs scanned and
  hashed); the driver's other threads (the pools' task, result and worker handlers, the early
  pass's feeder), the pool workers' loop (tasks received, results sent: the pipes and the
  pools' bookkeeping), and apart from these the pools' messages pickled and unpickled (the
  first pass's documents as the driver made them, on their way to it; the summaries, encoded
  documents and report entries on their way back). What a process spent outside every part
  is "the rest" (its start; a fork's first moments). Its exit is not counted: a process's
  figures are read as it calls `os._exit`.

Printed: per worker count, the processes by role (CPU-s, of which system, faults, how long
they lived), and the parts, with the difference between the last worker count and the first;
medians of `--rounds` runs of each (alternated). The wrappers cost a little time themselves
(two clock reads a call), so the totals are a little above a plain run's. The checkout's
`curate/` is compiled first (bench_pipeline's `compile_checkout`). Exits 0 with a "skipped"
line when the corpora are absent.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import compile_checkout, corpora_parser  # noqa: E402
from bench_shapes import SHAPES, shape_input  # noqa: E402

# ------------------------------------------------------------------ in the run's processes
_PARTS: dict[str, float] = defaultdict(float)
_LOCAL = threading.local()
_PROCESS: dict[str, Any] = {"role": "driver", "born": 0.0}
_STARTED = time.time()  # (the driver's start: inherited by its forks)


def _stack() -> list[float]:
    stack = getattr(_LOCAL, "stack", None)
    if stack is None:
        stack = _LOCAL.stack = []
    return stack


def _own(name: str | Callable[..., str], function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, its thread CPU time counted to the part `name` (or `name(*args)`), less
    the time of the parts it calls."""

    @functools.wraps(function)
    def accounted(*args: Any, **kwargs: Any) -> Any:
        stack = _stack()
        start = time.thread_time()
        stack.append(0.0)
        try:
            return function(*args, **kwargs)
        finally:
            inner = stack.pop()
            spent = time.thread_time() - start
            _PARTS[name if isinstance(name, str) else name(*args)] += spent - inner
            if stack:
                stack[-1] += spent

    return accounted


def _own_items(name: str, items: Iterable[Any]) -> Iterator[Any]:
    """`items`, the time spent making each counted to the part `name`."""
    following = _own(name, iter(items).__next__)
    while True:
        try:
            item = following()
        except StopIteration:
            return
        yield item


def _in_role(role: str | Callable[..., str], function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, which names its process's role first (`role`, or `role(*args)`)."""

    @functools.wraps(function)
    def playing(*args: Any, **kwargs: Any) -> Any:
        _PROCESS["role"] = role if isinstance(role, str) else role(*args)
        return function(*args, **kwargs)

    return playing


def _role_of(task: Any, *_: Any) -> str:
    """What a pool's processes run, from its task."""
    from curate import engine

    function = getattr(task, "func", None)
    if function is engine._stored_run:
        return "early pass"
    if function is engine._each:
        return "input reader"
    phase = getattr(task, "__self__", None)
    if isinstance(phase, engine.Phase):
        if phase.finish is not None:
            return "last pass"
        if phase.apply is not None:
            return f"pass after {phase.apply.name}"
        return "first pass"
    name = getattr(function or task, "__name__", type(task).__name__)
    return "report entries" if "entries" in name else "decision's parallel work" if name == "<lambda>" else name


def _write_account() -> None:
    import resource

    # (`getrusage`, to the microsecond: `os.times` counts in ticks of 10 ms, rounded down)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = {
        **_PROCESS,
        "ended": time.time() - _STARTED,
        "user": usage.ru_utime,
        "system": usage.ru_stime,
        "faults": usage.ru_minflt,
        "parts": dict(_PARTS),
    }
    path = Path(os.environ["CURATE_ACCOUNTS"]) / f"{os.getpid()}.json"
    path.write_text(json.dumps(record), encoding="utf-8")


def _forked() -> None:
    _PARTS.clear()
    _LOCAL.stack = []
    _PROCESS.update(role="fork", born=time.time() - _STARTED)


def _install() -> None:
    """The wrappers, before curate runs: on module functions (the engine, the runner, the
    stages' base: compiled, they still look these up at each call), classes' methods, and
    `multiprocessing`'s."""
    from curate import engine, runner
    from curate.pipeline import stage_classes
    from curate.report import model
    from curate.stages import base

    def stage_part(verb: str) -> Callable[..., str]:
        return lambda stage, *_: f"stage {stage.name}: {verb}"

    base.DocumentStage.run_list = _own(stage_part("documents"), base.DocumentStage.run_list)
    for cls in stage_classes():
        if issubclass(cls, base.CorpusStage):
            for verb in ("summarise_many", "observe", "decide", "apply"):
                if verb in vars(cls):
                    setattr(cls, verb, _own(stage_part(verb), vars(cls)[verb]))
            for verb in ("pack_summary", "unpack_summary"):
                method = getattr(cls, verb)
                setattr(cls, verb, _own("summaries packed and unpacked", method))
    # (in the driver, what is unpickled is the early pass's results, read back from its file;
    # with one worker, documents are objects and this is next to nothing)
    engine.loads = _own(
        lambda *_: "unpickled by the driver: the early pass's results" if _PROCESS["role"] == "driver"
        else "documents unpickled",
        engine.loads,
    )
    engine.dumps = _own("documents pickled", engine.dumps)
    engine.DocumentFile.put = _own("document file written", engine.DocumentFile.put)
    engine.Phase.run = _own("a task's own work (engine.Phase.run)", engine.Phase.run)
    runner.records = _own("documents encoded", runner.records)
    runner.encode = _own("documents encoded", runner.encode)
    model.EntryMaker.__call__ = _own("report entries made", model.EntryMaker.__call__)
    runner._read_files = _own("inputs read", runner._read_files)
    ingest = runner._ingest
    runner._ingest = lambda *args, **kwargs: _own_items("inputs read", ingest(*args, **kwargs))
    for name in ("load_rules", "hash_inputs"):
        setattr(runner, name, _own("set-up: rules, inputs scanned and hashed", getattr(runner, name)))
    runner.ingest.scan = _own("set-up: rules, inputs scanned and hashed", runner.ingest.scan)
    write_version = runner.write_version

    def written(corpus: Any, docs: Any, *args: Any, **kwargs: Any) -> Any:
        return write_version(corpus, _own_items("engine: the driver's own work", docs), *args, **kwargs)

    runner.write_version = _own("version written (the writer's own work)", written)
    runner._write_reports = _own("report written, after the version", runner._write_reports)
    base._build_and_send = _in_role("artifact build", _own("artifacts built (near-duplicate index)", base._build_and_send))
    run = runner.run

    def timed_run(*args: Any, **kwargs: Any) -> Any:
        _PARTS["start-up: imports, configuration"] += time.thread_time()
        return run(*args, **kwargs)

    runner.run = timed_run
    engine._start_worker = _in_role(_role_of, engine._start_worker)
    # The pools' threads in the driver, and their workers' loop (tasks received, results sent)
    import multiprocessing.pool as pool

    for name, part in (
        ("_handle_tasks", "pools' task thread (tasks pickled, sent)"),
        ("_handle_results", "pools' result thread (results received, unpickled)"),
        ("_handle_workers", "pools' worker thread"),
    ):
        setattr(pool.Pool, name, staticmethod(_own(part, getattr(pool.Pool, name))))
    pool.worker = _own("pool worker loop (tasks received, results sent)", pool.worker)
    # What the pools' messages hold, pickled and unpickled (tasks: the first pass's documents
    # as the driver made them; results: summaries, encoded documents and their entries)
    from multiprocessing.reduction import ForkingPickler

    ForkingPickler.dumps = classmethod(_own("pool messages pickled", ForkingPickler.dumps.__func__))
    ForkingPickler.loads = staticmethod(_own("pool messages unpickled", ForkingPickler.loads))
    engine._stored_run = _own("early pass: results pickled into its file", engine._stored_run)
    engine._EarlyPass._feed = _own("early pass: the driver's feeder thread", engine._EarlyPass._feed)


def child(folder: str, arguments: list[str]) -> None:
    """Run `curate run arguments` in this process, accounted (see the module docstring)."""
    os.environ["CURATE_ACCOUNTS"] = folder
    os.register_at_fork(after_in_child=_forked)
    end = os._exit

    def ended(code: int) -> None:
        _write_account()
        end(code)

    os._exit = ended
    from curate.cli import entry

    _install()
    sys.argv = ["curate", "run", *arguments]
    entry()


# ------------------------------------------------------------------ here
def _run(inputs: Path, scratch: Path, workers: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(dir=scratch) as out, tempfile.TemporaryDirectory(dir=scratch) as accounts:
        arguments = [str(inputs), "-q", "--corpus", f"{out}/corpus", "--reports", f"{out}/reports",
                     "--workers", str(workers)]  # fmt: skip
        subprocess.run(
            [sys.executable, __file__, "--child", accounts, *arguments],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, check=True,
        )
        return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(Path(accounts).glob("*.json"))]


def _roles(processes: list[dict[str, Any]]) -> dict[str, list[float]]:
    """role -> [processes, CPU-s, system CPU-s, faults, first born, last ended]."""
    roles: dict[str, list[float]] = {}
    for p in processes:
        row = roles.setdefault(p["role"], [0, 0.0, 0.0, 0, p["born"], p["ended"]])
        row[0] += 1
        row[1] += p["user"] + p["system"]
        row[2] += p["system"]
        row[3] += p["faults"]
        row[4], row[5] = min(row[4], p["born"]), max(row[5], p["ended"])
    return roles


def _parts(processes: list[dict[str, Any]]) -> dict[str, float]:
    """part -> CPU-s over every process; each process's rest as "the rest: <role>"."""
    parts: dict[str, float] = defaultdict(float)
    for p in processes:
        for name, seconds in p["parts"].items():
            parts[name] += seconds
        parts[f"the rest: {p['role']}"] += p["user"] + p["system"] - sum(p["parts"].values())
    return parts


def _median_rows(tables: list[dict[str, Any]], columns: int | None) -> dict[str, Any]:
    keys = {key for table in tables for key in table}
    if columns is None:
        return {key: statistics.median(table.get(key, 0.0) for table in tables) for key in keys}
    return {
        key: [statistics.median(table[key][i] for table in tables if key in table) for i in range(columns)]
        for key in keys
    }


def main() -> int:
    parser = corpora_parser(__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--shape", choices=SHAPES, help="one of bench/bench_shapes.py's shapes instead of the benchmark input"
    )
    args = parser.parse_args()
    found = shape_input(args.shape, args.corpora)
    if found is None:
        return 0
    corpora, prepare = found
    counts = [int(n) for n in args.workers.split(",")]
    compile_checkout(ROOT)
    runs: dict[int, list[list[dict[str, Any]]]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory(prefix="curate-accounts-") as folder:
        inputs, scratch = Path(folder) / "input", Path(folder) / "runs"
        scratch.mkdir()
        size = prepare(corpora, inputs)
        print(f"input: {args.shape or 'the benchmark'}, {size / 1e6:.1f} MB; {args.rounds} runs of each, medians")
        _run(inputs, scratch, counts[0])  # untimed: the table cache filled, the files in the page cache
        for _ in range(args.rounds):
            for n in counts:
                runs[n].append(_run(inputs, scratch, n))
    parts = {n: _median_rows([_parts(r) for r in runs[n]], None) for n in counts}
    for n in counts:
        roles = _median_rows([_roles(r) for r in runs[n]], 6)
        total = statistics.median(sum(p["user"] + p["system"] for p in r) for r in runs[n])
        print(f"\n{n} worker(s): {total:.2f} CPU-s in all\n")
        print("| process | count | CPU-s | of which system | minor faults | alive (s after the start) |")
        print("|---|---:|---:|---:|---:|---|")
        for role, (count, cpu, system, faults, born, ended) in sorted(roles.items(), key=lambda kv: kv[1][4]):
            print(f"| {role} | {count:.0f} | {cpu:.2f} | {system:.2f} | {faults:,.0f} | {born:.2f}-{ended:.2f} |")
    first, last = counts[0], counts[-1]
    print("\nCPU-s by part, over every process (thread CPU time, each part's own)\n")
    print("| part | " + " | ".join(f"{n} worker(s)" for n in counts) + f" | {last} - {first} |")
    print("|---|" + "---:|" * (len(counts) + 1))
    names = sorted({name for n in counts for name in parts[n]}, key=lambda name: -max(abs(parts[n].get(name, 0.0)) for n in counts))
    for name in names:
        values = [parts[n].get(name, 0.0) for n in counts]
        if max(abs(v) for v in values) < 0.005:
            continue
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {values[-1] - values[0]:+.2f} |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
    else:
        raise SystemExit(main())
