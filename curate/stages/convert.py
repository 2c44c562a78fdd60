"""Traditional to Simplified (placeholder)."""

from __future__ import annotations

from curate.document import Document
from curate.stages.base import DocumentStage


class Convert(DocumentStage):
    name = "convert"

    def process(self, doc: Document) -> None:
        return None
