"""obfuscation: characters inserted between Han characters to dodge keyword filters.

- pinyin in brackets after characters: 烟(yan)台市(shi) — two or more bracketed pinyin
  syllables, each right after a Han character, within a short stretch;
- a filler symbol between every character: 加*微*信, 代|开|发|票 — three or more Han
  characters each separated by the same symbol (not ·, which joins transliterated names);
- control characters that survived repair (C0/C1 controls other than tab, newline and carriage
  return).
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np

from curate import patterncache
from curate.detectors import DetectorContext, TextBatch
from curate.document import Document, Flag
from curate.textutil import HAN_SCRIPT_RANGES, char_table

INITIAL = r"(?:zh|ch|sh|[bpmfdtnlgkhjqxrzcsyw])?"
FINAL = r"(?:iang|iong|uang|ueng|ang|eng|ing|ong|ian|iao|uai|uan|van|ai|ei|ao|ou|an|en|in|un|vn|ia|ie|iu|ua|uo|ue|ve|ui|er|a|o|e|i|u|v|ü)"
SYLLABLE = rf"{INITIAL}{FINAL}[1-5]?"
BRACKETED = rf"\p{{Han}}[(（]{SYLLABLE}[)）]"
PINYIN_RUN = patterncache.compile(rf"{BRACKETED}(?:\p{{Han}}{{0,3}}{BRACKETED})+")
FILLER = patterncache.compile(r"\p{Han}([*#|~^_+/\\])\p{Han}(?:\1\p{Han}){2,}")
CONTROLS = ((0x00, 0x08), (0x0B, 0x0C), (0x0E, 0x1F), (0x7F, 0x9F))  # C0/C1 but \t, \n, \r
CONTROL_RUN = re.compile("[" + "".join(f"\\x{a:02X}-\\x{b:02X}" for a, b in CONTROLS) + "]+")
# Pre-checks: the patterns above only run on a text in which one of these occurs, a bracket
# before a pinyin letter (`[(（][a-zü]`), a filler symbol before a Han character
# (`[*#|~^_+/\\]\p{Han}`: every Han character, `HAN_SCRIPT_RANGES`; it read U+3400-U+9FFF, and
# a filler run of other Han characters went unflagged) and the same symbol two characters on
# with a non-ASCII one between (`([*#|~^_+/\\])[^\x00-\x7f]\1`, which every filler match holds:
# without it, 379 of the benchmark's 5,123 texts ran FILLER for nothing, with it 5), a control
# character. Looked up for a whole batch of texts at once (`_prechecks`).
_BRACKET, _PINYIN_LETTER, _FILLER, _HAN, _CONTROL = (1 << bit for bit in range(5))


@cache
def _precheck_table() -> np.ndarray:
    """The classes of `_prechecks`, by code point (`char_table`)."""
    letters = [(ord("a"), ord("z")), (ord("ü"), ord("ü"))]
    return char_table(["(（", letters, "*#|~^_+/\\", HAN_SCRIPT_RANGES, CONTROLS])


def _prechecks(batch: TextBatch, ctx: DetectorContext) -> list[tuple[bool, bool, bool]]:
    """Per text of `batch`: (may have bracketed pinyin, a filler, a control character)."""
    marks = batch.classes(_precheck_table())
    pinyin = batch.holding_pair(marks, _BRACKET, _PINYIN_LETTER) > 0
    filler = batch.holding_pair(marks, _FILLER, _HAN) > 0
    filler &= batch.per_text(_filler_repeats(batch, marks)) > 0
    control = batch.held(marks & _CONTROL) != 0
    return list(zip(pinyin.tolist(), filler.tolist(), control.tolist(), strict=True))


def _filler_repeats(batch: TextBatch, marks: np.ndarray) -> np.ndarray:
    """Positions (ascending) of the filler symbols that come again two characters on in the same
    text, with a non-ASCII character between (`*中*`): every FILLER match starts its symbols at one."""
    at = np.flatnonzero((marks[:-2] & _FILLER) != 0)
    codes = batch.codes
    at = at[(codes.take(at + 2) == codes.take(at)) & (codes.take(at + 1) >= 0x80)]
    return batch.within_texts(at, 2)


def detect(doc: Document, ctx: DetectorContext) -> list[Flag]:
    text = doc.text
    flags = []
    may_pinyin, may_filler, may_control = ctx.derived("obfuscation", text, _prechecks)
    pinyin = PINYIN_RUN.finditer(text) if may_pinyin else ()
    filler = FILLER.finditer(text) if may_filler else ()
    for m in pinyin:
        flags.append(
            _flag(
                text, m.start(), m.end(), "pinyin in brackets inserted between characters", "pinyin"
            )
        )
    for m in filler:
        flags.append(
            _flag(
                text,
                m.start(),
                m.end(),
                f"filler symbol {m.group(1)!r} between every character",
                "filler",
            )
        )
    controls = CONTROL_RUN.finditer(text) if may_control else ()
    for m in controls:
        codes = " ".join(f"U+{ord(c):04X}" for c in m.group()[:8])
        flags.append(
            _flag(text, m.start(), m.end(), f"control character(s) {codes} in the text", "control")
        )
    flags.sort(key=lambda f: (f.start, f.end))
    return flags


def _flag(text: str, start: int, end: int, reason: str, rule: str) -> Flag:
    return Flag(
        kind="obfuscation",
        start=start,
        end=end,
        text=text[start:end],
        reason=reason,
        severity="warning",
        detector=f"obfuscation.{rule}",
    )
