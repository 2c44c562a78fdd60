"""Unicode repair (placeholder until implemented)."""

from __future__ import annotations

from curate.document import Document
from curate.stages.base import DocumentStage


class Repair(DocumentStage):
    name = "repair"

    def process(self, doc: Document) -> None:
        return None
