"""Executing the stages: in order, streaming, with worker processes for per-document work.

The stage list is cut into segments: runs of consecutive `DocumentStage`s, which work on one
document at a time and so run in worker processes on batches of documents, and single
`CorpusStage`s, which see every document before changing any. A corpus stage streams its input
to a spill file on disk while it observes it (its per-document `summarise` runs in the workers),
decides, then reads the spill back and applies its decisions: documents are never all held in
memory, only the stage's compact state (line hashes, signatures) grows with the corpus.

Results come back in input order whatever the number of workers, so the output is byte-identical
for 1 or N workers.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.document import OK, Document
from curate.stages.base import CorpusStage, DocumentStage, Stage


@dataclass
class Segment:
    stages: list[Stage]

    @property
    def parallel(self) -> bool:
        return all(isinstance(s, DocumentStage) for s in self.stages)


def segments(stages: list[Stage]) -> list[Segment]:
    """Consecutive document stages grouped together; every other stage on its own."""
    grouped: list[Segment] = []
    for stage in stages:
        if isinstance(stage, DocumentStage) and grouped and grouped[-1].parallel:
            grouped[-1].stages.append(stage)
        else:
            grouped.append(Segment([stage]))
    return grouped


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# Set in the parent just before the worker pool forks; workers find their task here.
_TASK: Callable[[list[Document]], list[Any]] | None = None


def _run_task(batch: list[Document]) -> list[Any]:
    assert _TASK is not None
    return _TASK(batch)


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def parallel_map(
    task: Callable[[list[Document]], list[Any]], docs: Iterable[Document], workers: int, batch_size: int
) -> Iterator[Any]:
    """Apply `task` to batches of documents in worker processes; results in input order.

    At most 2 × workers batches are in flight, so memory stays bounded however long the stream.
    """
    global _TASK
    batches = _batches(docs, batch_size)
    if workers <= 1:
        for batch in batches:
            yield from task(batch)
        return
    # The pool forks only once the first batch exists: by then every barrier upstream has
    # decided, and the workers inherit those decisions.
    first = next(batches, None)
    if first is None:
        return
    _TASK = task
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:
        pending: deque[Any] = deque()
        for batch in itertools.chain([first], batches):
            pending.append(pool.apply_async(_run_task, (batch,)))
            while len(pending) >= 2 * workers:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()
    _TASK = None


@dataclass
class Phase:
    """The work of one pass of documents through the workers, in order: `apply` of a decided
    corpus stage, then per-document stages, then `summarise` of the next corpus stage."""

    apply: CorpusStage | None = None
    stages: list[Stage] = field(default_factory=list)
    summarise: CorpusStage | None = None

    def __bool__(self) -> bool:
        return bool(self.apply or self.stages or self.summarise)

    def run(self, batch: list[Document]) -> list[tuple[Document, Any]]:
        if self.apply is not None:
            for doc in batch:
                if doc.status == OK:
                    self.apply.apply(doc)
        stream: Iterable[Document] = batch
        for stage in self.stages:
            stream = stage.run(stream)
        stage = self.summarise
        if stage is None:
            return [(doc, None) for doc in stream]
        return [(doc, stage.summarise(doc) if doc.status == OK else None) for doc in stream]


class LocalEngine:
    """All cores of one machine, streaming, bounded memory for per-document work.

    Documents make one round trip to the workers per phase: a corpus stage's `summarise` runs
    in the same task as the per-document stages before it, and its `apply` in the same task as
    those after it (the worker pool of that phase is forked after `decide`, so it inherits the
    decisions). Stages switched off are left out before the phases are cut.
    """

    def __init__(self, workers: int = 0, batch_size: int = 64, spill_dir: str | Path | None = None) -> None:
        self.workers = workers if workers > 0 else default_workers()
        self.batch_size = batch_size
        self.spill_dir = Path(spill_dir) if spill_dir else None

    def execute(self, docs: Iterable[Document], stages: list[Stage]) -> Iterator[Document]:
        stream: Iterable[Document] = docs
        phase = Phase()
        for stage in stages:
            if not getattr(stage.settings, "enabled", True):
                continue
            if isinstance(stage, DocumentStage):
                phase.stages.append(stage)
            elif isinstance(stage, CorpusStage):
                phase.summarise = stage
                stream = self._barrier(stage, self._run(phase, stream))
                phase = Phase(apply=stage)
            else:  # a stage with its own `run`: in this process, on the ordered stream
                stream = stage.run(self._documents(phase, stream))
                phase = Phase()
        yield from self._documents(phase, stream)

    def _run(self, phase: Phase, docs: Iterable[Document]) -> Iterator[tuple[Document, Any]]:
        return parallel_map(phase.run, docs, self.workers, self.batch_size)

    def _documents(self, phase: Phase, docs: Iterable[Document]) -> Iterable[Document]:
        if phase.apply is None and not phase.stages:
            return docs
        return (doc for doc, _ in self._run(phase, docs))

    def _barrier(self, stage: CorpusStage, results: Iterable[tuple[Document, Any]]) -> Iterator[Document]:
        """Observe every document (spilling it to disk), decide, then stream the spill back."""
        with tempfile.TemporaryFile(dir=self.spill_dir, prefix=f"curate-{stage.name}-") as spill:
            count = 0
            for doc, summary in results:
                if doc.status == OK:
                    stage.observe(doc, summary)
                pickle.dump(doc, spill, protocol=pickle.HIGHEST_PROTOCOL)
                count += 1
            stage.decide()
            spill.seek(0)
            for _ in range(count):
                yield pickle.load(spill)
