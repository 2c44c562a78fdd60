"""`dedup.spill_index`: the observed index lives in a memory-mapped file, not in the heap, and the
decisions are the same."""

from __future__ import annotations

import tracemalloc

import pytest

from curate.document import DUPLICATE, Document
from curate.stages.base import RunContext
from curate.stages.dedup import INDEX_NAME, DedupSettings, NearDuplicates

from .scale_helpers import articles
from .test_dedup import corpus, dedup_edits, run, snapshot


def test_spilled_index_gives_the_same_decisions_and_index():
    kept, kept_context = run(corpus())
    spilled, spilled_context = run(corpus(), spill_index=True)
    assert snapshot(spilled) == snapshot(kept)
    assert spilled_context.state["artifacts"][INDEX_NAME] == kept_context.state["artifacts"][INDEX_NAME]
    assert any(dedup_edits(d) for d in spilled) and any(d.status == DUPLICATE for d in spilled)


def _heap_after_observing(docs: list[Document], spill: bool) -> tuple[int, NearDuplicates]:
    """Heap bytes still allocated after summarising and observing `docs` (what the stage holds)."""
    stage = NearDuplicates(DedupSettings(spill_index=spill), RunContext(config=None))
    stage.observe(stage.summarise(docs[0]))  # warm up: tables, the spill file
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for doc in docs[1:]:
            stage.observe(stage.summarise(doc))
        return tracemalloc.get_traced_memory()[0] - before, stage
    finally:
        tracemalloc.stop()


def test_spilled_index_is_not_held_in_the_heap():
    docs = [Document.new(f"built/{n:04d}.txt", text) for n, text in enumerate(articles(200, seed=9))]
    in_memory, _ = _heap_after_observing(docs, spill=False)
    on_disk, stage = _heap_after_observing(docs, spill=True)
    # Held in memory: the summaries (signatures, layout, text). Spilled: offsets only.
    assert in_memory > 500_000
    assert on_disk < in_memory / 4, (on_disk, in_memory)
    stage.decide()  # and the spilled summaries still decide


def _fields(summary) -> list:
    """Every field of a summary (as made, or as read back from its record)."""
    from curate.stages.dedup import _ARRAYS

    arrays = [(name, getattr(summary, name)) for name in _ARRAYS]
    return [
        summary.id,
        bytes(summary.text_utf8),
        summary.computed,
        summary.reused,
        *((name, a.dtype.str, a.shape, a.tobytes()) for name, a in arrays),
    ]


@pytest.mark.parametrize(
    "settings",
    [DedupSettings(), DedupSettings(num_perm=17, window_num_perm=7)],  # odd: padded signature arrays
    ids=["default", "odd-signatures"],
)
def test_a_summary_travels_as_one_record_read_back_as_views(settings):
    import pickle

    import numpy as np

    from curate.stages.dedup import _pack, _unpack

    docs = [Document.new(f"built/{n:04d}.txt", text) for n, text in enumerate(articles(6, seed=3))]
    docs.append(Document.new("built/empty.txt", ""))  # no paragraphs, no windows
    docs.append(Document.new("built/one.txt", "一段只有一个句子的文字"))  # one paragraph, one window
    stage = NearDuplicates(settings, RunContext(config=None))
    for summary in stage.summarise_many(docs):
        travelled = pickle.loads(pickle.dumps(summary, pickle.HIGHEST_PROTOCOL))
        assert _fields(travelled) == _fields(summary)
        assert not travelled.para_sigs.flags.owndata and not travelled.para_sigs.flags.writeable
        record = np.frombuffer(_pack(summary), np.uint8)  # as a slice of a memory map gives it
        assert _fields(_unpack(record)) == _fields(summary)
        assert _pack(travelled) == _pack(summary)  # (a summary read back travels on as it came)
        assert travelled.paragraph_numbers() == summary.paragraph_numbers()
        # As an engine moves it between processes: the record alone, no pickle around it.
        packed = stage.pack_summary(summary)
        assert packed == _pack(summary) and isinstance(packed, bytes)
        assert _fields(stage.unpack_summary(packed)) == _fields(summary)
        assert stage.pack_summary(stage.unpack_summary(packed)) == packed


def test_a_summary_of_strided_arrays_packs_the_same_and_one_of_wrong_shapes_is_refused():
    import dataclasses

    import numpy as np

    from curate.stages.dedup import _pack, _unpack

    doc = Document.new("built/0.txt", articles(1, seed=5)[0])
    summary = NearDuplicates(DedupSettings(), RunContext(config=None)).summarise_many([doc])[0]
    assert summary.para_sigs.shape[0] > 1
    strided = dataclasses.replace(summary, para_sigs=np.asfortranarray(summary.para_sigs))
    assert not strided.para_sigs.flags.c_contiguous
    assert _pack(strided) == _pack(summary)
    assert _fields(_unpack(_pack(strided))) == _fields(summary)
    # Arrays of other types are converted to the record's as they are packed.
    typed = dataclasses.replace(
        summary, spans=summary.spans.astype(np.int32), win_sigs=summary.win_sigs.astype(np.uint64)
    )
    assert _pack(typed) == _pack(summary)
    # ... and so are arrays of the record's types in the other byte order (the same kind and
    # size: only the dtype itself tells them apart).
    swapped = dataclasses.replace(summary, spans=summary.spans.astype(">i8"), para_sigs=summary.para_sigs.astype(">u4"))
    assert _pack(swapped) == _pack(summary)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        _pack(dataclasses.replace(summary, win_counts=summary.win_counts[:-1]))


def test_a_one_paragraph_documents_record_holds_its_signature_once():
    # A document of one paragraph has that paragraph's signature: its record keeps one copy
    # (on a corpus of one-sentence documents, a third of each record). A summary whose
    # signature differs from its one paragraph's (none is made so) keeps both, and reads back.
    import dataclasses

    import numpy as np

    from curate.stages.dedup import _pack, _unpack

    doc = Document.new("built/one.txt", "一段只有一个句子的文字，用来看它的记录有多长。")
    summary = NearDuplicates(DedupSettings(), RunContext(config=None)).summarise_many([doc])[0]
    assert summary.para_sigs.shape[0] == 1
    other = dataclasses.replace(summary, sig=summary.sig // 2)
    once, twice = _pack(summary), _pack(other)
    assert len(twice) - len(once) == summary.sig.nbytes == 4 * DedupSettings().num_perm
    assert _fields(_unpack(once)) == _fields(summary)
    assert _fields(_unpack(twice)) == _fields(other)
    assert np.array_equal(_unpack(once).sig, summary.para_sigs[0])
    # The same signature in another type is still the paragraph's: held once.
    assert _pack(dataclasses.replace(summary, sig=summary.sig.astype(np.uint64))) == once
