"""truncated: a body paragraph that ends mid-sentence at the end of the document or a section.

Reflow (which runs earlier) joins paragraphs that the layout broke mid-sentence; what it left
unjoined has nothing to continue into. A paragraph is flagged when it
- reads as body text: at least `truncated_min_chars` characters with a comma inside
  (headings, captions and address lines have none, so they are never flagged);
- is the last paragraph of the document, or the next one is a heading (short, no sentence
  punctuation) — the end of a section;
- reads as prose, not a list: it has an earlier sentence end, or several commas;
- ends in a Han character or a comma (not a sentence end or closing mark, number or code);
- its last sentence has begun and gone on: at least 12 characters with a comma inside, and a
  final clause of at least 4 Han characters making up 80% of it (a byline or 我要评论 after a
  full stop is a label; a clause of numbers, codes or links is a list item).
The span is the final, unfinished clause.
"""

from __future__ import annotations

from curate.detectors import DetectorContext
from curate.document import Document, Flag
from curate.textutil import CLOSERS, SENTENCE_END, is_han, paragraph_spans

ENDINGS = SENTENCE_END + CLOSERS + ".:：」』"
CLAUSE_MARKS = "，,、；;：:。！？!?"
PROSE_COMMAS = "，,"
SENTENCE_MARKS = "。！？!?；;…"
MIN_SENTENCE = 12
MIN_CLAUSE_HAN = 4
MIN_CLAUSE_HAN_SHARE = 0.8  # a final "clause" of numbers, codes or links is a list item
HEADING_MAX = 30


def _reads_as_prose(line: str) -> bool:
    """Sentences, not a list: an earlier sentence end, or several commas."""
    body = line[:-1]
    if any(c in body for c in "。！？!?；;"):
        return True
    return sum(body.count(c) for c in PROSE_COMMAS) >= 2


def is_heading(line: str) -> bool:
    line = line.strip()
    return len(line) <= HEADING_MAX and not any(c in line for c in "，,。；;！？!?")


def detect(doc: Document, ctx: DetectorContext) -> list[Flag]:
    text = doc.text
    paragraphs = paragraph_spans(text)
    flags = []
    for i, (start, end) in enumerate(paragraphs):
        # The ending first: it is the cheapest test, and most paragraphs end a sentence. (Read
        # before the line is stripped: a mark of ENDINGS is no whitespace, so it ends both.)
        if text[end - 1] in ENDINGS:
            continue
        line = text[start:end].rstrip()
        end = start + len(line)
        if not line or line[-1] in ENDINGS or not is_han(line[-1]) and line[-1] not in "，,、":
            continue
        if len(line.strip()) < ctx.truncated_min_chars or not any(c in line for c in PROSE_COMMAS):
            continue
        if not _reads_as_prose(line):
            continue
        last = i == len(paragraphs) - 1
        section_end = not last and is_heading(text[paragraphs[i + 1][0] : paragraphs[i + 1][1]])
        if not (last or section_end):
            continue
        sentence_start = max(line.rfind(c, 0, len(line) - 1) for c in SENTENCE_MARKS) + 1
        last_sentence = line[sentence_start:].strip()
        # A cut sentence has begun and gone on: a comma inside, and a real final clause. A short
        # tail after a full stop (我要评论, 图库供稿, a byline) is a label, not a cut sentence.
        if len(last_sentence) < MIN_SENTENCE or not any(
            c in last_sentence[:-1] for c in PROSE_COMMAS
        ):
            continue
        clause_start = max(line.rfind(c, 0, len(line) - 1) for c in CLAUSE_MARKS) + 1
        clause = line[clause_start:].strip()
        han = sum(1 for c in clause if is_han(c))
        if han < MIN_CLAUSE_HAN or han < MIN_CLAUSE_HAN_SHARE * len(clause):
            continue
        flags.append(
            Flag(
                kind="truncated",
                start=start + clause_start,
                end=end,
                text=text[start + clause_start : end],
                reason="paragraph ends mid-sentence at the end of the "
                + ("document" if last else "section"),
                severity="info",
                detector="truncated",
            )
        )
    return flags
