"""Helpers for the normalise tests (no tests here): run the five normalisation stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.document import Document
from curate.stages.base import RunContext, Stage
from curate.stages.convert import Convert
from curate.stages.invisible import Invisible
from curate.stages.punctuation import Punctuation
from curate.stages.reflow import Reflow
from curate.stages.repair import Repair

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
NORMALISE = (Repair, Invisible, Convert, Punctuation, Reflow)


def seed(prefix: str) -> str:
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return path.read_text(encoding="utf-8")


def stage(cls: type, **settings: Any) -> Stage:
    """One stage with its default settings, overridden by `settings`."""
    return cls(cls.Settings(**settings), RunContext(config=None))


def run(text: str, stages: list[Stage] | None = None) -> Document:
    """Run `stages` (default: all five, in pipeline order); check that nothing was lost."""
    doc = Document.new("test.txt", text)
    for st in stages if stages is not None else [stage(cls) for cls in NORMALISE]:
        st.process(doc)
    assert doc.reconstruct_input() == text
    return doc


def normalise(text: str) -> str:
    return run(text).text


def rules(doc: Document) -> list[str]:
    return [e.rule for e in doc.edits]
