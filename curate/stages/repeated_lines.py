"""Corpus-level repeated lines (placeholder)."""

from __future__ import annotations

from curate.document import Document
from curate.stages.base import DocumentStage


class RepeatedLines(DocumentStage):
    name = "repeated_lines"

    def process(self, doc: Document) -> None:
        return None
