"""The report model: a corpus version folder read back into what a reviewer needs to see.

Every renderer (terminal, HTML, JSON) works from the same dictionary built here
(`build_report`), so report.json and report.html can never disagree.

The inline diff of a document is drawn over its *decoded input*: the input is rebuilt from the
final text and the edit log (`undo_edits`), then the edits are replayed forwards on a sequence
of pieces of text. A piece remembers which edit inserted it and which edit removed it, so the
result shows, in input order, text that was kept, removed (by which edit) and inserted (by
which edit). A replacement by text of the same length (a Traditional->Simplified conversion
of a whole document, a punctuation fix) is aligned character by character so that only the
characters that changed are marked: it makes substitution pieces, shown as "sub" segments
(a later edit that removes part of one cuts it, so each character's removal is shown as the
edit that made it).

Size bounds (also printed in the HTML footer): unchanged runs longer than 2 x `context`
characters are collapsed to `context` characters either side of a change; a document's diff
shows at most `max_doc_chars` characters; once `max_total_chars` characters of diff have been
emitted, further documents are listed with their counts and edits but no diff; documents with
nothing to show (no edits, no flags, status ok) are counted, not listed; at most `max_docs`
documents are listed. Every listed document also carries its edit list (each edit's before/after
clipped to `max_edit_text` characters). `curate report --doc ID --full` shows any document in full.
Measured (bench/bench_pipeline.py, 19 MB of news, 5,702 documents listed, 58,000 segments once
aligned substitutions are compacted, 1.2 million before): report.json and report.html 31 MB each,
made in about 1.3 s of a 2-worker run (1.4–1.9 CPU-seconds).

Making the report (`encode_report`, what a run writes) reads the version through an index of
byte offsets (`index_version`, or the one a run's writer made as it wrote: `WrittenIndex`) and
makes the documents' entries in worker processes; the
dictionary form (`build_report`, what `curate report` renders) comes from the same functions.
"""

from __future__ import annotations

import bisect
import difflib
import gc
import json
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cache, lru_cache, partial
from pathlib import Path
from typing import Any, NamedTuple

from curate.document import Edit, undo_edits
from curate.textutil import code_points
from curate.version import STATUS_FILES, EditCounts, EditRow, FlagRow, count_each, json_bytes

try:  # the compiled loops (curate/_kernels.pyx), built by the install
    from curate._kernels import aligned_spans as _compiled_aligned_spans
    from curate._kernels import collapsed_runs as _compiled_collapsed_runs
    from curate._kernels import compact_substitutions as _compiled_compact_substitutions
    from curate._kernels import count_differences as _compiled_count_differences
    from curate._kernels import diff_segments as _compiled_diff_segments
    from curate._kernels import edit_entries as _compiled_edit_entries
    from curate._kernels import holds_line_separator as _compiled_holds_line_separator
    from curate._kernels import shown_chars as _compiled_shown_chars
except ImportError:  # no C compiler was there: the Python below does the same
    _compiled_aligned_spans = _compiled_count_differences = _compiled_holds_line_separator = None
    _compiled_diff_segments = _compiled_collapsed_runs = _compiled_compact_substitutions = None
    _compiled_shown_chars = _compiled_edit_entries = None

REPORT_FORMAT = 2  # 2: aligned substitutions as "sub" segments


class ReportError(Exception):
    """A version folder that cannot be read, named with the file and the problem."""


@dataclass(frozen=True)
class Limits:
    """How much text a report embeds (see the module docstring)."""

    context: int = 200
    max_doc_chars: int = 20_000
    max_total_chars: int = 4_000_000
    max_docs: int = 20_000
    max_edit_text: int = 300  # before/after of one edit, in the edit table

    @classmethod
    def unlimited(cls) -> Limits:
        big = 1 << 62
        return cls(context=big, max_doc_chars=big, max_total_chars=big, max_docs=big, max_edit_text=big)


# --------------------------------------------------------------------------- reading a version
@dataclass
class VersionData:
    """The raw content of a version folder."""

    path: Path
    manifest: dict[str, Any]
    documents: Mapping[str, dict[str, Any]]  # id -> record, "status" always set; in id order
    edits: Mapping[str, list[dict[str, Any]]]  # doc id -> its edits, in the order made

    @property
    def version(self) -> str:
        return str(self.manifest.get("version") or self.path.name)

    def summary(self) -> dict[str, Any]:
        return summarise(self)

    def listable(self) -> list[str]:
        """The ids of the documents worth listing, in id order."""
        return [doc_id for doc_id, doc in self.documents.items() if worth_listing(doc, self.edits.get(doc_id, []))]

    def detectors_of(self, doc_id: str) -> list[str]:
        """The detectors of a document's flags."""
        return _detectors(_flag_rows(self.documents[doc_id].get("flags", [])))

    def close(self) -> None:
        """Nothing to close: everything was read (see `IndexedVersion`)."""


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as handle:
        return [_parse_line(line, path, number) for number, line in enumerate(handle, 1) if line.strip()]


def _read_manifest(folder: Path) -> dict[str, Any]:
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise ReportError(f"{folder}: not a corpus version (no manifest.json)")
    try:
        return json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportError(f"{manifest_path}: not valid JSON ({exc.msg})") from None


def _parse_line(line: str | bytes, path: Path, number: int) -> dict[str, Any]:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}:{number}: not valid JSON ({exc.msg})") from None


def _document(record: dict[str, Any], path: Path, status: str) -> dict[str, Any]:
    """A record of documents.jsonl, quarantine.jsonl or duplicates.jsonl, checked, with its
    status (the file's, unless the record says)."""
    if "id" not in record or "text" not in record:
        raise ReportError(f"{path}: a record without id or text")
    record.setdefault("status", status)
    return record


def load_version(version_dir: Path | str) -> VersionData:
    """Read manifest, documents (all three files) and the edit log of one version folder."""
    folder = Path(version_dir)
    manifest = _read_manifest(folder)
    documents: dict[str, dict[str, Any]] = {}
    for status, name in STATUS_FILES.items():
        for record in _read_jsonl(folder / name):
            documents[record["id"]] = _document(record, folder / name, status)
    edits: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for edit in _read_jsonl(folder / "edits.jsonl"):
        edits[edit["doc"]].append(edit)
    for doc_id, doc_edits in edits.items():
        doc_edits.sort(key=lambda e: e.get("seq", 0))
        if doc_id not in documents:
            raise ReportError(f"{folder / 'edits.jsonl'}: edits for unknown document {doc_id}")
    return VersionData(folder, manifest, dict(sorted(documents.items())), dict(edits))


class _Scattered(Exception):
    """A version whose files the index cannot describe by offsets (a document's edits not in one
    run of lines, one id in two records, lines ended by a bare CR): it is read whole instead."""


class _Records(Mapping[str, Any]):
    """Records of a version's files, read when asked for (by byte offset and length), not held.

    `os.pread` reads at an offset without moving a file position, so worker processes forked
    with the files open read from them independently.
    """

    def __init__(self, where: dict[str, Any], order: list[str], read: Callable[[Any], Any]) -> None:
        self._where, self._order, self._read = where, order, read

    def __getitem__(self, key: str) -> Any:
        return self._read(self._where[key])

    def __contains__(self, key: object) -> bool:
        return key in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)


class _Premade(NamedTuple):
    """Report entries a run made as it wrote the documents (`EntryMaker`), each with its diff."""

    limits: Limits  # they were made for
    entries: dict[str, Any]  # id -> `_Entry`


@dataclass
class IndexedVersion(VersionData):
    """A version folder as report files are made from it: where each document and its edits
    are, the summary, and which documents are worth listing (all found in one reading of the
    files); a record is read again when its entry is made. Memory grows with the number of
    documents by a few small numbers each, not with their text (`load_version` holds it all)."""

    files: list[Any] = field(default_factory=list)  # open binary files, closed by `close`
    summarised: dict[str, Any] = field(default_factory=dict)
    worth: list[str] = field(default_factory=list)
    detectors: dict[str, list[str]] = field(default_factory=dict)  # of flagged documents
    premade: _Premade | None = None  # the entries made with the run (`EntryMaker`)

    def summary(self) -> dict[str, Any]:
        return self.summarised

    def listable(self) -> list[str]:
        return self.worth

    def detectors_of(self, doc_id: str) -> list[str]:
        return self.detectors.get(doc_id, [])

    def close(self) -> None:
        for handle in self.files:
            handle.close()


def index_version(version_dir: Path | str) -> VersionData:
    """An `IndexedVersion` of a version folder (a `load_version` one when the files are not laid
    out as the version writer lays them out: each document's edits in one run of lines)."""
    folder = Path(version_dir)
    manifest = _read_manifest(folder)
    files: list[Any] = []
    try:
        return _index(folder, manifest, files)
    except BaseException as exc:
        for handle in files:
            handle.close()
        if isinstance(exc, _Scattered):
            return load_version(folder)
        raise


@contextmanager
def read_version(version_dir: Path | str, written: WrittenIndex | None = None) -> Iterator[VersionData]:
    """`index_version` (or the index the writer made, `written`), its files closed when done."""
    data = written.version(Path(version_dir)) if written is not None and written.complete else None
    data = data or index_version(version_dir)
    try:
        yield data
    finally:
        data.close()


def _index(folder: Path, manifest: dict[str, Any], files: list[Any]) -> IndexedVersion:
    at: dict[str, tuple[str, int, int, str]] = {}  # id -> (file name, offset, length, status)
    detectors: dict[str, list[str]] = {}
    tally = _Tally()
    for status, name in STATUS_FILES.items():
        path = folder / name
        if not path.is_file():
            continue
        handle = path.open("rb")
        files.append(handle)
        offset = 0
        for number, line in enumerate(handle, 1):
            if b"\r" in line.rstrip(b"\r\n"):  # a bare CR, which load_version reads as a line end
                raise _Scattered
            if line.strip():
                record = _document(_parse_line(line, path, number), path, status)
                if record["id"] in at:
                    raise _Scattered
                at[record["id"]] = (name, offset, len(line), record["status"])
                flags = _flag_rows(record.get("flags", []))
                tally.add_document(record["status"], flags)
                if flags:
                    detectors[record["id"]] = _detectors(flags)
            offset += len(line)
    edits_at: dict[str, tuple[int, int]] = {}  # doc id -> (offset, length) of its run of lines
    path = folder / "edits.jsonl"
    if path.is_file():
        handle = path.open("rb")
        files.append(handle)
        offset = 0
        run: list[dict[str, Any]] = []
        run_start = 0

        def end_run(end: int) -> None:
            if run:
                run.sort(key=lambda e: e.get("seq", 0))
                tally.add_edits([_edit_row(e) for e in run])
                edits_at[run[0]["doc"]] = (run_start, end - run_start)
                run.clear()

        for number, line in enumerate(handle, 1):
            if b"\r" in line.rstrip(b"\r\n"):
                raise _Scattered
            if line.strip():
                edit = _parse_line(line, path, number)
                doc_id = edit["doc"]
                if doc_id not in at:
                    raise ReportError(f"{path}: edits for unknown document {doc_id}")
                if not run or run[0]["doc"] != doc_id:
                    end_run(offset)
                    if doc_id in edits_at:
                        raise _Scattered
                    run_start = offset
                run.append(edit)
            offset += len(line)
        end_run(offset)
    return _indexed_version(folder, manifest, files, at, edits_at, tally, detectors)


def _edit_row(edit: dict[str, Any]) -> EditRow:
    """An edit record as the writer counts it (`curate.version.encode` makes the same rows)."""
    return (edit.get("stage", ""), edit.get("rule", ""), str(edit.get("action", "")),
            edit.get("kind", ""), len(edit.get("before", "")), len(edit.get("after", "")))


def _flag_rows(flags: list[dict[str, Any]]) -> list[FlagRow]:
    """A record's flags as the writer counts them."""
    return [
        (f.get("kind", ""), int(f.get("end", 0)) - int(f.get("start", 0)), f.get("detector", ""))
        for f in flags
    ]


def _detectors(flags: list[FlagRow]) -> list[str]:
    """The detectors of a document's flags (the page's rule filter lists them)."""
    return [detector for _, _, detector in flags if detector]


def _record_of(line: bytes, status: str) -> dict[str, Any]:
    """A document's record from its line, with its status (the file's, unless it says)."""
    record = json.loads(line)
    record.setdefault("status", status)
    return record


def _edit_run(lines: bytes) -> list[dict[str, Any]]:
    """A document's run of edit lines, parsed in one call, in the order the edits were made."""
    records = [line for line in lines.splitlines() if line.strip()]
    edits = json.loads(b"[" + b",".join(records) + b"]") if records else []
    edits.sort(key=lambda e: e.get("seq", 0))
    return edits


def _worth_listing_encoded(doc: Any) -> bool:
    """`worth_listing` of a document as the writer has it (`curate.version.Encoded`)."""
    return bool(doc.edits or doc.flags or doc.status != "ok")


def _indexed_version(
    folder: Path,
    manifest: dict[str, Any],
    files: list[Any],
    at: dict[str, tuple[str, int, int, str]],
    edits_at: dict[str, tuple[int, int]],
    tally: _Tally,
    detectors: dict[str, list[str]],
) -> IndexedVersion:
    """An `IndexedVersion` over the open `files` (named as the version names them)."""
    fds = {Path(handle.name).name: handle.fileno() for handle in files}

    def read_document(where: tuple[str, int, int, str]) -> dict[str, Any]:
        return _record_of(os.pread(fds[where[0]], where[2], where[1]), where[3])

    def read_edits(where: tuple[int, int]) -> list[dict[str, Any]]:
        return _edit_run(os.pread(fds["edits.jsonl"], where[1], where[0]))

    order = sorted(at)
    worth = [d for d in order if d in edits_at or d in detectors or at[d][3] != "ok"]
    return IndexedVersion(
        folder, manifest, _Records(at, order, read_document), _Records(edits_at, list(edits_at), read_edits),
        files=files, summarised=tally.result(manifest), worth=worth, detectors=detectors,
    )


class WrittenIndex:
    """The index of a version as its writer writes it (`write_version(on_written=...)`): where
    each document's record and edit lines went and what the summary counts, from the encoded
    documents, so the report does not read and parse the whole version again to find them
    (`index_version` does, serially: ~0.4 s for the benchmark's 31 MB of records).

    Gives the same `IndexedVersion` as `index_version` of the written folder (tested).
    """

    def __init__(self, entries: EntryMaker | None = None) -> None:
        self.at: dict[str, tuple[str, int, int, str]] = {}
        self.edits_at: dict[str, tuple[int, int]] = {}
        self.detectors: dict[str, list[str]] = {}
        self.tally = _Tally()
        self.complete = True  # False: an id written twice (`index_version` then reads the files)
        # The entries `entries` made with the documents (`EntryMaker`), each with its diff, until
        # the report's limits are reached (`stopped`): then every listed document may not keep
        # its diff, and the report makes what it lacks after the run, using these where a
        # document's diff is wanted.
        self.maker = entries
        self.entries: dict[str, _Entry] = {}
        self.stopped = entries is None
        self._shown = 0

    def _add_entry(self, doc: Any) -> None:
        assert self.maker is not None
        entry = doc.report_entry
        if entry is None and not _worth_listing_encoded(doc):
            return
        limits = self.maker.limits
        if entry is not None and entry.diff_chars is not None:
            self._shown += entry.diff_chars
        if entry is None or len(self.entries) >= limits.max_docs or self._shown >= limits.max_total_chars:
            self.stopped = True
            self.maker.stop()
            return
        self.entries[doc.id] = entry

    def __call__(self, doc: Any, name: str, offset: int, edit_offset: int) -> None:
        """One `Encoded` document, as `write_version` writes it."""
        if not self.stopped:
            self._add_entry(doc)
        if doc.id in self.at:
            self.complete = False
        self.at[doc.id] = (name, offset, len(doc.line), doc.status)
        self.tally.add_document(doc.status, doc.flags)
        if doc.flags:
            self.detectors[doc.id] = _detectors(doc.flags)
        if doc.edits:
            self.tally.add_edits(doc.edits)
            self.edits_at[doc.id] = (edit_offset, len(doc.edit_lines))

    def version(self, folder: Path) -> IndexedVersion:
        manifest = _read_manifest(folder)
        files = [(folder / name).open("rb") for name in [*STATUS_FILES.values(), "edits.jsonl"]
                 if (folder / name).is_file()]
        # The tally in the order `index_version` reads: edits in file order, as written.
        version = _indexed_version(folder, manifest, files, self.at, self.edits_at, self.tally, self.detectors)
        if self.maker is not None:
            version.premade = _Premade(self.maker.limits, self.entries)
        return version


class EntryMaker:
    """Makes a document's report entry where the run encodes it (in the last pass's workers:
    `curate.runner._encode_with_entry`), from the very lines written for it, so the entry is the
    one the report would make from the version's files; the report then puts them in order.

    Only while the report can use them (`WrittenIndex` counts them against the limits): once
    more documents are worth listing than `max_docs`, or their diffs reach `max_total_chars`,
    the driver calls `stop`, a flag in memory shared with the forked workers, and the report
    makes the entries it needs after the run (a few batches in flight are made for nothing).
    """

    def __init__(self, limits: Limits | None = None) -> None:
        import multiprocessing

        self.limits = limits or Limits()
        self._stopped = multiprocessing.get_context("fork").Value("b", 0, lock=False)

    def stop(self) -> None:
        self._stopped.value = 1

    def __call__(
        self, doc: Any, record: dict[str, Any], edits: list[dict[str, Any]], made: list[Edit]
    ) -> _Entry | None:
        """The entry of an `Encoded` document worth listing (None: not listed, or stopped), from
        the records it was encoded from (`curate.version.records`: what reading its lines back
        would give, without parsing them) and the `Edit`s they were made from.
        """
        if self._stopped.value or not _worth_listing_encoded(doc):
            return None
        record.setdefault("status", doc.status)  # (as `_record_of` reads a record of the file)
        # Whatever goes wrong here must not stop the run before its version is written: the
        # document then has no entry, and the report, made after the run from the files, meets
        # the same problem there (where a report error has always surfaced).
        try:
            return _entry_of(record, edits, True, self.limits, True, undo_edits(record["text"], made))
        except Exception:  # noqa: BLE001 (see above)
            return None


def input_text(record: dict[str, Any], edits: list[dict[str, Any]]) -> str:
    """The decoded input of a document, rebuilt from its final text and its edits."""
    return undo_edits(record["text"], [Edit.from_json(e) for e in edits])


# --------------------------------------------------------------------------- the inline diff
@dataclass(slots=True)
class _Piece:
    """A run of text with one history: from the input or inserted by an edit, maybe removed.

    A piece with `before` is an aligned substitution (what a Traditional->Simplified
    conversion makes): `inserted_by` replaced `before`, of the same length, by `text`, position
    by position; `origin` is where `before` came from. One such piece stands for the pieces
    of every run of changed and unchanged characters (`_expand` gives them), so a converted
    document is a handful of pieces, not three per changed character.
    """

    text: str
    inserted_by: int = -1  # index of the edit that inserted it; -1 = from the input
    removed_by: int = -1  # index of the edit that removed it; -1 = still in the text
    before: str | None = None  # a substitution: the text it replaced, as long as `text`
    origin: int = -1  # a substitution: the `inserted_by` of `before`

    @property
    def visible(self) -> bool:
        return self.removed_by < 0


def _slice(piece: _Piece, start: int, end: int | None = None) -> _Piece:
    """Part of a visible piece (a substitution's part keeps its aligned part of `before`)."""
    if piece.before is None:
        return _Piece(piece.text[start:end], piece.inserted_by)
    return _Piece(piece.text[start:end], piece.inserted_by, -1, piece.before[start:end], piece.origin)


def _differences(before: str, after: str) -> list[int]:
    """Positions at which two texts of the same length differ. Long texts are compared as
    numpy arrays of their UTF-32 code units (one vectorised comparison instead of a Python
    step per character); short ones, most substitutions, directly."""
    if len(before) < 64:
        return [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    import numpy as np

    return np.flatnonzero(code_points(before) != code_points(after)).tolist()


def count_differences(before: str, after: str) -> int:
    """How many positions two texts of the same length differ at (compiled where built, as
    `aligned_spans`)."""
    if _compiled_count_differences is not None:
        return _compiled_count_differences(before, after)
    return len(_differences(before, after))


def aligned_spans(before: str, after: str, gap: int = 0) -> list[tuple[int, int, bool]]:
    """Two texts of the same length cut into consecutive spans (start, end, changed): runs of
    positions at which they differ (runs less than `gap` + 1 unchanged characters apart are
    one run), and the unchanged text between them.

    Compiled (`curate._kernels.aligned_spans`: one pass over both texts) where built: every
    substitution of a converted document goes through here, most of them differing at
    hundreds of positions. The Python below is its specification and fallback."""
    if _compiled_aligned_spans is not None:
        return _compiled_aligned_spans(before, after, gap)
    spans: list[tuple[int, int, bool]] = []
    where = _differences(before, after)
    pos = 0
    if where:
        start = prev = where[0]
        for at in [*where[1:], len(after) + gap + 2]:  # (a sentinel closes the last run)
            if at - prev > gap + 1:
                if start > pos:
                    spans.append((pos, start, False))
                spans.append((start, prev + 1, True))
                pos, start = prev + 1, at
            prev = at
    if pos < len(after):
        spans.append((pos, len(after), False))
    return spans


def _expand(piece: _Piece) -> list[_Piece]:
    """A substitution as the pieces it stands for: per run of changed characters, `before`'s
    run removed by the edit then its replacement; unchanged runs as they were."""
    assert piece.before is not None
    before, after, edit = piece.before, piece.text, piece.inserted_by
    out: list[_Piece] = []
    for start, end, changed in aligned_spans(before, after):
        if changed:
            out.append(_Piece(before[start:end], piece.origin, edit))
            out.append(_Piece(after[start:end], edit, piece.removed_by))
        else:
            out.append(_Piece(after[start:end], piece.origin, piece.removed_by))
    return out


def _split_at(pieces: list[_Piece], cuts: list[int]) -> list[_Piece]:
    """Split visible pieces so that every cut (an offset in the visible text) is a boundary."""
    if not cuts:
        return pieces
    out: list[_Piece] = []
    pos = 0
    k = 0
    for piece in pieces:
        if not piece.visible:
            out.append(piece)
            continue
        end = pos + len(piece.text)
        while k < len(cuts) and cuts[k] <= pos:
            k += 1
        start = pos
        while k < len(cuts) and cuts[k] < end:
            cut = cuts[k]
            out.append(_slice(piece, start - pos, cut - pos))
            start = cut
            k += 1
        out.append(piece if start == pos else _slice(piece, start - pos))
        pos = end
    return out


def char_opcodes(
    before: str, after: str, max_product: int = 4_000_000
) -> list[tuple[str, int, int, int, int]]:
    """Where `after` differs from `before`: equal-length texts position by position (OpenCC
    conversions keep lengths), otherwise difflib when small enough, else one replacement."""
    if not before or not after:
        return [("replace", 0, len(before), 0, len(after))]
    if len(before) == len(after):
        return [
            ("replace" if changed else "equal", start, end, start, end)
            for start, end, changed in aligned_spans(before, after)
        ]
    if len(before) * len(after) > max_product:
        return [("replace", 0, len(before), 0, len(after))]
    # One text the start of the other (blank lines collapsed, most of the replacements that
    # change the length): difflib's longest first match is that start, at 0 in both (no
    # earlier one can be as long), and nothing matches after it. Its SequenceMatcher costs
    # tens of microseconds on two characters.
    if before.startswith(after):
        return [("equal", 0, len(after), 0, len(after)), ("delete", len(after), len(before), len(after), len(after))]
    if after.startswith(before):
        return [("equal", 0, len(before), 0, len(before)), ("insert", len(before), len(before), len(before), len(after))]
    return difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes()


def _apply_to_range(pieces: list[_Piece], before: str, index: int, edit: dict[str, Any]) -> list[_Piece]:
    """Apply one edit to the pieces of its range (removed pieces included), whose visible text
    is `before` (the caller has it: it checked it against the edit).

    One walk over the opcodes and the pieces together: a visible piece that spans the end of an
    opcode is split there, and removed pieces go with the visible piece after them.
    """
    after = edit.get("after", "")
    if edit.get("action") == "replace":
        if before and len(before) == len(after):
            return _substitute(pieces, index, after)
        ops = char_opcodes(before, after)
    else:
        ops = [("replace", 0, len(before), 0, len(after))]
    out: list[_Piece] = []
    pos = 0  # offset in `before` up to which pieces are placed
    n = 0
    current: _Piece | None = None  # a visible piece placed up to `offset`, split at opcode ends
    offset = 0
    for tag, _, i2, j1, j2 in ops:
        changed = tag != "equal"
        while pos < i2:
            if current is None:
                current, offset = pieces[n], 0
                n += 1
                if current.removed_by >= 0:
                    out.append(current)
                    current = None
                    continue
            text = current.text
            if pos + len(text) - offset <= i2:  # the rest of the piece
                part = current if offset == 0 else _slice(current, offset)
                pos += len(text) - offset
                current = None
            else:
                part = _slice(current, offset, offset + i2 - pos)
                offset += i2 - pos
                pos = i2
            if changed:
                part.removed_by = index
            out.append(part)
        if changed and j2 > j1:
            out.append(_Piece(after[j1:j2], inserted_by=index))
    out.extend(pieces[n:])  # removed pieces after the last visible one
    return out


def _substitute(pieces: list[_Piece], index: int, after: str) -> list[_Piece]:
    """An aligned replacement (the range's visible text and `after` have the same length): each
    visible piece it changes becomes a substitution; a substitution it changes again is
    expanded first (its runs are then substituted one by one)."""
    out: list[_Piece] = []
    pos = 0
    for piece in pieces:
        if piece.removed_by >= 0:
            out.append(piece)
            continue
        text = piece.text
        new = after[pos : pos + len(text)]
        pos += len(text)
        if new == text:
            out.append(piece)
        elif piece.before is not None:
            out.extend(_substitute(_expand(piece), index, new))
        else:
            out.append(_Piece(new, index, -1, text, piece.inserted_by))
    return out


# A span of a run: (start, end) in the visible text as it was before the run, the edit's index
# in the document's edit list, the edit.
_Span = tuple[int, int, int, dict[str, Any]]


def _replay(text: str, edits: list[dict[str, Any]], doc_id: str) -> list[_Piece]:
    """Replay the edits on the input text, in runs of left-to-right edits (one pass per run)."""
    pieces = [_Piece(text)] if text else []
    length = len(text)  # of the visible text, carried from run to run (no walk to count it)
    real = [(n, e) for n, e in enumerate(edits) if not str(e.get("action", "")).startswith("flag")]
    i = 0
    while i < len(real):
        # A run: edits whose spans move left to right, as one `Document.apply` batch makes them.
        run = [real[i]]
        j = i + 1
        while j < len(real):
            prev, edit = run[-1][1], real[j][1]
            if edit["start"] < prev["start"] + len(prev.get("after", "")):
                break
            run.append(real[j])
            j += 1
        pieces, length = _apply_run(pieces, length, run, doc_id)
        i = j
    return pieces


def _apply_run(
    pieces: list[_Piece], length: int, run: list[tuple[int, dict[str, Any]]], doc_id: str
) -> tuple[list[_Piece], int]:
    """The pieces after a run of edits, and the length of their visible text.

    `length` is the visible text's length before the run: each edit that replays leaves its
    `after` as its range's visible text, so the run changes the length by its spans' length
    differences, known without counting the pieces.
    """
    spans: list[_Span] = []  # in the text as it was before the run
    delta = 0
    for index, edit in run:
        start, end = edit["start"] - delta, edit["end"] - delta
        spans.append((start, end, index, edit))
        delta += len(edit.get("after", "")) - (end - start)
    for start, end, _, edit in spans:
        if not 0 <= start <= end <= length:
            raise ReportError(
                f"document {doc_id}: edit {edit.get('seq')} ({edit.get('rule')}) spans {start}-{end} "
                f"outside the text (length {length})"
            )
    # The spans are in order and do not overlap (each starts where the one before ends, or
    # after: what makes them a run).
    if len(pieces) == 1 and pieces[0].removed_by < 0 and pieces[0].before is None:
        return _apply_run_to_text(pieces[0], spans, doc_id), length + delta
    return _apply_run_to_pieces(pieces, spans, doc_id), length + delta


def _replayed_range(pieces: list[_Piece], span: _Span, doc_id: str) -> list[_Piece]:
    """The pieces of a span's range once its edit is applied, if they hold the text the edit
    says it replaced."""
    _, _, index, edit = span
    # (a range's first piece is visible: removed pieces before it are not the range's)
    got = pieces[0].text if len(pieces) == 1 else "".join(p.text for p in pieces if p.removed_by < 0)
    if got != edit.get("before", ""):
        raise ReportError(
            f"document {doc_id}: edit {edit.get('seq')} ({edit.get('rule')}) does not replay: "
            f"expected {edit.get('before', '')[:40]!r}, found {got[:40]!r}"
        )
    return _apply_to_range(pieces, got, index, edit)


def _apply_run_to_text(piece: _Piece, spans: list[_Span], doc_id: str) -> list[_Piece]:
    """`_apply_run_to_pieces` of one visible piece that is not a substitution (a document's
    first run starts from its whole input text as one piece: most runs are that): the text
    between the spans and in them is sliced from the piece's text, nothing else to walk."""
    text, inserted_by = piece.text, piece.inserted_by
    out: list[_Piece] = []
    pos = 0
    for span in spans:
        start, end = span[0], span[1]
        if start > pos:
            out.append(_Piece(text[pos:start], inserted_by))
        out += _replayed_range([_Piece(text[start:end], inserted_by)] if end > start else [], span, doc_id)
        pos = end
    if pos < len(text):
        out.append(_Piece(text[pos:], inserted_by))
    return out


def _apply_run_to_pieces(pieces: list[_Piece], spans: list[_Span], doc_id: str) -> list[_Piece]:
    """Apply a run's spans (in order, not overlapping) to the pieces, in one walk.

    A visible piece is cut where a span starts or ends inside it; the pieces of a span's range
    (from its first visible piece: removed pieces before it stay where they are) are replaced
    by what `_apply_to_range` makes of them. An empty span's insertion goes before the visible
    piece at its position.
    """
    out: list[_Piece] = []
    pending: list[_Piece] = []  # the pieces of the open span's range so far
    count = len(spans)
    k = 0
    pos = 0  # offset in the visible text of what is placed
    for n, piece in enumerate(pieces):
        if k == count:  # the run is applied: the rest is as it was
            out += pieces[n:]
            break
        if piece.removed_by >= 0:
            (pending if pending else out).append(piece)
            continue
        piece_start = pos
        piece_end = pos + len(piece.text)
        if pos < spans[k][0] >= piece_end:  # wholly before the next span
            out.append(piece)
            pos = piece_end
            continue
        while True:  # the piece's parts between cuts, one by one (a part at least)
            while k < count and spans[k][0] == pos == spans[k][1]:
                out += _replayed_range([], spans[k], doc_id)
                k += 1
            if k < count and spans[k][0] <= pos:  # in span k (it ends after `pos`)
                part_end = min(piece_end, spans[k][1])
                into = pending
            else:
                part_end = piece_end if k == count else min(piece_end, spans[k][0])
                into = out
            if pos == piece_start and part_end == piece_end:
                into.append(piece)
            else:
                into.append(_slice(piece, pos - piece_start, part_end - piece_start))
            pos = part_end
            if into is pending and pos == spans[k][1]:
                out += _replayed_range(pending, spans[k], doc_id)
                pending.clear()
                k += 1
            if pos >= piece_end:
                break
    while k < count:
        out += _replayed_range(pending, spans[k], doc_id)
        pending.clear()
        k += 1
    return out


def diff_segments(
    text: str, edits: list[dict[str, Any]], flags: list[dict[str, Any]], doc_id: str = "?"
) -> list[dict[str, Any]]:
    """The inline diff over the input text, as segments.

    Segment keys: "k" kind ("keep" | "del" | "ins" | "mark" for an empty flagged span | "sub"),
    "t" text, "e" index of the edit (in the document's edit list) for del/ins/sub, "via"
    earlier edits whose output this edit removed (e.g. converted, then dropped), "f" indices
    of flags covering it. A "sub" segment is a run of aligned substitutions by one edit with
    the short unchanged text between them ("a" its output text; `expand_substitutions` gives
    its del/ins/keep segments): made here from substitution pieces, and by
    `compact_substitutions` from del/ins pairs.

    A document without flags (nearly every one) is diffed by the compiled twin of what follows
    where built (`curate._kernels.diff_segments`: the replay's pieces typed, no call a piece);
    an edit log it cannot replay, or that holds values a written log does not, is left to the
    Python below, which is its specification and says what is wrong.
    """
    if not flags and _compiled_diff_segments is not None:
        made = _compiled_diff_segments(text, edits, char_opcodes, SUB_GAP)
        if made is not None:
            return made
    pieces = _expand_where_shown_apart(_replay(text, edits, doc_id), flags)
    piece_flags: dict[int, list[int]] = {}
    marks: dict[int, list[int]] = {}  # piece index -> empty flags just before it
    if flags:
        pieces, piece_flags, marks = _place_flags(pieces, flags)
    label, via = _removal_labels(pieces)
    segments: list[dict[str, Any]] = []
    joined: list[dict[str, Any]] = []  # segments made of several pieces
    last_key: tuple[Any, ...] | None = None
    for n, piece in enumerate(pieces):
        if marks and n in marks:
            segments.append({"k": "mark", "t": "", "f": marks[n]})
            last_key = None
        if piece.before is not None:  # a substitution shown as it is: visible, unflagged
            parts = _substitution_parts(piece.before, piece.text, piece.inserted_by)
            if parts[0]["k"] == "keep" and last_key == ("keep", -1, ()):
                _join(segments[-1], parts.pop(0)["t"], joined)
            segments += parts
            last_key = ("keep", -1, ()) if segments[-1]["k"] == "keep" else None
            continue
        if piece.removed_by < 0:
            inserted = piece.inserted_by
            kind, edit = ("keep", -1) if inserted < 0 else ("ins", inserted)
            flagged = tuple(piece_flags[n]) if n in piece_flags else ()
        elif piece.inserted_by >= 0:
            continue  # intermediate text that is neither in the input nor in the output
        else:
            kind, edit, flagged = "del", label[n], ()
        key = (kind, edit, flagged)
        if key == last_key:  # same kind, edit and flags: one segment (its text joined below)
            segment = segments[-1]
            _join(segment, piece.text, joined)
            if via[n]:
                segment["via"] = sorted(set(segment.get("via", ())) | set(via[n]))
            continue
        segment = {"k": kind, "t": piece.text}
        if edit >= 0:
            segment["e"] = edit
        if flagged:
            segment["f"] = list(flagged)
        if via[n]:
            segment["via"] = list(via[n])
        segments.append(segment)
        last_key = key
    if len(pieces) in marks:
        segments.append({"k": "mark", "t": "", "f": marks[len(pieces)]})
    for segment in joined:
        segment["t"] = "".join(segment["t"])
    return segments


def _join(segment: dict[str, Any], text: str, joined: list[dict[str, Any]]) -> None:
    """Add text to a segment (as a list of parts, joined once at the end)."""
    if isinstance(segment["t"], str):
        segment["t"] = [segment["t"]]
        joined.append(segment)
    segment["t"].append(text)


def _expand_where_shown_apart(pieces: list[_Piece], flags: list[dict[str, Any]]) -> list[_Piece]:
    """Expand the substitutions that are not shown as "sub" segments: removed ones (their
    changed runs are shown as removed by the later edit), ones over text an earlier edit
    inserted (shown as insertions), and visible ones a flag touches (flagged text is shown
    as it is, so only the flagged characters carry the flag)."""
    spans = _flag_spans(flags, sum(len(p.text) for p in pieces if p.removed_by < 0)) if flags else []
    out: list[_Piece] = []
    pos = 0
    for piece in pieces:
        visible = piece.removed_by < 0
        touched = False
        if spans and visible:  # (where a piece is matters to flags alone)
            end = pos + len(piece.text)
            touched = any(start <= end and stop >= pos for start, stop in spans)
            pos = end
        if piece.before is not None and (not visible or piece.origin >= 0 or touched):
            out.extend(_expand(piece))
        else:
            out.append(piece)
    return out


def _substitution_parts(before: str, after: str, edit: int) -> list[dict[str, Any]]:
    """A visible substitution as segments: "sub" for its changed runs with at most `SUB_GAP`
    unchanged characters between them, "keep" for the unchanged text around them (what
    `compact_substitutions` makes of its expanded segments)."""
    return [
        {"k": "sub", "t": before[start:end], "a": after[start:end], "e": edit}
        if changed
        else {"k": "keep", "t": after[start:end]}
        for start, end, changed in aligned_spans(before, after, SUB_GAP)
    ]


def _flag_spans(flags: list[dict[str, Any]], final_length: int) -> list[tuple[int, int]]:
    """The flags' spans, clamped to the final text (a record's flags are not trusted)."""
    return [
        (max(0, min(int(f.get("start", 0)), final_length)), max(0, min(int(f.get("end", 0)), final_length)))
        for f in flags
    ]


def _place_flags(
    pieces: list[_Piece], flags: list[dict[str, Any]]
) -> tuple[list[_Piece], dict[int, list[int]], dict[int, list[int]]]:
    """Pieces split at the flags' edges, with the flags covering each visible piece and the
    empty flags before each piece (flags are in final-text coordinates: over visible pieces)."""
    spans = _flag_spans(flags, sum(len(p.text) for p in pieces if p.visible))
    pieces = _split_at(pieces, sorted({x for span in spans for x in span}))
    starts: list[int] = []  # final-text start of each visible piece, and its index
    where: list[int] = []
    pos = 0
    for n, piece in enumerate(pieces):
        if piece.visible:
            starts.append(pos)
            where.append(n)
            pos += len(piece.text)
    piece_flags: dict[int, list[int]] = defaultdict(list)
    marks: dict[int, list[int]] = defaultdict(list)
    for f_index, (start, end) in enumerate(spans):
        first = bisect.bisect_left(starts, start)
        if end <= start:
            marks[where[first] if first < len(where) else len(pieces)].append(f_index)
            continue
        for n in range(first, bisect.bisect_left(starts, end)):
            piece_flags[where[n]].append(f_index)
    return pieces, dict(piece_flags), dict(marks)


def _removal_labels(pieces: list[_Piece]) -> tuple[list[int], list[tuple[int, ...]]]:
    """The edit each removed input piece is shown as removed by, and the earlier edits between.

    Text removed after an earlier edit replaced it (converted, then dropped) is shown as
    removed by the later edit: that is the decision a reviewer needs to see.
    """
    label = [p.removed_by for p in pieces]
    via: list[tuple[int, ...]] = [()] * len(pieces)
    i = 0
    count = len(pieces)
    while i < count:
        piece = pieces[i]
        if piece.inserted_by >= 0 or piece.removed_by < 0:
            i += 1
            continue
        j = i
        while j < count and pieces[j].inserted_by < 0 and pieces[j].removed_by == piece.removed_by:
            j += 1
        current, chain, k = piece.removed_by, [], j
        while True:
            m = k
            while m < count and pieces[m].inserted_by == current and pieces[m].before is None:
                m += 1
            if m == k or pieces[k].removed_by < 0:  # what the edit put there is still there
                break
            removers = {p.removed_by for p in pieces[k:m]}
            if len(removers) != 1 or -1 in removers:
                break
            chain.append(current)
            current = removers.pop()
            k = m
        if chain:
            for n in range(i, j):
                label[n] = current
                via[n] = tuple(chain)
        i = j
    return label, via


# A keep this short between two substituted runs of one edit goes into the same "sub" segment.
SUB_GAP = 20


def _substitution(segments: list[dict[str, Any]], n: int) -> int | None:
    """The edit of a del segment at `n` followed by an ins of the same edit and length that
    differs from it at every position (an aligned substitution, e.g. Traditional ->
    Simplified), else None."""
    if n + 1 >= len(segments):
        return None
    first, second = segments[n], segments[n + 1]
    if (first["k"] != "del" or second["k"] != "ins" or "via" in first or "f" in second
            or second.get("e") != first.get("e") or len(first["t"]) != len(second["t"])
            or any(a == b for a, b in zip(first["t"], second["t"], strict=True))):
        return None  # (a character the same on both sides would come back as kept text)
    return first["e"]


def _unit(segments: list[dict[str, Any]], n: int) -> tuple[int, str, str, int] | None:
    """The substitution that starts at segment `n` (a "sub" segment, or a del/ins pair that
    `_substitution` accepts) as (edit, input text, output text, segments it takes), else None."""
    segment = segments[n]
    if segment["k"] == "sub":
        return segment["e"], segment["t"], segment["a"], 1
    edit = _substitution(segments, n)
    return None if edit is None else (edit, segment["t"], segments[n + 1]["t"], 2)


def compact_substitutions(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of aligned substitutions by one edit, with the short unchanged text between them, as
    one {"k": "sub", "t": input text, "a": output text, "e": edit} segment.

    A document converted from Traditional to Simplified otherwise takes three segments per
    changed character (removed, inserted, the unchanged text after it): most of a report's
    size and of the time to make it. `t` and `a` have the same length; the characters that
    differ are the ones the edit changed (`expand_substitutions` gives the segments back).
    "sub" segments already there are merged the same way, so the result is one form whatever
    mix it is made from: compact(expand(x)) == compact(x).

    Compiled where built (`curate._kernels.compact_substitutions`): it walks every listed
    document's segments. The Python below is its specification and fallback.
    """
    if _compiled_compact_substitutions is not None and type(segments) is list:
        made = _compiled_compact_substitutions(segments, SUB_GAP)
        if made is not None:
            return made
    out: list[dict[str, Any]] = []
    n = 0
    count = len(segments)
    while n < count:
        segment = segments[n]
        kind = segment["k"]
        # (only a "sub" or a "del" starts a substitution: the rest, most, is passed on as it is)
        unit = _unit(segments, n) if kind == "sub" or kind == "del" else None
        if unit is None:
            out.append(segment)
            n += 1
            continue
        edit, first_before, first_after, size = unit
        before, after = [first_before], [first_after]
        n += size
        # Further substitutions of the edit, each after unchanged text (kept, unflagged, not
        # empty): so the differing runs are exactly the pairs and `expand_substitutions` gives
        # them back.
        while n + 1 < count:
            gap = segments[n]
            if gap["k"] != "keep" or "f" in gap or not 0 < len(gap["t"]) <= SUB_GAP:
                break
            following = _unit(segments, n + 1)
            if following is None or following[0] != edit:
                break
            before += (gap["t"], following[1])
            after += (gap["t"], following[2])
            n += 1 + following[3]
        if size == 1 and len(before) == 1:
            out.append(segments[n - 1])  # a "sub" segment as it was
        else:
            out.append({"k": "sub", "t": "".join(before), "a": "".join(after), "e": edit})
    return out


def expand_substitutions(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every "sub" segment as del/ins pairs for the runs of characters that differ and keep
    segments for the ones that do not (the page's script does the same)."""
    out: list[dict[str, Any]] = []
    for segment in segments:
        if segment["k"] != "sub":
            out.append(segment)
            continue
        before, after, edit = segment["t"], segment["a"], segment["e"]
        for start, end, changed in aligned_spans(before, after):
            if changed:
                out.append({"k": "del", "t": before[start:end], "e": edit})
                out.append({"k": "ins", "t": after[start:end], "e": edit})
            else:
                out.append({"k": "keep", "t": before[start:end]})
    return out


def shown_chars(segments: list[dict[str, Any]]) -> int:
    """Characters of text a diff shows (the size budget counts these): a segment's text, and a
    substitution's output characters where they differ from its input (compiled where built,
    as `compact_substitutions`)."""
    if _compiled_shown_chars is not None and type(segments) is list:
        made = _compiled_shown_chars(segments)
        if made is not None:
            return made
    size = 0
    for segment in segments:
        text = segment.get("t", "")
        size += len(text)
        if segment["k"] == "sub":
            size += count_differences(text, segment["a"])
    return size


def collapse(segments: list[dict[str, Any]], limits: Limits) -> tuple[list[dict[str, Any]], bool]:
    """Shorten unchanged runs to `context` characters around changes and cap the document.

    Collapsed text becomes a {"k": "gap", "n": characters} segment. Returns (segments, cut),
    cut = True when the document was longer than `max_doc_chars` and its end is not shown.
    """
    out, bound = _collapsed_runs(segments, limits.context)
    if bound <= limits.max_doc_chars or shown_chars(out) <= limits.max_doc_chars:
        return out, False
    # Capped: where the cap falls is counted in shown characters of the del/ins segments.
    out = expand_substitutions(out)
    shown = 0
    capped: list[dict[str, Any]] = []
    for n, seg in enumerate(out):
        size = len(seg.get("t", ""))
        if shown + size <= limits.max_doc_chars:
            shown += size
            capped.append(seg)
            continue
        room = max(0, limits.max_doc_chars - shown)
        if seg["k"] == "keep" and room:
            capped.append({"k": "keep", "t": seg["t"][:room]})
            size -= room
        rest = size + sum(len(s.get("t", "")) + s.get("n", 0) for s in out[n + 1 :])
        capped.append({"k": "cut", "n": rest})
        return capped, True
    return capped, False


def _collapsed_runs(segments: list[dict[str, Any]], ctx: int) -> tuple[list[dict[str, Any]], int]:
    """`collapse`'s segments before the cap, and a bound of the characters they show: a
    substitution shows at most its input and output text (counting that, as the segments go
    out, is enough for nearly every document). Compiled where built, as
    `compact_substitutions`."""
    if _compiled_collapsed_runs is not None and type(segments) is list and 0 <= ctx <= sys.maxsize:
        made = _compiled_collapsed_runs(segments, ctx)
        if made is not None:
            return made
    out: list[dict[str, Any]] = []
    last = len(segments) - 1
    bound = 0
    for n, seg in enumerate(segments):
        text = seg["t"]
        if seg["k"] != "keep" or "f" in seg or len(text) <= 2 * ctx + 20:
            out.append(seg)
            bound += len(text) + len(seg["a"]) if "a" in seg else len(text)
            continue
        head = ctx if n > 0 else 0
        tail = ctx if n < last else 0
        if n == 0 and n == last:
            head = 2 * ctx
        if head:
            out.append({"k": "keep", "t": text[:head]})
        out.append({"k": "gap", "n": len(text) - head - tail})
        if tail:
            out.append({"k": "keep", "t": text[-tail:]})
        bound += head + tail  # (the text is longer than both)
    return out, bound


# --------------------------------------------------------------------------- the summary
def review_command(doc_id: str, edit: dict[str, Any]) -> str:
    """The command that records a removal as wrong (the review feature, issue 7 item 5). The
    commands of short texts are remembered: the same few removals recur (the benchmark's 8,435
    are 1,516 distinct text and rule pairs; 1.5 us each to quote), longer ones seldom do."""
    text, rule = edit.get("before", "").strip(), edit.get("rule") or None
    if len(text) > _REMEMBERED_TEXT:
        return _keep_command()(text, rule)
    return _remembered_command(text, rule)


@cache
def _keep_command() -> Callable[[str, str | None], str]:
    """`curate.rules.review_command`, imported once it is first needed (curate.rules takes
    tens of milliseconds to import, which `curate report` need not pay), then held: an import
    statement per removal listed cost more than the command."""
    from curate.rules import review_command as keep_command

    return keep_command


_REMEMBERED_TEXT = 200  # characters of the longest text whose review command is remembered


@lru_cache(maxsize=2048)  # (at most a few MB: 2,048 commands of texts up to `_REMEMBERED_TEXT`)
def _remembered_command(text: str, rule: str | None) -> str:
    return _keep_command()(text, rule)


def _stage_order(stages: list[str], config_sections: list[str]) -> list[str]:
    """Pipeline order: the order of the stage sections in the manifest's config (the config
    lists run, ingest, then every stage in pipeline order); first appearance otherwise."""
    rank = {name: n for n, name in enumerate(["run", "ingest", *config_sections])}
    first = {name: n for n, name in enumerate(dict.fromkeys(stages))}
    return sorted(set(stages), key=lambda s: (rank.get(s, len(rank)), first[s], s))


def _removed_chars(action: str, before: int) -> tuple[int, int]:
    """(characters removed, characters replaced) by one edit."""
    if action == "drop" or action.startswith("meta:"):
        return before, 0
    if action == "replace":
        return 0, before
    return 0, 0


class _Tally:
    """The summary's counts, added document by document (each document's edits at once), so a
    version can be summarised while it is read, without holding it."""

    def __init__(self) -> None:
        self.status: dict[str, int] = {}  # (plain dicts: see `count_each`)
        self.edit_counts = EditCounts()  # the tables per stage and per rule are folded from it
        self.stage_docs: dict[str, int] = {}
        self.rule_docs: dict[tuple[str, str], int] = {}
        self.flags: dict[str, dict[str, int]] = {}
        self.documents = 0
        self.documents_edited = 0
        self.edits = 0

    def add_document(self, status: str, flags: list[FlagRow]) -> None:
        """A document's status and its flags."""
        self.documents += 1
        self.status[status] = self.status.get(status, 0) + 1
        kinds: set[str] = set()
        for kind, chars, _ in flags:
            entry = self.flags.setdefault(kind, {"flags": 0, "documents": 0, "chars": 0})
            entry["flags"] += 1
            entry["chars"] += max(0, chars)  # (a record's flags are not trusted)
            kinds.add(kind)
        for kind in kinds:
            self.flags[kind]["documents"] += 1

    def add_edits(self, doc_edits: list[EditRow]) -> None:
        """All the edits of one document."""
        self.documents_edited += 1
        self.edits += len(doc_edits)
        self.edit_counts.add(doc_edits)
        count_each(self.stage_docs, {row[0] for row in doc_edits})
        count_each(self.rule_docs, {(row[0], row[1]) for row in doc_edits})

    def _tables(self) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, Any]], Counter[str]]:
        """(per stage, per (stage, rule), per metadata field), folded from `edit_counts`; the
        stages in order of first appearance."""
        stages: dict[str, dict[str, Any]] = {}
        rules: dict[tuple[str, str], dict[str, Any]] = {}
        meta_fields: Counter[str] = Counter()
        for (stage, rule, action, kind), (edits, before, _) in self.edit_counts.by_key.items():
            removed, replaced = _removed_chars(action, before)
            field = action.split(":", 1)[1] if action.startswith("meta:") else None
            for key, table in ((stage, stages), ((stage, rule), rules)):
                entry = table.setdefault(
                    key, {"edits": 0, "chars_removed": 0, "chars_replaced": 0, "meta_fields": {}}
                )
                entry["edits"] += edits
                entry["chars_removed"] += removed
                entry["chars_replaced"] += replaced
                if field is not None:
                    entry["meta_fields"][field] = entry["meta_fields"].get(field, 0) + edits
            kinds = rules[(stage, rule)].setdefault("kinds", {})
            kinds[kind or action] = kinds.get(kind or action, 0) + edits
            if field is not None:
                meta_fields[field] += edits
        return stages, rules, meta_fields

    def result(self, manifest: dict[str, Any]) -> dict[str, Any]:
        stages, rules, meta_fields = self._tables()
        order = _stage_order(list(stages), list(manifest.get("config", {})))
        stage_rows = [
            {"stage": s, "documents": self.stage_docs[s], **_sorted_fields(stages[s])} for s in order
        ]
        rank = {s: n for n, s in enumerate(order)}
        rule_rows = [
            {"stage": s, "rule": r, "documents": self.rule_docs[(s, r)], **_sorted_fields(rules[(s, r)])}
            for s, r in sorted(rules, key=lambda sr: (rank[sr[0]], sr[1]))
        ]
        flag_rows = [{"kind": k, **v} for k, v in sorted(self.flags.items())]
        counts = {
            "documents_in": int(manifest.get("counts", {}).get("documents_in", self.documents)),
            "documents_out": self.status.get("ok", 0),
            "quarantined": self.status.get("quarantined", 0),
            "duplicates": self.status.get("duplicate", 0),
            "documents_edited": self.documents_edited,
            "edits": self.edits,
            "flags": sum(r["flags"] for r in flag_rows),
            "chars_removed": sum(r["chars_removed"] for r in stage_rows),
            "chars_replaced": sum(r["chars_replaced"] for r in stage_rows),
            "meta_fields": sum(meta_fields.values()),
        }
        chart = sorted(
            ({"stage": r["stage"], "rule": r["rule"], "chars_removed": r["chars_removed"], "edits": r["edits"]}
             for r in rule_rows if r["chars_removed"] > 0),
            key=lambda r: (-r["chars_removed"], r["stage"], r["rule"]),
        )
        return {
            "counts": counts,
            "stages": stage_rows,
            "rules": rule_rows,
            "flags": flag_rows,
            "meta_fields": dict(sorted(meta_fields.items())),
            "removals_by_rule": chart,
        }


def summarise(data: VersionData) -> dict[str, Any]:
    """Counts per stage, per rule, per flag kind and per metadata field, over all documents."""
    tally = _Tally()
    for doc_edits in data.edits.values():
        tally.add_edits([_edit_row(e) for e in doc_edits])
    for record in data.documents.values():
        tally.add_document(record["status"], _flag_rows(record.get("flags", [])))
    return tally.result(data.manifest)


def _sorted_fields(entry: dict[str, Any]) -> dict[str, Any]:
    out = dict(entry)
    out["meta_fields"] = dict(sorted(entry.get("meta_fields", {}).items()))
    if "kinds" in out:
        out["kinds"] = dict(sorted(out["kinds"].items()))
    return out


# --------------------------------------------------------------------------- documents
def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… (+{len(text) - limit} characters)"


def document_entry(
    doc: dict[str, Any],
    edits: list[dict[str, Any]],
    limits: Limits,
    with_diff: bool = True,
    text_in: str | None = None,
) -> dict[str, Any]:
    """One document of the report: provenance, status, meta, edits, flags and its inline diff.

    `text_in`: the decoded input, when the caller has it (else rebuilt: `input_text`)."""
    flags = doc.get("flags", [])
    entry: dict[str, Any] = {
        "id": doc["id"],
        "source": doc.get("source", ""),
        "status": doc["status"],
        "reason": doc.get("reason", ""),
        "duplicate_of": doc.get("duplicate_of"),
        "meta": doc.get("meta", {}),
        "chars_out": len(doc["text"]),
        "edits": _edit_entries(doc["id"], edits, limits.max_edit_text),
        "flags": flags,
    }
    text = input_text(doc, edits) if text_in is None else text_in
    entry["chars_in"] = len(text)
    if with_diff:
        segments, cut = collapse(diff_segments(text, edits, flags, doc["id"]), limits)
        entry["diff"] = compact_substitutions(segments)
        entry["diff_cut"] = cut
    else:
        entry["diff"] = None
        entry["diff_cut"] = False
    return entry


def _edit_entries(doc_id: str, edits: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """A document's edits as the report lists them (compiled where built:
    `curate._kernels.edit_entries`, the twin of `_edit_entry`)."""
    if _compiled_edit_entries is not None and type(doc_id) is str and type(edits) is list and 0 <= limit <= sys.maxsize:
        made = _compiled_edit_entries(doc_id, edits, limit, _clip, review_command)
        if made is not None:
            return made
    return [_edit_entry(doc_id, n, e, limit) for n, e in enumerate(edits)]


def _edit_entry(doc_id: str, n: int, e: dict[str, Any], limit: int) -> dict[str, Any]:
    """An edit as the report lists it (its texts clipped to `limit`: most are shorter)."""
    get = e.get
    action = get("action", "")
    before = get("before", "")
    after = get("after", "")
    entry = {
        "seq": get("seq", n),
        "stage": get("stage", ""),
        "rule": get("rule", ""),
        "action": action,
        "kind": get("kind", ""),
        "reason": get("reason", ""),
        "before": before if len(before) <= limit else _clip(before, limit),
        "after": after if len(after) <= limit else _clip(after, limit),
        "src_start": get("src_start", -1),
        "src_end": get("src_end", -1),
    }
    link = get("link")
    if link:
        entry["link"] = link
    evidence = get("evidence")
    if evidence:
        entry["evidence"] = evidence
    if action == "drop" or str(action).startswith("meta:"):
        entry["review"] = review_command(doc_id, e)
    return entry


def worth_listing(doc: dict[str, Any], edits: list[dict[str, Any]]) -> bool:
    return bool(edits or doc.get("flags") or doc["status"] != "ok")


def safe_json(data: Any) -> bytes:
    """Compact JSON in UTF-8 (`json_bytes`) in which `<`, `>`, `&`, U+2028 and U+2029 are
    written as \\uXXXX.

    The same data for any JSON reader (Go's encoding/json escapes the same way by default), and
    text that nothing can end early inside an HTML `<script>` element: report.json is embedded
    in report.html as it is, byte for byte.
    """
    encoded = json_bytes(data).replace(b"&", b"\\u0026").replace(b"<", b"\\u003c").replace(b">", b"\\u003e")
    if not _holds_line_separator(encoded):
        return encoded
    return encoded.replace("\u2028".encode(), b"\\u2028").replace("\u2029".encode(), b"\\u2029")


def _holds_line_separator(encoded: bytes) -> bool:
    """Whether UTF-8 `encoded` holds U+2028 or U+2029. They are rare, and their UTF-8 begins
    with the byte that “”…— begin with, which makes a search for either slow: one regex search
    finds both, and the kernels' `memchr` loop (curate._kernels) in a quarter to a third of its
    time (by hand, the benchmark's 31 MB of report entries: 19-21 ms with the regex, 5-7 ms)."""
    if _compiled_holds_line_separator is not None:
        return _compiled_holds_line_separator(encoded)
    return _LINE_SEPARATORS.search(encoded) is not None


_LINE_SEPARATORS = re.compile(rb"\xe2\x80[\xa8\xa9]")  # U+2028, U+2029 in UTF-8


class _Entry(NamedTuple):
    """A listed document as made by `_make_entries`: the entry (a dict, or its `safe_json`:
    made where the entry is, so the driver only joins bytes)."""

    entry: Any
    diff_chars: int | None  # characters of text in its diff; None: listed without a diff
    error: str  # the edit log did not replay (the entry has no diff)
    asked: bool  # a diff was asked for


def _make_entry(data: VersionData, doc_id: str, with_diff: bool, limits: Limits, encode: bool) -> _Entry:
    """Never raises for an edit log that does not replay: the caller decides (`strict`) once it
    knows the document's diff was wanted. An entry the run made already is used as it is."""
    made = _premade(data, doc_id, with_diff, limits, encode)
    if made is not None:
        return made
    return _entry_of(data.documents[doc_id], data.edits.get(doc_id, []), with_diff, limits, encode)


def _premade(data: VersionData, doc_id: str, with_diff: bool, limits: Limits, encode: bool) -> _Entry | None:
    """The entry the run made for this document (`EntryMaker`: encoded, with its diff, for these
    limits), if it is the one wanted."""
    premade = getattr(data, "premade", None)
    if with_diff and encode and premade is not None and premade.limits == limits:
        return premade.entries.get(doc_id)
    return None


def _entry_of(
    doc: dict[str, Any],
    edits: list[dict[str, Any]],
    with_diff: bool,
    limits: Limits,
    encode: bool,
    text_in: str | None = None,
) -> _Entry:
    error = ""
    try:
        entry = document_entry(doc, edits, limits, with_diff, text_in)
    except ReportError as exc:
        error = str(exc)
        entry = document_entry(doc, edits, limits, with_diff=False, text_in=text_in)
        entry["error"] = error
    chars = None if entry["diff"] is None else shown_chars(entry["diff"])
    return _Entry(safe_json(entry) if encode else entry, chars, error, with_diff)


def _make_entries(data: VersionData, limits: Limits, encode: bool, batch: list[tuple[str, bool]]) -> list[_Entry]:
    return [_make_entry(data, doc_id, with_diff, limits, encode) for doc_id, with_diff in batch]


class _Listing(NamedTuple):
    entries: list[Any]
    listed: int  # documents worth listing, including those past max_docs
    diffs_omitted: int
    errors: list[str]
    detectors: list[str]  # of the listed documents' flags


def _list_documents(data: VersionData, limits: Limits, strict: bool, encode: bool, workers: int) -> _Listing:
    """The entries of the documents worth listing, in id order, within the limits.

    The entries are independent of each other, so `workers` processes make them (forked with
    the version data in memory). Only the size budget is sequential: a document gets its diff
    while the diffs before it total less than `max_total_chars`. Whether that still holds is
    read when a document is handed to a worker; an entry made with a diff while the last
    in-flight diffs used up the budget is replaced here by the entry without one (and an edit
    log that did not replay there is then no error: its diff was never wanted).
    """
    from curate.engine import parallel_map

    worth = data.listable()
    shown = worth[: limits.max_docs]
    budget = limits.max_total_chars

    def handed_out() -> Iterator[tuple[str, bool]]:
        for doc_id in shown:
            yield doc_id, budget > 0

    make = partial(_make_entries, data, limits, encode)

    def made_with_the_run(batch: list[tuple[str, bool]]) -> list[_Entry] | None:
        """A batch whose entries the run made (all of them, for a corpus within the limits)
        needs no worker."""
        made = [_premade(data, doc_id, with_diff, limits, encode) for doc_id, with_diff in batch]
        return None if None in made else made

    # Documents per task: a task costs the driver about half a millisecond (the pool's
    # bookkeeping and its threads taking turns with this one), so a few large batches, about
    # 16 per worker, but no more than 256 entries a batch.
    batch = min(256, max(16, len(shown) // (16 * max(1, workers))))
    entries: list[Any] = []
    errors: list[str] = []
    omitted = 0
    # What this process holds (a loaded version's millions of objects, or what a run left)
    # lives until the report is written: frozen, it is not scanned again by every collection
    # that making the entries triggers (a fifth of their time with a loaded version).
    gc.freeze()
    try:
        entries_made = parallel_map(make, handed_out(), workers, batch, local=made_with_the_run)
        for doc_id, made in zip(shown, entries_made, strict=True):
            if made.asked and budget <= 0:
                made = _make_entry(data, doc_id, False, limits, encode)
            if made.error:
                if strict:
                    raise ReportError(made.error)
                errors.append(made.error)
            if made.diff_chars is None:
                omitted += 1
            else:
                budget -= made.diff_chars
            entries.append(made.entry)
    finally:
        gc.unfreeze()
    detectors = {detector for doc_id in shown for detector in data.detectors_of(doc_id)}
    return _Listing(entries, len(worth), omitted, errors, sorted(detectors))


def _report_head(data: VersionData, limits: Limits, listing: _Listing) -> dict[str, Any]:
    """Every key of the report but "documents" (which comes last), in the order written."""
    manifest = data.manifest
    return {
        "format": REPORT_FORMAT,
        "version": data.version,
        "parent": manifest.get("parent"),
        "tool_version": manifest.get("tool_version", ""),
        "rules_digest": manifest.get("rules_digest", ""),
        "config": manifest.get("config", {}),
        "inputs": manifest.get("inputs", []),
        "skipped": manifest.get("skipped", []),
        "summary": data.summary(),
        "limits": asdict(limits),
        "documents_listed": min(listing.listed, limits.max_docs),
        "documents_not_listed": max(0, listing.listed - limits.max_docs),
        "documents_unchanged": len(data.documents) - listing.listed,
        "diffs_omitted": listing.diffs_omitted,
        "errors": listing.errors,
    }


def build_report(data: VersionData, limits: Limits | None = None, strict: bool = True) -> dict[str, Any]:
    """The whole report as one JSON-ready dictionary (what `curate report` renders).

    strict=False: an edit log that does not replay is recorded in "errors" and that document is
    listed without its diff, so the rest of the report is still made.
    """
    limits = limits or Limits()
    listing = _list_documents(data, limits, strict, encode=False, workers=1)
    return {**_report_head(data, limits, listing), "documents": listing.entries}


class EncodedReport(NamedTuple):
    """A report as report.json's content (`safe_json` of `build_report`'s dictionary, in UTF-8,
    its documents made in parallel), and everything but the documents as a dictionary."""

    head: dict[str, Any]
    data: list[bytes]  # report.json's content: these parts, one after the other
    detectors: list[str]  # of the listed documents' flags (the HTML page's rule filter)


def encode_report(data: VersionData, limits: Limits | None = None, strict: bool = False,
                  workers: int = 1) -> EncodedReport:
    """What a run writes: made by `workers` processes, never held as one dictionary (a report
    of 5,700 documents with a million diff segments takes seconds to build, encode or pickle)."""
    limits = limits or Limits()
    listing = _list_documents(data, limits, strict, encode=True, workers=workers)
    head = _report_head(data, limits, listing)
    parts = [safe_json(head)[:-1], b',"documents":[']
    for n, entry in enumerate(listing.entries):
        parts += (b",", entry) if n else (entry,)
    parts.append(b"]}")
    return EncodedReport(head, parts, listing.detectors)


def edit_matches(edit: dict[str, Any], rule: str | None, kind: str | None, stage: str | None) -> bool:
    """Whether an edit passes the --rule/--kind/--stage filters (all given ones must hold)."""
    return (
        (rule is None or edit.get("rule") == rule)
        and (kind is None or edit.get("kind") == kind or edit.get("action") == kind)
        and (stage is None or edit.get("stage") == stage)
    )


def flag_matches(flag: dict[str, Any], rule: str | None, kind: str | None, stage: str | None) -> bool:
    """Flags have a kind and a detector; --stage and --rule match the detector."""
    return (
        (kind is None or flag.get("kind") == kind)
        and (rule is None or flag.get("detector") == rule)
        and (stage is None or str(flag.get("detector", "")).startswith(stage))
    )


# How the summary counts are labelled, in the terminal and in the HTML page alike.
COUNT_LABELS = [
    ("documents_in", "documents in"),
    ("documents_out", "documents out"),
    ("quarantined", "quarantined"),
    ("duplicates", "duplicates"),
    ("documents_edited", "documents edited"),
    ("edits", "edits"),
    ("flags", "flags"),
    ("chars_removed", "characters removed"),
    ("chars_replaced", "characters replaced"),
    ("meta_fields", "metadata fields"),
]
