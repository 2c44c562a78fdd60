"""Corpus-level repeated lines (as cc_net does): a line that recurs in many documents of the same
site or source folder is boilerplate even when no rule names it.

Lines are compared normalised (NFKC, lower case, digits -> 0, no whitespace or punctuation), and
counted once per *document*, so a short heading repeated inside one document (000 repeats
`始终贯穿创建全过程` four times) counts once and stays. Documents whose text is identical count
once too: exact copies of one article are the near-duplicate stage's business, and counting them
here would delete the article's own sentences. Long lines are left to the near-duplicate stage
(`max_chars`): they are more often a shared paragraph than a footer. Each removal records the
count as evidence. Deterministic: counts do not depend on document order.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from curate.config import setting
from curate.document import OK, Change, Document
from curate.rules import nonblank_lines, whole_line_spans
from curate.stages.base import Stage, StageSettings

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


def normalise_line(line: str) -> str:
    """The comparison key of a line: NFKC, lower case, digits -> 0, no spaces or punctuation."""
    out = []
    for ch in unicodedata.normalize("NFKC", line).lower():
        cat = unicodedata.category(ch)
        if ch.isspace() or cat[0] in "PSZC":
            continue
        out.append("0" if cat == "Nd" else ch)
    return "".join(out)


class RepeatedLines(Stage):
    name = "repeated_lines"
    Settings = RepeatedLinesSettings

    def group_of(self, doc: Document) -> str:
        """Which documents a line is counted across."""
        mode = self.settings.group_by
        if mode == "all":
            return "*"
        if mode == "site":
            url = doc.meta.get("url")
            if isinstance(url, str) and url:
                host = urlsplit(url).hostname or ""
                if host:
                    return host.removeprefix("www.")
        source = doc.source.split("#", 1)[0]
        return str(PurePosixPath(source).parent)

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        if not self.settings.enabled:
            yield from docs
            return
        if self.settings.group_by not in ("site", "folder", "all"):
            raise ValueError(
                f"[repeated_lines] group_by should be 'site', 'folder' or 'all', got {self.settings.group_by!r}"
            )
        collected = list(docs)
        # group -> line key -> set of distinct document texts (by hash) containing it
        seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        keys_of: dict[int, list[str]] = {}
        for index, doc in enumerate(collected):
            if doc.status != OK:
                continue
            text_hash = hashlib.sha256(doc.text.encode("utf-8")).hexdigest()
            group = self.group_of(doc)
            keys = [normalise_line(doc.text[s:e]) for s, e in nonblank_lines(doc.text)]
            keys_of[index] = keys
            for key in set(keys):
                if self.settings.min_chars <= len(key) <= self.settings.max_chars:
                    seen[group][key].add(text_hash)
        for index, doc in enumerate(collected):
            if index in keys_of:
                self._remove(doc, keys_of[index], seen[self.group_of(doc)])
            yield doc

    def _remove(self, doc: Document, keys: list[str], counts: dict[str, set[str]]) -> None:
        lines = nonblank_lines(doc.text)
        rules = self.context.rules
        removed: dict[int, int] = {}
        for i, key in enumerate(keys):
            if key not in counts:
                continue
            count = len(counts[key])
            if count < self.settings.min_docs:
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
