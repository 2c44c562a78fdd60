"""Punctuation width (placeholder)."""

from __future__ import annotations

from curate.document import Document
from curate.stages.base import DocumentStage


class Punctuation(DocumentStage):
    name = "punctuation"

    def process(self, doc: Document) -> None:
        return None
