"""Corpus-level repeated lines (as cc_net does): a line that recurs in many documents of the same
site or source folder is boilerplate even when no rule names it.

Lines are compared normalised (NFKC, lower case, digits -> 0, no whitespace or punctuation), and
counted once per *document*, so a short heading repeated inside one document (000 repeats
`始终贯穿创建全过程` four times) counts once and stays. Documents whose text is identical count
once too: exact copies of one article are the near-duplicate stage's business, and counting them
here would delete the article's own sentences. Long lines are left to the near-duplicate stage
(`max_chars`): they are more often a shared paragraph than a footer. Each removal records the
count as evidence. Deterministic: counts do not depend on document order.

Each counted line's key travels with the line's length (in characters, as written): `apply`
sees the very text `summarise` saw, so a line whose length no frequent line of its group had
cannot be frequent, and only the few lines of a frequent length are normalised again.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Container
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import regex

from curate import patterncache, tablecache
from curate.config import setting
from curate.document import Change, Document
from curate.rules import nonblank_lines, whole_line_spans
from curate.stages.base import CorpusStage, StageSettings
from curate.textutil import CharClass, char_class, code_points, text_hash, text_of_codes

try:  # the compiled loops (curate/_kernels.pyx), built by the install
    from curate._kernels import plain_keys as _compiled_plain_keys
except ImportError:  # no C compiler was there: numpy does the same
    _compiled_plain_keys = None

RULE_ID = "repeated_lines"


@dataclass
class RepeatedLinesSettings(StageSettings):
    """Lines repeated across many documents of one site or folder (cc_net-style)."""

    min_docs: int = setting(5, "A line must occur in at least this many documents of its group.")
    min_chars: int = setting(6, "Normalised lines shorter than this are never removed.")
    max_chars: int = setting(120, "Normalised lines longer than this are left to near-duplicates.")
    group_by: str = setting(
        "site", "Group documents by 'site' (host of meta url, else folder), 'folder', or 'all'."
    )


_NOT_COMPARED = regex.compile(r"[\s\p{P}\p{S}\p{Z}\p{C}]+")
_DIGIT = regex.compile(r"\p{Nd}")


# CJK unified ideographs (the block as of Unicode 11, assigned in every Unicode version `regex` or
# `unicodedata` may use) come through `normalise_line` one for one: NFKC neither decomposes nor
# composes them, `lower` keeps them, and they are neither digits nor removed. So a line with more
# than `max_chars` of them has a key too long to count, without computing it.
_UNIFIED_IDEOGRAPHS = "\u4e00-\u9fef"
_HAN_RUN = f"[^{_UNIFIED_IDEOGRAPHS}]*[{_UNIFIED_IDEOGRAPHS}]"


def normalise_line(line: str) -> str:
    """The comparison key of a line: NFKC, lower case, digits -> 0, no spaces or punctuation."""
    return _DIGIT.sub("0", _NOT_COMPARED.sub("", unicodedata.normalize("NFKC", line).lower()))


# Blocks whose characters may take the fast path of `line_key_text` (if they qualify, see
# `_plain_characters`): ASCII, Latin-1, general and CJK punctuation, CJK compatibility and
# full-width forms. CJK unified ideographs qualify too (see `_HAN_RUN`) and are added whole.
_PLAIN_BLOCKS = (
    (0x20, 0x7F), (0xA0, 0x100), (0x2000, 0x2070), (0x3000, 0x3040), (0xFE30, 0xFE50),
    (0xFF00, 0xFFF0),
)


def _composition_seconds() -> set[str]:
    """Characters that canonical composition may merge into the character before them: the
    second of every two-character canonical decomposition (all in planes 0 and 1, which a test
    checks), and the Hangul vowel and trailing consonant jamo."""
    seconds = {chr(p) for p in (*range(0x1161, 0x1176), *range(0x11A8, 0x11C3))}
    for decomposition in map(unicodedata.decomposition, map(chr, range(0x20000))):
        if decomposition and decomposition[0] != "<" and " " in decomposition:
            seconds.add(chr(int(decomposition.split()[1], 16)))
    return seconds


@cache
def _plain_characters() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """(not plain, dropped, digit): patterns over the characters for which `normalise_line`
    works one character at a time, and what it makes of each: nothing, "0", or its lower case.

    A character qualifies when its NFKD has only starters that nothing composes with (so NFKC
    of a line of them is the NFKC of each, in order) and no capital sigma (the one character
    whose lower case depends on its neighbours), and `normalise_line` of it alone is "", "0"
    or its `lower()`. The patterns are kept between runs (`tablecache.value`: ~12 ms of start-up).
    """
    depends = [
        tablecache.source_digest(__name__),
        tablecache.source_digest("curate.textutil"),
        tablecache.package_version("regex"),
    ]
    not_plain, dropped, digits = tablecache.value("repeated-lines-plain", _plain_patterns, depends)
    return patterncache.compile_re(not_plain), patterncache.compile_re(dropped), patterncache.compile_re(digits)


def _plain_patterns() -> tuple[str, str, str]:
    """The sources of `_plain_characters`' patterns."""
    seconds = _composition_seconds()
    dropped, digits, kept = [], [], []
    for low, high in _PLAIN_BLOCKS:
        for point in range(low, high):
            char = chr(point)
            decomposed = unicodedata.normalize("NFKD", char)
            if any(unicodedata.combining(c) or c in seconds or c == "\u03a3" for c in decomposed):
                continue
            key = normalise_line(char)
            if key == "":
                dropped.append(char)
            elif key == "0":
                digits.append(char)
            elif key == char.lower():
                kept.append(char)
    plain = char_class(dropped + digits + kept)[1:-1] + _UNIFIED_IDEOGRAPHS
    return f"[^{plain}]", char_class(dropped) + "+", char_class(digits)


def line_key_text(line: str) -> str:
    """`normalise_line(line)`, without NFKC's slow path for lines of plain characters (CJK text
    with full-width punctuation, the common case), which are normalised one character at a time."""
    not_plain, dropped, digits = _plain_characters()
    if not_plain.search(line) is not None:
        return normalise_line(line)
    return digits.sub("0", dropped.sub("", line)).lower()


# `_plain_codes`' values for what is not a character: a plain character `normalise_line` drops,
# and a character that is not plain (its line takes `normalise_line`).
_DROPPED_CODE = 0xFFFFFFFE
_NOT_PLAIN_CODE = 0xFFFFFFFF


@cache
def _plain_codes() -> Any:
    """What `line_key_text` makes of each BMP character of a plain line, as a code point: its
    lower case, "0" for a digit, `_DROPPED_CODE` for a dropped one; `_NOT_PLAIN_CODE` for the
    characters that are not plain (and one past the BMP, for all beyond it). Made from
    `_plain_characters`' patterns, by `re` over every BMP character, and kept in the table
    cache."""
    not_plain, dropped, digits = _plain_characters()
    depends = [tablecache.source_digest(__name__), not_plain.pattern, dropped.pattern, digits.pattern]
    (table,) = tablecache.arrays("repeated-lines-plain-codes", lambda: (_built_plain_codes(),), depends)
    return table


def _built_plain_codes() -> Any:
    import numpy as np

    not_plain, dropped, digits = _plain_characters()
    table = np.full(0x10001, _NOT_PLAIN_CODE, dtype=np.uint32)
    points = np.flatnonzero(CharClass(not_plain).table() == 0)
    chars = text_of_codes(points)
    lower = chars.lower()  # (each plain character's own: none is a capital sigma)
    if len(lower) == len(chars):  # (else some lower case is longer: one character at a time)
        table[points] = code_points(lower)
    else:
        for point, char in zip(points.tolist(), chars, strict=True):
            if len(char.lower()) == 1:  # (one character, or its line takes `normalise_line`)
                table[point] = ord(char.lower())
    for pattern, code in ((dropped, _DROPPED_CODE), (digits, ord("0"))):
        for match in pattern.finditer(chars):
            table[points[match.start() : match.end()]] = code
    return table


# Characters `RepeatedLines.summarise_many` makes plain keys of at once: about 20 bytes each.
_KEY_CHUNK = 1 << 20


def plain_key_texts(texts: list[str], lines: list[list[tuple[int, int]]]) -> list[list[str | None]]:
    """`line_key_text` of every line (`lines[i]`: spans in `texts[i]`) made of plain characters,
    None for the others: the texts' characters mapped through one table (`_plain_codes`) in one
    numpy pass over them all (or one compiled loop: `_kernels.plain_keys`; by hand, the
    benchmark's 93 calls of a 1-worker run, 4.62 M characters: 56-70 ms with numpy, 25-35 ms
    with it), and each line's key sliced from the result. Why: `line_key_text` ran two `re`
    substitutions over each line, 7 µs a news line; `normalise_line` of a line that is not
    plain, as there."""
    import numpy as np

    joined_texts = "".join(texts)
    # At each line's two ends: how many characters before it are kept (where its key begins
    # or ends in `joined`), and how many are not plain (a line holds some where the two
    # differ).
    ends, offset = [], 0
    for text, spans in zip(texts, lines, strict=True):
        ends.extend(offset + bound for span in spans for bound in span)
        offset += len(text)
    at = np.array(ends, dtype=np.int64)
    if _compiled_plain_keys is not None:  # the same in one pass over the text, no copies
        joined, kept, odd = _compiled_plain_keys(joined_texts, _plain_codes(), at, _DROPPED_CODE)
        before, not_plain = kept.tolist(), odd.tolist()
    else:  # counted by bisecting the few characters gone, not by running sums over all
        codes = _plain_codes().take(np.minimum(code_points(joined_texts), 0x10000))
        gone = codes >= _DROPPED_CODE  # (dropped, or not plain)
        joined = text_of_codes(codes[~gone])
        before = (at - np.searchsorted(np.flatnonzero(gone), at)).tolist()
        not_plain = np.searchsorted(np.flatnonzero(codes == _NOT_PLAIN_CODE), at).tolist()
    found: list[list[str | None]] = []
    k = 0
    for spans in lines:
        keys: list[str | None] = []
        for _ in spans:
            keys.append(joined[before[k] : before[k + 1]] if not_plain[k] == not_plain[k + 1] else None)
            k += 2
        found.append(keys)
    return found


# A URL whose host `urlsplit(url).hostname` is simply its lower case: a scheme, "//", a host of
# letters, digits, dots and hyphens (no user, port or brackets), then nothing or a path, query or
# fragment, and no white space or control character anywhere (urlsplit strips or drops those).
_PLAIN_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([A-Za-z0-9.-]+)(?:[/?#][^\x00-\x20\x7f]*)?\Z")

_TEXT_HASH = (1 << 64) - 1  # the text hash part of an entry of `RepeatedLines.seen`


@lru_cache(maxsize=4096)
def _folder_of(source_file: str) -> str:
    """The folder of an input file: every document of a JSON-lines file asks for the same one,
    and a path parsed per document cost more than the rest of its grouping."""
    return str(PurePosixPath(source_file).parent)


class RepeatedLines(CorpusStage):
    """Counts normalised lines per group (observe), then removes the frequent ones (apply).

    Only 8-byte hashes (and line lengths) are kept between the passes: the state grows with the
    number of distinct lines, not with the documents' text.
    """

    name = "repeated_lines"
    Settings = RepeatedLinesSettings

    def __init__(self, settings: RepeatedLinesSettings, context: Any) -> None:
        super().__init__(settings, context)
        if settings.group_by not in ("site", "folder", "all"):
            raise ValueError(
                f"[repeated_lines] group_by should be 'site', 'folder' or 'all', got {settings.group_by!r}"
            )
        # (group, line key hash) -> for each document text with that line: the text's hash, plus
        # the line's length (as written) times 2**64
        self.seen: dict[tuple[str, int], set[int]] = defaultdict(set)
        self.counts: dict[tuple[str, int], int] = {}
        self.groups: set[str] = set()  # groups with some frequent line
        # group -> lengths of the lines (as written) that have one of its frequent keys
        self.lengths: dict[str, set[int]] = {}
        self._too_long: Any = None

    def group_of(self, doc: Document) -> str:
        """Which documents a line is counted across."""
        mode = self.settings.group_by
        if mode == "all":
            return "*"
        if mode == "site":
            url = doc.meta.get("url")
            if isinstance(url, str) and url:
                plain = _PLAIN_URL.match(url)  # the common case, without urlsplit's general parse
                host = plain.group(1).lower() if plain else urlsplit(url).hostname or ""
                if host:
                    return host.removeprefix("www.")
        return _folder_of(doc.source.split("#", 1)[0])

    def line_keys(self, doc: Document) -> list[int | None]:
        """The key hash of every non-blank line (None: too short or too long to count)."""
        return self._line_keys(doc.text, nonblank_lines(doc.text))

    def _line_keys(
        self,
        text: str,
        lines: list[tuple[int, int]],
        lengths: Container[int] | None = None,
        plain: list[str | None] | None = None,
    ) -> list[int | None]:
        """`line_keys` of `text` split into `lines`; with `lengths`, None also for every line
        whose length is not in it (its key is not computed); `plain`: the key texts of the
        plain lines (`plain_key_texts`), None for the others."""
        low, high = self.settings.min_chars, self.settings.max_chars
        too_long = self._too_long
        if too_long is None:
            too_long = self._too_long = regex.compile(f"(?:{_HAN_RUN}){{{high + 1}}}")
        keys: list[int | None] = []
        for i, (s, e) in enumerate(lines):
            if lengths is not None and e - s not in lengths:
                keys.append(None)
                continue
            key = plain[i] if plain is not None else None
            if key is None:
                if e - s > high and too_long.match(text, s, e) is not None:
                    keys.append(None)
                    continue
                key = line_key_text(text[s:e])
            keys.append(text_hash(key) if low <= len(key) <= high else None)
        return keys

    def summarise(self, doc: Document) -> Any:
        """(group, text hash, keys, lengths): the distinct (key, line length) pairs of the lines
        that count, as two lists; the text hash 0 when no line counts (nothing reads it)."""
        return self.summarise_many([doc])[0]

    def summarise_many(self, docs: list[Document]) -> list[Any]:
        """`summarise` of each document, the key texts of their plain lines made for all of
        them at once (`plain_key_texts`: numpy's cost per call, not per character, is most of
        a short document's)."""
        texts = [doc.text for doc in docs]
        lines = [nonblank_lines(text) for text in texts]
        plain: list[list[str | None]] = []
        first, size = 0, 0  # (a chunk at a time: `run` hands over a whole corpus at once)
        for last, text in enumerate(texts, 1):
            size += len(text)
            if size >= _KEY_CHUNK or last == len(texts):
                plain += plain_key_texts(texts[first:last], lines[first:last])
                first, size = last, 0
        summaries = []
        for doc, spans, plain_keys in zip(docs, lines, plain, strict=True):
            keys = self._line_keys(doc.text, spans, plain=plain_keys)
            counted = dict.fromkeys((key, e - s) for key, (s, e) in zip(keys, spans, strict=True) if key is not None)
            # `observe` reads the text's hash only to tell apart the texts a key's lines are in;
            # a document with no line that counts adds nothing there, so its text is not hashed
            # (4,278 of the benchmark's 6,024 documents: about 20 of the 30-39 ms that hashing
            # every text took, by hand).
            whole = text_hash(doc.text) if counted else 0
            summaries.append((self.group_of(doc), whole, [k for k, _ in counted], [n for _, n in counted]))
        return summaries

    def observe(self, summary: Any) -> None:
        group, whole, keys, lengths = summary
        for key, length in zip(keys, lengths, strict=True):
            self.seen[(group, key)].add(whole | length << 64)

    def decide(self) -> None:
        threshold = self.settings.min_docs
        self.counts = {}
        self.lengths = {}
        for (group, key), found in self.seen.items():
            if len(found) < threshold:  # fewer (text, length) pairs than needed: fewer texts too
                continue
            texts = {entry & _TEXT_HASH for entry in found}
            if len(texts) >= threshold:
                self.counts[(group, key)] = len(texts)
                self.lengths.setdefault(group, set()).update(entry >> 64 for entry in found)
        self.groups = {group for group, _ in self.counts}
        self.seen = defaultdict(set)

    def unchanged_by(self, summary: Any) -> bool:
        """No line the document's summary counted is frequent in its group, so `apply` (which
        removes only lines with a frequent key) leaves it as it is."""
        group, _, keys, _ = summary
        if group not in self.groups:
            return True
        counts = self.counts
        return not any((group, key) in counts for key in keys)

    def apply(self, doc: Document) -> None:
        if self.counts:
            group = self.group_of(doc)
            lengths = self.lengths.get(group)
            if not lengths:  # no line of this document can be frequent
                return
            lines = nonblank_lines(doc.text)
            keys = self._line_keys(doc.text, lines, lengths)
            self._remove(doc, lines, [None if k is None else (group, k) for k in keys])

    def _remove(
        self, doc: Document, lines: list[tuple[int, int]], keys: list[tuple[str, int] | None]
    ) -> None:
        rules = self.context.rules
        removed: dict[int, int] = {}
        for i, key in enumerate(keys):
            count = self.counts.get(key) if key is not None else None
            if count is None:
                continue
            line = doc.text[lines[i][0] : lines[i][1]]
            if rules is not None and rules.keeps(RULE_ID, line):
                continue
            removed[i] = count
        if not removed or len(removed) == len(lines):
            # A document made only of repeated lines is a duplicate, not a footer: leave it.
            return
        spans = whole_line_spans(doc.text, lines, set(removed))
        group = self.group_of(doc)
        changes = [
            Change(
                start, end, "", RULE_ID,
                f"line occurs in {removed[i]} documents of {group} (threshold {self.settings.min_docs})",
                kind="boilerplate",
                evidence=_evidence(removed[i], group, self.settings.min_docs),
            )
            for i, (start, end) in sorted(spans.items())
        ]
        doc.apply(self.name, changes)


def _evidence(count: int, group: str, threshold: int) -> dict[str, Any]:
    return {"documents": count, "group": group, "threshold": threshold}
