"""Whole-pipeline benchmark: ingest -> every stage -> a written version and its report, on ~19 MB
of real news.

    .venv/bin/python bench/bench_pipeline.py [--corpora ../shared/corpora] [--workers N]
        [--engines local,ray] [--profile] [--keep] [--no-report]

A run is what `curate run` does with default settings: the version, then report.json and
report.html (`--no-report` leaves the report out, as this script did before 2026-12-03, when
the README's figures did not include it). The report's time is also shown on its own: its wall
seconds, and its CPU seconds in the driver and in the workers that make its documents' entries,
from the version written to the report written. With the local engine a run makes the entries
of a report within its limits in the last pass, as it encodes the documents (`EntryMaker`): that
work is then in the pass (per-stage table: in "other" for 1 worker, in no stage's row for more),
and the report's own figures are putting the entries in order and writing the two files.

Input (read from `--corpora`, never copied into the repository): the NewsSpider JSON lines
(`.txt` files that are JSON lines: linked as `.jsonl`), the TaiwanStat `.json` files as they
are (malformed on purpose: ingest salvages record by record), and THUCNews `label<TAB>text`
lines (converted to JSON lines). Everything goes into a temporary folder, deleted at the end.

Each configuration (local engine with 1 worker, local with all workers, Ray with all workers)
runs `curate.runner.run` in its own child process (the local ones `--repeat` times, default 3,
alternated, and the median run by wall time reported: the share of the two cores this machine
gives a process varies from minute to minute), so imports, warm-up and peak memory are its
own; the checkout's `curate/` is compiled to bytecode first (`compile_checkout`). The parent
samples the memory of the child's whole process tree (PSS: shared pages of forked workers are
not counted twice); the child reports its own peak RSS (the driver). The
outputs (sha256 of each data file, text bytes) are read by the parent once the child has ended,
so reading them counts in neither figure.

Per-stage figures come from timing wrappers this script puts around each stage instance (the
stages themselves contain no timing code): `run_list` of per-document stages, `summarise_many` /
`observe` / `decide` / `apply` of corpus stages, and the exclusive time of stages that run
themselves (time in their `run` minus time spent pulling from upstream). They are CPU-seconds
summed over the workers. The wrappers cost time themselves (a lock per call), so each local
configuration runs twice: the first, plain run gives wall time, CPU and memory; the second,
instrumented run gives the per-stage table (its total and "other" are its own CPU figures). Ray workers are not
instrumented (only the driver-side parts are). MB/s is input megabytes (file bytes, 10^6) per
second; "text MB" is the UTF-8 size of the decoded documents.

`--profile` runs the 1-worker pipeline under pyinstrument (installed for the benchmark only:
`.venv/bin/pip install pyinstrument`) and prints where the time goes, by module and by function.

Exits 0 with a "skipped: ... not found" line when the corpora are absent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NEWSSPIDER = Path("lzjqsdd-NewsSpider/testdata/data/orinews")
TAIWANSTAT = Path("TaiwanStat-Taiwan-news-crawlers")
THUCNEWS = Path("qianshuang-dl-exp/data/cnews/cnews.val.txt")
MB = 1_000_000


# --------------------------------------------------------------------------- input
def corpora_parser(description: str) -> argparse.ArgumentParser:
    """A command line for a benchmark of this input: --corpora, the folder that holds it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    return parser


def children_cpu() -> float:
    """CPU seconds (user + system) of every process this one has waited for so far: read
    before and after a run started as a child, the run's own and its workers'."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


SOURCES = (NEWSSPIDER, TAIWANSTAT, THUCNEWS)  # (this input's, in `corpora`)


def first_missing(corpora: Path, sources: Iterable[Path]) -> Path | None:
    """The first of `sources` not in `corpora`, or None."""
    return next((corpora / source for source in sources if not (corpora / source).exists()), None)


def found_corpora(path: str, sources: Iterable[Path] = SOURCES) -> Path | None:
    """The corpora folder, if it holds `sources` (by default the three corpora of this input);
    else None, after the "skipped" line every benchmark prints without them."""
    corpora = Path(path)
    missing = first_missing(corpora, sources)
    if missing is not None:
        print(f"skipped: {missing} not found")
        return None
    return corpora


def compile_checkout(checkout: Path) -> None:
    """Bytecode for every module of the checkout's `curate/`, written now: where Python is told
    not to write it (PYTHONDONTWRITEBYTECODE, as on this machine) or after an edit, every timed
    run would compile modules at start-up (~0.1-0.2 s). And, for a checkout whose setup.py
    compiles modules (`COMPILED`), those whose source changed since they were built, built in
    place (`make compile`): else they would run as Python (`curate._compiled`), and a
    comparison of two checkouts would compare compiled code with Python."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(checkout / "curate")], check=True)
    setup = checkout / "setup.py"
    if setup.is_file() and "COMPILED" in setup.read_text(encoding="utf-8"):
        subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=checkout, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )


def start_curate_run(
    checkout: Path, inputs: Path, out: Path, workers: int, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`curate run INPUTS -q` by `checkout` (its own curate/ and rules/) into `out`/corpus and
    `out`/reports, in a new process, started: what a user runs, for the scripts that time it
    from outside. `env`: variables added to this process's."""
    return subprocess.Popen(
        [sys.executable, "-m", "curate", "run", str(inputs), "-q", "--corpus", str(out / "corpus"),
         "--reports", str(out / "reports"), "--workers", str(workers)],
        cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout), **(env or {})},
        stdout=subprocess.DEVNULL,
    )


def timed_run(checkout: Path, inputs: Path, out: Path, workers: int) -> tuple[float, int]:
    """Wall seconds and peak PSS (KB, all processes) of one `curate run` by `checkout`."""
    started = time.perf_counter()
    process = start_curate_run(checkout, inputs, out, workers)
    memory = TreeMemory(process.pid)
    memory.start()
    code = process.wait()
    seconds = time.perf_counter() - started
    memory.done.set()
    memory.join()
    if code != 0:
        raise SystemExit(f"{Path(sys.argv[0]).name}: the run by {checkout} failed (exit {code})")
    return seconds, memory.peak_kb


def prepare_inputs(corpora: Path, folder: Path) -> tuple[int, int]:
    """Link or convert the three sources into `folder`; returns (files, bytes)."""
    news = folder / "newsspider"
    news.mkdir(parents=True)
    for path in sorted((corpora / NEWSSPIDER).glob("*.txt")):
        (news / f"{path.stem}.jsonl").symlink_to(path)
    for path in sorted((corpora / TAIWANSTAT).rglob("*.json")):
        target = folder / "taiwanstat" / path.relative_to(corpora / TAIWANSTAT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path)
    thuc = folder / "thucnews"
    thuc.mkdir()
    with (corpora / THUCNEWS).open(encoding="utf-8") as source, (thuc / "cnews.val.jsonl").open(
        "w", encoding="utf-8"
    ) as out:
        for line in source:
            label, _, text = line.rstrip("\n").partition("\t")
            out.write(json.dumps({"category": label, "text": text}, ensure_ascii=False) + "\n")
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


# --------------------------------------------------------------------------- memory sampling
def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _memory_kb(pid: int) -> int:
    """PSS of a process (its share of shared pages), falling back to RSS."""
    for path, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if line.startswith(key):
                        return int(line.split()[1])
        except OSError:
            continue
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class TreeMemory(threading.Thread):
    """Peak of the summed memory of a process and all its descendants, and the CPU time they
    used (each process's last reading; a process that ends between samples loses < 0.1 s)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.done = pid, 0, threading.Event()
        self.cpu: dict[int, float] = {}

    def run(self) -> None:
        while not self.done.is_set():
            tree, pids, total = _children(), [self.pid], 0
            while pids:
                pid = pids.pop()
                total += _memory_kb(pid)
                self.cpu[pid] = max(self.cpu.get(pid, 0.0), _cpu_seconds(pid))
                pids.extend(tree.get(pid, []))
            self.peak_kb = max(self.peak_kb, total)
            self.done.wait(0.1)

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())


# --------------------------------------------------------------------------- child: one run
# Stage timers count CPU time of the calling thread: other work on the machine (and the other
# processes of the run itself, on 2 cores) would otherwise inflate wall-clock stage times.
_clock = time.thread_time

class Timers:
    """Seconds and calls per name, in shared memory so forked workers add to the same slots."""

    def __init__(self, names: list[str]) -> None:
        import multiprocessing

        self.names = names
        self.seconds = multiprocessing.Array("d", len(names))
        self.calls = multiprocessing.Array("q", len(names))

    def add(self, index: int, seconds: float, calls: int = 1) -> None:
        with self.seconds.get_lock():
            self.seconds[index] += seconds
            self.calls[index] += calls

    def result(self) -> dict[str, dict[str, float]]:
        return {n: {"seconds": self.seconds[i], "calls": self.calls[i]} for i, n in enumerate(self.names)}


def _timed(timers: Timers, index: int, method: Any, calls: Any = 1) -> Any:
    """`method` timed; `calls`: documents per call, or a function of the first argument."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = _clock()
        try:
            return method(*args, **kwargs)
        finally:
            timers.add(index, _clock() - start, calls(args[0]) if callable(calls) else calls)

    return wrapper


class _Upstream:
    """Wraps an iterator and counts the time spent pulling from it."""

    def __init__(self, items: Any) -> None:
        self.items, self.seconds = iter(items), 0.0

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        start = _clock()
        try:
            return next(self.items)
        finally:
            self.seconds += _clock() - start


def _exclusive(timers: Timers, index: int, run: Any) -> Any:
    """A stage's own `run`, timed without the time its upstream takes."""

    def wrapper(docs: Any) -> Iterator[Any]:
        upstream = _Upstream(docs)
        inner = iter(run(upstream))
        while True:
            start, pulled = _clock(), upstream.seconds
            try:
                doc = next(inner)
            except StopIteration:
                timers.add(index, _clock() - start - (upstream.seconds - pulled), 0)
                return
            timers.add(index, _clock() - start - (upstream.seconds - pulled))
            yield doc

    return wrapper


def instrument(stages: list[Any], timers: Timers, offset: int, local: bool) -> None:
    """Timing wrappers on stage instances. On Ray only the driver-side stages are wrapped (the
    others are pickled to the workers, and the shared counters cannot travel)."""
    from curate.stages.base import CorpusStage, DocumentStage

    for i, stage in enumerate(stages, start=offset):
        if isinstance(stage, CorpusStage):
            if local:
                stage.summarise_many = _timed(timers, i, stage.summarise_many, _batch_size)
                stage.apply = _timed(timers, i, stage.apply, 0)
                stage.observe = _timed(timers, i, stage.observe, 0)
                stage.decide = _timed(timers, i, stage.decide, 0)
        elif isinstance(stage, DocumentStage) and stage.runs_lists():
            if local:  # (the engine's workers give it their task's documents: `Phase.run`)
                stage.run_list = _timed(timers, i, stage.run_list, _batch_size)
        elif local or not isinstance(stage, DocumentStage):
            # A stage with its own `run`: timed without the time its upstream takes.
            stage.run = _exclusive(timers, i, stage.run)


def _batch_size(docs: list[Any]) -> int:
    return len(docs)


def _timed_iterator(timers: Timers, index: int, items: Iterator[Any]) -> Iterator[Any]:
    while True:
        start = _clock()
        try:
            item = next(items)
        except StopIteration:
            timers.add(index, _clock() - start, 0)
            return
        timers.add(index, _clock() - start)
        yield item


def as_the_command() -> None:
    """Set this process up as the `curate` command's is before its run (`curate.cli.entry`):
    its C allocator keeps freed memory (`curate.allocator`; a checkout from before it had none)."""
    try:
        from curate.allocator import keep_freed_memory
    except ImportError:
        return
    keep_freed_memory()


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One pipeline run as described by `spec`, in a process set up as the command's
    (`as_the_command`); returns its figures."""
    as_the_command()
    from curate import config as config_module
    from curate import runner
    from curate.pipeline import stage_classes

    names = ["ingest", *[cls.name for cls in stage_classes()]]
    timers = Timers(names)
    build_stages = runner.build_stages
    ingest = runner._ingest
    local = spec["engine"] == "local"

    def instrumented_build(context: Any) -> list[Any]:
        stages = build_stages(context)
        instrument(stages, timers, 1, local)
        return stages

    def instrumented_ingest(*args: Any, **kwargs: Any) -> Iterator[Any]:
        return _timed_iterator(timers, 0, ingest(*args, **kwargs))

    if spec.get("instrument", True):
        runner.build_stages = instrumented_build
        runner._ingest = instrumented_ingest
    out = Path(spec["out"])
    config = config_module.build(
        {
            "run": {
                "input": [spec["input"]],
                "corpus": str(out / "corpus"),
                "reports": str(out / "reports"),
                "rules": [str(ROOT / "rules")],
                "engine": spec["engine"],
                "workers": spec["workers"],
            },
            **{name: {"enabled": False} for name in spec.get("disable", [])},
        }
    )
    profiler = None
    if spec.get("profile"):
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    startup: list[float] = []
    if not local:
        from curate import ray_engine

        connect = ray_engine.RayEngine._connect

        def timed_connect(self: Any) -> Any:
            begin = time.perf_counter()
            try:
                return connect(self)
            finally:
                startup.append(time.perf_counter() - begin)

        ray_engine.RayEngine._connect = timed_connect
    report_figures: dict[str, float] = {}
    if spec.get("report", True):
        import curate.report

        write_reports = curate.report.write_reports

        def timed_reports(*args: Any, **kwargs: Any) -> Any:
            begin, times = time.perf_counter(), os.times()
            try:
                return write_reports(*args, **kwargs)
            finally:
                end = os.times()
                report_figures["seconds"] = time.perf_counter() - begin
                report_figures["driver_cpu"] = end.user - times.user + end.system - times.system
                report_figures["workers_cpu"] = (end.children_user - times.children_user
                                                 + end.children_system - times.children_system)

        curate.report.write_reports = timed_reports
    start, cpu_start = time.perf_counter(), time.process_time()
    result = runner.run(config, write_report=spec.get("report", True))
    seconds, driver_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if profiler is not None:
        profiler.stop()
        print_profile(profiler, seconds)
    return {
        "seconds": seconds,
        "driver_cpu_seconds": driver_cpu,
        "startup_seconds": sum(startup),
        "version": result.version_id,
        "counts": {k: result.counts[k] for k in ["documents_in", "documents_out", "duplicates", "quarantined", "edits"]},
        "skipped": len(result.skipped),
        "stages": timers.result(),
        "report": report_figures,
        "driver_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "version_dir": str(result.version_dir),
        "report_json": str(result.reports["json"]) if result.reports else "",
    }


def outputs(figures: dict[str, Any]) -> tuple[dict[str, str], int]:
    """sha256 of each data file (and of the report's documents: its head shows each run's own
    settings), and the UTF-8 bytes of text out. Read here, in the parent, after the run's
    process has ended: reading 100 MB of output is not the run's memory or time."""
    folder = Path(figures["version_dir"])
    digests = {}
    for name in ["documents.jsonl", "quarantine.jsonl", "duplicates.jsonl", "edits.jsonl"]:
        digests[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()[:16]
    if figures["report_json"]:
        data = Path(figures["report_json"]).read_bytes()
        documents = memoryview(data)[data.index(b',"documents":[') :]
        digests["report.json documents"] = hashlib.sha256(documents).hexdigest()[:16]
    text_bytes = 0
    for name in ["documents.jsonl", "quarantine.jsonl", "duplicates.jsonl"]:
        with (folder / name).open(encoding="utf-8") as handle:
            for line in handle:
                text_bytes += len(json.loads(line)["text"].encode("utf-8"))
    return digests, text_bytes


def print_profile(profiler: Any, seconds: float, top: int = 25) -> None:
    """Self time by module and by function, from pyinstrument's call tree. Time in built-ins
    (a regex search, str.join) counts for the Python function that called them, so the tables
    say whose code the time goes to."""
    by_module: dict[str, float] = {}
    by_function: dict[str, float] = {}
    stack: list[tuple[Any, Any]] = [(profiler.last_session.root_frame(), None)]
    while stack:
        frame, owner = stack.pop()
        builtin = (frame.file_path or "<built-in>") == "<built-in>"
        if not frame.is_synthetic and not (builtin and owner is not None):
            owner = frame
        stack.extend((child, owner) for child in frame.children)
        if frame.is_synthetic:  # "[self]" leaves: already counted in their parent's self time
            continue
        own = frame.total_self_time
        if own <= 0 or owner is None:
            continue
        path = owner.file_path_short or owner.file_path or "?"
        module = path.split("site-packages/")[-1].split("python3.11/")[-1]
        by_module[module] = by_module.get(module, 0.0) + own
        name = f"{owner.function} ({module}:{owner.line_no})"
        by_function[name] = by_function.get(name, 0.0) + own
    print(f"\n### Profile (pyinstrument, 1 worker, {seconds:.1f} s; built-ins count for their caller)\n")
    print("| self s | share | module |\n|---:|---:|---|")
    for module, own in sorted(by_module.items(), key=lambda kv: -kv[1])[:top]:
        print(f"| {own:.2f} | {own / seconds:.0%} | {module} |")
    print("\n| self s | share | function |\n|---:|---:|---|")
    for name, own in sorted(by_function.items(), key=lambda kv: -kv[1])[:top]:
        print(f"| {own:.2f} | {own / seconds:.0%} | {name} |")
    sys.stdout.flush()


# --------------------------------------------------------------------------- parent
def _burn(count: int) -> int:
    total = 0
    for i in range(count):
        total += i * i
    return total


def parallel_capacity(workers: int, count: int = 5_000_000) -> float:
    """How many cores' worth of pure-Python work `workers` processes get right now (other work
    on a shared machine lowers it): read the speed-up figures against it."""
    import multiprocessing

    start = time.perf_counter()
    _burn(count)
    one = time.perf_counter() - start
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(_burn, [count] * workers)
    return workers * one / (time.perf_counter() - start)


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    memory = TreeMemory(process.pid)
    memory.start()
    stdout, _ = process.communicate()
    memory.done.set()
    memory.join()
    if process.returncode != 0:
        raise SystemExit(f"bench_pipeline: the {spec['label']} run failed (exit {process.returncode})")
    *printed, last = stdout.rstrip("\n").split("\n")
    if printed:
        print("\n".join(printed))
    figures = json.loads(last)
    figures["tree_peak_kb"] = memory.peak_kb
    figures["tree_cpu_seconds"] = memory.cpu_seconds
    figures["digests"], figures["text_bytes_out"] = outputs(figures)
    return figures


def main() -> int:
    parser = corpora_parser(__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=0, help="all-workers runs (0: all cores)")
    parser.add_argument("--engines", default="local,ray", help="comma-separated: local, ray")
    parser.add_argument("--profile", action="store_true", help="profile the 1-worker run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--disable", default="", help="comma-separated stages to switch off")
    parser.add_argument(
        "--repeat", type=int, default=3,
        help="plain runs of each local configuration, alternated; the median run is reported",
    )
    parser.add_argument("--no-report", action="store_true",
                        help="runs without the report (report.json and report.html), as before 2026-12-03")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    corpora = found_corpora(args.corpora)
    if corpora is None:
        return 0
    from curate.engine import default_workers

    workers = args.workers or default_workers()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if "ray" in engines:
        try:
            import ray.data  # noqa: F401
        except ImportError:
            print("ray engine skipped: Ray Data not installed (pip install 'curate[ray]')")
            engines.remove("ray")
    runs: list[tuple[str, str, int]] = []
    if "local" in engines:
        runs.append(("local, 1 worker", "local", 1))
        if workers > 1:
            runs.append((f"local, {workers} workers", "local", workers))
    if "ray" in engines:
        runs.append((f"ray, {workers} CPUs", "ray", workers))

    disable = [name.strip() for name in args.disable.split(",") if name.strip()]
    if disable:
        print(f"stages switched off: {', '.join(disable)}")
    compile_checkout(ROOT)
    tmp = Path(tempfile.mkdtemp(prefix="curate-bench-"))
    try:
        files, size = prepare_inputs(corpora, tmp / "input")
        print(f"input: {files} files, {size / MB:.1f} MB ({corpora}); {default_workers()} cores, "
              f"load average before: {os.getloadavg()[0]:.1f}, "
              f"parallel capacity of {workers} processes: {parallel_capacity(workers):.2f} cores")
        if args.profile:
            run_child({"label": "profile", "engine": "local", "workers": 1, "input": str(tmp / "input"),
                       "out": str(tmp / "profile"), "profile": True, "disable": disable,
                       "report": not args.no_report})
        specs = [
            {"label": label, "engine": engine, "workers": count, "input": str(tmp / "input"),
             "out": str(tmp / f"run{number}"), "disable": disable, "instrument": engine != "local",
             "report": not args.no_report}
            for number, (label, engine, count) in enumerate(runs)
        ]
        # Plain runs, the local configurations alternated `--repeat` times (this machine's
        # share of its two cores varies from minute to minute); Ray once.
        plain: dict[str, list[dict[str, Any]]] = {spec["label"]: [] for spec in specs}
        for repeat in range(max(1, args.repeat)):
            for spec in specs:
                if spec["engine"] == "local" or repeat == 0:
                    plain[spec["label"]].append(run_child(spec))
                    shutil.rmtree(spec["out"], ignore_errors=True)
        results: list[tuple[str, dict[str, Any]]] = []
        for spec in specs:
            label, engine = spec["label"], spec["engine"]
            done = sorted(plain[label], key=lambda f: f["seconds"])
            figures = done[len(done) // 2]  # the median run
            figures["walls"] = [f["seconds"] for f in plain[label]]
            figures["repeat_outputs"] = [[f["version"], f["digests"]] for f in done]
            if engine == "local":  # per-stage figures from a second, instrumented run
                timed = run_child({**spec, "instrument": True})
                shutil.rmtree(spec["out"], ignore_errors=True)
                figures["stages"] = timed["stages"]
                figures["timed_driver_cpu_seconds"] = timed["driver_cpu_seconds"]
                figures["timed_tree_cpu_seconds"] = timed["tree_cpu_seconds"]
                figures["timed_report"] = timed["report"]
                figures["digests_timed"] = timed["digests"]
            results.append((label, figures))
        report(results, files, size, workers)
        print(f"load average after: {os.getloadavg()[0]:.1f}, parallel capacity of {workers} processes: "
              f"{parallel_capacity(workers):.2f} cores (other work on the machine inflates the figures)")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results: list[tuple[str, dict[str, Any]]], files: int, size: int, workers: int) -> None:
    if not results:
        return
    first = results[0][1]
    counts = first["counts"]
    print(
        f"documents: {counts['documents_in']} in, {counts['documents_out']} out, "
        f"{counts['duplicates']} duplicates, {counts['quarantined']} quarantined, "
        f"{counts['edits']} edits; {first['skipped']} inputs skipped; "
        f"text out {first['text_bytes_out'] / MB:.1f} MB\n"
    )
    docs = counts["documents_in"]
    with_report = bool(first["report"])
    print(f"wall s: the whole run{', report included' if with_report else ' (without the report)'}; "
          "MB/s: input megabytes per wall second\n")
    print("| run | wall s | of which report | MB/s | documents/s | CPU-s, all processes | CPU-s, driver | "
          "peak RSS, driver | peak memory, all processes (PSS) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, figures in results:
        s = figures["seconds"]
        startup = f" (Ray start {figures['startup_seconds']:.1f} s)" if figures["startup_seconds"] else ""
        in_report = f"{figures['report']['seconds']:.1f}" if figures["report"] else "-"
        print(
            f"| {label} | {s:.1f}{startup} | {in_report} | {size / MB / s:.2f} | {docs / s:.0f} | "
            f"{figures['tree_cpu_seconds']:.1f} | {figures['driver_cpu_seconds']:.1f} | "
            f"{figures['driver_peak_kb'] / 1024:.0f} MB | "
            f"{figures['tree_peak_kb'] / 1024:.0f} MB |"
        )
    print("\nwall seconds of every plain run, in order (the median run is the one in the table): "
          + "; ".join(f"{label}: " + ", ".join(f"{w:.1f}" for w in f["walls"]) for label, f in results))
    local_runs = [f for label, f in results if label.startswith("local")]
    if len(local_runs) == 2:
        print(f"\nspeed-up 1 -> {workers} workers: {local_runs[0]['seconds'] / local_runs[1]['seconds']:.2f}x")
    same = {json.dumps([f["version"], f["digests"]]) for _, f in results}
    same |= {json.dumps([f["version"], f["digests_timed"]]) for _, f in results if "digests_timed" in f}
    same |= {json.dumps(output) for _, f in results for output in f["repeat_outputs"]}
    print(f"identical output (version id and sha256 of every data file) across runs: {'yes' if len(same) == 1 else 'NO'}")
    if len(same) > 1:
        for label, figures in results:
            print(f"  {label}: version {figures['version']}, {figures['digests']}")

    timed = [(label, f) for label, f in results if label.startswith("local")]
    if not timed:
        return
    header = "| stage | " + " | ".join(
        f"{label}: s | MB/s | docs/s" for label, _ in timed
    ) + " |"
    print("\nPer stage: CPU-seconds in the stage (summed over workers); MB/s and docs/s: what the stage")
    print("alone sustains on one core. 'other' (1 worker): driver CPU not in any stage.\n")
    print(header)
    print("|---|" + "---:|---:|---:|" * len(timed))
    names = list(first["stages"])
    extra = ["report (driver + its workers)"] if with_report else []
    for name in [*names, *extra, "other (engine, pickling, writing)", "total (CPU, all processes)"]:
        cells = []
        for _, figures in timed:
            stages = figures["stages"]
            report_cpu = figures["timed_report"].get("driver_cpu", 0.0)
            if name.startswith("report"):
                s, calls = report_cpu + figures["timed_report"]["workers_cpu"], 0
            elif name.startswith("total"):
                s = figures["timed_tree_cpu_seconds"]
                calls = docs
            elif name.startswith("other"):
                s = max(0.0, figures["timed_driver_cpu_seconds"] - report_cpu
                        - sum(v["seconds"] for v in stages.values()))
                calls = 0
                if figures is not timed[0][1]:
                    cells.append("- | - | -")
                    continue
            else:
                s, calls = stages[name]["seconds"], stages[name]["calls"] or docs
            rate = f"{size / MB / s:.1f}" if s > 0 else "-"
            per_doc = f"{calls / s:.0f}" if s > 0 and calls else "-"
            cells.append(f"{s:.2f} | {rate} | {per_doc}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
