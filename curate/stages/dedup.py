"""Near-duplicates (placeholder)."""

from __future__ import annotations

from curate.document import Document
from curate.stages.base import DocumentStage


class NearDuplicates(DocumentStage):
    name = "dedup"

    def process(self, doc: Document) -> None:
        return None
