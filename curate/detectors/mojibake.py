"""mojibake: encoding damage the repair stage could not undo.

What it flags (each a residue whose original characters are lost, so repair cannot fix it):
- runs of U+FFFD (bytes a decoder replaced) and of 锟斤拷 / 烫烫 / 屯屯 (U+FFFD's UTF-8 bytes, or
  uninitialised memory, decoded as GBK);
- byte-shifted GBK between two `?`: one byte of a double-byte sequence was lost, so every pair
  after it is misaligned until the next ASCII byte (`?；泼鳎合衷谖倚?布`). The decoder's `?`
  marks both ends; the text between is flagged when it reads as noise (mean bigram surprise
  >= 15 bits/char; clean clauses score ~6–9, lists of names up to ~13) or starts with a
  full-width letter, digit, symbol, ；or ： (Ａ, ＃, ９: the 0xA3 row of GBK, where a misaligned
  lead byte often lands) right after the `?`;
- `?` standing for characters a codec could not represent (徐若?在, 40?货柜): a run of two or
  more `?` between Han/digits, or a single `?` inside a clause that contains no question word
  and does not follow a sentence-final particle — so a half-width question mark is not flagged;
- UTF-8 read as GBK: windows dense in the characters that UTF-8's lead bytes E4–E9 become in
  GBK (鍙, 鐨, 涓, 鏄 …), which are rare in real text;
- GBK/UTF-8 read as Latin-1: runs of Latin-1 letters (Ã, Ä, º …) with no spaces.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import regex

from curate import patterncache
from curate.detectors import DetectorContext, TextBatch
from curate.document import Document, Flag
from curate.textutil import char_table, two_byte_chars

REPLACEMENT_RUN = regex.compile(r"\uFFFD+")
GARBLED_RUN = patterncache.compile(r"(?:锟斤拷|烫烫|屯屯)(?:锟斤拷|烫|屯|锟|斤|拷)*")
# A shifted region: `?` + up to 60 characters that are not `?` or a line break + `?`.
SHIFTED = regex.compile(r"\?([^?\n]{1,60}?)\?")
QMARK_RUN = patterncache.compile(
    r"(?<=[\p{Han}0-9０-９])\?{2,}(?=[\p{Han}0-9])|(?<=[\p{Han}0-9０-９])\?(?=[\p{Han}])"
)
LATIN1_RUN = regex.compile(r"[\u00C0-\u00FF][\u0080-\u00FF]{3,}")
# Pre-checks for the patterns above: a character each of their matches contains (most texts
# have none). Looked up for a whole batch of texts at once (`_prechecks`).
GARBLED_FIRST = "锟烫屯"
_REPLACEMENT, _GARBLED, _QUESTION_MARK, _LATIN1, _SIGNATURE = (1 << bit for bit in range(5))
# Full-width letters, digits and symbols (not the ，：；！？（） that Chinese prose uses).
# Also ；and ：, which cannot begin a clause; not ，, which may follow a single lost character.
FULLWIDTH_FORM = regex.compile(r"[\uFF03-\uFF06\uFF0A\uFF0B\uFF10-\uFF3A\uFF41-\uFF5A]")
SHIFTED_MIN_BITS = 15.0
# Question words, and A-not-A questions (会不会, 是不是, 有没有).
QUESTION_WORDS = patterncache.compile(
    r"什么|怎么|怎样|为何|为什么|如何|哪|谁|吗|呢|是否|难道|多少|几|何时|何处|啥|么|吧|否|有没有|(\p{Han})不\1"
)
QUESTION_FINAL = set("吗呢吧么啊呀嘛哪谁啥几否")
CLAUSE_BREAK = '。！？!；;，,：:\n“”"「」'
SIGNATURE_WINDOW = 8
SIGNATURE_SHARE = 0.5


@cache
def _precheck_table() -> np.ndarray:
    """The classes of `_prechecks`, by code point (`char_table`)."""
    # (A cut-off UTF-8 sequence read as GBK decodes to U+FFFD: a signature character too.)
    signature = "".join(sorted(utf8_as_gbk_signature() | {"\ufffd"}))
    return char_table(["\ufffd", GARBLED_FIRST, "?", [(0xC0, 0xFF)], signature])


def _prechecks(batch: TextBatch, ctx: DetectorContext) -> list[tuple[int, list[int] | None]]:
    """Per text of `batch`: which of the pre-check classes it holds (bits), and where its
    signature characters are when it has enough of them for `_utf8_as_gbk` (else None)."""
    marks = batch.classes(_precheck_table())
    present = batch.held(marks & (_REPLACEMENT | _GARBLED | _QUESTION_MARK | _LATIN1))
    signature = np.flatnonzero((marks & _SIGNATURE) != 0)
    bounds = np.searchsorted(signature, batch.starts)  # each text's run of `signature`
    enough = np.diff(bounds) >= SIGNATURE_WINDOW * SIGNATURE_SHARE
    found: list[tuple[int, list[int] | None]] = [(bits, None) for bits in present.tolist()]
    for i in np.flatnonzero(enough).tolist():
        inside = signature[bounds[i] : bounds[i + 1]] - batch.starts[i]
        found[i] = (found[i][0], inside.tolist())
    return found


@cache
def utf8_as_gbk_signature() -> frozenset[str]:
    """Characters GBK gives for a UTF-8 lead byte E4..E9 plus a continuation byte 0x80..0xBF."""
    return two_byte_chars("gbk", (0xE4, 0xEA), ((0x80, 0xC0),))


def detect(doc: Document, ctx: DetectorContext) -> list[Flag]:
    text = doc.text
    flags: list[Flag] = []
    taken: list[tuple[int, int]] = []

    def add(
        start: int, end: int, reason: str, rule: str, severity: str = "warning", **evidence
    ) -> None:
        if any(start < e and s < end for s, e in taken):
            return
        taken.append((start, end))
        flags.append(
            Flag(
                kind="mojibake",
                start=start,
                end=end,
                text=text[start:end],
                reason=reason,
                severity=severity,
                detector=f"mojibake.{rule}",
                evidence=evidence or None,
            )
        )

    present, signature = ctx.derived("mojibake", text, _prechecks)
    if signature is not None:  # first: its spans may contain U+FFFD, which then belongs to it
        _utf8_as_gbk(text, signature, add)
    replaced = REPLACEMENT_RUN.finditer(text) if present & _REPLACEMENT else ()
    for m in replaced:
        add(
            m.start(),
            m.end(),
            f"{m.end() - m.start()} replacement character(s) U+FFFD: bytes lost in decoding",
            "replacement",
        )
    garbled = GARBLED_RUN.finditer(text) if present & _GARBLED else ()
    for m in garbled:
        add(
            m.start(),
            m.end(),
            "锟斤拷/烫烫-style residue: replacement bytes decoded with the wrong codec",
            "garbled",
        )
    if present & _QUESTION_MARK:
        _shifted(text, ctx, add)
        _lost_characters(text, add)
    latin1 = LATIN1_RUN.finditer(text) if present & _LATIN1 else ()
    for m in latin1:
        add(
            m.start(), m.end(), "run of Latin-1 letters: Chinese bytes decoded as Latin-1", "latin1"
        )
    flags.sort(key=lambda f: (f.start, f.end))
    return flags


def _shifted(text: str, ctx: DetectorContext, add) -> None:
    for m in SHIFTED.finditer(text):
        inner = m.group(1)
        starts_fullwidth = bool(FULLWIDTH_FORM.match(inner))
        if not starts_fullwidth and not regex.search(r"\p{Han}", inner):
            continue
        # Surprise of the characters after the first one inside (the first follows a `?`).
        inner_bits = ctx.surprise(text, m.start(1) + 1, m.end(1))
        mean = float(inner_bits.mean()) if inner_bits.size else 0.0
        if mean >= SHIFTED_MIN_BITS or starts_fullwidth:
            add(
                m.start(),
                m.end(),
                "byte-shifted double-byte text between two '?' (a lost byte misaligned the rest)",
                "shifted",
                mean_bits=round(mean, 2),
                starts_fullwidth=starts_fullwidth,
            )


def _lost_characters(text: str, add) -> None:
    for m in QMARK_RUN.finditer(text):
        run = m.group()
        if len(run) == 1:
            before = text[m.start() - 1]
            if before in QUESTION_FINAL:
                continue
            clause_start = max(text.rfind(c, 0, m.start()) for c in CLAUSE_BREAK) + 1
            if QUESTION_WORDS.search(text, clause_start, m.start()):
                continue
        add(
            m.start(),
            m.end(),
            f"{len(run)} '?' where characters were lost (a codec could not represent them)",
            "lost-characters",
            severity="info" if len(run) == 1 else "warning",
        )


def _utf8_as_gbk(text: str, positions: list[int], add) -> None:
    """Flag the windows dense in signature characters (`positions`: where they are)."""
    hits = np.zeros(len(text), dtype=bool)
    hits[positions] = True
    window = np.convolve(hits.astype(np.int32), np.ones(SIGNATURE_WINDOW, dtype=np.int32), "valid")
    dense = np.flatnonzero(window >= SIGNATURE_WINDOW * SIGNATURE_SHARE)
    if dense.size == 0:
        return
    spans: list[list[int]] = []
    for i in dense.tolist():
        start, end = i, i + SIGNATURE_WINDOW
        if spans and start <= spans[-1][1]:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    for start, end in spans:
        idx = np.flatnonzero(hits[start:end])
        start, end = start + int(idx[0]), start + int(idx[-1]) + 1
        add(start, end, "UTF-8 bytes decoded as GBK (鍙/鐨/涓-style characters)", "utf8-as-gbk")
