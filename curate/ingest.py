"""Ingest: find input files, decode them, and turn them into documents.

Each input file is read once as bytes (its sha256 goes into the manifest), decoded with a
detected encoding, and split into documents by format: one per .txt/.md/.html file, one per
record of .jsonl/.json files. A file that cannot be used (binary, empty, undecodable, too
large, malformed) is skipped with a one-line reason; a malformed record in a JSON file is
reported on its own and the other records are kept. Input files are only ever read.

"Decoded input" (what edit offsets map back to) is the decoded text with CRLF/CR turned into
LF; for HTML it is the page's visible text, block by block (see curate.html).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from curate.config import IngestSettings
from curate.document import Change, Document
from curate.textutil import CharClass


@dataclass
class InputFile:
    """A file found under an input root."""

    path: Path
    source: str  # relative POSIX path (prefixed with the root's name when there are several roots)
    size: int
    sha256: str = ""


@dataclass
class Skipped:
    path: str  # source path, with "#<record>" for a single bad record
    reason: str

    def line(self) -> str:
        return f"skipped {self.path}: {self.reason}"

    @classmethod
    def unreadable(cls, source: str, exc: OSError) -> Skipped:
        """A file that could not be read (gone, unreadable), with the system's reason."""
        return cls(source, f"cannot read: {exc.strerror or exc}")


@dataclass
class FileResult:
    """What reading one file gave: its documents, its skipped parts, and how it was decoded."""

    file: InputFile
    # Document objects; pickled (bytes) when a worker read the file for an engine that takes
    # them so (`LocalEngine.takes_pickled_documents`); an iterator of them from
    # `read_file_lazily`, until walked
    documents: list[Any] | Iterator[Any] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    encoding: str = ""


class IngestError(Exception):
    """An input that cannot be read at all (a missing path): a usage error, not a skip."""


def scan(inputs: list[str | Path], settings: IngestSettings) -> tuple[list[InputFile], list[Skipped]]:
    """All files under the inputs, sorted by source; files of other types are listed as skipped."""
    roots = [Path(p) for p in inputs]
    for root in roots:
        if not root.exists():
            raise IngestError(f"{root}: no such file or folder")
    prefix_roots = len(roots) > 1
    found: dict[str, InputFile] = {}
    skipped: list[Skipped] = []
    extensions = {e.lower() for e in settings.extensions}
    for root in roots:
        if root.is_file():
            candidates = [(root, root.name)]
        else:
            candidates = [
                (p, p.relative_to(root).as_posix())
                for p in root.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
            ]
        for path, rel in candidates:
            source = f"{root.name}/{rel}" if prefix_roots and root.is_dir() else rel
            if root.is_dir() and path.suffix.lower() not in extensions:
                skipped.append(Skipped(source, f"unsupported file type {path.suffix or '(none)'}"))
                continue
            if source in found:
                skipped.append(Skipped(source, f"same source path as {found[source].path}"))
                continue
            found[source] = InputFile(path=path, source=source, size=path.stat().st_size)
    files = sorted(found.values(), key=lambda f: f.source)
    skipped.sort(key=lambda s: s.path)
    return files, skipped


# --------------------------------------------------------------------------- decoding
_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]
# Chinese text in a legacy encoding is GB18030 (a superset of GB2312/GBK) or Big5.
_LEGACY_CHINESE = ["gb18030", "big5"]
# A decode with a few bad bytes is kept (the bad bytes become U+FFFD, flagged later as
# mojibake) when they are at most this share of the text; more than that is undecodable.
MAX_REPLACED_SHARE = 0.002


class DecodeError(Exception):
    pass


def _plausible_text_share(text: str) -> float:
    """Share of characters that are common in Chinese or ASCII text."""
    if not text:
        return 0.0
    good = sum(
        1
        for c in text
        if c in "\n\t" or " " <= c <= "~" or "\u4e00" <= c <= "\u9fff" or "\u3000" <= c <= "\u303f"
        or "\uff00" <= c <= "\uffef" or "\u2010" <= c <= "\u2027"
    )
    return good / len(text)


def _looks_utf16(data: bytes) -> str | None:
    """UTF-16 without a BOM: decodes cleanly to text that is mostly Han, CJK punctuation or ASCII."""
    if len(data) < 4 or len(data) % 2 or b"\x00" not in data[:8192]:
        return None
    best, best_share = None, 0.9
    for name in ("utf-16-le", "utf-16-be"):
        try:
            share = _plausible_text_share(data[:8192].decode(name))
        except UnicodeDecodeError:
            continue
        if share > best_share:
            best, best_share = name, share
    return best


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return controls > max(8, len(sample) // 100)


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Decode bytes to text, returning (text, encoding name). Raises DecodeError."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(name), name
            except UnicodeDecodeError as exc:
                raise DecodeError(f"starts with a {name} byte-order mark but is not {name}: {exc.reason}") from None
    utf16 = _looks_utf16(data)
    if utf16:
        try:
            return data.decode(utf16), utf16
        except UnicodeDecodeError:
            pass
    if _looks_binary(data):
        raise DecodeError("binary file (NUL or control bytes), not text")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    import charset_normalizer  # (only for bytes that are not UTF-8: 15-20 ms of start-up)

    best = charset_normalizer.from_bytes(data, cp_isolation=_LEGACY_CHINESE).best()
    if best is not None:
        return str(best), best.encoding
    for name in ["utf-8", *_LEGACY_CHINESE]:
        text = data.decode(name, errors="replace")
        bad = text.count("\ufffd")
        if bad <= max(1, int(len(text) * MAX_REPLACED_SHARE)):
            return text, f"{name}+replace"
    best = charset_normalizer.from_bytes(data).best()
    if best is not None and best.chaos < 0.1:
        return str(best), best.encoding
    raise DecodeError("undecodable: not UTF-8, UTF-16, GB18030 or Big5")


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


# --------------------------------------------------------------------------- formats
def read_file(file: InputFile, settings: IngestSettings) -> FileResult:
    """Read, hash, decode and split one file. Never raises for bad content: it skips.

    `result.file.sha256` is the hash of what was read. The documents carry it, but those of a
    JSON-lines file past `max_file_mb` whose `file.sha256` is set carry that (a run's input
    carries the hash the run began with): they are made before the read that hashes it ends."""
    result = read_file_lazily(file, settings)
    result.documents = list(result.documents)
    return result


def read_file_lazily(file: InputFile, settings: IngestSettings) -> FileResult:
    """`read_file`, but the records of a JSON file become documents only as
    `result.documents` (then an iterator) is walked, and the records skipped on the way join
    `result.skipped` then: a file of many small records never has all its documents at once
    (only its text), and its first documents go to work while the rest are still to be made
    (a 3.3 MB file of one-sentence records: the first pass's first result 0.26 s after the
    start, 0.12 s now; `bench/pipeline_timeline.py --shape short`)."""
    result = FileResult(file=file)
    max_bytes = settings.max_file_mb * 1024 * 1024
    if file.size > max_bytes:
        jsonl = file.path.suffix.lower() == ".jsonl"
        if jsonl and _stream_jsonl(file, settings, result):
            return result
        why = " and not UTF-8 (JSON lines past that size are read only in UTF-8)" if jsonl else ""
        result.skipped.append(Skipped(file.source, f"larger than {settings.max_file_mb:g} MB{why}"))
        return result
    try:
        data = file.path.read_bytes()
    except OSError as exc:
        result.skipped.append(Skipped.unreadable(file.source, exc))
        return result
    file.sha256 = hashlib.sha256(data).hexdigest()
    if not data.strip():
        result.skipped.append(Skipped(file.source, "empty file"))
        return result
    try:
        text, encoding = decode_bytes(data)
    except DecodeError as exc:
        result.skipped.append(Skipped(file.source, str(exc)))
        return result
    result.encoding = encoding
    text = normalise_newlines(text)
    suffix = file.path.suffix.lower()
    common = {"raw_sha256": file.sha256, "encoding": encoding}
    if suffix in (".jsonl", ".json"):
        if suffix == ".jsonl":
            records = _jsonl_records(text.split("\n"))
        else:
            records = _json_records(text)
        result.documents = _record_documents(records, file, settings, result, common)
    elif suffix in HTML_SUFFIXES:
        _read_html(data, file, result, common)
    else:
        if not text.strip():
            result.skipped.append(Skipped(file.source, "no text (only white space)"))
        else:
            result.documents.append(Document.new(file.source, text, **common))
    return result


HTML_SUFFIXES = (".html", ".htm")


def slow_to_read(file: InputFile) -> bool:
    """An HTML page: parsed and its article extracted (~5 MB/s on one core, where text and
    JSON lines decode and split at ~90 MB/s)."""
    return file.path.suffix.lower() in HTML_SUFFIXES


def load_readers(files: list[InputFile]) -> None:
    """Load what reading `files` will need that is loaded on first use (the HTML reader: its
    parser and what parsing a page imports), here: processes forked afterwards to read them
    share it, where each would have imported it again."""
    if any(slow_to_read(file) for file in files):
        from curate import html

        html.extract_article("<html><head><title>t</title></head><body><p>文字。</p></body></html>")


def _read_html(data: bytes, file: InputFile, result: FileResult, common: dict[str, Any]) -> None:
    from curate import html

    html_text, encoding = html.decode_html(data)
    result.encoding = encoding
    try:
        article = html.extract_article(normalise_newlines(html_text), source=file.source)
    except ValueError as exc:  # a page the parser rejects: skipped, as any unusable file
        result.skipped.append(Skipped(file.source, str(exc).removeprefix(f"{file.source}: ")))
        return
    common = {**common, "encoding": encoding}
    if not article.text.strip():
        result.skipped.append(Skipped(file.source, "HTML page without visible text"))
        return
    meta = dict(article.meta)
    if article.title:
        meta.setdefault("title", article.title)
    doc = Document.new(file.source, article.text, meta=meta, **common)
    doc.apply(
        "ingest",
        [
            Change(
                drop.start,
                drop.end,
                "",
                rule="html.chrome",
                reason=drop.reason,
                kind="html-chrome",
                evidence={"path": drop.path},
            )
            for drop in article.drops
        ],
    )
    result.documents.append(doc)


# A record of a JSON file: its key, its parsed value, the error that stopped it (or None), and
# whether its JSON holds a `\u` escape (without one, no lone surrogate: see below).
Record = tuple[str, Any, str | None, bool]


# A JSON string may hold half of a UTF-16 surrogate pair alone ("\ud800"), which Python reads as
# a lone surrogate: not a Unicode character, and no UTF-8 file can hold one (a run would fail
# where it writes it). Its other half is lost, as bytes a decoder cannot read are: it becomes
# U+FFFD, as those do (`decode_bytes`), and the corrupted-span flagger reports it. Pairs are
# read as the character they encode, as before.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Looked for by a compiled scan first (most strings hold none): `re` tests every character
# against the range (by hand, the 7,310 strings of the benchmark's escaped JSON lines, 1.69 M
# characters: 10.3 ms replaced, 2.6 ms scanned).
_LONE_SURROGATES = CharClass(_LONE_SURROGATE)


def _without_lone_surrogates(value: Any) -> Any:
    """`value` (parsed JSON) with every lone surrogate in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value) if _LONE_SURROGATES.found_in(value) else value
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


def parsed_json(text: str) -> Any:
    """`json.loads(text)`, parsed by orjson where that gives the same value (about 3 times
    faster: the benchmark's JSON lines in 12 ms rather than 35). For a JSON line: a whole JSON
    file is parsed by `json` alone (one that does not parse, as the benchmark's often do, would
    be parsed twice before it is salvaged).

    orjson refuses what the standard parser takes beyond JSON's grammar (NaN, 1e400, an escaped
    lone surrogate) and reads an integer past 64 bits as a float: a text it refuses, or whose
    value holds a float, is parsed again by `json`, whose value (or error) it is."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    return json.loads(text) if _holds_float(value) else value


def _holds_float(value: Any) -> bool:
    """Whether parsed JSON holds a float anywhere (no recursion: JSON may nest deeper than
    Python's stack)."""
    if isinstance(value, str):
        return False
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float):
            return True
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _jsonl_records(lines: Iterable[str]) -> Iterator[Record]:
    """The records of a JSON-lines file's lines (its text split at newlines, normalised)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = parsed_json(line)
        except json.JSONDecodeError as exc:
            yield f"L{number}", None, f"malformed JSON: {exc.msg} (column {exc.colno})", False
            continue
        yield f"L{number}", value, None, "\\u" in line


# A JSON-lines file larger than `max_file_mb` is read a block of this many bytes at a time when
# it is UTF-8 throughout (`_stream_jsonl`): its documents come as its lines are read, and
# memory holds a block and a line, never the file.
STREAM_BLOCK = 1 << 20


def _stream_jsonl(file: InputFile, settings: IngestSettings, result: FileResult) -> bool:
    """Read a JSON-lines file block by block, if it is UTF-8 throughout (True; the documents
    in `result.documents`, the same as reading it whole would give: the same decoding,
    newlines, line numbers and records), else False (it is not read).

    What reading it whole decodes otherwise (a UTF-16 or UTF-32 byte-order mark, UTF-16 without
    one, a legacy encoding) needs the whole text: such a file stays skipped past `max_file_mb`.
    One read first checks the UTF-8, and hashes the file only if `file.sha256` is unset (a run
    passes the hash it began with, which its documents carry); the read that makes the documents
    hashes it again, and a file changed since it was hashed is told by `result.file.sha256` once
    its documents are made (`curate.runner` stops the run). A file found blank, which makes no
    documents, is hashed in the check whatever it was: changed to blank, it is told the same way."""
    hashing = not file.sha256
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        with file.path.open("rb") as handle:
            head = handle.read(max(STREAM_BLOCK, 8192))  # (what `decode_bytes` looks at first)
            bom = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
            # (as `decode_bytes`: a UTF-8 mark decides; else no other mark, and nothing binary,
            # which UTF-16 without a mark, with its zero bytes, also is)
            if not bom and (any(head.startswith(mark) for mark, _ in _BOMS) or _looks_binary(head)):
                return False
            blank = not head.strip()  # (as `read_file`'s "empty file": ASCII white space only)
            if hashing or blank:
                digest.update(head)
            decoder.decode(head[bom:])
            for block in iter(lambda: handle.read(STREAM_BLOCK), b""):
                blank = blank and not block.strip()
                if hashing or blank:  # (every block so far blank: all of them hashed)
                    digest.update(block)
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    except OSError as exc:
        result.skipped.append(Skipped.unreadable(file.source, exc))
        return True
    if hashing or blank:
        file.sha256 = digest.hexdigest()
    if blank:
        result.skipped.append(Skipped(file.source, "empty file"))
        return True
    result.encoding = "utf-8-sig" if bom else "utf-8"
    common = {"raw_sha256": file.sha256, "encoding": result.encoding}
    records = _jsonl_records(_streamed_lines(file, bom, result))
    result.documents = _record_documents(records, file, settings, result, common)
    return True


def _streamed_lines(file: InputFile, bom: int, result: FileResult) -> Iterator[str]:
    """The lines of a UTF-8 file as `normalise_newlines(text).split("\\n")` of its whole text
    gives them, decoded a block at a time (a carriage return that ends a block waits for the
    next: it may begin a CR LF). The file is hashed again as it is read: its hash goes to
    `result.file.sha256` at the end (empty if it could not be read again as UTF-8: it changed)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    rest = ""  # the start of a line the blocks so far have not ended, and a carriage return
    skip = bom
    try:
        with file.path.open("rb") as handle:
            while True:
                raw = handle.read(STREAM_BLOCK)
                digest.update(raw)
                block, skip = raw[skip:], max(0, skip - len(raw))
                text = rest + decoder.decode(block, final=not raw)
                if not raw:  # the end of the file
                    yield from normalise_newlines(text).split("\n")
                    break
                carry = "\r" if text.endswith("\r") else ""
                lines = normalise_newlines(text[: len(text) - len(carry)]).split("\n")
                rest = lines.pop() + carry
                yield from lines
    except (OSError, UnicodeDecodeError):  # (gone, or no longer UTF-8, since it was checked)
        result.file.sha256 = ""
        return
    result.file.sha256 = digest.hexdigest()


def _json_records(text: str) -> Iterator[Record]:
    """Records of a .json file: an array, an object holding one array, or a single object.

    A file that does not parse as a whole (two arrays in a row, a missing bracket, a bad
    escape) is read object by object, so one bad record costs only that record.
    """
    escaped = "\\u" in text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        yield from _salvage_objects(text, escaped)
        return
    if isinstance(value, dict):
        arrays = [v for v in value.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(arrays) == 1:
            value = arrays[0]
        else:
            yield "0", value, None, escaped
            return
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield str(index), item, None, escaped
    else:
        yield "0", None, "JSON value is neither an object nor an array of objects", False


def _salvage_objects(text: str, escaped: bool) -> Iterator[Record]:
    decoder = json.JSONDecoder()
    pos, index, length = 0, 0, len(text)
    while pos < length:
        start = text.find("{", pos)
        if start == -1:
            return
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            line = text.count("\n", 0, exc.pos) + 1
            yield f"{index}", None, f"malformed JSON near line {line}: {exc.msg}", False
            index += 1
            # Resume at the next object that starts a line (the usual record layout).
            nxt = text.find("\n", exc.pos)
            while nxt != -1 and not text[nxt + 1 :].lstrip(" \t,[").startswith("{"):
                nxt = text.find("\n", nxt + 1)
            if nxt == -1:
                return
            pos = nxt + 1
            continue
        yield f"{index}", value, None, escaped
        index += 1
        pos = end


def _record_documents(
    records: Iterator[Record],
    file: InputFile,
    settings: IngestSettings,
    result: FileResult,
    common: dict[str, Any],
) -> Iterator[Document]:
    """The documents of a JSON file's records, one by one; what it skips goes to `result`."""
    seen: set[str] = set()
    text_fields, meta_fields = settings.text_fields, settings.meta_fields
    raw_sha256, encoding = common["raw_sha256"], common["encoding"]
    for key, value, error, escaped in records:
        if error is not None:
            result.skipped.append(Skipped(f"{file.source}#{key}", error))
            continue
        if not isinstance(value, dict):
            result.skipped.append(Skipped(f"{file.source}#{key}", "record is not a JSON object"))
            continue
        # Lone surrogates are replaced in what the document takes (a name of a field too: then
        # the whole record), not in every string of the record: the lines of a file of escaped
        # text searched for the escape of one took 3/4 of the time parsing them did.
        if escaped and not all(name.isascii() for name in value):
            value = _without_lone_surrogates(value)
        text = None
        for name in text_fields:  # (a loop, not a generator: a record costs the driver)
            candidate = value.get(name)
            if isinstance(candidate, str) and candidate.strip():
                text = candidate
                break
        if text is None:
            fields = "/".join(text_fields)
            result.skipped.append(Skipped(f"{file.source}#{key}", f"record has no text ({fields} missing or blank)"))
            continue
        own_id = _without_lone_surrogates(value.get("id")) if escaped else value.get("id")
        if isinstance(own_id, (str, int)) and not isinstance(own_id, bool):
            named = str(own_id)
            if named not in seen:
                key = f"id={named}"
                seen.add(named)
        meta = {f: value[f] for f in meta_fields if value.get(f) not in (None, "")}
        if escaped:
            text, meta = _without_lone_surrogates(text), _without_lone_surrogates(meta)
        yield Document.new(
            f"{file.source}#{key}", normalise_newlines(text), raw_sha256=raw_sha256, encoding=encoding, meta=meta
        )
