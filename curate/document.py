"""The document model: text plus everything that happened to it.

A `Document` is what flows through the pipeline (compare datatrove's `Document`). Stages never
assign `doc.text` directly: they call `Document.apply`, which records every change as an `Edit`
(stage, rule, action, span, text before and after, reason) and keeps a map from positions in the
current text back to positions in the decoded input. Because every edit keeps the text it
replaced, the decoded input can always be rebuilt from the final text and the edit log
(`Document.reconstruct_input`): nothing is lost.

Coordinates:
- `Edit.start`/`Edit.end` index the text *as it was just before that edit* (so replaying the log
  forwards, or backwards, is exact);
- `Edit.src_start`/`Edit.src_end` index the decoded input, so the report can show any edit in the
  context of what the user gave us;
- `Flag.start`/`Flag.end` index the current text (and, once written, the final text).
"""

from __future__ import annotations

import hashlib
import operator
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

try:  # the compiled loops (curate/_kernels.pyx), built by the install
    from curate._kernels import packed_source as _compiled_packed_source
    from curate._kernels import packed_text as _compiled_packed_text
    from curate._kernels import source_from_breaks as _compiled_from_breaks
    from curate._kernels import source_map as _compiled_source_map
    from curate._kernels import texts_size as _compiled_texts_size
    from curate._kernels import unpacked_text as _compiled_unpacked_text
except ImportError:  # no C compiler was there: numpy does the same
    _compiled_source_map = _compiled_from_breaks = _compiled_packed_source = None
    _compiled_packed_text = _compiled_unpacked_text = _compiled_texts_size = None

# Source positions are 4-byte ints: half the memory of "l", and documents are far below 2**31.
SRC_TYPE = "i"

# Document status values. Only "ok" documents go to documents.jsonl; the others go to the
# version's quarantine.jsonl / duplicates.jsonl with their reasons.
OK = "ok"
QUARANTINED = "quarantined"
DUPLICATE = "duplicate"


def pickled_as_fields(cls: type) -> type:
    """Pickle instances of a slotted dataclass as (class, field values).

    Documents are pickled at every hand-over between processes (twice per corpus stage); the
    dataclass default, `__getstate__`/`__setstate__` written in Python, costs about half as
    much again for a document with its edits.
    """
    values = operator.attrgetter(*cls.__slots__)

    def __reduce__(self: Any) -> tuple[type, tuple[Any, ...]]:
        return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[method-assign,assignment]
    return cls


@dataclass(slots=True)
class Edit:
    """One change to a document's text (or a metadata extraction that removed text)."""

    stage: str
    rule: str
    action: str  # "drop" | "replace" | "meta:<field>" | "flag"
    start: int
    end: int
    before: str
    after: str
    reason: str
    kind: str = ""  # e.g. "boilerplate", "credit", "duplicate", "normalise", "html-chrome"
    src_start: int = -1
    src_end: int = -1
    evidence: dict[str, Any] | None = None
    link: dict[str, Any] | None = None  # for duplicates: {"doc", "start", "end"} of the original

    def to_json(self) -> dict[str, Any]:
        """Fields in declaration order; empty evidence/link left out (no deep copy): the edit's
        record (`to_record`) without its document and number."""
        data = self.to_record("", 0)
        del data["doc"], data["seq"]
        return data

    def to_record(self, doc: str, seq: int) -> dict[str, Any]:
        """The edit's line of edits.jsonl: "doc" and "seq", then its fields in declaration order
        (tested against `__slots__`), an empty evidence or link left out; made as one dict. The
        writer makes one for every edit of a run: 23,018 on the benchmark, 34 -> 19 ms (by hand,
        as Python) against `to_json` merged into another dict."""
        data = {
            "doc": doc, "seq": seq, "stage": self.stage, "rule": self.rule, "action": self.action,
            "start": self.start, "end": self.end, "before": self.before, "after": self.after,
            "reason": self.reason, "kind": self.kind, "src_start": self.src_start, "src_end": self.src_end,
        }  # fmt: skip
        if self.evidence is not None:
            data["evidence"] = self.evidence
        if self.link is not None:
            data["link"] = self.link
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Edit:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@pickled_as_fields
@dataclass(slots=True)
class Flag:
    """A suspicious span of the current text: kept (or removed) per policy, always reported."""

    kind: str  # "spam-injection" | "mojibake" | "splice" | "truncated" | "garbage" | ...
    start: int
    end: int
    text: str
    reason: str
    severity: str = "warning"  # "info" | "warning" | "error"
    detector: str = ""
    evidence: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}
        if data["evidence"] is None:
            del data["evidence"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Flag:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(slots=True)
class Change:
    """A change a stage asks for, in coordinates of the current text (see `Document.apply`)."""

    start: int
    end: int
    after: str
    rule: str
    reason: str
    action: str = ""  # default: "drop" when after == "" else "replace"
    kind: str = ""
    evidence: dict[str, Any] | None = None
    link: dict[str, Any] | None = None


def _change_order(change: Change) -> tuple[int, int]:
    return change.start, change.end


def _remapped_source(src: array, shifts: list[tuple[int, int, int]]) -> array:
    """The text -> input map after replacing each (start, end) of the text by `length`
    characters: positions outside the changes keep their place in the input, and the
    boundaries inside inserted text map proportionally into the replaced span."""
    out = array(SRC_TYPE)
    cursor = 0
    for start, end, length in shifts:
        if length == end - start:  # same length: character by character, copied with what follows
            continue
        out.extend(src[cursor:start])
        s0, s1 = src[start], src[end]
        out.extend([s0 + (i * (s1 - s0)) // length for i in range(length)])
        cursor = end
    out.extend(src[cursor:])
    return out


_IDENTITY = array(SRC_TYPE, range(1 << 16))


def identity_map(length: int) -> array:
    """array(SRC_TYPE, range(length + 1)), sliced from a shared one that grows by doubling (a
    slice is a memory copy; building from `range` makes an int object per character)."""
    global _IDENTITY
    while len(_IDENTITY) <= length:
        _IDENTITY = _IDENTITY + array(SRC_TYPE, range(len(_IDENTITY), 2 * len(_IDENTITY)))
    return _IDENTITY[: length + 1]


def source_breaks(src: array) -> tuple[np.ndarray, np.ndarray]:
    """A text -> input map (`Document._src`), compact: the positions where src[i] - i changes
    (the first is 0) and that offset from each of them on (int64 arrays)."""
    if _compiled_source_map is not None and src.itemsize == 4:  # one compiled pass
        return _compiled_source_map(src)
    values = np.asarray(src, dtype=np.int64)
    if values.shape[0] == 0:
        return np.zeros(1, np.int64), np.zeros(1, np.int64)
    offsets = values - np.arange(values.shape[0], dtype=np.int64)
    changes = np.flatnonzero(offsets[1:] != offsets[:-1]) + 1
    positions = np.concatenate((np.zeros(1, np.int64), changes))
    return positions, offsets[positions]


def source_from_breaks(length: int, positions: np.ndarray, offsets: np.ndarray) -> array:
    """The map of `length` entries that `source_breaks` described."""
    if positions.shape[0] == 1 and offsets[0] == 0:
        return identity_map(length - 1)
    if _compiled_from_breaks is not None and SRC_TYPE == "i":  # one compiled pass
        return _compiled_from_breaks(
            length, np.ascontiguousarray(positions, np.int32), np.ascontiguousarray(offsets, np.int32)
        )
    counts = np.diff(np.append(positions, length))
    values = np.arange(length, dtype=np.int64) + np.repeat(offsets.astype(np.int64), counts)
    rebuilt = array(SRC_TYPE)
    rebuilt.frombytes(values.astype(np.dtype(f"={SRC_TYPE}")).tobytes())
    return rebuilt


def _packed_source(src: array) -> int | tuple[int, bytes, bytes]:
    """`_src` as a document travels: its length when it maps every position to itself (every
    document until an edit changes the length of its text), else its breaks (`source_breaks`)
    as int32 bytes. Sent whole, it was 4 bytes per character, 30% of a pickled document."""
    if _compiled_packed_source is not None and src.typecode == "i":  # the bytes made at once
        return _compiled_packed_source(src)
    positions, offsets = source_breaks(src)
    if positions.shape[0] == 1 and offsets[0] == 0:
        return len(src)
    return len(src), positions.astype(np.int32).tobytes(), offsets.astype(np.int32).tobytes()


def _unpacked_source(packed: int | tuple[int, bytes, bytes]) -> array:
    if isinstance(packed, int):
        return identity_map(packed - 1)
    length, positions, offsets = packed
    return source_from_breaks(length, np.frombuffer(positions, np.int32), np.frombuffer(offsets, np.int32))


def stable_id(source: str) -> str:
    """A document id that depends only on where it came from, never on run order."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


@dataclass(slots=True)
class Document:
    """A document with its provenance. Construct with `Document.new`."""

    id: str
    source: str  # path relative to the input root, plus "#<record key>" for multi-record files
    text: str
    raw_sha256: str = ""  # sha256 of the raw bytes of the input file
    encoding: str = "utf-8"
    meta: dict[str, Any] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    status: str = OK
    status_reason: str = ""
    duplicate_of: str | None = None
    # One-line problems met while processing (e.g. a rule that timed out); the writer lists them
    # in the manifest. Kept on the document so they survive worker processes.
    warnings: list[str] = field(default_factory=list)
    # _src[i] = position in the decoded input of boundary i of the current text (len(text)+1).
    _src: array = field(default_factory=lambda: array(SRC_TYPE), repr=False)

    @classmethod
    def new(
        cls,
        source: str,
        text: str,
        *,
        raw_sha256: str = "",
        encoding: str = "utf-8",
        meta: dict[str, Any] | None = None,
    ) -> Document:
        # Every field given in order (the dataclass's `__init__` takes keywords and calls its
        # default factories more slowly: a document of a JSON line is made in the driver).
        return cls(
            stable_id(source), source, text, raw_sha256, encoding, dict(meta) if meta else {},
            [], [], OK, "", None, [], identity_map(len(text)),
        )  # fmt: skip

    # ------------------------------------------------------------------ editing
    def apply(self, stage: str, changes: Iterable[Change]) -> list[Edit]:
        """Apply non-overlapping changes given in coordinates of the current text.

        Changes are applied left to right; each resulting `Edit` records its span in the text
        as it was just before that edit, and its span in the decoded input. Flags are shifted
        (or clipped) to follow the text. Returns the edits made.

        Changes that keep the length (Traditional to Simplified, full-width punctuation: most
        of them) keep every position's place in the input, so the map is left as it is (a map
        is never changed in place) rather than copied piece by piece.
        """
        ordered = changes if isinstance(changes, list) else list(changes)
        if not ordered:
            return []
        if len(ordered) > 1:
            ordered = sorted(ordered, key=_change_order)
        text = self.text
        src = self._src
        pieces: list[str] = []
        made: list[Edit] = []
        cursor = 0  # position in the old text up to which pieces are emitted
        delta = 0  # length of the new text minus the old text, for changes so far
        shifts: list[tuple[int, int, int]] = []  # (old_start, old_end, new_length)
        for change in ordered:
            start, end, after = change.start, change.end, change.after
            if start < cursor:
                raise ValueError(f"{stage}/{change.rule}: overlapping change at {start} in {self.source}")
            if not (0 <= start <= end <= len(text)):
                raise ValueError(
                    f"{stage}/{change.rule}: span {start}-{end} outside the text "
                    f"of {self.source} (length {len(text)})"
                )
            before = text[start:end]
            if before == after:
                continue
            pieces.append(text[cursor:start])
            pieces.append(after)
            k = len(after)
            made.append(
                Edit(
                    stage,
                    change.rule,
                    change.action or ("drop" if not after else "replace"),
                    start + delta,
                    end + delta,
                    before,
                    after,
                    change.reason,
                    change.kind,
                    src[start],
                    src[end],
                    change.evidence,
                    change.link,
                )
            )
            shifts.append((start, end, k))
            delta += k - (end - start)
            cursor = end
        if not made:
            return []
        pieces.append(text[cursor:])
        if any(k != end - start for start, end, k in shifts):
            src = _remapped_source(src, shifts)
        self.text = "".join(pieces)  # (both made before either is set)
        self._src = src
        self.edits.extend(made)
        self._move_flags(shifts)
        return made

    def _move_flags(self, shifts: list[tuple[int, int, int]]) -> None:
        """Map flag spans through the changes just applied (old coordinates -> new)."""
        if not self.flags:
            return

        def new_pos(pos: int, is_end: bool) -> int:
            offset = 0
            for start, end, length in shifts:
                if pos < start or (pos == start and not is_end):
                    break
                if pos >= end:
                    offset += length - (end - start)
                    continue
                # Inside a replaced span: clip to its edge in the new text.
                return start + offset + (length if is_end else 0)
            return pos + offset

        for flag in self.flags:
            flag.start = new_pos(flag.start, False)
            flag.end = max(flag.start, new_pos(flag.end, True))
            flag.text = self.text[flag.start : flag.end] if flag.end > flag.start else flag.text

    def set_meta(self, field_name: str, value: Any) -> None:
        """Record a metadata value; a second value for the same field becomes a list."""
        if field_name not in self.meta:
            self.meta[field_name] = value
            return
        existing = self.meta[field_name]
        if existing == value or (isinstance(existing, list) and value in existing):
            return
        self.meta[field_name] = (existing if isinstance(existing, list) else [existing]) + [value]

    def add_flag(self, flag: Flag) -> None:
        self.flags.append(flag)
        self.flags.sort(key=lambda f: (f.start, f.end, f.kind))

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of the current text to a span of the decoded input."""
        return self._src[start], self._src[end]

    def memory_size(self) -> int:
        """About the bytes this document holds: its text, its offset map, its edits' and flags'
        texts, and a fixed share per object. What a spill that keeps it as it is counts against
        its budget (`curate.engine.Spill`). A bound, not a measure: at least what `tracemalloc`
        finds a document to hold, and at most about three times it (tested). A string's UTF-8
        copy of itself (one `orjson` or a C API asked for) is not counted where the kernels
        sum the strings (`_kernels.texts_size`)."""
        size = _OBJECT_SIZE + self._src.itemsize * len(self._src) + _PART_SIZE * (len(self.edits) + len(self.flags))
        if _compiled_texts_size is not None and type(self.text) is str:
            try:
                return size + _compiled_texts_size(self.text, self.edits, self.flags, _ASCII_HEADER, _STR_HEADER)
            except TypeError:  # (a text that is not a `str`, from a stage of one's own: as below)
                pass
        size += sys.getsizeof(self.text)
        for edit in self.edits:
            size += sys.getsizeof(edit.before) + sys.getsizeof(edit.after)
        for flag in self.flags:
            size += sys.getsizeof(flag.text)
        return size

    def reconstruct_input(self) -> str:
        """Rebuild the decoded input by undoing the edit log from the last edit to the first."""
        return undo_edits(self.text, self.edits)

    # ------------------------------------------------------------------ serialisation
    def to_json(self) -> dict[str, Any]:
        """The record written to documents.jsonl (and quarantine/duplicates files)."""
        data: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "text": self.text,
            "meta": self.meta,
            "flags": [f.to_json() for f in self.flags],
        }
        if self.status != OK:
            data["status"] = self.status
            data["reason"] = self.status_reason
        if self.duplicate_of:
            data["duplicate_of"] = self.duplicate_of
        return data


# `Document.memory_size`'s share for a document's own objects (itself, its lists, its metadata)
# and for each edit or flag (its slots, numbers and reason).
_OBJECT_SIZE = 2500
_PART_SIZE = 400
# What `sys.getsizeof` adds to a string's characters (and its ending zero): ASCII, other (of
# strings made here: a shared one may hold a UTF-8 copy of itself, which it counts too).
_ASCII_HEADER = sys.getsizeof("".join(["a", "b"])) - 3
_STR_HEADER = sys.getsizeof("".join(["\u00e9", "\u00e9"])) - 3

# ------------------------------------------------------------------ pickled
# Documents are pickled at every hand-over between processes. Pickle writes a `str` as UTF-8
# and reads it back a character at a time; Chinese text is stored 2 bytes a character (3 in
# UTF-8), and copied as it is stored it costs a copy (`packed_text`). Only the run's processes
# read these pickles (a Ray cluster's too: one of another byte order refuses them, it does not
# misread them), and only the compiled copy packs: numpy's twin is the specification, slower
# than pickle's UTF-8.
_BIG_ENDIAN = int(sys.byteorder == "big")
_PACKED_HEADER = 4
# An edit's texts are packed from this many characters (before and after together): a short
# one is rebuilt by a call that costs about what its UTF-8 would (Han breaks even at 64-128
# characters, by hand), and most edits are a character or a line.
PACK_EDITS_FROM = 256


def packed_text(text: str) -> str | bytes:
    """`text` as it travels pickled: itself where Python stores it a byte a character (ASCII
    and Latin-1: pickle's UTF-8 is a copy, or close to one) or where its UTF-8 is smaller than
    its storage (mostly ASCII with a wide character; Han with one past the BMP); else 4 bytes
    (its width, 2 or 4; 1 if this machine is big-endian; two zeros, so that the characters
    after it are aligned) and its storage, never larger than its UTF-8."""
    if _compiled_packed_text is not None:
        return _compiled_packed_text(text)
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), "<u4")
    top = int(codes.max()) if codes.size else 0
    if top < 0x100:
        return text
    kind = 2 if top < 0x10000 else 4
    if len(text.encode("utf-8", "surrogatepass")) < kind * len(text):
        return text
    return bytes((kind, _BIG_ENDIAN, 0, 0)) + codes.astype(f"=u{kind}").tobytes()


def unpacked_text(packed: str | bytes) -> str:
    """The string `packed_text` made `packed` of."""
    if type(packed) is str:
        return packed
    if _compiled_unpacked_text is not None:
        return _compiled_unpacked_text(packed)
    kind = packed[0] if packed else 0
    if (
        kind not in (2, 4) or len(packed) < _PACKED_HEADER or (len(packed) - _PACKED_HEADER) % kind
        or packed[1] > 1 or packed[2:4] != b"\0\0"
    ):  # fmt: skip
        raise ValueError("unpacked_text: not a packed string")
    if packed[1] != _BIG_ENDIAN:
        raise ValueError("unpacked_text: a string packed in another byte order")
    codes = np.frombuffer(packed, f"=u{kind}", offset=_PACKED_HEADER)
    if codes.size and codes.max() > 0x10FFFF:
        raise ValueError("unpacked_text: not a packed string (a code point past U+10FFFF)")
    return codes.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


def _packed(text: str) -> str | bytes:
    """`packed_text` where it is compiled, else `text` (pickle's UTF-8 is faster than numpy)."""
    return text if _compiled_packed_text is None else _compiled_packed_text(text)


_EDIT_FIELDS = operator.attrgetter(*Edit.__slots__)
assert Edit.__slots__[5:7] == ("before", "after")


def _edit_reduce(self: Edit) -> tuple[Any, tuple[Any, ...]]:
    """An edit pickled as its field values (as `pickled_as_fields`), long texts packed."""
    packed, values = _edit_values(self)
    return (_rebuilt_edit if packed else Edit), values


def _edit_values(edit: Edit) -> tuple[bool, tuple[Any, ...]]:
    """(whether its texts are packed, its field values): packed (`packed_text`) from
    `PACK_EDITS_FROM` characters, with the kernels."""
    values = _EDIT_FIELDS(edit)
    pack = _compiled_packed_text
    if pack is None or len(edit.before) + len(edit.after) < PACK_EDITS_FROM:
        return False, values
    return True, (*values[:5], pack(values[5]), pack(values[6]), *values[7:])


def _rebuilt_edit(*values: Any) -> Edit:
    return Edit(*values[:5], unpacked_text(values[5]), unpacked_text(values[6]), *values[7:])


def _edit_from(values: tuple[Any, ...]) -> Edit:
    """The edit of `_edit_values`' values, packed or not (a packed text is bytes)."""
    if type(values[5]) is str and type(values[6]) is str:
        return Edit(*values)
    return _rebuilt_edit(*values)


_DOCUMENT_FIELDS = operator.attrgetter(*Document.__slots__)
assert Document.__slots__[2] == "text" and Document.__slots__[7] == "edits" and Document.__slots__[-1] == "_src"


def _document_reduce(self: Document) -> tuple[Any, tuple[Any, ...]]:
    """A document pickled as its field values (as `pickled_as_fields`), its text packed, its
    edits as their field values (`_edit_values`: rebuilt by `_rebuilt_document`, so a pickle of
    one document names one function, not three) and its map compact. An edit object held
    twice (nothing in curate shares one) comes back as two equal edits."""
    values = _DOCUMENT_FIELDS(self)
    edits = [_edit_values(edit)[1] for edit in values[7]]
    return _rebuilt_document, (
        values[0], values[1], _packed(values[2]), *values[3:7], edits, *values[8:-1], _packed_source(values[-1])
    )  # fmt: skip


def _rebuilt_document(*values: Any) -> Document:
    return Document(
        values[0], values[1], unpacked_text(values[2]), *values[3:7], [_edit_from(edit) for edit in values[7]],
        *values[8:-1], _unpacked_source(values[-1]),
    )  # fmt: skip


Edit.__reduce__ = _edit_reduce  # type: ignore[method-assign,assignment]
Document.__reduce__ = _document_reduce  # type: ignore[method-assign,assignment]


def undo_edits(text: str, edits: list[Edit]) -> str:
    """Undo `edits` (in the order they were made) on `text`, giving the text before the first.

    A run of edits each starting where the one before it ended or later (what one `apply`
    makes: left to right) is undone in one pass over the text, from the last run back: edit by
    edit, a document with thousands of edits was copied thousands of times (megabytes each)."""
    changes = [edit for edit in edits if not edit.action.startswith("flag")]
    end = len(changes)
    while end > 0:
        start = end - 1
        while start > 0 and changes[start].start >= changes[start - 1].start + len(changes[start - 1].after):
            start -= 1
        # In the text after the run, each of its edits holds its `after` at its own `start`.
        pieces, cursor = [], 0
        for edit in changes[start:end]:
            pieces += (text[cursor : edit.start], edit.before)
            cursor = edit.start + len(edit.after)
        pieces.append(text[cursor:])
        text = "".join(pieces)
        end = start
    return text
