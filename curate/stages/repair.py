"""Unicode repair that never damages clean Chinese: ftfy where needed, and CJK mojibake.

ftfy's defaults turn “”，（）； into ASCII (uncurl_quotes, fix_character_width) and NFC-fold CJK
compatibility ideographs, so we run it with only its encoding fixers, and only on lines where a
cheap regex sees the signature of UTF-8 read as Latin-1/cp1252 (a UTF-8 lead byte followed by a
continuation byte); ftfy is ~3.4 MB/s, the regex scan is hundreds of MB/s.

ftfy does not fix the CJK round trips, which we do ourselves:
- UTF-8 read as GBK (民族团结 -> 姘戞棌鍥㈢粨): re-encode as GBK, decode as UTF-8;
- GBK read as Latin-1/cp1252 (更多精校 -> ¸ü¶à¾«Ð£): re-encode as Latin-1, decode as GBK;
- 锟斤拷: U+FFFD U+FFFD written as UTF-8 and read as GBK; the original is lost, so it becomes
  the U+FFFD it encodes (the corrupted-span flagger reports it).
A span is repaired only if the round trip is valid and its result is clearly Chinese (mostly Han,
made of common characters); anything else is left for the corrupted-span flagger.
"""

from __future__ import annotations

import bisect
import codecs
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import regex

from curate import patterncache, tablecache
from curate.config import setting
from curate.document import Change, Document
from curate.stages.base import DocumentStage, RunContext, StageSettings
from curate.stages.invisible import dropped_characters
from curate.textutil import CharClass, char_class, two_byte_chars

try:  # the compiled loops (curate/_kernels.pyx), built by the install
    from curate._kernels import runs_that_may_decode as _compiled_runs_that_may_decode
    from curate._kernels import wide_utf8_starts as _compiled_wide_utf8_starts
except ImportError:  # not built (the extension is optional at install)
    _compiled_runs_that_may_decode = _compiled_wide_utf8_starts = None

# The codecs the repairs use, loaded now, before the pools fork, not by every worker on its first
# suspect text (`_gbk_suspect_re` keeps its class between runs: it no longer decodes here).
for _name in ("gbk", "gb18030"):
    codecs.lookup(_name)

KIND = "normalise"


@cache
def _ftfy() -> tuple[Any, Any]:
    """ftfy's `fix_and_explain`, and its configuration with only the encoding fixers (everything
    that would touch clean Chinese is off). Imported on first use, not with this module: few
    texts show the signature of UTF-8 read as Latin-1 (2 of the benchmark's 6,024 documents,
    none of the sample files), and the import (ftfy's tables and patterns, and wcwidth, which it
    pulls in) took 20-30 ms of every run's start, on one core, before the workers fork."""
    import ftfy

    config = ftfy.TextFixerConfig(
        unescape_html=False,
        remove_terminal_escapes=False,
        fix_latin_ligatures=False,
        fix_character_width=False,
        uncurl_quotes=False,
        fix_line_breaks=False,
        fix_surrogates=False,
        remove_control_chars=False,
        normalization=None,
        explain=True,
    )
    return ftfy.fix_and_explain, config


def _ftfy_codecs(encoding: str) -> codecs.CodecInfo | None:
    """ftfy's codecs ("sloppy-windows-1252", "utf-8-variants", ...), which importing ftfy
    registers for the whole process: a page may declare one (`curate.html` decodes it so).
    Registered with this module, as importing ftfy with it did, so that which codecs a run knows
    does not depend on whether a text has needed ftfy yet in that process. Asked only for a name
    no codec registered before knows; ftfy is imported then."""
    from ftfy.bad_codecs import search_function

    return search_function(encoding)


codecs.register(_ftfy_codecs)


# Windows-1252 characters for bytes 0x80-0x9F (the rest of 0x80-0xFF is Latin-1).
_CP1252_HIGH = "".join(
    bytes([b]).decode("cp1252") for b in range(0x80, 0xA0) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
)
_CONTINUATION = "\u0080-\u00bf" + re.escape(_CP1252_HIGH)
# A UTF-8 lead byte (C2-F4) followed by a continuation byte, as Latin-1/cp1252 shows them.
UTF8_AS_LATIN = re.compile(f"[\u00c2-\u00f4][{_CONTINUATION}]")
# A run of characters that are single bytes 0x80-0xFF in Latin-1/cp1252.
LATIN_HIGH_RUN = re.compile(f"[\u0080-\u00ff{re.escape(_CP1252_HIGH)}]{{4,}}")
NON_ASCII_RUN = re.compile(r"[^\x00-\x7f\s]+")
EDGE_SPACE = " \t\u3000\u00a0\u202f\u205f" + "".join(map(chr, range(0x2000, 0x200B)))
# C1 controls, the soft hyphen and NBSP are bytes of mojibake, but the invisible stage drops
# them (or NBSP at a line edge) when they are left over: their presence triggers a second look.
# `[\u0080-\u009f\u00ad]|[\u00a1-\u00ff]\u00a0|\u00a0[\u00a1-\u00ff]`, the same matches, written to
# start with one character class so that `re` skips ahead at C speed.
STRAY = re.compile(
    "[\u0080-\u00ff](?:(?<=[\u0080-\u009f\u00ad])|(?<=[\u00a1-\u00ff])\u00a0|(?<=\u00a0)[\u00a1-\u00ff])"
)
LATIN_LETTER = re.compile("[\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff]")
# The quick scans of `Repair.process` (`CharClass`: a table lookup a character): any Latin-1
# letter, and any character STRAY's matches start with.
LATIN_LETTERS = CharClass(LATIN_LETTER)
STRAY_START = CharClass(re.compile("[\u0080-\u00ff]"))
KUNJINKAO = re.compile("(?:锟斤拷)+")
HAN = regex.compile(r"\p{Han}")


@cache
def _latin_byte() -> dict[str, int]:
    """Character -> byte for text decoded as Latin-1 or cp1252."""
    table = {chr(b): b for b in range(0x80, 0x100)}
    for b in range(0x80, 0xA0):
        try:
            table[bytes([b]).decode("cp1252")] = b
        except UnicodeDecodeError:
            continue
    return table


@cache
def _gbk_suspect_re() -> re.Pattern[str]:
    """Characters that UTF-8 bytes turn into when read as GBK, and normal text rarely has.

    Read as GBK, UTF-8 Han bytes pair up as (E4-E9, 80-BF) or (80-BF, E4-E9 / 80-BF): GBK
    characters with lead byte 81-A0 or AA-AF (GBK extensions, unassigned rows) or E4-E9 (rare
    GB2312 level-2 rows). Clean Simplified text is almost all GB2312 level 1. The class is kept
    between runs (`tablecache.value`: ~10 ms of start-up).
    """
    depends = [tablecache.source_digest(__name__), tablecache.source_digest("curate.textutil")]
    return patterncache.compile_re(tablecache.value("gbk-suspect-class", _gbk_suspect_class, depends))


@cache
def _gbk_suspect_chars() -> CharClass:
    """`_gbk_suspect_re` for the quick scan of `Repair.process`."""
    return CharClass(_gbk_suspect_re())


def _gbk_suspect_class() -> str:
    chars = []
    leads = [*range(0x81, 0xA1), *range(0xAA, 0xB0), *range(0xE4, 0xEA)]
    for lead in leads:
        for trail in [*range(0x40, 0x7F), *range(0x80, 0xFF)]:
            try:
                chars.append(bytes((lead, trail)).decode("gbk"))
            except UnicodeDecodeError:
                continue
    return char_class(chars)


@cache
def _suspect_pair_re() -> re.Pattern[str]:
    """Two suspect characters (`_gbk_suspect_re`) in one run of `NON_ASCII_RUN` (suspect
    characters are all of them non-ASCII and not white space, which a test checks)."""
    suspect = _gbk_suspect_re().pattern
    return patterncache.compile_re(f"{suspect}[^\\x00-\\x7f\\s]*?{suspect}")


# Where the UTF-8 encoding of a character of U+0800 or above starts: a lead byte E0-F4 and two
# continuation bytes. Every Han character (U+2E80 and above) a decoding produces starts at one.
WIDE_UTF8_START = re.compile(rb"[\xe0-\xf4](?=[\x80-\xbf][\x80-\xbf])")


@cache
def _common_han() -> frozenset[str]:
    """Han characters of GB2312 or Big5: what real Simplified or Traditional text is made of."""
    from curate.t2s import _gb2312_han

    chars = _gb2312_han() | two_byte_chars("big5", (0xA4, 0xFA), ((0x40, 0x7F), (0xA1, 0xFF)))
    return frozenset(c for c in chars if HAN.match(c))


@cache
def _gb2312_level1() -> frozenset[str]:
    """The 3,755 most common Simplified characters (GB2312 level 1, rows B0-D7): real GBK text
    is almost all of them, while misread bytes mostly land in level 2 or GBK extensions."""
    return two_byte_chars("gb2312", (0xB0, 0xD8), ((0xA1, 0xFF),))


def clearly_chinese(text: str, min_han: int = 2, common: frozenset[str] | None = None) -> bool:
    """Mostly Han, at least `min_han` of it, made of common characters (GB2312/Big5 by default),
    and not one character repeated (厖厖厖 is what a run of …… turns into)."""
    han = HAN.findall(text)
    if len(han) < min_han or len(han) < 0.6 * len(text.replace(" ", "")) or len(set(han)) < 2:
        return False
    common = _common_han() if common is None else common
    return sum(1 for c in han if c in common) >= 0.9 * len(han)


@dataclass
class RepairSettings(StageSettings):
    """Unicode repair: ftfy (Chinese-safe) and CJK mojibake round trips."""

    ftfy: bool = setting(
        True, "Fix UTF-8 read as Latin-1/cp1252 with ftfy (encoding fixers only), on suspect lines."
    )
    gbk_as_latin1: bool = setting(True, "Repair GBK text that was read as Latin-1/cp1252.")
    utf8_as_gbk: bool = setting(True, "Repair UTF-8 text that was read as GBK.")
    fffd_as_gbk: bool = setting(
        True, "Turn 锟斤拷 (U+FFFD written as UTF-8, read as GBK) back into U+FFFD."
    )


class Repair(DocumentStage):
    """Repair encoding damage; one edit per repaired span."""

    name = "repair"
    Settings = RepairSettings

    def __init__(self, settings: RepairSettings, context: RunContext) -> None:
        super().__init__(settings, context)
        config = getattr(context, "config", None)
        invisible = None
        if config is not None:
            try:
                invisible = config["invisible"]
            except (KeyError, TypeError):
                invisible = None
        self._dropped = dropped_characters(invisible)
        # One character of `_dropped`: `re` searches a single class much faster than a repeat.
        self._dropped_char = (
            patterncache.compile_re(self._dropped.pattern.removesuffix("+")) if self._dropped is not None else None
        )
        self._dropped_chars = CharClass(self._dropped_char) if self._dropped_char is not None else None
        self._gap_cache: tuple[tuple[int, int, str], str, list[re.Match[str]]] | None = None
        # Everything the invisible stage deletes: also stray C1 controls and soft hyphens, and
        # white space at line edges (when that stage is on with its defaults).
        dropped = self._dropped.pattern if self._dropped is not None else None
        if invisible is None or (invisible.enabled and invisible.control and invisible.zero_width
                                 and invisible.indents and invisible.trailing_space):
            parts = [p for p in (dropped, "[\u0080-\u0084\u0086-\u009f\u00ad]+",
                                 f"(?m)^[{EDGE_SPACE}]+", f"(?m)[{EDGE_SPACE}]+$") if p]
            self._deleted: re.Pattern[str] | None = patterncache.compile_re("|".join(
                p.removeprefix("(?m)") for p in parts), re.M)
        else:
            self._deleted = None

    def process(self, doc: Document) -> None:
        s = self.settings
        # Latin-1 mojibake of either kind always has letters from À-ÿ: one scan rules it out.
        latin = (s.gbk_as_latin1 or s.ftfy) and LATIN_LETTERS.found_in(doc.text)
        # GBK-as-Latin-1 first: ftfy would misread some of its byte pairs as UTF-8.
        if latin and s.gbk_as_latin1:
            self._apply(doc, LATIN_HIGH_RUN, gbk_as_latin1_changes)
        if latin and s.ftfy:
            self._apply(doc, UTF8_AS_LATIN, ftfy_changes)
        # Suspect characters are never among those looked through, so a text without any has
        # none once they are gone either: one fast scan rules the step out.
        if s.utf8_as_gbk and _gbk_suspect_chars().found_in(doc.text):
            self._apply(doc, _suspect_pair_re(), utf8_as_gbk_changes)
        if s.fffd_as_gbk and "锟斤拷" in doc.text:
            self._apply(doc, KUNJINKAO, kunjinkao_changes)
        if self._deleted is not None and STRAY_START.search(STRAY, doc.text):
            # What is left may hide mojibake behind characters the invisible stage will delete;
            # look again through all of them, so that normalising twice changes nothing more.
            if latin and s.gbk_as_latin1:
                self._apply(doc, LATIN_HIGH_RUN, gbk_as_latin1_changes, self._deleted)
            if latin and s.ftfy:  # ... and with NEL as the line break it will become
                self._apply(doc, UTF8_AS_LATIN, ftfy_changes_nel, self._deleted)
            if s.utf8_as_gbk:
                self._apply(doc, _suspect_pair_re(), utf8_as_gbk_changes, self._deleted)

    def _gaps(self, text: str, skip: re.Pattern[str]) -> list[re.Match[str]]:
        """Runs of `skip` in `text`, remembered for the last text seen (most steps change
        nothing, so the same text is scanned once, not once per step)."""
        key = (id(text), len(text), skip.pattern)
        if self._gap_cache is None or self._gap_cache[0] != key or self._gap_cache[1] is not text:
            quick = self._dropped_chars if skip is self._dropped else None
            if quick is not None and not quick.found_in(text):
                gaps = []  # the common case, found by the faster search
            else:
                gaps = [m for m in skip.finditer(text) if m.end() > m.start()]
            self._gap_cache = (key, text, gaps)
        return self._gap_cache[2]

    def _apply(
        self,
        doc: Document,
        quick: re.Pattern[str],
        finder: Callable[[str], list[Change]],
        skip: re.Pattern[str] | None = None,
    ) -> None:
        """Find changes where a `quick` scan sees a candidate, looking through characters the
        invisible stage will drop anyway (so a second run finds nothing new)."""
        text = doc.text
        skip = skip or self._dropped
        gaps = self._gaps(text, skip) if skip is not None else []
        if not gaps:
            if quick.search(text):
                doc.apply(self.name, finder(text))
            return
        view_positions: list[int] = []  # view index before which each gap sits
        removed: list[int] = []  # characters removed up to and including each gap
        total = 0
        for gap in gaps:
            view_positions.append(gap.start() - total)
            total += gap.end() - gap.start()
            removed.append(total)
        view = skip.sub("", text)
        if not quick.search(view):
            return

        def to_text(view_index: int) -> int:
            k = bisect.bisect_right(view_positions, view_index)
            return view_index + (removed[k - 1] if k else 0)

        changes = []
        for change in finder(view):
            if change.end > change.start:
                change.start, change.end = to_text(change.start), to_text(change.end - 1) + 1
            changes.append(change)
        doc.apply(self.name, changes)


# What the invisible stage turns into line breaks (not NEL U+0085: it is also byte 0x85 of
# UTF-8 mojibake such as å\x85¬ for 公).
LINE_BREAK_CHARS = "\n\r\x0b\x0c\x1c\x1d\x1e\u2028\u2029"


def _line_bounds(text: str, pos: int, breaks: str = LINE_BREAK_CHARS) -> tuple[int, int]:
    start = max(text.rfind(c, 0, pos) for c in breaks) + 1
    ends = [i for i in (text.find(c, pos) for c in breaks) if i != -1]
    return start, min(ends, default=len(text))


def _diff_spans(before: str, after: str) -> list[tuple[int, int, int, int]]:
    """Changed spans (i1, i2, j1, j2) between two versions of a line, near ones merged."""
    ops = difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes()
    spans: list[list[int]] = []
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            continue
        if spans and i1 - spans[-1][1] <= 2 and j1 - spans[-1][3] <= 2:
            spans[-1][1], spans[-1][3] = i2, j2
        else:
            spans.append([i1, i2, j1, j2])
    return [(a, b, c, d) for a, b, c, d in spans]


# What a correct ftfy fix turns Latin mojibake into: Latin-1 text and general punctuation.
WESTERN = re.compile("[\u0000-\u00ff\u2010-\u2027\u2030-\u205e\u20ac\u2122]*")


def _plausible_fix(before: str, after: str) -> bool:
    """Accept ftfy's result when it is clearly Chinese (two or more common Han characters) or
    Western text; reject what leftover GBK bytes become when read as UTF-8 (Ź, ʤ, 𣿡, 寨)."""
    if len(HAN.findall(after)) < len(HAN.findall(before)):
        return False
    if HAN.search(after):
        return clearly_chinese(after)
    if not after:
        return before == "Â"  # "Â" before a no-break space: the classic double encoding
    return WESTERN.fullmatch(after) is not None


def ftfy_changes_nel(text: str) -> list[Change]:
    """`ftfy_changes` with NEL (U+0085) left over from the first look counted as a line break."""
    return ftfy_changes(text, LINE_BREAK_CHARS + "\x85")


def ftfy_changes(text: str, breaks: str = LINE_BREAK_CHARS) -> list[Change]:
    """ftfy's encoding fix on each line that shows UTF-8-as-Latin-1 bytes."""
    changes: list[Change] = []
    done_until = -1
    for match in UTF8_AS_LATIN.finditer(text):
        if match.start() < done_until:
            continue
        start, end = _line_bounds(text, match.start(), breaks)
        done_until = end
        # Without the line's edge white space, which the invisible stage removes: ftfy reads
        # context, and the second run must see what the first saw.
        line = text[start:end]
        start, end = start + len(line) - len(line.lstrip(EDGE_SPACE)), start + len(line.rstrip(EDGE_SPACE))
        line = text[start:end]
        fix_and_explain, config = _ftfy()
        fixed, explanation = fix_and_explain(line, config)
        if fixed == line:
            continue
        steps = [f"{step[0]}:{step[1]}" for step in (explanation or [])]
        for i1, i2, j1, j2 in _diff_spans(line, fixed):
            before, after = line[i1:i2], fixed[j1:j2]
            if not _plausible_fix(before, after):
                continue
            changes.append(
                Change(
                    start + i1,
                    start + i2,
                    after,
                    rule="repair.ftfy",
                    reason="UTF-8 text that was decoded as Latin-1/cp1252 (mojibake), fixed by ftfy",
                    kind=KIND,
                    evidence={"ftfy_steps": steps},
                )
            )
    return changes


def gbk_as_latin1_changes(text: str) -> list[Change]:
    """Runs of Latin-1/cp1252 characters whose bytes are valid GBK Chinese."""
    table = _latin_byte()
    gb2312 = _gb2312_level1()
    changes: list[Change] = []
    for match in LATIN_HIGH_RUN.finditer(text):
        run = match.group()
        if len(LATIN_LETTER.findall(run)) < 2:
            continue  # ……, ——, ··, ×, NBSP runs: punctuation Chinese text really uses
        best = _decode_gbk_run(run, table, gb2312)
        if best is None:
            continue
        i, j, decoded = best
        changes.append(
            Change(
                match.start() + i,
                match.start() + j,
                decoded,
                rule="repair.gbk-as-latin1",
                reason="GBK text that was decoded as Latin-1/cp1252; re-decoded as GBK",
                kind=KIND,
                evidence={"encoded_as": "latin-1/cp1252", "decoded_as": "gbk"},
            )
        )
    return changes


def _gbk_bytes(text: str) -> bytes:
    """The bytes a GBK decoder read to produce `text`; U+FFFD (bytes it could not read, now
    unknown) becomes 0xFF, which is never valid UTF-8 either."""
    if "\ufffd" not in text:
        return text.encode("gb18030")
    return b"\xff".join(part.encode("gb18030") for part in text.split("\ufffd"))


def _decode_gbk_run(
    run: str, table: dict[str, int], gb2312: frozenset[str]
) -> tuple[int, int, str] | None:
    """(start, end, decoded) for the part of `run` whose bytes are clearly Chinese GBK."""
    raw = bytes(table[c] for c in run)
    for offset in (0, 1):  # an odd run may start with the tail of a cut character
        body = raw[offset : offset + (len(raw) - offset) // 2 * 2]
        try:
            decoded = body.decode("gbk")
        except UnicodeDecodeError:
            continue
        if clearly_chinese(decoded, min_han=3, common=gb2312):
            return offset, offset + len(body), decoded
    return None


def _utf8_spans(run: str) -> list[tuple[int, int, str]]:
    """Sub-spans (in characters of `run`) whose GBK bytes are valid UTF-8."""
    offsets = [0]
    for ch in run:
        offsets.append(offsets[-1] + len(_gbk_bytes(ch)))
    raw = _gbk_bytes(run)
    spans: list[tuple[int, int, str]] = []
    i = 0
    n = len(run)
    while i < n:
        try:
            spans.append((i, n, raw[offsets[i] :].decode("utf-8")))
            break
        except UnicodeDecodeError as exc:
            bad = offsets[i] + exc.start
            k = i
            while k < n and offsets[k + 1] <= bad:
                k += 1
            # Back off until the prefix ends on a UTF-8 boundary as well.
            while k > i:
                try:
                    spans.append((i, k, raw[offsets[i] : offsets[k]].decode("utf-8")))
                    break
                except UnicodeDecodeError:
                    k -= 1
            next_byte = offsets[i] + exc.end
            j = max(k, i + 1)
            while j < n and offsets[j] < next_byte:
                j += 1
            i = j
    return spans


def _suspect_runs(text: str) -> list[tuple[int, int]]:
    """(start, end) of every run of `NON_ASCII_RUN` with two or more suspect characters, in
    order: found by the two suspects (a fast scan), then widened to the run around them. (Where
    the compiled loops are built, `_runs_that_may_decode` finds the runs in its own loop: this
    is its fallback, and what the tests hold that loop to.)"""
    pair = _suspect_pair_re()
    runs: list[tuple[int, int]] = []
    reversed_text = ""
    n = len(text)
    pos = 0
    while (m := pair.search(text, pos)) is not None:
        if not reversed_text:
            reversed_text = text[::-1]  # the run's start is its end in the reversed text
        first = m.start()
        start = n - NON_ASCII_RUN.match(reversed_text, n - 1 - first).end()
        end = NON_ASCII_RUN.match(text, first).end()
        runs.append((start, end))
        pos = end
    return runs


# A run's bytes may decode to Han only with this many wide starts, and this many a hundred bytes.
MAY_DECODE = (2, 7)


def _runs_that_may_decode(text: str) -> list[tuple[int, int]]:
    """The `_suspect_runs` of `text` that pass `_may_decode_to_han`: the cheap filter (real
    mojibake decodes to Han; Traditional text, most of whose runs are suspect, to U+FFFD).

    Compiled, one loop finds the runs and counts their bytes' wide starts (`wide_starts_and_size`)
    at once, and hands back the few that pass (on the benchmark, 478 runs of 33,368)."""
    if _compiled_runs_that_may_decode is None:
        runs = _suspect_runs(text)
        return [(s, e) for s, e in runs if _may_decode_to_han(*wide_starts_and_size(text[s:e]))]
    found = _compiled_runs_that_may_decode(text, _gbk_suspect_chars().table(), *_gb18030_tables(), *MAY_DECODE)
    return [(s, e) for s, e, counted in found if counted or _may_decode_to_han(*_counted_in_bytes(text[s:e]))]


def _may_decode_to_han(starts: int, size: int) -> bool:
    """False when `size` bytes with `starts` places where a wide UTF-8 character may start
    (`WIDE_UTF8_START`), read as UTF-8 (leniently), cannot give two Han characters that make
    30% of the characters: the Han characters are at most those places, and each character
    read (or U+FFFD put for bytes that are not UTF-8) takes at most 4 bytes, so there are at
    least size / 4 of them. (7% rather than 30% / 4: a margin for the float rounding of the
    exact test.)"""
    least, percent = MAY_DECODE
    return starts >= least and 100 * starts >= percent * size


def wide_starts_and_size(run: str) -> tuple[int, int]:
    """(how many places `WIDE_UTF8_START` finds in `_gbk_bytes(run)`, how many bytes those are).

    Most runs of Chinese text are suspect (Traditional characters are in GBK's extension rows)
    and fail `_may_decode_to_han`: counted in one loop over the characters, each one's bytes
    from a table (`_gb18030_tables`), without encoding the run or searching its bytes. At a
    character the tables do not hold (past the BMP; a lone surrogate, which the encoding
    refuses), and where the loop was not built, from the bytes themselves."""
    if _compiled_wide_utf8_starts is not None:
        starts, size = _compiled_wide_utf8_starts(run, *_gb18030_tables())
        if starts >= 0:
            return starts, size
    return _counted_in_bytes(run)


def _counted_in_bytes(run: str) -> tuple[int, int]:
    """`wide_starts_and_size` from the run's bytes themselves."""
    raw = _gbk_bytes(run)
    return len(WIDE_UTF8_START.findall(raw)), len(raw)


@cache
def _gb18030_tables() -> tuple[Any, Any]:
    """(bytes, length) of each BMP character as `_gbk_bytes` has it: its GB18030 encoding (the
    first byte most significant), U+FFFD as 0xFF; length 0 where it cannot be encoded (lone
    surrogates). Kept between runs (the codec is Python's: the key names the Python)."""
    depends = [tablecache.source_digest(__name__)]
    encoded, lengths = tablecache.arrays("gb18030-bytes", _built_gb18030_tables, depends)
    return encoded, lengths


def _built_gb18030_tables() -> tuple[Any, Any]:
    import numpy as np

    encoded = np.zeros(0x10000, dtype=np.uint32)
    lengths = np.zeros(0x10000, dtype=np.uint8)
    for code in range(0x10000):
        try:
            raw = _gbk_bytes(chr(code))
        except UnicodeEncodeError:
            continue
        encoded[code] = int.from_bytes(raw, "big")
        lengths[code] = len(raw)
    return encoded, lengths


def utf8_as_gbk_changes(text: str) -> list[Change]:
    """Runs of GBK characters whose bytes are valid UTF-8 Chinese."""
    suspect = _gbk_suspect_re()
    changes: list[Change] = []
    # Only runs with two or more suspect characters are repaired.
    for run_start, run_end in _runs_that_may_decode(text):
        run = text[run_start:run_end]
        lenient = _gbk_bytes(run).decode("utf-8", errors="replace")
        han = len(HAN.findall(lenient))
        if han < 2 or han < 0.3 * len(lenient):
            continue
        # The whole run, or the run from its first suspect character (clean text such as
        # `来源：` may precede the mojibake), decoded leniently: bytes the wrong decoding already
        # lost stay lost and come back as U+FFFD, which the corrupted-span flagger reports.
        whole = False
        for start in dict.fromkeys((0, suspect.search(run).start())):
            lenient = _gbk_bytes(run[start:]).decode("utf-8", errors="replace")
            lost = lenient.count("\ufffd")
            if lost <= 0.25 * len(lenient) and clearly_chinese(
                lenient.replace("\ufffd", ""), min_han=3
            ):
                changes.append(_utf8_change(run_start + start, run_end, lenient, lost))
                whole = True
                break
        if whole:
            continue
        for i, j, decoded in _utf8_spans(run):
            if not clearly_chinese(decoded, min_han=3) or len(suspect.findall(run[i:j])) < 2:
                continue
            changes.append(_utf8_change(run_start + i, run_start + j, decoded, 0))
    return changes


def _utf8_change(start: int, end: int, decoded: str, lost: int) -> Change:
    return Change(
        start,
        end,
        decoded,
        rule="repair.utf8-as-gbk",
        reason="UTF-8 text that was decoded as GBK; re-decoded as UTF-8"
        + (f" ({lost} characters already lost, shown as U+FFFD)" if lost else ""),
        kind=KIND,
        evidence={"encoded_as": "gbk", "decoded_as": "utf-8", "lost_characters": lost},
    )


def kunjinkao_changes(text: str) -> list[Change]:
    """锟斤拷 runs -> the U+FFFD characters they encode (the original text is lost)."""
    return [
        Change(
            m.start(),
            m.end(),
            "\ufffd" * (2 * len(m.group()) // 3),
            rule="repair.fffd-as-gbk",
            reason="锟斤拷 is U+FFFD U+FFFD written as UTF-8 and read as GBK: the text here was lost",
            kind=KIND,
            evidence={"encoded_as": "gbk", "decoded_as": "utf-8"},
        )
        for m in KUNJINKAO.finditer(text)
    ]
