"""Invisible and control characters, indents, trailing spaces, blank-line runs.

Scraped text carries characters nobody sees but every later stage trips over: zero-width spaces
splitting words (so rules and near-duplicate shingles miss), C0/C1 controls, U+3000 indents,
private-use icon-font glyphs, and layouts that use runs of blank lines. Each kind is a rule with
its own switch; each removal or replacement is an edit.

The work is three passes of C-speed regex scans (characters, then line edges, then blank-line
runs), each applied as one batch of non-overlapping changes; a clean document costs three scans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import regex

from curate import patterncache
from curate.config import setting
from curate.document import Change, Document
from curate.stages.base import DocumentStage, RunContext, StageSettings
from curate.textutil import CharClass

KIND = "normalise"

# Zero-width and other invisible format characters (ZWJ is handled apart: emoji need it).
ZERO_WIDTH = "\u200b\u200c\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad"
ZWJ = "\u200d"
BIDI = "\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c"
# Line-break-like controls: become a newline instead of vanishing (they separated lines).
LINE_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# Other C0/C1 controls; \t and \n are kept, \r is handled by its own rule.
C0_CONTROLS = "\x00-\x08\x0e-\x1b\x1f\x7f"
CONTROLS = C0_CONTROLS + "\x80-\x84\x86-\x9f"
PRIVATE_USE = "\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd"
# Horizontal white space that can indent a line or trail it.
SPACE = " \t\u3000\u00a0\u2000-\u200a\u202f\u205f"

# Patterns start with a literal or a character class so `re` can skip ahead at C speed (a
# repeat such as `x{3,}` or `[...]+` first does not: it is written `xxx+`, or searched for once).
LINE_START_SPACE = re.compile(f"\n([{SPACE}]+)")
# A newline after white space: where a line ends in white space (found by looking back).
SPACE_THEN_NEWLINE = re.compile(f"\n(?<=[{SPACE}]\n)")
LEADING_SPACE = re.compile(f"[{SPACE}]+")
SPACE_CHARS = " \t\u3000\u00a0" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f"
BLANK_RUN = re.compile(r"\n\n\n+")  # three or more newlines
EMOJI = regex.compile(r"\p{Extended_Pictographic}")


def dropped_characters(settings: InvisibleSettings | None = None) -> re.Pattern[str] | None:
    """Runs of characters this stage removes outright (not C1 controls nor U+00AD: repair reads
    those as bytes of mojibake). The repair stage, which runs first, looks through them so that a
    zero-width space inside mojibake does not hide it until a second run."""
    s = settings or InvisibleSettings()
    if not s.enabled:
        return None
    chars = ""
    if s.zero_width:  # not the soft hyphen U+00AD: it is byte 0xAD of Latin-1 mojibake
        chars += ZERO_WIDTH.replace("\u00ad", "") + ZWJ
    if s.bidi_controls:
        chars += BIDI
    if s.control:
        chars += C0_CONTROLS
    if s.private_use and s.private_use_other == "drop":
        chars += _private_use_except({_codepoint(k) for k in s.private_use_map})
    if not chars:
        return None
    return patterncache.compile_re(f"[{chars}]+")


def _private_use_except(mapped: set[str]) -> str:
    """The private-use ranges as a character class body, without the mapped characters."""
    ranges = [(0xE000, 0xF8FF), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD)]
    for point in sorted(ord(c) for c in mapped):
        split = []
        for lo, hi in ranges:
            if lo <= point <= hi:
                split += [(lo, point - 1)] if lo < point else []
                split += [(point + 1, hi)] if point < hi else []
            else:
                split.append((lo, hi))
        ranges = split
    return "".join(f"{chr(lo)}-{chr(hi)}" if lo < hi else chr(lo) for lo, hi in ranges)


def _codepoint(key: str) -> str:
    return chr(int(str(key).upper().removeprefix("U+"), 16))


def _joins_emoji(text: str, pos: int) -> bool:
    """A zero-width joiner inside an emoji sequence (👨‍👩) is part of the emoji: keep it."""
    before = text[pos - 1] if pos else ""
    if before == "\ufe0f" and pos > 1:
        before = text[pos - 2]
    after = text[pos + 1] if pos + 1 < len(text) else ""
    return bool(before and after and EMOJI.match(before) and EMOJI.match(after))


def _codepoint_key(char: str) -> str:
    return f"U+{ord(char):04X}"


@dataclass
class InvisibleSettings(StageSettings):
    """Invisible and control characters, indents, trailing spaces and blank lines."""

    zero_width: bool = setting(
        True, "Remove zero-width and invisible format characters (U+200B-U+200D, U+2060, U+FEFF…)."
    )
    bidi_controls: bool = setting(True, "Remove bidirectional marks and embeddings (U+200E…).")
    control: bool = setting(True, "Remove C0/C1 control characters other than newline and tab.")
    line_breaks: bool = setting(
        True, "Turn CR LF / lone CR, form feeds, U+2028/U+2029 and NEL into newlines."
    )
    private_use: bool = setting(True, "Handle private-use characters (see private_use_map).")
    private_use_map: dict = setting(
        {"U+E40C": "\n"},
        "Private-use characters to replace, 'U+XXXX' -> text (Sohu pages use U+E40C for a "
        "paragraph break).",
    )
    private_use_other: str = setting(
        "drop", "Other private-use characters (icon-font glyphs, mostly): 'drop' or 'keep'."
    )
    indents: bool = setting(True, "Remove indents (U+3000, spaces, tabs) at the start of lines.")
    trailing_space: bool = setting(True, "Remove white space at the end of lines.")
    blank_lines: bool = setting(
        True,
        "Collapse runs of blank lines to one; remove blank lines at the start and end of the "
        "document.",
    )


class Invisible(DocumentStage):
    """Invisible characters and white-space layout, one edit per removed or replaced run."""

    name = "invisible"
    Settings = InvisibleSettings

    def __init__(self, settings: InvisibleSettings, context: RunContext) -> None:
        super().__init__(settings, context)
        s = settings
        if s.private_use_other not in ("drop", "keep"):
            raise ValueError(
                f"invisible.private_use_other should be 'drop' or 'keep', got {s.private_use_other!r}"
            )
        self._pua_map: dict[str, str] = {}
        for key, value in s.private_use_map.items():
            try:
                self._pua_map[_codepoint(key)] = str(value)
            except ValueError:
                raise ValueError(
                    f"invisible.private_use_map: key {key!r} is not a code point like 'U+E40C'"
                ) from None
        # One alternation, so a single scan finds every character-level rule.
        parts = []
        if s.line_breaks:
            parts.append(f"(?P<crlf>\r\n)|(?P<cr>\r)|(?P<br>[{LINE_BREAKS}])")
        if s.control:
            parts.append(f"(?P<ctl>[{CONTROLS}]+)")
        if s.zero_width:
            parts.append(f"(?P<zw>[{ZERO_WIDTH}]+)|(?P<zwj>{ZWJ})")
        if s.bidi_controls:
            parts.append(f"(?P<bidi>[{BIDI}]+)")
        if s.private_use and (self._pua_map or s.private_use_other == "drop"):
            parts.append(f"(?P<pua>[{PRIVATE_USE}])")
        self._chars = patterncache.compile_re("|".join(parts)) if parts else None
        # One character class of everything above: a clean document costs one fast scan.
        classes = "".join(
            c for flag, c in (
                (s.line_breaks, "\r" + LINE_BREAKS), (s.control, CONTROLS),
                (s.zero_width, ZERO_WIDTH + ZWJ), (s.bidi_controls, BIDI),
                (s.private_use, PRIVATE_USE),
            ) if flag
        )
        self._any_char = patterncache.compile_re(f"[{classes}]+") if classes else None
        self._some_char = patterncache.compile_re(f"[{classes}]") if classes else None  # for a quick search
        # ... searched for by a table lookup a character (`CharClass`)
        self._some_chars = CharClass(self._some_char) if self._some_char is not None else None

    def process(self, doc: Document) -> None:
        if self._chars is not None and self._some_chars is not None:
            if self._some_chars.found_in(doc.text):
                doc.apply(self.name, self._char_changes(doc.text))
        s = self.settings
        if s.indents or s.trailing_space:
            doc.apply(self.name, self._line_edge_changes(doc.text))
        if s.blank_lines:
            doc.apply(self.name, self._blank_line_changes(doc.text))

    def _char_changes(self, text: str) -> list[Change]:
        changes: list[Change] = []
        assert self._chars is not None and self._any_char is not None
        matches = (
            m
            for run in self._any_char.finditer(text)  # C-speed scan for the rare runs...
            for m in self._chars.finditer(text, run.start(), run.end() + 1)  # ...then classify
            if m.start() < run.end()
        )
        for m in matches:
            kind = m.lastgroup
            span = m.group()
            codes = " ".join(sorted({_codepoint_key(c) for c in span}))
            if kind in ("crlf", "cr", "br"):
                change = Change(m.start(), m.end(), "\n", "invisible.line-break",
                                f"line break written as {codes}")
            elif kind == "ctl":
                change = Change(m.start(), m.end(), "", "invisible.control",
                                f"control character(s) {codes}")
            elif kind == "zwj" and _joins_emoji(text, m.start()):
                continue
            elif kind in ("zw", "zwj"):
                change = Change(m.start(), m.end(), "", "invisible.zero-width",
                                f"invisible format character(s) {codes}")
            elif kind == "bidi":
                change = Change(m.start(), m.end(), "", "invisible.bidi",
                                f"bidirectional control(s) {codes}")
            else:  # private use
                if span in self._pua_map:
                    change = Change(m.start(), m.end(), self._pua_map[span],
                                    "invisible.private-use",
                                    f"private-use {codes} mapped by configuration")
                elif self.settings.private_use_other == "drop":
                    change = Change(m.start(), m.end(), "", "invisible.private-use",
                                    f"private-use character {codes} (no meaning outside its font)")
                else:
                    continue
            change.kind = KIND
            changes.append(change)
        return changes

    def _line_edge_changes(self, text: str) -> list[Change]:
        s = self.settings
        n = len(text)
        # (start, end) of white space at the start / at the end of a line.
        starts = [m.span(1) for m in LINE_START_SPACE.finditer(text)]
        lead = LEADING_SPACE.match(text)
        if lead:
            starts.insert(0, lead.span())
        ends = set()
        for m in SPACE_THEN_NEWLINE.finditer(text):
            start = end = m.start()
            while start and text[start - 1] in SPACE_CHARS:
                start -= 1
            ends.add((start, end))
        tail = n - len(text.rstrip(SPACE_CHARS))
        if tail:
            ends.add((n - tail, n))
        changes: list[Change] = []
        for span in starts:
            if span in ends:  # the whole line is white space
                if s.trailing_space:
                    changes.append(Change(*span, "", "invisible.trailing-space",
                                          "white space on an otherwise empty line", kind=KIND))
                ends.discard(span)
            elif s.indents:
                changes.append(Change(*span, "", "invisible.indent",
                                      "indent at the start of a line", kind=KIND))
        if s.trailing_space:
            for span in ends:
                changes.append(Change(*span, "", "invisible.trailing-space",
                                      "white space at the end of a line", kind=KIND))
        return changes

    def _blank_line_changes(self, text: str) -> list[Change]:
        changes: list[Change] = []
        head = len(text) - len(text.lstrip("\n"))
        if head == len(text):
            return [Change(0, head, "", "invisible.blank-lines", "empty document", kind=KIND)] if head else []
        tail = len(text) - len(text.rstrip("\n"))
        if head:
            changes.append(Change(0, head, "", "invisible.blank-lines",
                                  "blank lines at the start of the document", kind=KIND))
        for m in BLANK_RUN.finditer(text, head, len(text) - tail):
            changes.append(Change(m.start(), m.end(), "\n\n", "invisible.blank-lines",
                                  f"{m.end() - m.start() - 1} blank lines between paragraphs "
                                  "collapsed to one", kind=KIND))
        if tail:
            changes.append(Change(len(text) - tail, len(text), "", "invisible.blank-lines",
                                  "blank lines at the end of the document", kind=KIND))
        return changes
