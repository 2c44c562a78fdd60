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
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import regex

from curate.config import setting
from curate.document import Change, Document
from curate.rules import nonblank_lines, whole_line_spans
from curate.stages.base import CorpusStage, StageSettings

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


_NOT_COMPARED = regex.compile(r"[\s\p{P}\p{S}\p{Z}\p{C}]+")
_DIGIT = regex.compile(r"\p{Nd}")


# CJK unified ideographs (the block as of Unicode 11, assigned in every Unicode version `regex` or
# `unicodedata` may use) come through `normalise_line` one for one: NFKC neither decomposes nor
# composes them, `lower` keeps them, and they are neither digits nor removed. So a line with more
# than `max_chars` of them has a key too long to count, without computing it.
_HAN_RUN = "[^\u4e00-\u9fef]*[\u4e00-\u9fef]"


def normalise_line(line: str) -> str:
    """The comparison key of a line: NFKC, lower case, digits -> 0, no spaces or punctuation."""
    return _DIGIT.sub("0", _NOT_COMPARED.sub("", unicodedata.normalize("NFKC", line).lower()))


def _key_hash(text: str) -> int:
    """8 bytes are plenty to tell lines apart, and keep the counting state small."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


class RepeatedLines(CorpusStage):
    """Counts normalised lines per group (observe), then removes the frequent ones (apply).

    Only 8-byte hashes are kept between the passes: the state grows with the number of distinct
    lines, not with the documents' text.
    """

    name = "repeated_lines"
    Settings = RepeatedLinesSettings

    def __init__(self, settings: RepeatedLinesSettings, context: Any) -> None:
        super().__init__(settings, context)
        if settings.group_by not in ("site", "folder", "all"):
            raise ValueError(
                f"[repeated_lines] group_by should be 'site', 'folder' or 'all', got {settings.group_by!r}"
            )
        # (group, line key hash) -> hashes of the distinct document texts containing that line
        self.seen: dict[tuple[str, int], set[int]] = defaultdict(set)
        self.counts: dict[tuple[str, int], int] = {}
        self.groups: set[str] = set()  # groups with some frequent line
        self._too_long: Any = None

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

    def line_keys(self, doc: Document) -> list[int | None]:
        """The key hash of every non-blank line (None: too short or too long to count)."""
        low, high = self.settings.min_chars, self.settings.max_chars
        too_long = self._too_long
        if too_long is None:
            too_long = self._too_long = regex.compile(f"(?:{_HAN_RUN}){{{high + 1}}}")
        keys: list[int | None] = []
        text = doc.text
        for s, e in nonblank_lines(text):
            if e - s > high and too_long.match(text, s, e) is not None:
                keys.append(None)
                continue
            key = normalise_line(text[s:e])
            keys.append(_key_hash(key) if low <= len(key) <= high else None)
        return keys

    def summarise(self, doc: Document) -> Any:
        return self.group_of(doc), _key_hash(doc.text), self.line_keys(doc)

    def observe(self, summary: Any) -> None:
        group, text_hash, keys = summary
        for key in set(keys):
            if key is not None:
                self.seen[(group, key)].add(text_hash)

    def decide(self) -> None:
        threshold = self.settings.min_docs
        self.counts = {k: len(v) for k, v in self.seen.items() if len(v) >= threshold}
        self.groups = {group for group, _ in self.counts}
        self.seen = defaultdict(set)

    def apply(self, doc: Document) -> None:
        if self.counts:
            group = self.group_of(doc)
            if group not in self.groups:  # no line of this document can be frequent
                return
            self._remove(doc, [None if k is None else (group, k) for k in self.line_keys(doc)])

    def _remove(self, doc: Document, keys: list[tuple[str, int] | None]) -> None:
        lines = nonblank_lines(doc.text)
        rules = self.context.rules
        removed: dict[int, int] = {}
        for i, key in enumerate(keys):
            count = self.counts.get(key) if key is not None else None
            if count is None:
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
