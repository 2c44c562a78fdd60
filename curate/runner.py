"""A run: configuration and rules in, a new corpus version and its report out.

The runner knows nothing about what stages do: it loads the rules, finds the inputs, works out
the version id, streams documents from ingest through `curate.pipeline`, and hands the result to
the version writer and the report writer.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from curate import COLLECT_EVERY, ingest
from curate.config import Config
from curate.document import Document
from curate.engine import LocalEngine, SpillError, WorkerLost, default_workers, dumps
from curate.pipeline import build_stages, reads_parent
from curate.report.model import EntryMaker, WrittenIndex
from curate.stages.base import Artifacts, RunContext, let_go
from curate.version import (
    Encoded,
    RunRecord,
    VersionError,
    compute_version_id,
    corpus_lock,
    encode,
    file_sha256,
    read_latest,
    read_manifest,
    records,
    remove_stale_temporaries,
    versions_dir,
    write_latest,
    write_version,
)


class RunError(Exception):
    """A problem that stops the run, said in one line: bad rules, no inputs, a busy corpus, a
    spill folder that cannot be written, a worker process killed."""


@dataclass
class RunResult:
    version_id: str
    version_dir: Path
    created: bool  # False: the version already existed (nothing changed)
    parent: str | None
    counts: dict[str, Any] = field(default_factory=dict)
    skipped: list[ingest.Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reports: dict[str, Path] = field(default_factory=dict)
    latest_moved: bool = False


def load_rules(config: Config) -> Any:
    """The rule set named by the configuration (RuleError for a broken rule file)."""
    from curate.rules import configured_folders
    from curate.rules import load_rules as load

    return load(configured_folders(config.run.rules))


# Input files of at least this many bytes are hashed on threads (`hash_inputs`); smaller ones in
# the run's own thread, meanwhile: a thread's turn per file of a few kilobytes cost more than
# the hashing (20,000 files of 8 KB: 0.33 s on one thread, 1.1 s handed to two).
THREADED_HASH_BYTES = 1 << 20


def hash_inputs(files: list[ingest.InputFile], threads: int = 1) -> list[ingest.Skipped]:
    """The sha256 of every input file (`file.sha256`), which the version id is made of, so
    before any other work: the large files on `threads` threads, since hashlib lets go of the
    GIL while it hashes a block (a terabyte of inputs would take about ten minutes on one core,
    with the others idle, from storage that reads faster than that), the small ones here
    meanwhile. The files that can no longer be read (gone since the scan, say) are taken out
    of `files` and returned, skipped with the reason."""
    large = [n for n, file in enumerate(files) if file.size >= THREADED_HASH_BYTES] if threads > 1 else []
    pool = ThreadPoolExecutor(max(1, min(threads, len(large))), thread_name_prefix="curate-hash")
    try:
        pending = {n: pool.submit(_sha256_or_error, files[n].path) for n in large}
        here = {n: _sha256_or_error(file.path) for n, file in enumerate(files) if n not in pending}
        digests = [pending[n].result() if n in pending else here[n] for n in range(len(files))]
    finally:  # (stopped, by an error or Ctrl-C: the files not begun are not hashed first)
        pool.shutdown(cancel_futures=True)
    skipped, readable = [], []
    for file, digest in zip(files, digests, strict=True):
        if isinstance(digest, OSError):
            skipped.append(ingest.Skipped.unreadable(file.source, digest))
        else:
            file.sha256 = digest
            readable.append(file)
    files[:] = readable
    return skipped


def _sha256_or_error(path: Path) -> str | OSError:
    try:
        return file_sha256(path)
    except OSError as exc:
        return exc


@contextmanager
def fewer_collections(threshold: int = COLLECT_EVERY) -> Iterator[None]:
    """Python's cyclic garbage collector run less often for a while: its first generation
    collected every `threshold` allocations instead of every 700 (the thresholds as they were
    after; forked workers inherit it).

    A run allocates millions of small containers (edits, lines, diff pieces), nearly all
    freed by reference counting, and the collections that so many allocations trigger find
    almost nothing to free: 0.1-0.16 s of a 1-worker run of the benchmark, the same peak
    memory (`bench/ab_pipeline.py`).
    """
    before = gc.get_threshold()
    gc.set_threshold(threshold, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


@fewer_collections()
def run(
    config: Config,
    *,
    inputs: list[str] | None = None,
    corpus: str | Path | None = None,
    reports: str | Path | None = None,
    on_file: Callable[[ingest.FileResult], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
    write_report: bool = True,
) -> RunResult:
    """Curate `inputs` into a new version of `corpus` (defaults from the configuration)."""
    corpus = Path(corpus or config.run.corpus)
    reports_dir = Path(reports or config.run.reports)
    from curate.rules import RuleError

    try:
        rules = load_rules(config)
    except RuleError as exc:  # one line naming file, rule and problem
        raise RunError(str(exc)) from None
    try:
        files, skipped = ingest.scan(inputs or config.run.input, config.ingest)
    except ingest.IngestError as exc:
        raise RunError(str(exc)) from None
    if not files and not skipped:
        raise RunError(f"no input files found in {', '.join(map(str, inputs or config.run.input))}")
    skipped += hash_inputs(files, min(config.run.workers or default_workers(), default_workers()))
    made_of = config.digest_source(), rules.digest(), [(f.source, f.sha256) for f in files]
    try:
        with corpus_lock(corpus, config.run.lock_wait_seconds):
            remove_stale_temporaries(corpus)
            parent = read_latest(corpus)
            version_id = _version_id(corpus, made_of, parent, reads_parent(config))
            existing = versions_dir(corpus) / version_id
            if existing.is_dir():
                moved = parent != version_id
                if moved:
                    write_latest(corpus, version_id)
                result = RunResult(
                    version_id, existing, False, parent, latest_moved=moved,
                    skipped=_in_order(skipped),
                )
                if write_report and not (reports_dir / version_id / "report.json").is_file():
                    result.reports = _write_reports(existing, reports_dir, config.run.workers)
                return result
            if on_plan:
                on_plan(len(files))
            context = RunContext(
                config=config,
                rules=rules,
                parent=versions_dir(corpus) / parent if parent else None,
                state={"artifacts": Artifacts(), "warnings": [], "references": {}},
            )
            input_records: list[dict[str, Any]] = []
            record = RunRecord(
                version_id=version_id,
                config=config.to_dict(),
                rules_digest=rules.digest(),
                inputs=input_records,
                skipped=[],
                parent=parent,
                artifacts=context.state["artifacts"],
                warnings=context.state["warnings"],
                references=context.state["references"],
            )
            engine = make_engine(config)
            try:
                stages = build_stages(context)
            except ValueError as exc:  # a stage's settings that make no sense, e.g. an unknown kind
                raise RunError(str(exc)) from None
            # With the local engine the report's entries are made where documents are encoded,
            # in the last pass's workers (`EntryMaker`; Ray's workers do not share its stop flag).
            maker = EntryMaker() if write_report and isinstance(engine, LocalEngine) else None
            docs = engine.execute(
                _ingest(files, config, skipped, input_records, on_file, engine),
                stages,
                finish=encode if maker is None else partial(_encode_with_entry, maker),
            )
            # The record's lists are filled while the documents stream through the writer, and
            # the report's index of the version is made as it writes.
            written = WrittenIndex(maker) if write_report else None
            folder = write_version(
                corpus, docs, record, lambda: _finish_record(record, skipped), on_written=written
            )
            warnings = list(record.warnings)
            let_go((stages, context, engine))  # (the stages' decisions: kept to the end, or freed)
    except (VersionError, SpillError, WorkerLost) as exc:
        raise RunError(str(exc)) from None
    except OSError as exc:
        raise RunError(f"{corpus}: cannot write the corpus: {exc}") from None
    result = RunResult(
        version_id,
        folder,
        True,
        parent,
        counts=read_manifest(folder)["counts"],
        skipped=_in_order(skipped),
        warnings=warnings,
        latest_moved=True,
    )
    if write_report:
        result.reports = _write_reports(folder, reports_dir, config.run.workers, written)
    return result


def _version_id(
    corpus: Path, made_of: tuple[str, str, list[tuple[str, str]]], parent: str | None, reads: bool
) -> str:
    """The id of the version these inputs, configuration and rules (`made_of`) make on top of
    `parent`, the latest version.

    When a stage's output depends on the parent (`reads`: incremental near-duplicates keep
    the parent's documents first), so does the id: the same files curated into an empty
    corpus and into one that holds copies of them make different versions, and must not share
    an id. The latest version made of the same, on its own parent or on none (an empty corpus;
    or by a curate whose ids did not name the parent), is this run again: a rerun creates
    nothing."""
    alone = compute_version_id(*made_of)
    if not reads or parent is None or parent == alone:
        return alone
    try:
        grandparent = read_manifest(versions_dir(corpus) / parent).get("parent")
    except (OSError, ValueError):  # (a version whose manifest cannot be read: not this run)
        grandparent = None
    if grandparent and compute_version_id(*made_of, grandparent) == parent:
        return parent
    return compute_version_id(*made_of, parent)


def make_engine(config: Config) -> Any:
    """The engine named by run.engine."""
    settings = config.run
    if settings.engine == "local":
        return LocalEngine(
            settings.workers,
            settings.batch_size,
            settings.spill_dir or None,
            spill_memory_mb=settings.spill_memory_mb,
            early=settings.early_pass,
        )
    if settings.engine == "ray":
        from curate.ray_engine import RayEngine

        return RayEngine(
            settings.ray_address or None, workers=settings.workers, block_mb=settings.ray_block_mb
        )
    raise RunError(f"run.engine: unknown engine {settings.engine!r} (known: local, ray)")


def _encode_with_entry(maker: EntryMaker, doc: Document) -> Encoded:
    """The document encoded, with its report entry made from the very records encoded."""
    made = records(doc)
    encoded = encode(doc, made)
    encoded.report_entry = maker(encoded, *made, doc.edits)
    return encoded


def _finish_record(record: RunRecord, skipped: list[ingest.Skipped]) -> None:
    record.skipped = [{"path": s.path, "reason": s.reason} for s in _in_order(skipped)]


def _in_order(skipped: list[ingest.Skipped]) -> list[ingest.Skipped]:
    """Skipped inputs as the manifest and the result list them: by path."""
    return sorted(skipped, key=lambda s: s.path)


def _ingest(
    files: list[ingest.InputFile],
    config: Config,
    skipped: list[ingest.Skipped],
    input_records: list[dict[str, Any]],
    on_file: Callable[[ingest.FileResult], None] | None,
    engine: Any,
) -> Iterator[Document]:
    """The documents of every file, in order: files slow to read (HTML pages) are read by the
    engine's workers (`map_inputs`), the others here, each file's documents made as they are
    wanted (`ingest.read_file_lazily`)."""
    ingest.load_readers(files)
    read = partial(_read_files, settings=config.ingest, pickled=engine.takes_pickled_documents)

    def here(group: list[ingest.InputFile]) -> list[ingest.FileResult] | None:
        """Files quick to read (text, JSON) are read here: a worker would cost more in
        passing them than in reading them."""
        if any(ingest.slow_to_read(file) for file in group):
            return None
        return _read_files(group, config.ingest, pickled=False, lazily=True)

    groups = engine.map_inputs(read, _file_groups(files), here)
    results = (result for group in groups for result in group)
    for file, result in zip(files, results, strict=True):
        _check_unchanged(file, result)  # (a file read block by block: mostly by the check below)
        record = {
            "path": file.source,
            "sha256": file.sha256,
            "bytes": file.size,
            "encoding": result.encoding,
            "documents": 0,
        }
        input_records.append(record)
        for doc in result.documents:
            record["documents"] += 1
            yield doc
        _check_unchanged(file, result)  # (a file read block by block is hashed as it is read)
        # (what a file skipped is known once its documents are made)
        skipped.extend(result.skipped)
        if on_file:
            on_file(result)


def _check_unchanged(file: ingest.InputFile, result: ingest.FileResult) -> None:
    """Stop the run if the file read is not the file hashed at the start (`read_file` hashes
    what it read)."""
    if result.file.sha256 != file.sha256:
        # The version id was computed from the file as it was at the start: a version of
        # other content under that id would break "same inputs, same version".
        raise RunError(
            f"{file.source}: changed while the run was reading its inputs (written to by "
            "another program?); no version written: run again once it is complete"
        )


# Files read as one task: up to this many, of up to this many bytes (a larger file alone). A
# task per file of a folder of small pages costs more in passing it to a worker than in reading
# it there; a task of many files delays the first pass, which starts once the first is read.
READ_TASK_FILES = 64
READ_TASK_BYTES = 1 << 20


def _file_groups(files: list[ingest.InputFile]) -> Iterator[list[ingest.InputFile]]:
    """Consecutive files, in groups of at most `READ_TASK_FILES` and `READ_TASK_BYTES` (or
    one larger file)."""
    group: list[ingest.InputFile] = []
    size = 0
    for file in files:
        if group and (size + file.size > READ_TASK_BYTES or len(group) == READ_TASK_FILES):
            yield group
            group, size = [], 0
        group.append(file)
        size += file.size
    if group:
        yield group


def _read_files(
    files: list[ingest.InputFile], settings: Any, pickled: bool, lazily: bool = False
) -> list[ingest.FileResult]:
    """`ingest.read_file` of a copy of each file (the run's list keeps the hashes it started
    with), the documents pickled if asked: made on a worker, they then go to the next one
    without being unpickled in between; `lazily`: `ingest.read_file_lazily` (where the
    documents are made where they are used: not on a worker, whose results are sent whole)."""
    read = ingest.read_file_lazily if lazily else ingest.read_file
    results = [read(dataclasses.replace(file), settings) for file in files]
    if pickled:
        for result in results:
            result.documents = [dumps(doc) for doc in result.documents]
    return results


def _write_reports(
    version_dir: Path, reports_dir: Path, workers: int, written: WrittenIndex | None = None
) -> dict[str, Path]:
    """The version's report, made by the run's number of workers on this machine, whatever the
    engine: from the entries the run made (`written`) and, for the rest, the version folder."""
    from curate.report import write_reports

    return write_reports(
        version_dir, reports_dir, workers=workers if workers > 0 else default_workers(), written=written
    )
