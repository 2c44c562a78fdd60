"""Small text helpers shared by stages: Han detection, lines and paragraphs with offsets.

Kept here so that every stage splits text the same way and spans stay comparable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from typing import Any

import regex

HAN = regex.compile(r"\p{Han}")
HAN_RUN = regex.compile(r"\p{Han}+")
# Characters that end a sentence in Chinese (full- and half-width) and closing marks after them.
SENTENCE_END = "。！？!?…；;"
CLOSERS = "”’」』）)】》"
# Full-width punctuation commonly seen in Chinese prose.
CJK_PUNCT = "，。、；：？！“”‘’（）《》〈〉【】「」『』—…·～"


def text_hash(text: str) -> int:
    """XXH3-64 (xxHash) of the text's code points as UTF-32LE (a lone surrogate as it is): the
    identity of a line (repeated lines) or a paragraph (near-duplicates; the index saves them,
    from its format 3). 8 bytes are plenty to tell texts apart and keep the state small.

    Compiled where built (`_kernels.text_hash`: read from the text's own storage, no encoded
    copy). The BLAKE2b of the text's UTF-8 it replaced, a hash object and an encoded copy a
    text, took 67-68 ms for texts of the sizes a run of the benchmark hashes (44,346, 7.4 M
    characters), the kernel 9.3-9.5 ms (by hand)."""
    compiled = _kernel("text_hash") if type(text) is str else None  # (the kernel takes a str)
    if compiled is not None:
        return compiled(text)
    import xxhash

    return xxhash.xxh3_64_intdigest(text.encode("utf-32-le", "surrogatepass"))


def span_hashes(text: str, spans: Any) -> list[int]:
    """`text_hash(text[start:end])` of each (start, end) of `spans` (an int64 array of shape
    (n, 2), or pairs), without the slices where compiled."""
    import numpy as np

    compiled = _kernel("span_hashes") if isinstance(spans, np.ndarray) and type(text) is str else None
    if compiled is not None:
        return compiled(text, np.ascontiguousarray(spans, dtype=np.int64).reshape(-1, 2))
    pairs = spans.tolist() if isinstance(spans, np.ndarray) else spans
    return [text_hash(text[s0:s1]) for s0, s1 in pairs]


def is_han(ch: str) -> bool:
    return bool(HAN.match(ch))


def han_ratio(text: str) -> float:
    """Share of non-space characters that are Han."""
    visible = [c for c in text if not c.isspace()]
    if not visible:
        return 0.0
    return sum(1 for c in visible if HAN.match(c)) / len(visible)


def line_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every line, without its newline; empty lines included."""
    start = 0
    while True:
        end = text.find("\n", start)
        if end == -1:
            yield start, len(text)
            return
        yield start, end
        start = end + 1


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every non-blank line, without its newline: our unit of 'paragraph' in
    plain text, and the lines the rules read. In one compiled pass where built
    (`_kernels.paragraph_spans`; by hand, the benchmark's 5,121 output texts: 16-19 ms with
    a slice and a strip a line, the Python below)."""
    compiled = _kernel("paragraph_spans") if type(text) is str else None  # (not a subclass)
    if compiled is not None:
        return compiled(text)
    return [(s, e) for s, e in line_spans(text) if text[s:e].strip()]


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentences inside text[start:end], each ending after its end mark and closing quotes."""
    end = len(text) if end is None else end
    spans = []
    i = s = start
    while i < end:
        if text[i] in SENTENCE_END:
            j = i + 1
            while j < end and (text[j] in SENTENCE_END or text[j] in CLOSERS):
                j += 1
            spans.append((s, j))
            s = i = j
            continue
        if text[i] == "\n":
            if text[s:i].strip():
                spans.append((s, i))
            s = i + 1
        i += 1
    if s < end and text[s:end].strip():
        spans.append((s, end))
    return spans


# Every character `regex` reads as \p{Han} (Script=Han: radicals, 々 and 〇, Hangzhou numerals,
# the unified and compatibility ideographs of every plane), as code point ranges: for a table
# that must hold whatever a \p{Han} pattern matches (a pre-check may pass more texts on, never
# fewer). tests/test_textutil.py checks them against `regex` over every code point.
HAN_SCRIPT_RANGES = (
    (0x2E80, 0x2E99), (0x2E9B, 0x2EF3), (0x2F00, 0x2FD5), (0x3005, 0x3005), (0x3007, 0x3007),
    (0x3021, 0x3029), (0x3038, 0x303B), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFA6D),
    (0xFA70, 0xFAD9), (0x16FE2, 0x16FE3), (0x16FF0, 0x16FF6), (0x20000, 0x2A6DF), (0x2A700, 0x2B81E),
    (0x2B820, 0x2CEAD), (0x2CEB0, 0x2EBE0), (0x2EBF0, 0x2EE5D), (0x2F800, 0x2FA1D), (0x30000, 0x3134A),
    (0x31350, 0x33479),
)  # fmt: skip

# Han code point ranges (CJK Unified Ideographs, extensions A-G, compatibility ideographs), for
# stdlib `re` character classes: `re` compiles big classes to bitmaps and scans them much faster
# than `regex` scans \p{Han} or a large explicit set.
HAN_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"


def char_class(chars: Iterable[str]) -> str:
    """A `[...]` character class for `chars`, written as ranges (compact and fast to compile)."""
    points = sorted({ord(c) for c in chars})
    ranges: list[list[int]] = []
    for point in points:
        if ranges and point == ranges[-1][1] + 1:
            ranges[-1][1] = point
        else:
            ranges.append([point, point])
    body = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )
    return f"[{body}]"


@cache
def two_byte_chars(codec: str, leads: tuple[int, int], trails: tuple[tuple[int, int], ...]) -> frozenset[str]:
    """Every character `codec` decodes from a lead byte in [leads) followed by a trail byte in
    one of the [trails) ranges: the building block of character-set tests (GB2312 levels, Big5,
    the characters GBK makes of UTF-8 bytes)."""
    chars = set()
    for lead in range(*leads):
        for low, high in trails:
            for trail in range(low, high):
                try:
                    chars.add(bytes((lead, trail)).decode(codec))
                except UnicodeDecodeError:
                    continue
    return frozenset(chars)


def code_points(text: str) -> Any:
    """The code point of every character of `text`, as a numpy uint32 array (a lone surrogate
    is one code point like any other): what numpy lookup tables over whole texts index with."""
    import numpy as np

    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def text_of_codes(codes: Any) -> str:
    """The text whose `code_points` are `codes` (any integer array of code points): numpy
    lookups over whole texts (folds, conversions) give their result back as one str."""
    import numpy as np

    return np.asarray(codes, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")


def mapped_text(text: str, table: Any, with_codes: bool = False) -> Any:
    """`table[c]` of each character c of `text` (`table`: a numpy uint32 table over every code
    point), as a str, and with `with_codes` as (str, its `code_points`). One compiled pass where
    built (`_kernels.mapped_text`); else numpy's gather between `code_points` and
    `text_of_codes` (its specification)."""
    import numpy as np

    usable = type(text) is str and table.dtype == np.uint32 and table.flags.c_contiguous
    compiled = _kernel("mapped_text") if usable else None
    if compiled is not None:
        return compiled(text, table, with_codes)
    codes = table[code_points(text)]
    return (text_of_codes(codes), codes) if with_codes else text_of_codes(codes)


def char_table(classes: Sequence[str | Iterable[tuple[int, int]]]) -> Any:
    """A numpy table over every code point: bit k of entry c is set when c is in `classes[k]`,
    given as the characters themselves or as (first, last) code point ranges. Looked up with
    `code_points`, it tells for every character of a text which classes it belongs to. One byte
    per code point for up to 8 classes (1.1 MB), two for up to 16."""
    import numpy as np

    if len(classes) > 16:
        raise ValueError("char_table: at most 16 classes")
    table = np.zeros(0x110000, dtype=np.uint8 if len(classes) <= 8 else np.uint16)
    for bit, members in enumerate(classes):
        ranges = [(ord(c), ord(c)) for c in members] if isinstance(members, str) else members
        for first, last in ranges:
            table[first : last + 1] |= 1 << bit
    return table


class CharClass:
    """Where a text first holds a character of one class, for the quick scans by which stages
    rule a text out (does it hold any zero-width character, any Latin-1 letter, ...: most texts
    hold none).

    `pattern` is a `re` pattern matching exactly one character whatever stands around it (a
    character class such as `[\u200b-\u200f]`: the table's making refuses a pattern it sees match
    more than one, but cannot see every such pattern); `first(text)` is where `pattern.search(text)`
    matches. Why not that search itself: `re` tests every character against the class's ranges,
    about 3 ns a character for a few ranges and 8 ns for the invisible stage's many, where a
    compiled loop looking up a byte a character (`_kernels.first_member`) takes under 1 ns (by
    hand, on the news benchmark's texts). Its table covers the Basic Multilingual Plane and is made
    from the pattern by `re` itself, so the two cannot disagree; at a character beyond the BMP
    (rare) the pattern searches the rest. Without the compiled module, the pattern searches.
    """

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self._table: Any = None
        self._scanned: bytes | None = None  # the table as `first`'s loop reads it

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the table (a stage sent to Ray): made again or read from the cache
        where it is used, not sent as a private copy of 64 KB."""
        return {"pattern": self.pattern, "_table": None, "_scanned": None}

    def table(self) -> Any:
        """Of each BMP code point, 1 if it is in the class, else 0: made at first use (in the
        process that scans: a worker, on its own core) or read from the table cache."""
        if self._table is None:
            self._table = _bmp_members(self.pattern.pattern, self.pattern.flags)
        return self._table

    def _scanned_table(self) -> bytes:
        """The table as the compiled loops read it."""
        if self._scanned is None:
            self._scanned = self.table().tobytes()
        return self._scanned

    def first(self, text: str, start: int = 0) -> int:
        """The index of the first character of the class in `text` from `start` on, -1 if none."""
        scan = _kernel("first_member")
        if scan is not None and type(text) is str:  # (the loop reads a str's own buffer)
            found = scan(text, self._scanned_table(), start)
            if found >= -1:
                return found
            start = -2 - found  # a character beyond the table: the pattern decides from there
        match = self.pattern.search(text, start)
        return -1 if match is None else match.start()

    def found_in(self, text: str) -> bool:
        return self.first(text) >= 0

    def count(self, text: str) -> int:
        """How many characters of `text` are in the class: `len(pattern.findall(text))`, without
        the list of one-character strings (by the compiled loop where built, up to a character
        beyond the table: from there, as `first` does, the pattern counts)."""
        scan = _kernel("count_members")
        if scan is None or type(text) is not str:
            return len(self.pattern.findall(text))
        found, stop = scan(text, self._scanned_table(), 0)
        return found if stop < 0 else found + len(self.pattern.findall(text, stop))

    def search(self, pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
        """`pattern.search(text)`, for a pattern whose every match starts with a character of
        this class: searched from the first such character, found by `first` (`re` skips ahead
        to a class by testing ranges too). `re` lets a lookbehind see the text before where a
        search starts, so the match is the same."""
        start = self.first(text)
        return None if start < 0 else pattern.search(text, start)


class PairStarts:
    """Where a match of a pattern may first begin, for a pattern whose every match begins with
    one of `pairs` (two-character strings): the Traditional-to-Simplified phrases, say, whose
    pattern `re` runs over every character of a text (23 ns a character for OpenCC's 277
    phrases) though most texts hold none. A compiled loop (`_kernels.first_pair`) finds the
    first character that may begin a pair (a byte looked up a character, and a bit of a hash
    of the pair for those that pass), and the pattern searches from there: the same match, or
    none without a search where no pair may begin (the loop misses no pair; the few others a
    hash lets pass cost a search from there). Without the compiled module, the pattern
    searches."""

    SLOT_BITS = 20  # the hashed pairs' bit table: 2**20 bits, 128 KB

    def __init__(self, pairs: Iterable[str]) -> None:
        self.pairs = sorted(set(pairs))
        if any(len(pair) != 2 for pair in self.pairs):
            raise ValueError("PairStarts: pairs are two characters each")
        self._tables: tuple[Any, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "_tables": None}  # (made again where used)

    def tables(self) -> tuple[Any, Any]:
        """(of each BMP code point, 1 if a pair begins with it; the pairs' bits, by
        `pair_slot`), made at first use."""
        if self._tables is None:
            import numpy as np

            firsts = np.zeros(0x10000, dtype=np.uint8)
            bits = np.zeros(1 << (self.SLOT_BITS - 3), dtype=np.uint8)
            for first, second in self.pairs:
                if ord(first) < 0x10000:  # (a pair beginning beyond the BMP: the pattern finds it)
                    firsts[ord(first)] = 1
                slot = pair_slot(ord(first), ord(second), 32 - self.SLOT_BITS)
                bits[slot >> 3] |= 1 << (slot & 7)
            self._tables = firsts, bits
        return self._tables

    def search(self, pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
        """`pattern.search(text)`, for a pattern whose every match begins with one of the pairs
        (and none with a pair's first character alone)."""
        start = 0
        scan = _kernel("first_pair")
        if scan is not None and type(text) is str:
            firsts, bits = self.tables()
            found = scan(text, firsts, bits, 32 - self.SLOT_BITS)
            if found == -1:
                return None
            start = found if found >= 0 else -2 - found
        return pattern.search(text, start)


def pair_slot(first: int, second: int, shift: int) -> int:
    """The hash of two code points `_kernels.first_pair` looks pairs up by (uint32 arithmetic)."""
    return (((first * 0x9E3779B1) ^ (second * 0x85EBCA77)) & 0xFFFFFFFF) >> shift


@cache
def _kernel(name: str) -> Any:
    """`_kernels.<name>`, or None where the extension was not built."""
    try:
        from curate import _kernels
    except ImportError:
        return None
    return getattr(_kernels, name)


@cache
def _bmp_members(source: str, flags: int) -> Any:
    """`CharClass.table` of a pattern (`re.compile(source, flags)`), kept in the table cache."""
    from curate import tablecache

    depends = [tablecache.source_digest(__name__), str(int(flags)), source]
    (table,) = tablecache.arrays("bmp-members", lambda: (_built_bmp_members(source, flags),), depends)
    return table


def _built_bmp_members(source: str, flags: int) -> Any:
    """Each BMP character the pattern matches alone: every match in the plane replaced by NUL
    at once (`re` in C, not a match object a member), then compared with the plane."""
    import numpy as np

    pattern = re.compile(source, flags)
    marked = pattern.sub("\0", _bmp_plane())
    if len(marked) != 0x10000:
        raise ValueError(f"CharClass: {source!r} matches more than one character")
    table = (code_points(marked) != np.arange(0x10000, dtype=np.uint32)).view(np.uint8)
    table[0] = pattern.fullmatch("\0") is not None  # (NUL itself: told apart by its own match)
    return table


@cache
def _bmp_plane() -> str:
    """Every BMP character in order, lone surrogates included (128 KB): what a table over the
    BMP is made from by running a pattern over it."""
    import numpy as np

    return text_of_codes(np.arange(0x10000, dtype=np.uint32))
