"""splice: a sentence cut mid-word where a duplicated or foreign passage began.

When the near-duplicates stage removes a repeated passage that had been pasted into the middle
of a sentence (sample 004: 创新推出邮政 + 古自治区…), the words between were lost with the page's
layout: the text before the seam stops mid-word. That stage logs the removal as an edit of kind
"duplicate" (and may flag the seam itself, with detector "dedup": then this detector adds
nothing). Here every such removal is mapped to its position in the current text; if the
character before it is Han (no sentence or clause end), the clause that ends at the seam is
flagged. The original words cannot be recovered, so the default policy only flags it.
"""

from __future__ import annotations

from curate.detectors import DetectorContext
from curate.document import Document, Edit, Flag
from curate.textutil import CLOSERS, SENTENCE_END, is_han

CLAUSE_MARKS = SENTENCE_END + CLOSERS + "，,、：:\n"
MAX_CLAUSE = 30
SPLICE_EDIT_KINDS = frozenset({"duplicate"})


def current_position(edits: list[Edit], index: int) -> int:
    """Where the end of edit `index` lies in the current text, following every later edit."""
    edit = edits[index]
    pos = edit.start + len(edit.after)
    for later in edits[index + 1 :]:
        if later.action.startswith("flag"):
            continue
        if pos >= later.end:
            pos += len(later.after) - (later.end - later.start)
        elif pos > later.start:
            pos = later.start
    return pos


def detect(doc: Document, ctx: DetectorContext) -> list[Flag]:
    text = doc.text
    flags = []
    seams = set()
    for i, edit in enumerate(doc.edits):
        if edit.kind not in SPLICE_EDIT_KINDS or edit.after or edit.action.startswith("flag"):
            continue
        seam = current_position(doc.edits, i)
        if seam in seams or not (0 < seam <= len(text)) or not is_han(text[seam - 1]):
            continue
        seams.add(seam)
        start = seam
        while start > 0 and seam - start < MAX_CLAUSE and text[start - 1] not in CLAUSE_MARKS:
            start -= 1
        flags.append(
            Flag(
                kind="splice",
                start=start,
                end=seam,
                text=text[start:seam],
                reason="sentence cut mid-word where a removed passage began (the words between are lost)",
                severity="warning",
                detector="splice",
                evidence={
                    "removed_by": edit.stage,
                    "rule": edit.rule,
                    "removed_chars": len(edit.before),
                },
            )
        )
    return flags
