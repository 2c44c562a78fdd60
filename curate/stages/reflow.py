"""Re-join paragraphs that the page layout broke in the middle of a sentence or word.

Newspaper pages and PDF conversions break a paragraph where the column ends (004:
`要深化内涵、丰富形` / blank line / `式、创新方法`). Chinese needs no space between the halves,
so the join removes the break and adds nothing.

A break is joined only when both sides say "this is one sentence":
- the text before it ends inside a sentence: on a Han character, an opening quote or bracket,
  or a comma (never on 。！？； a closing mark, a colon or a digit), its last clause is prose
  (no `label：`, no spaces as in bylines `记者 张三`), and it is body text, not a
  heading: at least `min_prev_chars` long with clause punctuation (，。、；： …), or shorter but
  with evidence of the cut (an unclosed “ or （, a closing ” first after the break, or a single
  character then a comma after it: `国民教育体` / `系，纳入…`);
- the text after it starts inside a sentence: a Han character or digit (or a mark that cannot
  start a paragraph, like ，), is not a list item (`一是`, `1.`, `（一）`) or a `label:` line
  (`责任编辑：`), and is body text itself (has punctuation, or is long).
Headings (short lines without punctuation) therefore never join the body before or after them.
Breaks are decided left to right on the text as joined so far, so a second run joins nothing new.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from curate import patterncache
from curate.config import setting
from curate.document import Change, Document
from curate.stages.base import DocumentStage, StageSettings
from curate.textutil import HAN_RANGES

KIND = "normalise"

# A paragraph break: newline(s), possibly with blank lines between, and white space around.
BREAK = re.compile(r"[ \t\u3000]*\n(?:[ \t\u3000]*\n)*[ \t\u3000]*")
# BREAK from its first newline: a pattern `re` finds at C speed (BREAK, starting with a repeat,
# is tried at every position); `_breaks` widens each match back over the white space before it.
NEWLINE_BREAK = re.compile(r"\n(?:[ \t\u3000]*\n)*[ \t\u3000]*")
CLAUSE_PUNCT = re.compile(r"[，。、；：！？,;:!?…]")
# Characters a broken-off first half may end with.
OPEN_END_CHAR = patterncache.compile_re(f"[{HAN_RANGES}“‘《（「『【〔，、]")
OPEN_END = patterncache.compile_re(OPEN_END_CHAR.pattern + "\\Z")
# The last clause before a break; a label (`来源：`), spaces (`记者 张三`) or a number/date
# there mean a caption, byline or date line rather than a sentence cut by the layout.
TAIL = re.compile(r"[^。！？；!?;]*\Z")
NOT_PROSE_TAIL = patterncache.compile_re(
    f"[：:\\s\\u3000/／@|｜]|\\d\\s*\\Z|\\d[{HAN_RANGES}]{{1,2}}\\Z|\\A[”’」』]"
    "|记者|编辑|责编|通讯员|摄|来源|作者"
)
# Marks that cannot start a paragraph: seeing one after a break proves the break is spurious.
CONTINUATION_START = "，。、；：！？）》」』】”’…"
NEXT_START = patterncache.compile_re(f"[{HAN_RANGES}0-9０-９]")
LIST_ITEM = patterncache.compile_re(
    r"(?:[一二三四五六七八九十]+[是、．.，,]|[0-9０-９]+[.、．)）]|[（(][一二三四五六七八九十0-9]+[）)]"
    r"|第[一二三四五六七八九十0-9]+[章节条部分])"
)
LABEL_LINE = patterncache.compile_re(f"[{HAN_RANGES}]{{1,6}}[：:]")
# One character and then a clause mark (`系，纳入…`, `式、创新…`): the tail of a cut word.
ONE_CHAR_CLAUSE = patterncache.compile_re(f"[{HAN_RANGES}][，、；,;]")
OPENERS = "“‘《（「『【〔"
CLOSERS = "”’》）」』】〕"


@dataclass
class ReflowSettings(StageSettings):
    """Re-join paragraphs broken mid-sentence by the page layout."""

    join: bool = setting(True, "Join a paragraph broken in the middle of a sentence or word.")
    min_prev_chars: int = setting(
        30, "The text before a break must be at least this long (headings are shorter)."
    )
    min_prev_chars_with_evidence: int = setting(
        8,
        "Shorter text before a break still joins when the cut is evident: an unclosed quote or "
        "bracket, a closing one first after the break, or one character then a comma.",
    )
    single_newline_on_length: bool = setting(
        False,
        "Also join at a single line break on the length test alone. Off: in web text a line "
        "without a final 。 is more often a caption or a removed image than a layout break. "
        "Hard-wrapped documents (most lines end mid-sentence) are detected and joined anyway.",
    )
    hard_wrap_share: float = setting(
        0.6, "A document is hard-wrapped when this share of its lines (5 or more) end mid-sentence."
    )
    min_next_chars_without_punct: int = setting(
        30, "Text after a break without any punctuation must be at least this long to join."
    )


class Reflow(DocumentStage):
    """Join layout-broken paragraphs; one edit per removed break."""

    name = "reflow"
    Settings = ReflowSettings

    def process(self, doc: Document) -> None:
        if not self.settings.join or "\n" not in doc.text:
            return
        doc.apply(self.name, self.changes(doc.text))

    def changes(self, text: str) -> list[Change]:
        breaks = _breaks(text)
        if not breaks:
            return []
        wrapped: bool | None = None  # looked at when a break first needs it
        changes: list[Change] = []
        block_start = 0  # start of the paragraph before the current break, joins included
        joined_in_block = False
        for i, (end, after_break) in enumerate(breaks):
            # Most breaks follow 。 or a heading's last character: one test rules them out.
            if end == 0 or not OPEN_END_CHAR.match(text, end - 1):
                block_start, joined_in_block = after_break, False
                continue
            if wrapped is None:
                wrapped = self._hard_wrapped(text)
            length_ok_single = self.settings.single_newline_on_length or wrapped
            next_end = breaks[i + 1][0] if i + 1 < len(breaks) else len(text)
            nxt = text[after_break:next_end].strip()
            window = text[max(block_start, end - Block.KEEP) : end]
            if joined_in_block:
                window = BREAK.sub("", window)  # the breaks already joined are gone
            block = Block(window.strip(), end - block_start,
                          CLAUSE_PUNCT.search(text, block_start, end) is not None)
            blank_line = text.count("\n", end, after_break) > 1
            if self._joins(block, nxt, blank_line or length_ok_single, wrapped):
                changes.append(
                    Change(
                        end,
                        after_break,
                        "",
                        rule="reflow.join",
                        reason="paragraph broken in the middle of a sentence by the layout",
                        kind=KIND,
                        evidence={"before": block.end[-6:], "after": nxt[:6]},
                    )
                )
                joined_in_block = True
            else:
                block_start, joined_in_block = after_break, False
        return changes

    def _hard_wrapped(self, text: str) -> bool:
        """Most lines end mid-sentence: the text was wrapped at a fixed width."""
        lines = [line for line in text.split("\n") if len(line.strip()) >= 10]
        if len(lines) < 5:
            return False
        open_lengths = sorted(len(line) for line in lines if OPEN_END.search(line.rstrip()))
        if len(open_lengths) < self.settings.hard_wrap_share * len(lines):
            return False
        # Wrapped at a fixed width: the open-ended lines are (nearly) all the same length.
        low, high = open_lengths[len(open_lengths) // 5], open_lengths[4 * len(open_lengths) // 5]
        return low >= 0.8 * high

    def _joins(self, block: Block, nxt: str, length_test: bool, wrapped: bool = False) -> bool:
        s = self.settings
        prev = block.end
        if not prev or not nxt or not OPEN_END.search(prev):
            return False
        tail = TAIL.search(prev)
        if tail and NOT_PROSE_TAIL.search(tail.group()):
            return False
        if nxt[0] in CONTINUATION_START:
            return True
        if not NEXT_START.match(nxt) or LIST_ITEM.match(nxt) or LABEL_LINE.match(nxt):
            return False
        tail_text = tail.group() if tail else prev
        if len(tail_text) <= 2 and len(tail_text) < block.length:
            return False  # `…应对。综合`: a word or two after a full stop is a credit, not a cut
        if wrapped:  # fixed-width lines: every open-ended line continues
            return block.length >= s.min_prev_chars_with_evidence
        if not CLAUSE_PUNCT.search(nxt) and len(nxt) < s.min_next_chars_without_punct:
            return False  # a heading (or a caption) follows
        if length_test and block.length >= s.min_prev_chars:
            return block.has_clause_punct
        # Shorter text before the break: join only with direct evidence of a cut.
        if block.length < s.min_prev_chars_with_evidence:
            return False
        if _unclosed(tail_text) or _closes_first(nxt):
            return True
        return ONE_CHAR_CLAUSE.match(nxt) is not None and block.has_clause_punct


def _breaks(text: str) -> list[tuple[int, int]]:
    """The spans of `BREAK.finditer(text)`. Each such match ends after all the white space and
    newlines it can take, so the next one starts after some other character: widening a
    `NEWLINE_BREAK` match back over white space never reaches the match before."""
    spans = []
    for m in NEWLINE_BREAK.finditer(text):
        start = m.start()
        while start and text[start - 1] in " \t\u3000":
            start -= 1
        spans.append((start, m.end()))
    return spans


class Block:
    """The paragraph before a break, joins included: its last KEEP characters (what the tests
    look at), its length and whether it has clause punctuation anywhere."""

    KEEP = 300

    def __init__(self, end: str, length: int, has_clause_punct: bool) -> None:
        self.end = end
        self.length = length
        self.has_clause_punct = has_clause_punct


def _unclosed(text: str) -> bool:
    """An opening quote or bracket after the last closing one: the sentence was cut inside."""
    last_open = max(text.rfind(c) for c in OPENERS)
    last_close = max(text.rfind(c) for c in CLOSERS)
    return last_open > last_close


def _closes_first(text: str) -> bool:
    """A closing quote or bracket before any opening one: the text starts inside a quote."""
    head = text[:80]
    first_close = min((i for i in (head.find(c) for c in CLOSERS) if i >= 0), default=-1)
    if first_close < 0:
        return False
    first_open = min((i for i in (head.find(c) for c in OPENERS) if i >= 0), default=len(head))
    return first_close < first_open
