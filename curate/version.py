"""Immutable, content-addressed corpus versions.

A version lives in `<corpus>/versions/<id>/` and is never changed once written:

- `documents.jsonl`  the clean documents (id, source, text, meta, flags), in input order
- `quarantine.jsonl` documents a policy set aside, with their flags and reason
- `duplicates.jsonl` documents found to duplicate another, with `duplicate_of`
- `edits.jsonl`      every edit of every document, in the order made
- `index/`           artifacts stages keep for the next run (e.g. the near-duplicate index)
- `manifest.json`    tool version, effective config, rules digest, inputs and their sha256,
                     sha256 of every output document and file, parent, counts, skipped inputs

The id is a hash of what determines the output (tool version, config, rules, inputs), so the
same run twice gives the same id and the second run has nothing to do. A version is written to
a temporary folder and renamed into place, and `LATEST` is replaced atomically after that: a run
killed at any moment leaves either no new version or a complete one, and a usable LATEST.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from curate import __version__
from curate.atomic import InBackground, replace_file
from curate.document import DUPLICATE, OK, QUARANTINED, Document
from curate.stages.base import Artifacts

VERSIONS = "versions"
LATEST = "LATEST"
LOCK = ".lock"
# The data file of each document status (a status not listed goes to quarantine), then the edit log.
STATUS_FILES = {OK: "documents.jsonl", QUARANTINED: "quarantine.jsonl", DUPLICATE: "duplicates.jsonl"}
DATA_FILES = [*STATUS_FILES.values(), "edits.jsonl"]
# Buffer of the files a run writes line by line: a record is a few kilobytes, more than the
# default buffer, so each would be its own write call (12,000 on the benchmark).
WRITE_BUFFER = 1 << 20


class VersionError(Exception):
    """A version that does not exist, or a corpus folder that cannot be used."""


# The standard encoder, for what orjson does not write as it would (see `json_bytes`): one
# instance, since `json.dumps` with non-default options builds a new encoder per call.
_STANDARD_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# Types orjson writes and the standard encoder does not, or writes otherwise (subclasses of str,
# int, dict, list; dataclasses; dates): handed to `_not_orjsons`, so they go the standard way.
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
)


def _not_orjsons(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__}: for the standard encoder")


def json_bytes(value: Any) -> bytes:
    """Compact JSON in UTF-8, non-ASCII written as it is: the one encoding of every line we
    write (stable: same record, same bytes).

    orjson writes it 2-3x faster than the standard encoder (`json.JSONEncoder(ensure_ascii=False,
    separators=(",", ":"))`) on our records, whose bulk is Chinese text (bench/bench_parts.py,
    part "lines"), and the same bytes:
    for every string (tests compare the two over every code point) and for every float we
    write (rounded to 4 places). Two differences stay: a float below 1e-4 may be written
    0.00001 where the standard encoder writes 1e-05 (both read back as the same number), and a
    NaN or infinity is written null (the standard encoder's NaN is not JSON). What orjson
    does not write (a dict key not a string, an integer beyond 64 bits, a tuple subclass, and
    the types `_ORJSON_OPTIONS` hands back) is written by the standard encoder.
    """
    try:
        return orjson.dumps(value, default=_not_orjsons, option=_ORJSON_OPTIONS)
    except TypeError:  # (orjson.JSONEncodeError is one)
        return _STANDARD_ENCODER.encode(value).encode("utf-8")


# A line of a JSON-lines file: orjson writes the newline into the buffer it encodes into.
_LINE_OPTIONS = _ORJSON_OPTIONS | orjson.OPT_APPEND_NEWLINE


def json_line(value: Any) -> bytes:
    """`json_bytes(value)` and a newline. The writer makes one for every record and edit of a
    run (29,042 on the benchmark): made in one buffer, not copied into another for the newline."""
    try:
        return orjson.dumps(value, default=_not_orjsons, option=_LINE_OPTIONS)
    except TypeError:  # (what `json_bytes` writes with the standard encoder)
        return json_bytes(value) + b"\n"


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read a block at a time (an index file may be large)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def compute_version_id(
    config_digest: str, rules_digest: str, inputs: Iterable[tuple[str, str]], parent: str | None = None
) -> str:
    """Hash of tool version, configuration, rules and (source, sha256) of every input, and of
    the parent version's id when the output depends on it (given: see `curate.runner`)."""
    h = hashlib.sha256()
    h.update(f"curate {__version__}\n".encode())
    h.update(config_digest.encode("utf-8") + b"\n")
    h.update(rules_digest.encode("utf-8") + b"\n")
    for source, digest in sorted(inputs):
        h.update(f"{source}\t{digest}\n".encode())
    if parent is not None:  # (after a NUL, which no source holds)
        h.update(f"\0parent\t{parent}\n".encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- locating versions
def versions_dir(corpus: Path) -> Path:
    return Path(corpus) / VERSIONS


def read_latest(corpus: Path) -> str | None:
    path = Path(corpus) / LATEST
    if not path.is_file():
        return None
    value = path.read_text(encoding="utf-8").strip()
    return value if value and (versions_dir(corpus) / value).is_dir() else None


def write_latest(corpus: Path, version_id: str) -> None:
    replace_file(Path(corpus) / LATEST, [f"{version_id}\n".encode()])


def list_versions(corpus: Path) -> list[dict[str, Any]]:
    """Manifests of all versions, oldest first."""
    folder = versions_dir(corpus)
    if not folder.is_dir():
        return []
    manifests = []
    for path in folder.iterdir():
        manifest = path / "manifest.json"
        if path.is_dir() and not path.name.startswith(".") and manifest.is_file():
            manifests.append(json.loads(manifest.read_text(encoding="utf-8")))
    return sorted(manifests, key=lambda m: (m.get("created", ""), m["version"]))


def resolve(corpus: Path, ref: str | None) -> Path:
    """The folder of a version given as an id, a unique id prefix, or LATEST (default)."""
    if ref in (None, "", "LATEST", "latest"):
        latest = read_latest(corpus)
        if latest is None:
            raise VersionError(f"{corpus}: no versions yet (run `curate run` first)")
        return versions_dir(corpus) / latest
    folder = versions_dir(corpus)
    exact = folder / ref
    if exact.is_dir() and (exact / "manifest.json").is_file():
        return exact
    matches = [p for p in folder.glob(f"{ref}*") if p.is_dir() and not p.name.startswith(".")] if folder.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise VersionError(f"{corpus}: no version {ref!r}")
    raise VersionError(f"{corpus}: {ref!r} matches several versions: {', '.join(sorted(p.name for p in matches))}")


def read_manifest(version_dir: Path) -> dict[str, Any]:
    return json.loads((version_dir / "manifest.json").read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


# --------------------------------------------------------------------------- locking
@contextmanager
def corpus_lock(corpus: Path, wait_seconds: float = 0.0) -> Iterator[None]:
    """One run at a time per corpus folder; a second run waits up to `wait_seconds`, then fails."""
    corpus.mkdir(parents=True, exist_ok=True)
    handle = open(corpus / LOCK, "a+")
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise VersionError(
                        f"{corpus}: another curate run is working on this corpus ({holder}); "
                        "wait for it to finish or set run.lock_wait_seconds"
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


# --------------------------------------------------------------------------- writing
def _checkpoint(name: str) -> None:
    """Test hook: CURATE_TEST_KILL_AT=<name> kills this process here, as a crash would."""
    if os.environ.get("CURATE_TEST_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def remove_stale_temporaries(corpus: Path) -> None:
    """Temporary folders left by a killed run (only called while holding the lock)."""
    folder = versions_dir(corpus)
    if folder.is_dir():
        for path in folder.glob(".tmp-*"):
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class RunRecord:
    """What the writer needs to know about a run besides the documents."""

    version_id: str
    config: dict[str, Any]
    rules_digest: str
    inputs: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    parent: str | None
    artifacts: Mapping[str, bytes]  # an `Artifacts` in a run: values may still be being built
    warnings: list[str]
    # Files of earlier versions this one's artifacts build on (path in the versions folder ->
    # sha256: a near-duplicate index names its parent's files rather than copying them).
    references: dict[str, str] = field(default_factory=dict)


# What the counts (the manifest's, the report's) need of an edit: (stage, rule, action, kind,
# characters before, characters after); and of a flag: (kind, end - start, detector). Plain
# tuples: a run's edits cross the pipes from the last pass's workers, and a NamedTuple pickles
# through its Python `__getnewargs__` (the benchmark's 23,018 rows: 67 ms pickled and
# unpickled as NamedTuples, 19 ms as tuples).
EditRow = tuple[str, str, str, str, int, int]
FlagRow = tuple[str, int, str]


@dataclass
class Encoded:
    """A document as the writer stores it: its JSON lines and what the manifest counts.

    Made by `encode` wherever the document was finished (in the engine's workers), so the
    process that writes the version only appends bytes: the lines are UTF-8 already (a str
    would be encoded by pickle in the worker, decoded by pickle in the writer, and encoded
    again by the file).
    """

    id: str
    status: str
    line: bytes  # the document's JSON line in UTF-8, ending in a newline
    sha256: str  # of the line without its newline
    edit_lines: bytes  # its edits' JSON lines in UTF-8, each ending in a newline
    warnings: list[str]  # "source: warning"
    edits: list[EditRow]  # what the counts (the manifest's, the report's) need of each edit
    flags: list[FlagRow]
    report_entry: Any = None  # the report's entry for it, when the run makes it with the document


def records(doc: Document) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A document's record and its edits' records, as `encode` writes them, a line each."""
    doc_id = doc.id
    return doc.to_json(), [edit.to_record(doc_id, seq) for seq, edit in enumerate(doc.edits)]


def encode(doc: Document, made: tuple[dict[str, Any], list[dict[str, Any]]] | None = None) -> Encoded:
    """The document as the writer stores it, from its `records` (`made`, if the caller has them)."""
    record, edit_records = made if made is not None else records(doc)
    line = json_line(record)
    edits = doc.edits
    return Encoded(
        id=doc.id,
        status=doc.status,
        line=line,
        sha256=hashlib.sha256(memoryview(line)[:-1]).hexdigest(),  # (of the record, as read back)
        edit_lines=b"".join([json_line(edit) for edit in edit_records]),
        warnings=[f"{doc.source}: {w}" for w in doc.warnings],
        edits=[(e.stage, e.rule, e.action, e.kind, len(e.before), len(e.after)) for e in edits],
        flags=[(f.kind, f.end - f.start, f.detector) for f in doc.flags],
    )


def write_version(
    corpus: Path,
    docs: Iterable[Document | Encoded],
    record: RunRecord,
    before_manifest: Callable[[], None] | None = None,
    on_written: Callable[[Encoded, str, int, int], None] | None = None,
) -> Path:
    """Write all documents (or their `encode`d form) and the manifest into a new version
    folder, atomically.

    `before_manifest` is called once every document is written (the record's skipped inputs and
    artifacts are only complete then, as documents stream in). `on_written(doc, data file,
    offset of its line, offset of its edit lines)` is called as each document is written (the
    report's index of the version, made without reading the files again).
    """
    folder = versions_dir(corpus)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / record.version_id
    tmp = folder / f".tmp-{record.version_id}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    # A run that stops before the rename leaves no temporary folder behind (one killed cannot
    # clean up: the next run on the corpus removes it, `remove_stale_temporaries`).
    artifacts = record.artifacts if isinstance(record.artifacts, Artifacts) else None
    try:
        _fill(tmp, docs, record, artifacts, before_manifest, on_written)
        os.rename(tmp, final)
    except BaseException:
        if artifacts is not None:
            artifacts.abandon()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if artifacts is not None:  # its saved files moved with the folder
        artifacts.moved(final / "index")
    _checkpoint("renamed")
    write_latest(corpus, record.version_id)
    return final


def _fill(
    tmp: Path,
    docs: Iterable[Document | Encoded],
    record: RunRecord,
    artifacts: Artifacts | None,
    before_manifest: Callable[[], None] | None,
    on_written: Callable[[Encoded, str, int, int], None] | None,
) -> None:
    """Everything of a version written into `tmp` and flushed to disk (`write_version`)."""
    outputs: dict[str, str] = {}
    counter = _Counts()
    handles = {name: (tmp / name).open("wb", buffering=WRITE_BUFFER) for name in DATA_FILES}
    offsets = dict.fromkeys(DATA_FILES, 0)
    # Hashed as written: reading 100 MB back to hash it was serial work after the last document.
    hashes = {name: hashlib.sha256() for name in DATA_FILES}
    # A run's `Artifacts`: its builders write their files into the version themselves.
    if artifacts is not None:
        artifacts.write_into(tmp / "index")
    to_start = artifacts
    # (the test hook read once: the environment looked up per document cost 2.5 us each)
    killed_in_loop = os.environ.get("CURATE_TEST_KILL_AT") == "documents"
    try:
        edit_handle = handles["edits.jsonl"]
        for item in docs:  # in input order (sorted by source), as the engine yields them
            if to_start is not None:  # the last pass is under way: build deferred ones
                to_start.start()
                to_start = None
            doc = item if isinstance(item, Encoded) else encode(item)
            counter.add(doc)
            record.warnings.extend(doc.warnings)
            name = STATUS_FILES.get(doc.status, STATUS_FILES[QUARANTINED])
            if on_written is not None:
                on_written(doc, name, offsets[name], offsets["edits.jsonl"])
            handles[name].write(doc.line)
            hashes[name].update(doc.line)
            offsets[name] += len(doc.line)
            if doc.status == OK:
                outputs[doc.id] = doc.sha256
            edit_handle.write(doc.edit_lines)
            hashes["edits.jsonl"].update(doc.edit_lines)
            offsets["edits.jsonl"] += len(doc.edit_lines)
            if killed_in_loop:
                _checkpoint("documents")
    finally:
        for handle in handles.values():
            handle.close()
    # The data files are complete: flushed to disk in a thread while this one waits for the
    # artifacts (`save`) and writes the manifest, which leave the disk idle (on the benchmark
    # 14 ms of fsync beside a wait of about 40 ms for the near-duplicate index); `_fsync_tree`
    # below syncs the rest.
    with InBackground("curate-fsync", _fsync_files, [tmp / name for name in DATA_FILES]):
        _finish_version(tmp, record, counter, hashes, artifacts, outputs, before_manifest)
    _fsync_tree(tmp, done=DATA_FILES)


def _finish_version(
    tmp: Path,
    record: RunRecord,
    counter: _Counts,
    hashes: dict[str, Any],
    artifacts: Artifacts | None,
    outputs: dict[str, str],
    before_manifest: Callable[[], None] | None,
) -> None:
    """The artifacts saved into `tmp / "index"`, then the manifest written (`write_version`)."""
    counts = counter.result()
    if before_manifest:
        before_manifest()
    digests = {name: digest.hexdigest() for name, digest in hashes.items()}
    if record.artifacts:
        saved = artifacts if artifacts is not None else Artifacts(record.artifacts)
        for name, sha256 in saved.save(tmp / "index").items():
            digests[f"index/{name}"] = sha256
    files = dict(sorted(digests.items()))
    manifest = {
        "version": record.version_id,
        "tool_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "parent": record.parent,
        "config": record.config,
        "rules_digest": record.rules_digest,
        "inputs": record.inputs,
        "skipped": record.skipped,
        "warnings": record.warnings,
        "counts": counts,
        "outputs": outputs,
        "files": files,
        **({"references": dict(sorted(record.references.items()))} if record.references else {}),
    }
    (tmp / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    _checkpoint("manifest")


def _fsync_files(paths: list[Path]) -> None:
    for path in paths:
        with path.open("rb") as handle:
            os.fsync(handle.fileno())


def _fsync_tree(folder: Path, done: Iterable[str] = ()) -> None:
    """Every file below `folder` flushed to disk, but those at the paths `done` (relative)."""
    skip = {folder / name for name in done}
    _fsync_files([path for path in folder.rglob("*") if path.is_file() and path not in skip])


def count_each(counts: dict[Any, int], keys: Iterable[Any]) -> None:
    """One more in `counts` for each of `keys`. The writer's counts and the report's tally call
    it for every document (three times for one with edits), on plain dicts: `Counter.update`
    is the standard library's Python (a frame and an ABC check a call), and a `Counter`'s
    items go through Python-level slots (by hand, three keys: 0.40 us, against 0.71 us)."""
    for key in keys:
        counts[key] = counts.get(key, 0) + 1


class EditCounts:
    """Edits counted by (stage, rule, action, kind): [edits, characters before, characters
    removed] for each, one lookup per edit (the writer counts every edit of a run as the last
    pass streams in). The manifest's counts (`_Counts`) and the report's summary
    (`report.model._Tally`) fold what they show from it. Keys in order of first appearance."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str, str, str], list[int]] = {}

    def add(self, rows: Iterable[EditRow]) -> None:
        by_key = self.by_key
        for stage, rule, action, kind, before, after in rows:
            key = (stage, rule, action, kind)
            removed = before - after if before > after else 0
            found = by_key.get(key)
            if found is None:
                by_key[key] = [1, before, removed]
            else:
                found[0] += 1
                found[1] += before
                found[2] += removed


class _Counts:
    """Counts per stage, rule, metadata field, flag kind and status, accumulated document by document."""

    def __init__(self) -> None:
        self.edits = EditCounts()
        self.docs_by_rule: dict[str, int] = {}  # (plain dicts: see `count_each`)
        self.flags: dict[str, int] = {}
        self.statuses: dict[str, int] = {}

    def add(self, doc: Encoded) -> None:
        statuses = self.statuses
        statuses[doc.status] = statuses.get(doc.status, 0) + 1
        if doc.edits:
            self.edits.add(doc.edits)
            count_each(self.docs_by_rule, {row[1] for row in doc.edits})
        if doc.flags:
            count_each(self.flags, [kind for kind, _, _ in doc.flags])

    def result(self) -> dict[str, Any]:
        by_stage: Counter[str] = Counter()
        by_rule: Counter[str] = Counter()
        chars_by_rule: Counter[str] = Counter()
        meta_fields: Counter[str] = Counter()
        for (stage, rule, action, _), (edits, _, removed) in self.edits.by_key.items():
            by_stage[stage] += edits
            by_rule[rule] += edits
            chars_by_rule[rule] += removed
            if action.startswith("meta:"):
                meta_fields[action[5:]] += edits
        return {
            "documents_in": sum(self.statuses.values()),
            "documents_out": self.statuses.get(OK, 0),
            "quarantined": self.statuses.get(QUARANTINED, 0),
            "duplicates": self.statuses.get(DUPLICATE, 0),
            "edits": sum(by_stage.values()),
            "edits_by_stage": dict(sorted(by_stage.items())),
            "edits_by_rule": dict(sorted(by_rule.items())),
            "documents_by_rule": dict(sorted(self.docs_by_rule.items())),
            "chars_removed_by_rule": dict(sorted(chars_by_rule.items())),
            "meta_fields": dict(sorted(meta_fields.items())),
            "flags_by_kind": dict(sorted(self.flags.items())),
        }


# --------------------------------------------------------------------------- verifying
def verify(version_dir: Path) -> list[str]:
    """Problems found by recomputing every hash of a version (empty list: intact)."""
    problems: list[str] = []
    manifest_path = version_dir / "manifest.json"
    if not manifest_path.is_file():
        return [f"{version_dir}: no manifest.json"]
    manifest = read_manifest(version_dir)
    problems += _hash_problems(version_dir, manifest.get("files", {}), "", "the manifest")
    present = {
        path.relative_to(version_dir).as_posix()
        for path in version_dir.rglob("*")
        if path.is_file() and path.name != "manifest.json"
    }
    for extra in sorted(present - set(manifest.get("files", {}))):
        problems.append(f"{extra}: not listed in the manifest")
    outputs = dict(manifest.get("outputs", {}))
    path = version_dir / "documents.jsonl"
    if path.is_file():
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\n")
                try:
                    doc_id = json.loads(line)["id"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    problems.append(f"documents.jsonl line {number}: not a document record")
                    continue
                expected = outputs.pop(doc_id, None)
                if expected is None:
                    problems.append(f"document {doc_id}: not listed in the manifest")
                elif sha256_text(line) != expected:
                    problems.append(f"document {doc_id}: sha256 differs from the manifest")
    for doc_id in sorted(outputs):
        problems.append(f"document {doc_id}: listed in the manifest but missing")
    # The files of other versions this one refers to (its near-duplicate index's older parts).
    problems += _hash_problems(version_dir.parent, manifest.get("references", {}), "refers to ", "the one recorded")
    return problems


def _hash_problems(folder: Path, recorded: dict[str, str], prefix: str, source: str) -> list[str]:
    """The files named in `recorded` (paths under `folder`) that are missing or whose sha256
    is not the one recorded (`source` names where it was), each as one line."""
    problems = []
    for name, expected in sorted(recorded.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{prefix}{name}: missing")
        elif file_sha256(path) != expected:
            problems.append(f"{prefix}{name}: sha256 differs from {source}")
    return problems
