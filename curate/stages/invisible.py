"""Invisible and control characters (placeholder)."""

from __future__ import annotations

from curate.document import Document
from curate.stages.base import DocumentStage


class Invisible(DocumentStage):
    name = "invisible"

    def process(self, doc: Document) -> None:
        return None
