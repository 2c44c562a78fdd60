"""Reflow of broken paragraphs (placeholder)."""

from __future__ import annotations

from curate.document import Document
from curate.stages.base import DocumentStage


class Reflow(DocumentStage):
    name = "reflow"

    def process(self, doc: Document) -> None:
        return None
