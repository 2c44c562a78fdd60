"""Per-kind policy for flags (placeholder)."""

from __future__ import annotations

from curate.document import Document
from curate.stages.base import DocumentStage


class Policy(DocumentStage):
    name = "policy"

    def process(self, doc: Document) -> None:
        return None
