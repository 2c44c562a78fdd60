"""Where the wall time of one run goes: the passes over the documents, the corpus stages' decisions
and the driver's own CPU, on the whole-pipeline benchmark input (see bench_pipeline.py), or with
`--shape` one of bench_shapes.py's inputs (`short`: one-sentence documents; `copies`: 12 of each).

    .venv/bin/python bench/pipeline_timeline.py [--corpora ../shared/corpora] [--workers 2] [--shape short|copies|pages]

Prints one line per event: seconds since the run started (wall), the driver's CPU seconds so far,
and the event (a pass over the documents yields its first result / ends; a `parallel`
call of a corpus stage's decide; the end). Between the end of a pass and the first result of the
next lies what only the driver does: the corpus stage's decide and the first batch of the next
pass (which also loads the next stages' tables before the pool forks).
Then the bytes the driver sent to and received from other processes through pipes (the pools'
tasks and results, the index builder's result), counted by wrapping multiprocessing's
`Connection`: what the driver copies while the workers wait; and the bytes of pickled documents
the workers wrote to the run's document file between passes (`engine.DocumentFile`); and the
size of the near-duplicate summaries the driver keeps until `decide` (what grows with the corpus),
and the driver's peak memory (the run's tables and rules, the summaries, the decision's own
structures, the writer's index of the version).
Exits 0 with a "skipped" line when the corpora are absent.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> int:
    from bench_pipeline import as_the_command, corpora_parser
    from bench_shapes import SHAPES, shape_input

    parser = corpora_parser(__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--shape", choices=["news", *SHAPES], default="news",
        help="the input: the whole-pipeline benchmark's (news) or one of bench_shapes.py's",
    )
    args = parser.parse_args()
    found = shape_input(None if args.shape == "news" else args.shape, args.corpora)
    if found is None:
        return 0
    corpora, prepare = found

    as_the_command()
    from curate import config, engine, runner

    start = time.time()
    events: list[tuple[float, float, str]] = []

    def mark(what: str) -> None:
        events.append((time.time() - start, time.process_time(), what))

    parallel_map, decide_call = engine.parallel_map, engine.DecideWorkers.__call__

    passes = 0

    def timed_passes(task: Any, docs: Any, workers: int, batch_size: int, local: Any = None) -> Any:
        # Passes are chained generators: the last one is pulled first, so they are numbered
        # in the order their first results arrive (pass 1 first).
        nonlocal passes
        count, number = 0, 0
        for result in parallel_map(task, docs, workers, batch_size, local):
            if count == 0:
                passes += 1
                number = passes
                mark(f"pass {number}: first result")
            count += 1
            yield result
        mark(f"pass {number} ends ({count} documents)")

    def timed_parallel(workers: Any, function: Any, items: list[Any]) -> list[Any]:
        began = time.time()
        results = decide_call(workers, function, items)
        mark(f"decide: parallel {function.__name__}, {len(items)} items, {time.time() - began:.2f} s")
        return results

    engine.parallel_map = timed_passes
    engine.DecideWorkers.__call__ = timed_parallel  # type: ignore[method-assign]

    from multiprocessing import connection

    driver = os.getpid()
    traffic = {"sent": [0, 0], "received": [0, 0]}  # bytes, messages
    send_bytes, recv_bytes = connection.Connection._send_bytes, connection.Connection._recv_bytes

    def counted_send(self: Any, buffer: Any) -> None:
        if os.getpid() == driver:  # forked workers inherit the wrapper: count the driver only
            traffic["sent"][0] += len(buffer)
            traffic["sent"][1] += 1
        send_bytes(self, buffer)

    def counted_recv(self: Any, maxsize: Any = None) -> Any:
        received = recv_bytes(self, maxsize)
        if os.getpid() == driver:
            traffic["received"][0] += received.getbuffer().nbytes
            traffic["received"][1] += 1
        return received

    connection.Connection._send_bytes = counted_send  # type: ignore[method-assign]
    connection.Connection._recv_bytes = counted_recv  # type: ignore[method-assign]

    stored: list[int] = []  # bytes of documents the workers put in the run's document file
    document_file = getattr(engine, "DocumentFile", None)
    if document_file is not None:
        close = document_file.close

        def counted_close(self: Any) -> None:
            stored.append(self.size.value)
            close(self)

        document_file.close = counted_close  # type: ignore[method-assign]
    from curate.stages import dedup

    observed = [0, 0]  # bytes of the near-duplicate summaries the driver keeps, their paragraphs
    observe = dedup.NearDuplicates.observe

    def counted_observe(self: Any, summary: Any) -> None:
        observed[0] += len(summary.id.encode()) + np.asarray(summary.text_utf8).nbytes
        if isinstance(summary, dedup._Record):  # (its two blocks: a view of one is not counted twice)
            observed[0] += summary.wide.nbytes + summary.narrow.nbytes
        else:
            observed[0] += sum(getattr(summary, name).nbytes for name in dedup._ARRAYS)
        observed[1] += summary.spans.shape[0]
        observe(self, summary)

    dedup.NearDuplicates.observe = counted_observe  # type: ignore[method-assign]
    folder = Path(tempfile.mkdtemp(prefix="curate-timeline-"))
    try:
        size = prepare(corpora, folder / "input")
        files = sum(1 for path in (folder / "input").rglob("*") if path.is_file())
        at_start = _rss_mib()
        start = time.time()
        settings = config.build({"run": {"workers": args.workers}})
        runner.run(
            settings,
            inputs=[str(folder / "input")],
            corpus=folder / "corpus",
            reports=folder / "reports",
            write_report=False,
        )
        mark("version written")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"input: {files} files, {size / 1e6:.1f} MB; {args.workers} workers")
    print("| wall s | driver CPU s | event |\n|---:|---:|---|")
    for wall, cpu, what in events:
        print(f"| {wall:.2f} | {cpu:.2f} | {what} |")
    for way, (size_sent, messages) in traffic.items():
        print(f"driver {way} through pipes: {size_sent / 1e6:.1f} MB in {messages} messages")
    if observed[1]:
        print(
            f"near-duplicate summaries kept until decide: {observed[0] / 1e6:.1f} MB for "
            f"{observed[1]} paragraphs, {observed[0] / observed[1]:.0f} bytes per paragraph"
        )
    if stored:
        print(f"pickled documents written to the run's document file: {sum(stored) / 1e6:.1f} MB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # (KiB on Linux)
    print(f"driver's peak RSS: {peak:.0f} MiB, {peak - at_start:.0f} MiB more than when the run started")
    return 0


def _rss_mib() -> float:
    """This process's resident memory now (Linux's /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
