"""Corrupted span flags (placeholder)."""

from __future__ import annotations

from curate.document import Document
from curate.stages.base import DocumentStage


class CorruptedSpans(DocumentStage):
    name = "corruption"

    def process(self, doc: Document) -> None:
        return None
