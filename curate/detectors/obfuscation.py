"""obfuscation: characters inserted between Han characters to dodge keyword filters.

- pinyin in brackets after characters: 烟(yan)台市(shi) — two or more bracketed pinyin
  syllables, each right after a Han character, within a short stretch;
- a filler symbol between every character: 加*微*信, 代|开|发|票 — three or more Han
  characters each separated by the same symbol (not ·, which joins transliterated names);
- control characters that survived repair (C0/C1 controls other than tab and newline).
"""

from __future__ import annotations

import re

import regex

from curate.detectors import DetectorContext
from curate.document import Document, Flag

INITIAL = r"(?:zh|ch|sh|[bpmfdtnlgkhjqxrzcsyw])?"
FINAL = r"(?:iang|iong|uang|ueng|ang|eng|ing|ong|ian|iao|uai|uan|van|ai|ei|ao|ou|an|en|in|un|vn|ia|ie|iu|ua|uo|ue|ve|ui|er|a|o|e|i|u|v|ü)"
SYLLABLE = rf"{INITIAL}{FINAL}[1-5]?"
BRACKETED = rf"\p{{Han}}[(（]{SYLLABLE}[)）]"
PINYIN_RUN = regex.compile(rf"{BRACKETED}(?:\p{{Han}}{{0,3}}{BRACKETED})+")
FILLER = regex.compile(r"\p{Han}([*#|~^_+/\\])\p{Han}(?:\1\p{Han}){2,}")
CONTROL = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]"
CONTROL_RUN = re.compile(f"{CONTROL}+")
# Cheap stdlib pre-checks: the `regex` patterns above only run when these find something.
MAY_HAVE_PINYIN = re.compile(r"[(（][a-zü]")
MAY_HAVE_FILLER = re.compile(r"[*#|~^_+/\\][\u3400-\u9fff]")
# (A lone character class is scanned faster than the same class repeated, `CONTROL_RUN`.)
MAY_HAVE_CONTROL = re.compile(CONTROL)


def detect(doc: Document, ctx: DetectorContext) -> list[Flag]:
    text = doc.text
    flags = []
    pinyin = PINYIN_RUN.finditer(text) if MAY_HAVE_PINYIN.search(text) else ()
    filler = FILLER.finditer(text) if MAY_HAVE_FILLER.search(text) else ()
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
    controls = CONTROL_RUN.finditer(text) if MAY_HAVE_CONTROL.search(text) else ()
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
