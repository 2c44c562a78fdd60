"""The stages of a run, in order. This list is the one place that names them.

ingest (curate.ingest, before this list) -> normalise and repair -> strip boilerplate ->
near-duplicates -> flag corrupted spans -> policy -> write a version (curate.version).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

from curate.document import Document
from curate.stages.base import RunContext, Stage

STAGES: list[str] = [
    "curate.stages.repair:Repair",  # ftfy (Chinese-safe) and CJK mojibake round trips
    "curate.stages.invisible:Invisible",  # zero-width, control, private-use characters, blank lines
    "curate.stages.convert:Convert",  # Traditional -> Simplified (OpenCC dictionaries)
    "curate.stages.punctuation:Punctuation",  # half-width punctuation between Han -> full-width
    "curate.stages.reflow:Reflow",  # re-join paragraphs broken mid-sentence by the layout
    "curate.stages.boilerplate:Boilerplate",  # rule packs: notices, footers, UI text, credits
    "curate.stages.repeated_lines:RepeatedLines",  # lines repeated across many documents
    "curate.stages.dedup:NearDuplicates",  # MinHash: repeated passages and documents
    "curate.stages.corruption:CorruptedSpans",  # spam injections, mojibake, splices, garbage
    "curate.stages.policy:Policy",  # per-kind policy for flags: keep, drop, quarantine
]


@cache
def stage_classes() -> tuple[type[Stage], ...]:
    classes = []
    for spec in STAGES:
        module_name, _, class_name = spec.partition(":")
        classes.append(getattr(importlib.import_module(module_name), class_name))
    return tuple(classes)


def build_stages(context: RunContext) -> list[Stage]:
    return [cls(context.config[cls.name], context) for cls in stage_classes()]


def reads_parent(config: Any) -> bool:
    """Whether a stage's output depends on the parent version, with this configuration."""
    return any(cls.reads_parent(config[cls.name]) for cls in stage_classes())


def run_stages(docs: Iterable[Document], stages: list[Stage]) -> Iterator[Document]:
    stream: Iterable[Document] = docs
    for stage in stages:
        stream = stage.run(stream)
    yield from stream
