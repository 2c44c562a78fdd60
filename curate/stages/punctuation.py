"""Half-width punctuation in Chinese text -> full-width.

Scrapers and some CMSs write `,:;()?!` in Chinese sentences (001: `歷史傳承,也是`). Full-width is
the standard and what rules and readers expect. We change a mark only where Chinese surrounds
it, so numbers (`6.29亿元`, `1:1`, `3,000`), Latin text, URLs and e-mail addresses keep theirs:

- `, : ; ? !` become full-width when the character before is Chinese (Han or full-width
  punctuation) and the one after is Chinese, a digit, or the end of the line; or when the one
  before is a digit or `%` and the one after is Han (`15%,确保`). Runs of `?`/`!` go together.
- `( )` are handled as pairs: full-width when the content has a Han character, or when Chinese
  surrounds the pair (`国内生产总值(GDP)增长`). Nested pairs are handled inside out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

from curate import patterncache
from curate.config import setting
from curate.document import Change, Document
from curate.stages.base import DocumentStage, StageSettings
from curate.textutil import HAN_RANGES, CharClass

try:  # the compiled loops (curate/_kernels.pyx), built by the install
    from curate._kernels import pair_spans as _compiled_pair_spans
except ImportError:  # no C compiler was there: the regex below does the same
    _compiled_pair_spans = None

KIND = "normalise"
FULL_WIDTH = {",": "，", ":": "：", ";": "；", "?": "？", "!": "！", "(": "（", ")": "）"}

# "Chinese" context: Han, CJK punctuation, full-width forms, curly quotes, ellipsis, dash.
CJK = HAN_RANGES + "\u3001-\u303f\uff01-\uff60\u2018\u2019\u201c\u201d\u2026\u2014"
IS_CJK = patterncache.compile_re(f"[{CJK}]")
IS_HAN = patterncache.compile_re(f"[{HAN_RANGES}]")
# Quick test: is there any half-width mark next to a Chinese character at all? (Written to
# start with the mark, so `re` skips to the next mark at C speed.)
CANDIDATE = patterncache.compile_re(f"[,:;?!()](?:(?<=[{CJK}].)|(?=[{CJK}]))")
# ... searched for from the first mark, which a table lookup a character finds (`CharClass`).
CANDIDATE_START = CharClass(re.compile("[,:;?!()]"))
# `[?!]+|[,:;]`, written to start with one character class (so `re` skips ahead at C speed).
MARKS = re.compile(r"[,:;?!](?:(?<=[?!])[?!]*)?")
# ... matched at each mark, which a table lookup a character finds (`_mark_matches`).
MARK_START = CharClass(re.compile("[,:;?!]"))
PAIR_LONGEST = 300  # characters inside a pair at most


@cache
def _pair_pattern(longest: int) -> re.Pattern[str]:
    """Innermost half-width pair first; once converted, an outer pair matches on the next
    pass. A pair may span a line break: the reflow stage (after us) may join the lines."""
    return re.compile(rf"[(（][^()]{{0,{longest}}}[)）]")


PAIR = _pair_pattern(PAIR_LONGEST)
# URLs (which may hold Han in the path) run to the next space or full-width punctuation.
PROTECTED = re.compile(
    r"(?:https?|ftp)://[^\s，。；：！？（）《》“”、]+|www\.[!-~]+"
    r"|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
)
ASCII_LETTERS = CharClass(re.compile(r"[A-Za-z]"))  # (counted: `CharClass.count`)
DIGITS = "0123456789"
# Rounds over the pairs (one per level of nesting, or per pair of a chain each waiting for the
# next), and over pairs and marks (while a conversion gives one of them Chinese context). Real
# text needs two or three; the bound keeps crafted text linear, leaving a longer chain partly
# converted (a second run would go on).
MAX_ROUNDS = 32


@dataclass
class PunctuationSettings(StageSettings):
    """Half-width punctuation between Chinese characters -> full-width."""

    marks: bool = setting(True, "Convert , : ; ? ! between Chinese characters to ，：；？！.")
    parens: bool = setting(True, "Convert ( ) pairs around or inside Chinese text to （ ）.")
    min_han_share: float = setting(
        0.3, "Only in documents where at least this share of letters (Han + Latin) is Han."
    )


def _is_cjk(char: str) -> bool:
    return bool(char) and IS_CJK.match(char) is not None


class Punctuation(DocumentStage):
    """Full-width punctuation in Chinese text; one edit per run of converted marks."""

    name = "punctuation"
    Settings = PunctuationSettings

    def process(self, doc: Document) -> None:
        text = doc.text
        if not CANDIDATE_START.search(CANDIDATE, text):
            return
        # Han (and other CJK) characters are 3 bytes in UTF-8: a C-speed estimate of their count.
        cjk = (len(text.encode("utf-8", "surrogatepass")) - len(text)) // 2
        if cjk < self.settings.min_han_share * (cjk + ASCII_LETTERS.count(text)):
            return
        doc.apply(self.name, self.changes(text))

    def changes(self, text: str) -> list[Change]:
        # Every protected span holds "://", "www." or "@": without them there is none to find.
        maybe_protected = "@" in text or "://" in text or "www." in text
        protected = [m.span() for m in PROTECTED.finditer(text)] if maybe_protected else []

        def is_protected(pos: int) -> bool:
            return any(a <= pos < b for a, b in protected)

        # Marks are replaced one for one, so positions never move: position -> new character.
        replaced: dict[int, str] = {}
        rule_at: dict[int, str] = {}
        # A converted pair is Chinese context for a mark beside it, and a converted mark for a
        # pair (`中(）:` -> `中（）：`): again while something converted sits beside a mark or a
        # paren, so that normalising the output again changes nothing.
        rounds = MAX_ROUNDS  # passes over the pairs left, for the whole text
        for _ in range(MAX_ROUNDS):
            converted = set(replaced)
            if self.settings.parens:
                rounds -= self._pairs(text, replaced, rule_at, is_protected, rounds)
            if self.settings.marks:
                self._marks(text, replaced, rule_at, is_protected)
            if rounds <= 0 or not any(_beside_punctuation(text, p) for p in replaced.keys() - converted):
                break
        # One change per run of adjacent positions converted by the same rule.
        changes: list[Change] = []
        for pos in sorted(rule_at):
            rule = rule_at[pos]
            last = changes[-1] if changes else None
            if last is not None and last.end == pos and last.rule == rule:
                last.end = pos + 1
                last.after += replaced[pos]
                continue
            changes.append(
                Change(pos, pos + 1, replaced[pos], rule=rule, kind=KIND,
                       reason="half-width punctuation in Chinese text made full-width")
            )
        return changes

    def _pairs(
        self,
        text: str,
        replaced: dict[int, str],
        rule_at: dict[int, str],
        is_protected: Callable[[int], bool],
        rounds: int,
    ) -> int:
        """Convert ( ) pairs, innermost first, until no more change or `rounds` passes (marks
        already converted count as Chinese context); the passes made."""
        current = _with_replacements(text, replaced)
        for done in range(1, rounds + 1):
            changed = False
            for start, stop in _pair_spans(current):
                end = stop - 1
                if current[start] == "（" and current[end] == "）":
                    continue
                if is_protected(start) or is_protected(end):
                    continue
                content = current[start + 1 : end]
                before = current[start - 1] if start else ""
                after = current[end + 1] if end + 1 < len(current) else ""
                if IS_HAN.search(content) or (_is_cjk(before) and _is_cjk(after)):
                    for pos in (start, end):
                        char = replaced.get(pos, text[pos])
                        if char in FULL_WIDTH:
                            replaced[pos] = FULL_WIDTH[char]
                            rule_at[pos] = "punctuation.parens"
                            changed = True
            if not changed:
                return done
            current = _with_replacements(text, replaced)
        return rounds

    def _marks(
        self,
        text: str,
        replaced: dict[int, str],
        rule_at: dict[int, str],
        is_protected: Callable[[int], bool],
    ) -> None:
        # Parens already converted count as Chinese context (marks are never parens: the
        # characters at marks are still those of `text`).
        current = _with_replacements(text, replaced)
        for m in _mark_matches(text):
            start, end = m.span()
            if is_protected(start):
                continue
            before = current[start - 1] if start else ""
            after = current[end] if end < len(current) else ""
            if _is_cjk(before):
                ok = _is_cjk(after) or after in ("", "\n") or (bool(after) and after in DIGITS)
            elif before and before in DIGITS + "%":
                ok = bool(after) and IS_HAN.match(after) is not None
            else:
                ok = False
            if ok:
                for pos in range(start, end):
                    replaced[pos] = FULL_WIDTH[text[pos]]
                    rule_at[pos] = "punctuation.width"


def _mark_matches(text: str) -> Iterator[re.Match[str]]:
    """`MARKS.finditer(text)`: every match starts at a mark, and every mark starts one, so each
    is matched where `MARK_START` finds the next mark (a byte looked up a character where `re`
    tried the class at each: 10.0 -> 4.2 ms over the 1,708 texts of the benchmark that reach
    this stage's changes, by hand)."""
    pos = MARK_START.first(text)
    while pos >= 0:
        match = MARKS.match(text, pos)
        assert match is not None  # (a mark starts a match)
        yield match
        pos = MARK_START.first(text, match.end())


_CONTEXT_OF = "".join(FULL_WIDTH) + "（）"  # what a conversion beside may change: marks, pairs' ends


def _beside_punctuation(text: str, pos: int) -> bool:
    """Whether a mark or a paren (either width: a pair may end in a converted one) is next to
    `pos`: a conversion there may change that one's context."""
    return any(0 <= at < len(text) and text[at] in _CONTEXT_OF for at in (pos - 1, pos + 1))


def _pair_spans(text: str, longest: int = PAIR_LONGEST) -> list[tuple[int, int]]:
    """The spans of `PAIR`'s matches in `text` (with `longest` for its bound), found by the
    kernels where built (`_kernels.pair_spans`), else by the regex, their specification. `re`
    spent a third of the stage trying each character of a pair's content against `[^()]`."""
    if _compiled_pair_spans is not None and type(text) is str:
        return _compiled_pair_spans(text, longest)
    return [m.span() for m in _pair_pattern(longest).finditer(text)]


def _with_replacements(text: str, replaced: dict[int, str]) -> str:
    """`text` with the characters at the positions of `replaced` replaced (one for one)."""
    if not replaced:
        return text
    pieces = []
    cursor = 0
    for pos in sorted(replaced):
        pieces.append(text[cursor:pos])
        pieces.append(replaced[pos])
        cursor = pos + 1
    pieces.append(text[cursor:])
    return "".join(pieces)
