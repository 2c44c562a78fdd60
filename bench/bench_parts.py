"""Parts of a run measured alone, on the whole-pipeline benchmark input (see bench_pipeline.py):
what the last pass makes for the report besides the stages, what the writer counts, the
near-duplicate index, the corrupted-span detectors and the near-duplicate decision.

    .venv/bin/python bench/bench_parts.py [--corpora ../shared/corpora] [--checkout PATH] [--rounds 5]

One run of the pipeline (1 worker, report included) records, as they go by, what the parts
below take as input; each part is then timed alone on that input, `--rounds` times, and the
fastest and the median printed:

- entries: the report entry of every listed document (`report.model._entry_of`: the inline diff
  replayed from the edits, collapsed, encoded as JSON), from the records the run encoded;
- lines: the JSON of the listed documents' records and edit records, as the writer encodes
  them (`version.json_bytes`, orjson), and as the standard encoder would
  (`json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))`, what the writer used before);
- counts: the report's summary tally (`report.model._Tally`) and the manifest's counts
  (`version._Counts`) over every written document;
- index: building the near-duplicate index the version keeps (`dedup._Engine._write_index`,
  the deferred artifact the run builds beside its last pass, straight into the version's file;
  here into memory), from the run's decision;
- detectors: the corrupted-span stage (`CorruptedSpans.process_batch`: every detector) over the
  batches of texts it was given in the run, on fresh documents;
- decide: the near-duplicate decision (`dedup._Engine.decide`), timed inside further runs of the
  pipeline on one worker, where it verifies its candidate pairs itself (its "waves" part).

`--checkout PATH` measures the curate of another checkout (say a `git worktree` of an earlier
commit) with this script: run it once with and once without, to compare two commits part by
part where a whole run is too noisy to tell a few percent. Exits 0 with a "skipped" line when
the corpora are absent.
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def main() -> int:
    from bench_pipeline import corpora_parser, found_corpora, prepare_inputs

    parser = corpora_parser(__doc__.splitlines()[0])
    parser.add_argument("--checkout", help="measure the curate package of this checkout")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    corpora = found_corpora(args.corpora)
    if corpora is None:
        return 0
    checkout = Path(args.checkout).resolve() if args.checkout else ROOT
    sys.path.insert(0, str(checkout))  # (before curate is first imported)

    from curate import config as config_module
    from curate import runner, version
    from curate.report import model
    from curate.stages import corruption, dedup

    assert Path(model.__file__).resolve().is_relative_to(checkout), model.__file__
    with tempfile.TemporaryDirectory(prefix="curate-parts-") as tmp:
        prepare_inputs(corpora, Path(tmp) / "input")

        def run() -> None:
            out = tempfile.mkdtemp(dir=tmp)
            settings = {
                "input": [str(Path(tmp) / "input")],
                "corpus": f"{out}/corpus",
                "reports": f"{out}/reports",
                "rules": [str(checkout / "rules")],
                "workers": 1,
            }
            runner.run(config_module.build({"run": settings}), write_report=True)

        entries, written, decisions, detected, builds = record(run, model, version, dedup, corruption)
        for _ in range(args.rounds - 1):
            run()
        print(f"curate of {checkout}; the fastest of {args.rounds} rounds (the median in brackets)")
        print(f"entries: {shown(timed(args.rounds, lambda: make_entries(model, entries)))} for {len(entries)} documents")
        if hasattr(version, "json_bytes"):  # (a checkout from before it has no such part)
            records = [r for record, edits, _ in entries for r in (record, *edits)]
            standard = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
            ours = shown(timed(args.rounds, lambda: [version.json_bytes(r) for r in records]))
            theirs = shown(timed(args.rounds, lambda: [standard.encode(r).encode("utf-8") for r in records]))
            print(f"lines: {ours} with json_bytes, {theirs} with json.JSONEncoder, for {len(records)} records")
        print(f"counts: {shown(timed(args.rounds, lambda: count(model, version, written)))} for {len(written)} documents")
        if builds:  # (the index is built when incremental near-duplicates are on, the default)
            print(f"index: {shown(timed(args.rounds, builds[0]))} for {len(builds[0]())} bytes")
        stage, batches = detected
        print(
            f"detectors: {shown([detect(stage, batches) for _ in range(args.rounds)])} "
            f"for {sum(map(len, batches))} documents in {len(batches)} batches"
        )
        print(
            f"decide: {shown([d['decide'] for d in decisions])}, of which verifying "
            f"(waves) {shown([d['_in_waves'] for d in decisions])}"
        )
    return 0


def record(
    run: Any, model: Any, version: Any, dedup: Any, corruption: Any
) -> tuple[list[Any], list[Any], list[dict[str, float]], tuple[Any, list[list[str]]], list[Any]]:
    """Run once, keeping the inputs of the entries, the counts and the detectors, and the
    index's build; every run's decision times."""
    entries: list[Any] = []
    batches: list[list[str]] = []
    stages: list[Any] = []
    scan = corruption.CorruptedSpans.process_batch
    builds: list[Any] = []
    defer = dedup.defer_artifact

    def keep_build(state: Any, name: str, build: Any) -> None:
        if not builds:
            builds.append(build)
        defer(state, name, build)

    def keep_batch(self: Any, docs: list[Any]) -> None:
        if not stages:
            stages.append(self)
        batches.append([doc.text for doc in docs])
        scan(self, docs)

    written: list[Any] = []
    decisions: list[dict[str, float]] = []
    make = model.EntryMaker.__call__

    def keep_entry(self: Any, doc: Any, record: dict[str, Any], edits: Any, made: Any) -> Any:
        from curate.document import undo_edits

        entry = make(self, doc, record, edits, made)
        if entry is not None:  # (a listed document)
            entries.append((dict(record), list(edits), undo_edits(record["text"], made)))
        return entry

    add = model.WrittenIndex.__call__

    def keep_written(self: Any, doc: Any, *rest: Any) -> Any:
        written.append(doc)
        return add(self, doc, *rest)

    def timed(name: str, method: Any) -> Any:
        """`method`, its time added to the current decision's record under `name`."""

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if name == "decide":
                decisions.append({})
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                decisions[-1][name] = decisions[-1].get(name, 0.0) + time.perf_counter() - start

        return wrapper

    model.EntryMaker.__call__ = keep_entry
    model.WrittenIndex.__call__ = keep_written
    corruption.CorruptedSpans.process_batch = keep_batch
    dedup.defer_artifact = keep_build
    dedup._Engine.decide = timed("decide", dedup._Engine.decide)
    dedup._Engine._in_waves = timed("_in_waves", dedup._Engine._in_waves)  # (inside decide)
    try:
        run()
    finally:
        model.EntryMaker.__call__ = make
        model.WrittenIndex.__call__ = add
        corruption.CorruptedSpans.process_batch = scan
        dedup.defer_artifact = defer
    return entries, written, decisions, (stages[0], batches), builds


def make_entries(model: Any, entries: list[Any]) -> None:
    limits = model.Limits()
    for record, edits, text_in in entries:
        model._entry_of(dict(record), edits, True, limits, True, text_in)


def detect(stage: Any, batches: list[list[str]]) -> float:
    """Seconds the stage takes over the recorded batches (fresh documents, made untimed)."""
    from curate.document import Document

    fresh = [[Document.new(f"doc{i}", text) for i, text in enumerate(batch)] for batch in batches]
    start = time.perf_counter()
    for docs in fresh:
        stage.process_batch(docs)
    return time.perf_counter() - start


def count(model: Any, version: Any, written: list[Any]) -> None:
    tally, counts = model._Tally(), version._Counts()
    for doc in written:
        tally.add_document(doc.status, doc.flags)
        if doc.edits:
            tally.add_edits(doc.edits)
        counts.add(doc)
    tally.result({"config": {}})
    counts.result()


def timed(rounds: int, work: Any) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return times


def shown(times: list[float]) -> str:
    """The fastest time, the one least disturbed by the rest of the machine, and the median."""
    return f"{min(times):.3f} s ({statistics.median(times):.3f})"


if __name__ == "__main__":
    sys.exit(main())
