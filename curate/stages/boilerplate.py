"""Boilerplate rules (placeholder)."""

from __future__ import annotations

from curate.document import Document
from curate.stages.base import DocumentStage


class Boilerplate(DocumentStage):
    name = "boilerplate"

    def process(self, doc: Document) -> None:
        return None
