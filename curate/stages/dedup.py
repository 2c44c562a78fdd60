"""Near-duplicates: repeated passages inside a document, paragraphs and documents across the corpus.

How a decision is made (LSH proposes, exact comparison decides):

1. Every OK document is cut into paragraphs (non-blank lines) and each paragraph into windows
   (sentences; long sentences into pieces of about `window_chars`). Each window gets a MinHash
   signature over character n-grams of the comparison form (curate.minhash); a paragraph's
   signature is the minimum over its windows, a document's over its paragraphs.
2. Candidates: rows (documents, paragraphs, windows) sharing a band of MinHashLSH's banding
   (`datasketch.MinHashLSH`). LSH only *proposes* pairs; each row's candidate set is computed
   up front, before any decision.
3. Pairs are verified exactly before anything is removed (pure functions of the summaries,
   independent of the decisions, so they can run anywhere):
   - documents and whole paragraphs: exact Jaccard (or containment of the later copy in the
     earlier one) of their shingle sets;
   - passages: `difflib.SequenceMatcher` aligns the two paragraphs' comparison forms; aligned
     blocks separated by small gaps form a region, which must be similar enough, long enough
     and cover whole sentences (or a whole earlier paragraph). Region ends are snapped to
     sentence boundaries when only a few characters away (a changed first word), otherwise kept
     exact, and a copy that starts or ends mid-sentence gets a `splice` flag at the seam.
     (The alignment is skipped when too few of the copy's characters lie in 4-grams the
     other paragraph also has to make a passage: an upper bound, so nothing is missed.)
4. Who is kept: the copy with the smallest (origin, document id, position) - documents of the
   parent version first, then this run's by stable id. Each later copy is compared only with
   copies that are themselves kept, so a chain of weak collisions (A~B, B~C) never removes C for
   resembling A through B: no clusters by transitive closure. A later exact copy of a run
   document (the same text) is decided from its first copy's decision (`_decide_copy`): the
   decision comparing it would make, with no candidates gathered and no pair checked.
5. Never removed: paragraphs shorter than `min_chars` comparison characters (headings,
   datelines), and shared phrases inside otherwise different paragraphs (a region must hold
   `passage_min_sentences` complete sentences or a whole earlier paragraph).

How it runs (a `CorpusStage`, so the engine streams documents through a spill file):
- `summarise(doc)`, in the worker processes: comparison form, paragraph/window layout, text
  hashes, window/paragraph/document signatures (reusing the parent index's by text hash; the
  parent index is read in `__init__`, before the workers fork), the text (UTF-8) and the
  text->input offset map as breakpoints. A `_Summary` of numpy arrays, no Document.
  `summarise_many(docs)` gives the same summaries for a batch, with one signature pass over
  all of its paragraphs (numpy's per-call cost is most of a single document's signatures).
- `observe`: keeps the summaries (about 1.7 KB per paragraph of news: signatures, layout, text).
- `decide`: everything above from step 2 on, over all summaries, in (origin, id, position)
  order; the comparison form of a document is recomputed from its text only when it
  is a candidate (a small LRU cache). Produces one `_Plan` per changed document (drops with
  final link coordinates and splice seams, or the duplicate status) and the index artifact.
  Three steps, for documents, then (duplicate documents settled) for paragraphs and passages:
  candidates -> verification -> choice. Only the choice (step 4) is sequential, as it reads
  earlier decisions; the other two use the engine's services when it offers them
  (`RunContext.group_by`, `RunContext.parallel`) so that `decide` is not one serial driver
  loop, with byte-identical results (plans, edits, index):
  - candidates: the rows datasketch's `MinHashLSH` banding files together, found with one
    numpy sort per band (exact band values); or, with `group_by`, a shuffle on datasketch's
    own band keys (band number + `MinHashLSH._H`); a row's candidates are the union of its
    groups: the set `MinHashLSH.query` returns, in any group order;
  - verification: on demand in this process; or, with `parallel`, in chunks on the workers
    ahead of the choice, in rounds, each verifying what the remaining decisions still lack
    if undecided copies are kept (misses are verified on demand). A pair is thus checked
    only while its earlier copy is kept: a text copied a thousand times costs about a
    thousand checks, as in one process, not one per candidate pair. The index blocks of
    edited documents (re-signed after the edits) are computed there too.
- `apply(doc)`: applies its plan (plans keyed by id, in input order for repeated ids).
`run` (the in-memory default of CorpusStage) calls the same four methods: same results.

Incremental: the index of the version (signatures, paragraph texts and spans, window
signatures) is saved as the artifact `dedup-index.npz`; the next run reads it from the parent
version, deduplicates new documents against it and reuses the signatures of paragraphs whose
text hash is unchanged instead of recomputing them. The file holds the rows its run added and
names the files of earlier versions it builds on (`base`) and the ids it drops from them
(`gone`): see `_Engine._write_index` and `_ParentIndex`. Size: about 950 bytes per paragraph on
news text (NewsSpider, bench/bench_dedup.py): 512 B paragraph signature (128 x uint32), ~250 B
window signatures (32 x uint32 per sentence window), ~150 B paragraph text in LZ4 (needed to
verify new copies exactly against old paragraphs), ~35 B for document signatures, ~20 B for
spans and text hashes. Signatures are stored uncompressed (random bits), the text in LZ4 (6x
faster to write than deflate, 40% larger: `_Npz.text`), the rest deflated; the file is
byte-identical for identical input (fixed zip timestamps).
"""

from __future__ import annotations

import gc
import io
import json
import re
import struct
import tempfile
import zipfile
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate, chain
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, NamedTuple

import lz4.frame
import numpy as np

from curate import lsh_params, minhash
from curate.config import setting
from curate.document import DUPLICATE, Change, Document, Flag, source_breaks
from curate.stages.base import CorpusStage, StageSettings, Streamed, defer_artifact
from curate.textutil import (
    CLOSERS,
    SENTENCE_END,
    paragraph_spans,
    sentence_spans,
    span_hashes,
    text_hash,
)
from curate.version import file_sha256, read_manifest

INDEX_NAME = "dedup-index.npz"
# 2: band tables, texts in frames (an older curate warns and starts anew); 3: paragraphs' text
# hashes by XXH3 (`textutil.text_hash`).
INDEX_FORMAT = 3
# The formats an index is read in (1: as if it had no band tables). Formats 1 and 2 hashed a
# paragraph's text by BLAKE2b: no paragraph of a file of theirs is found by a run's hash (their
# signatures are computed anew for the same text, the one thing the hashes serve; the decision
# is the same); a row of theirs that a run writes again into its own file is hashed anew.
_READ_FORMATS = (1, 2, 3)
PARA_TEXT = "para_text.lz4"  # the member holding the paragraph texts (`_Npz.text`)
PARA_TEXT_FRAMES = "para_text_frames"  # ... where its frames end: (byte, row) a frame
_INDEX_CHUNK_ROWS = 4096  # paragraphs (with their windows) written into the index at a time
_TEXT_FRAME_LINES = 4096  # paragraph texts an LZ4 frame of the index (`_Npz.text`)
_BAND_HASH_BASE = np.uint64(0x100000001B3)  # the polynomial hash `_band_groups` sorts bands on
_TRANSPOSE_ROWS = 1024  # signatures `_band_columns` turns into columns at a time (in cache)
_TRANSPOSE_COLUMNS = 32  # ... and their values at a time: a quarter of 128 held twice
# Characters that close a clause: a splice flag covers the clause fragment up to the seam.
_CLAUSE_MARKS = set("，。、；：？！,.;:?!…—“”‘’（）()《》【】「」『』 \t\u3000")
_SPLICE_CONTEXT = 30  # at most this many characters of context in a splice flag
# Where sentences end (as in curate.textutil.sentence_spans): an end mark, then closing marks.
# The standard library's `re`: two small classes, which it tests with a bitmap a character
# where `regex` compared each member (the decision's `_sentence_spans` 4x as fast).
_SENTENCE_END = re.compile(f"[{re.escape(SENTENCE_END)}][{re.escape(SENTENCE_END + CLOSERS)}]*")
_END_CODES = np.array([ord(c) for c in SENTENCE_END], dtype=np.uint32)  # the same, for the kernel
_CLOSER_CODES = np.array([ord(c) for c in CLOSERS], dtype=np.uint32)


@dataclass
class DedupSettings(StageSettings):
    """Near-duplicate detection (MinHash + exact verification)."""

    within_documents: bool = setting(True, "Remove passages repeated inside one document.")
    across_documents: bool = setting(
        True,
        "Remove paragraphs and passages repeated from other documents, mark duplicate documents.",
    )
    shingle_size: int = setting(5, "Character n-gram length of shingles (comparison form).")
    num_perm: int = setting(128, "MinHash permutations of paragraph and document signatures.")
    window_num_perm: int = setting(
        32, "Permutations kept for window (sentence) signatures: the first of the num_perm."
    )
    seed: int = setting(1, "Seed of the MinHash permutations (fixed: same signatures every run).")
    min_chars: int = setting(
        20, "Paragraphs with fewer comparison characters are never removed (headings, datelines)."
    )
    candidate_threshold: float = setting(
        0.6, "MinHashLSH threshold for document and paragraph candidates (recall; not a decision)."
    )
    window_threshold: float = setting(0.6, "MinHashLSH threshold for window candidates.")
    window_chars: int = setting(
        60, "Sentences longer than twice this many comparison characters are cut into windows."
    )
    window_min_chars: int = setting(10, "Windows shorter than this are not indexed.")
    max_candidates: int = setting(
        16, "At most this many earlier paragraphs are aligned with one paragraph."
    )
    max_group_candidates: int = setting(
        256,
        "Of the documents, paragraphs or windows that share an LSH band, each is a candidate of "
        "at most this many of the earliest before it: near-copies by the thousand would "
        "otherwise make pairs, time and memory grow with the square of their number.",
    )
    paragraph_containment: float = setting(
        0.9,
        "A paragraph is removed whole when this share of its shingles lies in one kept earlier "
        "paragraph (exact; a symmetric Jaccard alone would also remove a copy with 10-20% text "
        "of its own, losing it).",
    )
    document_jaccard: float = setting(
        0.8, "A document is a duplicate when its exact shingle Jaccard with a kept one reaches this"
    )
    document_containment: float = setting(
        0.9,
        "... and this share of its shingles lies in that document (nothing of its own is lost).",
    )
    passage_min_chars: int = setting(
        50, "A repeated passage has at least this many comparison characters."
    )
    passage_min_sentences: int = setting(
        2, "A repeated passage covers at least this many complete sentences (or a whole paragraph)."
    )
    passage_similarity: float = setting(
        0.9, "Share of aligned characters in a repeated passage (1.0 = verbatim)."
    )
    max_gap: int = setting(
        4, "Aligned blocks separated by at most this many characters form one passage."
    )
    snap_chars: int = setting(
        4, "A passage end this close to a sentence boundary is moved to it (changed first word)."
    )
    incremental: bool = setting(True, "Read the parent version's index and save this version's.")
    spill_index: bool = setting(
        False,
        "Keep the observed index (signatures, layout, text: ~1.7 KB a paragraph) in a "
        "file in run.spill_dir, memory-mapped, instead of in memory: for corpora whose index "
        "does not fit in RAM (the OS pages it; same output, slower on a cold page cache).",
    )


# --------------------------------------------------------------------------- per-document summary
@dataclass(slots=True)
class _Summary:
    """What `summarise` computes for one document in a worker: compact, picklable, final.

    The driver keeps one per document until `decide`: the signatures, the paragraph and window
    layout, and the text (exact verification and the saved index need it; recomputing
    the comparison form from it on demand costs ~10 ms per MB). No per-paragraph Python objects.

    It travels (pickled) and is spilled as one flat record (`_pack`), which the receiver reads
    back as a `_Record`: the same fields, views of the record. Ten arrays pickled one by one
    cost the driver, which unpickles every summary while the workers wait, several times as much.
    """

    id: str
    text_utf8: bytes  # the text as UTF-8 (`_summary_text`)
    src_pos: np.ndarray  # int64: where the text -> decoded-input offset changes (first is 0)
    src_off: np.ndarray  # int64: that offset, from src_pos on (Document.source_span, compact)
    spans: np.ndarray  # (P, 2) int64 paragraph spans in the text
    cf: np.ndarray  # (P, 2) int64 paragraph spans in the comparison form
    hashes: np.ndarray  # (P,) uint64 text hashes of the paragraphs
    win_counts: np.ndarray  # (P,) int64 windows per paragraph
    win_spans: np.ndarray  # (W, 2) int64 window spans in the comparison form
    para_sigs: np.ndarray  # (P, num_perm) uint32
    win_sigs: np.ndarray  # (W, window_num_perm) uint32
    sig: np.ndarray  # (num_perm,) uint32 document signature
    computed: int  # paragraph signatures computed
    reused: int  # ... and taken from the parent's index

    @property
    def dims(self) -> tuple[int, int, int, int, int]:
        """(source breakpoints, paragraphs, windows, num_perm, window_num_perm)."""
        return (
            self.src_pos.shape[0],
            self.spans.shape[0],
            self.win_spans.shape[0],
            self.sig.shape[0],
            self.win_sigs.shape[1],
        )

    def paragraph_numbers(self) -> list[int]:
        """Paragraph spans, comparison-form spans (both flat), text hashes, window counts."""
        return [
            *self.spans.ravel().tolist(),
            *self.cf.ravel().tolist(),
            *self.hashes.tolist(),
            *self.win_counts.tolist(),
        ]

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return _unpack, (_pack(self),)


class _Record:
    """A `_Summary` read back from its record (`_unpack`): the same fields, views of two
    blocks of the record, `wide` (its 8-byte arrays, end to end: `_TYPES`) and `narrow` (the
    signatures), made when asked for. The driver reads every document's summary
    while the workers wait: two views a record instead of ten, and the numbers filing needs
    (`paragraph_numbers`) read from the block in one call."""

    __slots__ = ("id", "text_utf8", "wide", "narrow", "dims", "computed", "reused", "one_sig")

    def __init__(
        self,
        doc_id: str,
        text_utf8: np.ndarray,
        wide: np.ndarray,
        narrow: np.ndarray,
        dims: tuple[int, int, int, int, int],
        computed: int,
        reused: int,
        one_sig: bool,
    ) -> None:
        self.id, self.text_utf8, self.wide, self.narrow = doc_id, text_utf8, wide, narrow
        self.dims, self.computed, self.reused, self.one_sig = dims, computed, reused, one_sig

    @property
    def src_pos(self) -> np.ndarray:
        return self.wide[: self.dims[0]]

    @property
    def src_off(self) -> np.ndarray:
        n = self.dims[0]
        return self.wide[n : 2 * n]

    @property
    def spans(self) -> np.ndarray:
        at, p = 2 * self.dims[0], self.dims[1]
        return self.wide[at : at + 2 * p].reshape(p, 2)

    @property
    def cf(self) -> np.ndarray:
        at, p = 2 * self.dims[0], self.dims[1]
        return self.wide[at + 2 * p : at + 4 * p].reshape(p, 2)

    @property
    def hashes(self) -> np.ndarray:
        at, p = 2 * self.dims[0], self.dims[1]
        return self.wide[at + 4 * p : at + 5 * p].view(np.uint64)

    @property
    def win_counts(self) -> np.ndarray:
        at, p = 2 * self.dims[0], self.dims[1]
        return self.wide[at + 5 * p : at + 6 * p]

    @property
    def win_spans(self) -> np.ndarray:
        at, p, w = 2 * self.dims[0], self.dims[1], self.dims[2]
        return self.wide[at + 6 * p : at + 6 * p + 2 * w].reshape(w, 2)

    @property
    def para_sigs(self) -> np.ndarray:
        _, p, _, k, _ = self.dims
        return self.narrow[: p * k].reshape(p, k)

    @property
    def win_sigs(self) -> np.ndarray:
        _, p, w, k, kw = self.dims
        return self.narrow[p * k : p * k + w * kw].reshape(w, kw)

    @property
    def sig(self) -> np.ndarray:
        _, p, w, k, kw = self.dims
        if self.one_sig:  # (the document's one paragraph's: `_shares_its_sig`)
            return self.narrow[:k]
        return self.narrow[p * k + w * kw :]

    def paragraph_numbers(self) -> list[int]:
        """As `_Summary.paragraph_numbers`: one slice of `wide`, read as uint64 (the hashes'
        type; the other numbers are never negative)."""
        at, p = 2 * self.dims[0], self.dims[1]
        return self.wide[at : at + 6 * p].view(np.uint64).tolist()

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return _unpack, (_pack(self),)


_Summarised = _Summary | _Record  # (as made in a worker, or as read back from its record)

# Each array of a record but the document's signature: its number of items, as coefficients of
# the record's sizes (source breakpoints, paragraphs, windows, paragraph signature items,
# window signature items). The arrays lie end to end in `_TYPES` order, the 8-byte ones in the
# wide block, the 4-byte ones in the narrow; `_RECORD_COLUMNS` (made from the two, below
# `_TYPES`) adds each one's block and where it starts. `_Rows` reads a column of many records
# with them at once; tests/test_dedup.py checks them against the properties above.
_RECORD_COUNTS = {
    "src_pos": (1, 0, 0, 0, 0),
    "src_off": (1, 0, 0, 0, 0),
    "spans": (0, 2, 0, 0, 0),
    "cf": (0, 2, 0, 0, 0),
    "hashes": (0, 1, 0, 0, 0),
    "win_counts": (0, 1, 0, 0, 0),
    "win_spans": (0, 0, 2, 0, 0),
    "para_sigs": (0, 0, 0, 1, 0),
    "win_sigs": (0, 0, 0, 0, 1),
}
_BLOCK_TYPES = {"wide": np.dtype(np.int64), "narrow": np.dtype(np.uint32)}


def _column_places() -> dict[str, tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """name -> (block, coefficients of its first item, of its number of items), in `_TYPES`
    order (the signature, last, is not a column of rows)."""
    places, at = {}, {block: (0, 0, 0, 0, 0) for block in _BLOCK_TYPES}
    for name, dtype in _TYPES[:-1]:
        block = "wide" if dtype.itemsize == 8 else "narrow"
        count = _RECORD_COUNTS[name]
        places[name] = (block, at[block], count)
        at[block] = tuple(a + c for a, c in zip(at[block], count, strict=True))
    return places


class _Rows:
    """The columns of many documents' rows (paragraphs, windows), each document a summary read
    from its record (`_Record`), a summary as a worker made it (`_Summary`) or an
    `_IndexBlock`: a record's items cut from its blocks by `_RECORD_COLUMNS`, every document's
    in one compiled call (`_cut_items`), not a numpy view of each document and column made and
    joined (about a microsecond each: 0.13 s of the decision's 0.29 s on 17,818 one-sentence
    documents, and about 0.2 s of the index's 0.3 s); the others' arrays as they are."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.others: list[int] = []  # the documents not given as a record, in order
        self.wide: list[Any] = []  # each record's blocks (another document's: None)
        self.narrow: list[Any] = []
        dims: list[tuple[int, ...]] = []
        for number, item in enumerate(items):
            if type(item) is _Record:
                self.wide.append(item.wide)
                self.narrow.append(item.narrow)
                dims.append(item.dims)
            else:
                self.others.append(number)
                self.wide.append(None)
                self.narrow.append(None)
                dims.append((0, 0, 0, 0, 0))
        n, p, w, k, kw = np.array(dims, np.int64).reshape(-1, 5).T
        self.sizes = np.column_stack([n, p, w, p * k, w * kw])
        self.paragraphs = p  # of each record (another document's: 0)

    def counts(self, start: int = 0, end: int | None = None) -> list[int]:
        """The paragraphs of each document (of documents `start` to `end`)."""
        end = len(self.items) if end is None else end
        counts = self.paragraphs[start:end].tolist()
        for n in self.others[bisect_left(self.others, start) : bisect_left(self.others, end)]:
            counts[n - start] = int(self.items[n].spans.shape[0])
        return counts

    def column(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: Any,
        start: int = 0,
        end: int | None = None,
        documents: np.ndarray | None = None,
    ) -> np.ndarray:
        """Column `name` (rows of `shape`, as `dtype`, of the size of the block's items: a record's
        int64 hashes read as uint64) of documents `start` to `end`, or of the `documents` given
        (ascending numbers: the decision reads the paragraphs' signatures of the documents it
        kept only), joined."""
        block, first, count = _RECORD_COLUMNS[name]
        dtype = np.dtype(dtype)
        if dtype.itemsize != _BLOCK_TYPES[block].itemsize:
            raise ValueError(f"dedup: column {name} of {_BLOCK_TYPES[block]} items read as {dtype}")
        source = self.wide if block == "wide" else self.narrow
        others: list[tuple[int, int]]  # (place in the column's documents, item number)
        if documents is None:
            end = len(self.items) if end is None else end
            sizes, blocks = self.sizes[start:end], source[start:end]  # (a new list)
            others = [(n - start, n) for n in self.others[bisect_left(self.others, start) : bisect_left(self.others, end)]]
        else:
            if start != 0 or end is not None:
                raise ValueError("dedup: a column of given documents or of a range, not both")
            documents = np.asarray(documents, np.int64)
            sizes, blocks = self.sizes[documents], [source[n] for n in documents.tolist()]
            places = np.searchsorted(documents, self.others).tolist()
            others = [
                (at, n) for at, n in zip(places, self.others, strict=True) if at < len(blocks) and documents[at] == n
            ]
        starts, lengths = sizes @ np.array(first), sizes @ np.array(count)
        for at, n in others:
            values = _own_values(getattr(self.items[n], name), dtype)
            blocks[at], starts[at], lengths[at] = values, 0, values.shape[0]
        return _cut_items(blocks, starts, lengths, dtype).reshape(-1, *shape)

    def signatures(self, documents: np.ndarray, num_perm: int) -> np.ndarray:
        """The document signatures of `documents` (ascending numbers), a row each, cut from the
        records' narrow blocks where they lie (the first row of a one-paragraph document's
        paragraph signatures, `_shares_its_sig`; else the block's last `num_perm` values): not
        a view of each made and joined (0.4-0.5 s of the decision on 213,816 documents)."""
        documents = np.asarray(documents, np.int64)
        picked = documents.tolist()
        blocks = [self.narrow[n] for n in picked]
        one_sig = np.array([type(self.items[n]) is _Record and self.items[n].one_sig for n in picked], bool)
        sizes = self.sizes[documents]
        starts = np.where(one_sig, 0, sizes[:, 3] + sizes[:, 4])
        lengths = np.full(len(picked), num_perm, np.int64)
        for at, n in enumerate(picked):
            if blocks[at] is None:  # (not a record: its own array)
                blocks[at] = _own_values(self.items[n].sig, np.dtype(np.uint32))
                starts[at], lengths[at] = 0, blocks[at].shape[0]
        signatures = _cut_items(blocks, starts, lengths, np.dtype(np.uint32))
        if signatures.shape != (len(picked) * num_perm,):
            raise ValueError(f"dedup: {len(picked)} signatures of {num_perm} values expected, got {signatures.shape}")
        return signatures.reshape(-1, num_perm)

    def lines(self, start: int, end: int) -> list[bytes]:
        """The paragraphs' texts of documents `start` to `end`, in order, in UTF-8: each cut
        from its document's UTF-8 as it is (`_block_lines`), all in one compiled call where
        built (`curate._kernels.utf8_lines`). The benchmark's 11.5 MB of kept text decoded,
        cut and encoded again took 0.04 s of the index's 0.18 s, in the process that builds it
        beside the last pass."""
        kernels = minhash._kernels
        items = self.items[start:end]
        if kernels is None:
            return [line for item in items for line in _block_lines(item)]
        texts = [item.texts if type(item) is _IndexBlock else item.text_utf8 for item in items]
        bounds = self.column("spans", (2,), np.int64, start, end).reshape(-1)
        return kernels.utf8_lines(texts, bounds, np.array(self.counts(start, end), np.int64))


def _own_values(array: Any, dtype: np.dtype) -> np.ndarray:
    """The items of a summary's array that is not a record's block, flat, contiguous, as
    `dtype` (what `_cut_items` cuts from): for `_Rows` of summaries a worker made."""
    return np.ascontiguousarray(np.asarray(array, dtype)).reshape(-1)


def _cut_items(blocks: list[np.ndarray], starts: np.ndarray, lengths: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Items starts[i] to starts[i] + lengths[i] of each 1-D array blocks[i], one after the
    other, as `dtype` (each block's items read as it: all of its size); `curate._kernels.gather`,
    when built, does it in one loop. Items past a block's end are an error."""
    starts, lengths = starts.astype(np.int64), lengths.astype(np.int64)
    kernels = minhash._kernels
    if kernels is None:
        cut = [block.view(dtype)[a : a + n] for block, a, n in zip(blocks, starts.tolist(), lengths.tolist(), strict=True)]
        if (starts < 0).any() or (lengths < 0).any() or sum(part.shape[0] for part in cut) != int(lengths.sum()):
            raise ValueError("dedup: items cut past the end of a block")
        return _joined(cut, (), dtype)
    out = np.empty(int(lengths.sum()), dtype)
    kernels.gather(blocks, starts, lengths, dtype.itemsize, out.view(np.uint8))
    return out


_ALIGN = 8  # every part of a record starts at a multiple of 8 bytes (aligned array views)
_PADDING = b"\0" * _ALIGN
# The record's header: id bytes, text_utf8 bytes, source breakpoints (n), paragraphs (p),
# windows (w), num_perm, window_num_perm, computed, reused, and 1 when the document's signature
# is its one paragraph's, not stored again (`_shares_its_sig`), else 0.
_HEADER = 10
_HEADER_STRUCT = struct.Struct(f"={_HEADER}q")  # (native order, as `_pack` writes it)
# The arrays after the id and text_utf8, in this order, with no gap, each in the type the record
# holds: the 8-byte ones (the wide block; the hashes' bits read as int64 there), then the
# 4-byte ones (the narrow block, the signatures, padded at its end). As dtypes: `_pack` compares
# an array's with them by identity.
_TYPES = tuple(
    (name, np.dtype(dtype))
    for name, dtype in (
        ("src_pos", np.int64),
        ("src_off", np.int64),
        ("spans", np.int64),
        ("cf", np.int64),
        ("hashes", np.uint64),
        ("win_counts", np.int64),
        ("win_spans", np.int64),
        ("para_sigs", np.uint32),
        ("win_sigs", np.uint32),
        ("sig", np.uint32),
    )
)
_ARRAYS = tuple(name for name, _ in _TYPES)
_RECORD_COLUMNS = _column_places()


def _sizes(dims: tuple[int, int, int, int, int], one_sig: bool) -> tuple[int, int]:
    """The numbers in the wide and in the narrow block of a summary of these dimensions."""
    n, p, w, k, kw = dims
    return 2 * n + 6 * p + 2 * w, (p + (not one_sig)) * k + w * kw


def _shares_its_sig(summary: _Summary) -> bool:
    """A document of one paragraph has that paragraph's signature: its record holds it once.
    Most documents of a corpus of many short ones are one paragraph (the copies shape's
    213,864), and the second copy was a third of their records (512 of 1,421 bytes)."""
    para_sigs, sig = summary.para_sigs, summary.sig
    if para_sigs.shape[0] != 1:
        return False
    if para_sigs.dtype is sig.dtype:  # (the usual case: the one row's bytes, no view of it made)
        return sig.tobytes() == para_sigs.tobytes()
    return sig.tobytes() == para_sigs[0].astype(sig.dtype, copy=False).tobytes()


def _pack(summary: _Summarised) -> bytes:
    """A summary as one flat record: a header of counts, then the id, the text (UTF-8), the
    wide block and the narrow block, each padded to `_ALIGN` bytes (no array is copied but
    into the record)."""
    doc_id = summary.id.encode("utf-8")
    text_utf8 = summary.text_utf8
    dims = summary.dims
    if isinstance(summary, _Record):
        one_sig = summary.one_sig
        blocks = [summary.wide, summary.narrow]
    else:  # (each array as the record holds it: a copy only of one of another type or layout)
        one_sig = _shares_its_sig(summary)
        blocks = []
        for name, dtype in _TYPES[:-1] if one_sig else _TYPES:  # (the signature last)
            array = getattr(summary, name)
            if array.dtype is not dtype or not array.flags.c_contiguous:
                array = np.ascontiguousarray(array, dtype)
            blocks.append(array)
    wide, narrow = _sizes(dims, one_sig)
    if sum([block.nbytes for block in blocks]) != 8 * wide + 4 * narrow:
        shapes = {name: getattr(summary, name).shape for name in _ARRAYS}
        raise ValueError(f"dedup summary of {summary.id}: arrays of inconsistent shapes {shapes}")
    header = _HEADER_STRUCT.pack(len(doc_id), len(text_utf8), *dims, summary.computed, summary.reused, one_sig)
    # (`join` reads each array's buffer: C-contiguous, as made above)
    return b"".join([
        header, doc_id, _PADDING[: -len(doc_id) % _ALIGN], text_utf8, _PADDING[: -len(text_utf8) % _ALIGN],
        *blocks, _PADDING[: -4 * narrow % _ALIGN],
    ])  # fmt: skip


def _unpack(record: bytes | np.ndarray) -> _Record:
    """The summary in a `_pack` record: views of the record (bytes, or a slice of a memory
    map), nothing is copied."""
    id_bytes, text_bytes, *dims, computed, reused, one_sig = _HEADER_STRUCT.unpack_from(record)
    offset = 8 * _HEADER
    doc_id = bytes(memoryview(record)[offset : offset + id_bytes]).decode("utf-8")
    offset += id_bytes + (-id_bytes % _ALIGN)
    text_utf8 = np.frombuffer(record, np.uint8, text_bytes, offset)
    offset += text_bytes + (-text_bytes % _ALIGN)
    wide, narrow = _sizes(dims, one_sig)  # type: ignore[arg-type]
    return _Record(
        doc_id,
        text_utf8,
        np.frombuffer(record, np.int64, wide, offset),
        np.frombuffer(record, np.uint32, narrow, offset + 8 * wide),
        tuple(dims),  # type: ignore[arg-type]
        computed,
        reused,
        bool(one_sig),
    )


class _SummarySpill:
    """Observed summaries on disk (setting `spill_index`).

    Each summary's record (`_pack`) is appended to one unlinked temporary file; what stays in
    memory is two integers per summary. `summaries()` gives the summaries back as read-only
    views of a memory map of that file, so the bulk of the index lives in the page cache,
    which the OS may evict and read again, not in this process's heap.
    """

    def __init__(self, folder: str | None) -> None:
        self.file = tempfile.TemporaryFile(dir=folder or None, prefix="curate-dedup-index-")
        self.size = 0
        self.records = array("q")  # offset and length of each record

    def append(self, summary: _Summarised) -> None:
        record = _pack(summary)  # (a multiple of `_ALIGN` bytes long)
        self.records.extend((self.size, len(record)))
        self.file.write(record)
        self.size += len(record)

    def summaries(self) -> list[_Record]:
        self.file.flush()
        if self.size == 0:
            return []
        mapped = np.memmap(self.file, dtype=np.uint8, mode="r", shape=(self.size,))
        records = self.records.tolist()
        out = [
            _unpack(mapped[offset : offset + length])
            for offset, length in zip(records[0::2], records[1::2], strict=True)
        ]
        self.file.close()  # the map keeps the (unlinked) file's pages reachable
        return out


def _spill_dir(context: Any) -> str | None:
    run = getattr(getattr(context, "config", None), "run", None)
    return getattr(run, "spill_dir", None) or None


@dataclass(slots=True)
class _Plan:
    """What `apply` does to one document: drops (with splice seams) or the duplicate status."""

    changes: list[tuple[Change, int]] = field(default_factory=list)  # (change, seam length)
    duplicate_of: str | None = None
    status_reason: str = ""


# --------------------------------------------------------------------------- index records
@dataclass(slots=True)
class _Doc:
    id: str
    rank: int  # order of preference: smaller is kept
    summary: _Summarised | None  # None for documents known only from the parent index
    position: int = -1  # order of observation (run documents)
    paras: list[int] = field(default_factory=list)
    ids: np.ndarray | None = None  # sorted unique shingle ids of the whole document
    duplicate: bool = False
    duplicate_of: str = ""
    status_reason: str = ""
    segment: int = -1  # (parent documents) the segment of the parent's index it came from
    chars: int = -1  # characters of its paragraphs' comparison forms (-1: not counted yet)


@dataclass(slots=True)
class _Para:
    doc: int
    index: int
    start: int  # span in the document text
    end: int
    text_hash: int
    form: minhash.ComparisonForm | None  # the paragraph's own form (parent paragraphs only)
    cf0: int  # span in the form (run paragraphs: the document's form)
    cf1: int
    offset: int  # add to form positions to get document positions
    windows: np.ndarray  # (W, 2) int64 window spans in the form (a view of the summary's)
    text: str = ""  # the paragraph text (parent paragraphs only; run ones read the document)
    sig: np.ndarray | None = None
    window_sigs: np.ndarray | None = None
    ids: np.ndarray | None = None  # sorted unique shingle ids
    removed_whole: bool = False
    removed: list[tuple[int, int]] = field(default_factory=list)  # removed text spans
    sentences: tuple[list[int], list[int]] | None = None  # cached by _Engine._sentences


class _ParentRows(NamedTuple):
    """The parent's paragraphs in a decision (`_Engine._parent_rows_of_eligible`)."""

    keys: np.ndarray  # their numbers in the engine's paragraphs
    rows: np.ndarray  # (P,) their rows of the index's paragraphs
    index_para_sigs: np.ndarray  # every paragraph signature of the index (rows' rows)
    window_counts: np.ndarray  # (P,) windows a paragraph
    window_rows: np.ndarray  # (W,) rows of the index's windows, paragraph after paragraph
    window_lengths: np.ndarray  # (W,) characters
    index_window_sigs: np.ndarray  # every window signature of the index (window_rows' rows)


@dataclass(slots=True)
class _Removal:
    start: int
    end: int
    rule: str
    reason: str
    link: dict[str, Any]
    evidence: dict[str, Any]
    seam_before: int = -1  # start of a splice flag ending at the removal's start


@dataclass(slots=True)
class _Layout:
    """Paragraphs of a text: spans, comparison-form spans, text hashes, windows (form spans)."""

    spans: np.ndarray  # (P, 2) int64 paragraph spans in the text
    cf: np.ndarray  # (P, 2) int64 paragraph spans in the comparison form
    hashes: list[int]  # text hashes of the paragraphs
    windows: np.ndarray  # (W, 2) int64 window spans in the form, paragraph after paragraph
    win_counts: np.ndarray  # (P,) int64 windows per paragraph


class _IndexBlock(NamedTuple):
    """One document's rows of the saved index (`_Engine._write_index` writes the blocks column
    by column)."""

    spans: np.ndarray  # (P, 2) paragraph spans in the text
    cf: np.ndarray  # (P, 2) paragraph spans in the comparison form
    hashes: Any  # (P,) text hashes: an array or a list
    para_sigs: np.ndarray  # (P, num_perm) paragraph signatures
    texts: list[str] | bytes | np.ndarray  # the paragraphs' texts, or the text they are cut from (UTF-8)
    win_counts: Any  # (P,) windows per paragraph: an array or a list
    win_spans: np.ndarray  # (W, 2) window spans in the comparison form
    win_sigs: np.ndarray  # (W, window_num_perm) window signatures


class NearDuplicates(CorpusStage):
    """Summarise (workers) -> observe (compact state) -> decide (LSH, exact checks) -> apply."""

    name: ClassVar[str] = "dedup"
    Settings: ClassVar[type] = DedupSettings

    @classmethod
    def reads_parent(cls, settings: Any) -> bool:
        """Incremental: documents of the parent version's index are kept first."""
        return bool(settings.enabled and settings.incremental)

    def __init__(self, settings: Any, context: Any) -> None:
        super().__init__(settings, context)
        _check_ranges(settings)
        # Read before the engine forks its workers: they reuse the parent's signatures from it
        # (numpy arrays, shared copy-on-write), and the driver adds its documents in `decide`.
        self._parent: _ParentIndex | None = None
        if settings.enabled and settings.incremental:
            self._parent = _read_parent_index(settings, context)
        self._observed: list[_Summarised] | _SummarySpill = []
        self._plans: dict[str, list[_Plan | None]] = {}
        self._touched: set[int] = set()  # observed documents `apply` changes (by number)
        # Until `decide`, for `probably_changes`: the exact copies among the documents observed,
        # from the first time it is asked (only an engine that runs a pass ahead asks).
        self._copies: _ExactCopies | None = None

    def summarise(self, doc: Document) -> _Summary:
        return _summarise_many([doc], self.settings, self._parent)[0]

    def summarise_many(self, docs: list[Document]) -> list[_Summary]:
        """`[summarise(doc) for doc in docs]`, for less: the signatures of all the documents in
        one vectorised pass (numpy's cost per call is most of one document's), for an engine
        that hands a stage its documents in batches."""
        return _summarise_many(docs, self.settings, self._parent)

    def pack_summary(self, summary: Any) -> bytes:
        """The summary's flat record (`_pack`), as pickling makes it, without the pickle around
        it: 2.7 us a summary less, packed and unpacked (213,816 of them on the copies shape)."""
        return _pack(summary)

    def unpack_summary(self, data: bytes) -> _Record:
        return _unpack(data)

    def observe(self, summary: Any) -> None:
        if self.settings.spill_index and isinstance(self._observed, list):
            self._observed = _SummarySpill(_spill_dir(self.context))
        self._observed.append(summary)
        if self._copies is not None:
            self._copies.add(summary)

    def probably_changes(self, observed: int) -> bool:
        """Of exact copies (the same paragraphs, in order), all but the first in `decide`'s
        order (id, then input order) will most likely be duplicates: among the documents
        observed so far (`_ExactCopies`). No hint with `spill_index` (the summaries are not
        held), nor after `decide`."""
        if self._copies is None:
            if not isinstance(self._observed, list) or not self._observed:
                return False
            self._copies = _ExactCopies(self._observed)
        return self._copies.later_copy(observed)

    def decide(self) -> None:
        held, self._observed = self._observed, []
        self._copies = None
        observed = held.summaries() if isinstance(held, _SummarySpill) else held
        engine = _Engine(self.settings, self.context, self._parent)
        with _cyclic_gc_paused():
            plans = engine.decide(observed)
        self._parent = None
        self._plans = {}
        for position, summary in enumerate(observed):
            plan = plans.get(position)
            if plan is not None or summary.id in self._plans:
                self._plans.setdefault(summary.id, []).append(plan)
        # Documents with the same id (the same source twice) get their plans in input order.
        for doc_id, queue in list(self._plans.items()):
            if all(plan is None for plan in queue):
                del self._plans[doc_id]
        # `apply` changes, or takes a queued plan for, the documents of these ids: the rest it
        # leaves alone (`leaves_alone`).
        plans_of = self._plans
        self._touched = {n for n, summary in enumerate(observed) if summary.id in plans_of}

    def leaves_alone(self, observed: int) -> bool:
        return observed not in self._touched

    def apply(self, doc: Document) -> None:
        queue = self._plans.get(doc.id)
        if not queue:
            return
        plan = queue.pop(0)
        if not queue:
            del self._plans[doc.id]
        if plan is not None:
            _apply_plan(doc, plan)


# The least value of settings that a smaller one would break (rather than only change what is
# found): a shingle of no characters (the kernels would write past their arrays), no budget.
_AT_LEAST = {"shingle_size": 1, "max_candidates": 1, "max_group_candidates": 1}


def _check_ranges(settings: DedupSettings) -> None:
    """Refuse, before any document is read, settings the stage cannot run with, in one line
    naming the setting: they failed deep in the run (numpy's or datasketch's own words, after
    the first pass) or read past an array. MinHashLSH's checks of its threshold and number of
    permutations are its own (`lsh_params.bands`, which the decision asks anyway: cached)."""
    for name, least in _AT_LEAST.items():
        if getattr(settings, name) < least:
            raise ValueError(f"[dedup] {name} should be at least {least}, got {getattr(settings, name)}")
    if settings.window_num_perm > settings.num_perm:
        raise ValueError(
            f"[dedup] window_num_perm should be at most num_perm ({settings.num_perm}), got {settings.window_num_perm}"
        )
    for name, perms in (("candidate_threshold", "num_perm"), ("window_threshold", "window_num_perm")):
        threshold, count = getattr(settings, name), getattr(settings, perms)
        try:
            lsh_params.bands(threshold, count)
        except ValueError as exc:
            raise ValueError(f"[dedup] {name} {threshold} with {perms} {count}: MinHashLSH refuses them ({exc})") from None


class _ExactCopies:
    """The summaries observed so far, by their paragraphs: whether one is an exact copy (the
    same paragraphs, in order) of one that `decide` takes first (id, then number), among those
    observed so far. A hint (`NearDuplicates.probably_changes`), asked as each document is
    observed and once all are: Python's hash of the paragraph hashes will do."""

    def __init__(self, summaries: list[_Summarised]) -> None:
        self.texts = array("q")  # of each summary, the hash of its paragraph hashes
        self.ids: list[str] = []
        self.first: dict[int, tuple[str, int]] = {}  # hash -> the (id, number) `decide` takes first
        for summary in summaries:
            self.add(summary)

    def add(self, summary: _Summarised) -> None:
        text, number = hash(summary.hashes.tobytes()), len(self.ids)
        self.texts.append(text)
        self.ids.append(summary.id)
        known = self.first.get(text)
        if known is None or (summary.id, number) < known:
            self.first[text] = (summary.id, number)

    def later_copy(self, number: int) -> bool:
        if number >= len(self.ids):
            return False
        return self.first[self.texts[number]] != (self.ids[number], number)


def _apply_plan(doc: Document, plan: _Plan) -> None:
    if plan.duplicate_of is not None:
        doc.status = DUPLICATE
        doc.duplicate_of = plan.duplicate_of
        doc.status_reason = plan.status_reason
        return
    edits = doc.apply("dedup", [change for change, _ in plan.changes])
    if len(edits) != len(plan.changes):  # every removal is non-empty, so each makes an edit
        raise RuntimeError(
            f"dedup: {doc.source}: {len(plan.changes)} removals made {len(edits)} edits"
        )
    # Edit.start is the removal's position in the final text (earlier edits applied).
    for k, ((_change, seam), edit) in enumerate(zip(plan.changes, edits, strict=True)):
        floor = edits[k - 1].start if k else 0
        if seam >= 0:
            _flag_splice(doc, max(floor, edit.start - seam), edit.start, edit.link)


def _flag_splice(document: Document, start: int, end: int, link: dict[str, Any] | None) -> None:
    if end <= start:
        return
    document.add_flag(
        Flag(
            kind="splice",
            start=start,
            end=end,
            text=document.text[start:end],
            reason=(
                "the sentence is cut off here: a repeated passage was spliced in mid-sentence "
                "(removed as a duplicate); the text that belonged here is lost"
            ),
            severity="warning",
            detector="dedup",
            evidence={"duplicate_of": link} if link else None,
        )
    )


# --------------------------------------------------------------------------- per document
def _layout(text: str, form: minhash.ComparisonForm, window_chars: int) -> _Layout:
    """Paragraphs of a text with their sentence windows (comparison-form spans).

    Windows partition their paragraph: cut at sentence starts, and sentences longer than
    twice `window_chars` cut into equal pieces; a paragraph without comparison characters
    has one empty window. Positions are mapped with one vectorised searchsorted per
    document; paragraphs and sentence starts (both in text order) are then walked together
    in plain Python, cheaper than numpy calls for a few paragraphs a document.
    """
    if minhash._kernels is not None:  # the same, in one compiled pass (curate._kernels)
        spans, cf, windows, counts = minhash._kernels.layout(
            text, form.positions, window_chars, _END_CODES, _CLOSER_CODES
        )
        return _Layout(spans, cf, span_hashes(text, spans), windows, counts)
    span_list = paragraph_spans(text)
    spans = np.array(span_list, dtype=np.int64).reshape(-1, 2)
    cf = np.searchsorted(form.positions, spans.ravel()).astype(np.int64).reshape(-1, 2)
    sentence_starts = [m.end() for m in _SENTENCE_END.finditer(text)]
    cut_at = np.searchsorted(form.positions, sentence_starts).tolist() if sentence_starts else []
    step = max(1, window_chars)
    windows: list[int] = []  # w0, w1, w0, w1, ...
    win_counts: list[int] = []
    j, cuts = 0, len(sentence_starts)
    for (start, end), (cf0, cf1) in zip(span_list, cf.tolist(), strict=True):
        while j < cuts and sentence_starts[j] <= start:
            j += 1
        before = len(windows)
        w0 = cf0
        # Cut at each sentence start strictly inside the paragraph's text, where it falls
        # strictly inside its form span and after the last cut (several starts can fall on
        # the same comparison character); the last window ends the paragraph.
        while True:
            inner = j < cuts and sentence_starts[j] < end
            w1 = cut_at[j] if inner else cf1
            j += inner
            if inner and not w0 < w1 < cf1:
                continue
            length = w1 - w0
            if length >= 2 * step:
                pieces = -(-length // step)
                for k in range(pieces):
                    windows += (w0 + length * k // pieces, w0 + length * (k + 1) // pieces)
            else:
                windows += (w0, w1)
            if not inner:
                break
            w0 = w1
        win_counts.append((len(windows) - before) // 2)
    return _Layout(
        spans,
        cf,
        span_hashes(text, span_list),
        np.array(windows, dtype=np.int64).reshape(-1, 2),
        np.array(win_counts, dtype=np.int64),
    )


def _sign(
    codes: np.ndarray, cf: np.ndarray, windows: np.ndarray, win_counts: np.ndarray, s: DedupSettings
) -> tuple[np.ndarray, np.ndarray]:
    """(paragraph signatures, window signatures) of paragraphs of a comparison form.

    `cf`: the paragraphs' spans in `codes` (in order, not overlapping); `windows`: their
    windows' spans in `codes`, paragraph after paragraph, partitioning each paragraph
    (`win_counts` per paragraph). One vectorised pass over all of them (shingles never cross
    paragraphs), so the more paragraphs (of more documents) a call gets, the less numpy's
    per-call cost weighs.
    """
    lengths = cf[:, 1] - cf[:, 0]
    para_bounds = np.concatenate([[0], np.cumsum(lengths)])
    if cf[0, 0] == 0 and cf[-1, 1] == codes.shape[0] and np.array_equal(cf[1:, 0], cf[:-1, 1]):
        segments = codes  # the paragraphs tile the form (the usual case): no copy
    else:
        segments = np.concatenate([codes[c0:c1] for c0, c1 in cf.tolist()])
    # Window ends moved from the form to the concatenated segments.
    shift = np.repeat(para_bounds[:-1] - cf[:, 0], win_counts)
    window_bounds = np.concatenate([[0], windows[:, 1] + shift])
    hashes, starts = minhash.shingle_hashes(segments, para_bounds, s.shingle_size, mixed=True)
    window_starts = np.searchsorted(starts, window_bounds, side="left")
    return minhash.nested_signatures(
        hashes, window_starts, win_counts, s.num_perm, s.window_num_perm, s.seed, mixed=True
    )


def _known_signatures(
    layout: _Layout,
    parent: _ParentIndex | None,
    extra: _RunSignatures | None,
) -> list[tuple[int, tuple[np.ndarray, np.ndarray]]]:
    """(paragraph, (signature, window signatures)) of the paragraphs of a layout whose
    signatures are known: the parent index's by text hash, else `extra`'s, when the window
    count matches."""
    if parent is None and extra is None:
        return []
    count = layout.win_counts.shape[0]
    known = parent.lookup_all(layout.hashes) if parent is not None else [None] * count
    more = extra.lookup_all(layout.hashes) if extra is not None else None
    found = []
    for k, windows in enumerate(layout.win_counts.tolist()):
        cached = known[k]
        if cached is None and more is not None:
            cached = more[k]
        if cached is not None and len(cached[1]) == windows:
            found.append((k, cached))
    return found


def _sign_layouts(
    forms: list[minhash.ComparisonForm],
    layouts: list[_Layout],
    s: DedupSettings,
    parent: _ParentIndex | None,
    extra: _RunSignatures | None = None,
) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """(paragraph signatures, window signatures, how many paragraph signatures computed) of
    each layout, reusing known ones (`_known_signatures`); the others are computed for all
    the layouts together, in one `_sign` pass over their forms laid end to end."""
    head = min(s.window_num_perm, s.num_perm)
    known = [_known_signatures(layout, parent, extra) for layout in layouts]
    codes, cf, windows, counts, offsets = [], [], [], [], []
    todo_of: list[np.ndarray | None] = []
    offset = 0
    for form, layout, found in zip(forms, layouts, known, strict=True):
        todo = None
        if found:
            todo = np.ones(layout.win_counts.shape[0], dtype=bool)
            todo[[k for k, _ in found]] = False
            rows = np.flatnonzero(todo)
            cf.append(layout.cf[rows])
            windows.append(layout.windows[np.repeat(todo, layout.win_counts)])
            counts.append(layout.win_counts[rows])
        else:
            cf.append(layout.cf)
            windows.append(layout.windows)
            counts.append(layout.win_counts)
        todo_of.append(todo)
        codes.append(form.codes)
        offsets.append(offset)
        offset += form.codes.shape[0]
    para_counts = [part.shape[0] for part in cf]
    window_counts = [part.shape[0] for part in windows]
    if len(layouts) == 1 and para_counts[0]:
        computed_paras, computed_windows = _sign(codes[0], cf[0], windows[0], counts[0], s)
    elif sum(para_counts):
        starts = np.array(offsets, dtype=np.int64)
        computed_paras, computed_windows = _sign(
            np.concatenate(codes),
            np.concatenate(cf) + np.repeat(starts, para_counts)[:, None],
            np.concatenate(windows) + np.repeat(starts, window_counts)[:, None],
            np.concatenate(counts),
            s,
        )
    else:
        computed_paras = np.empty((0, s.num_perm), dtype=np.uint32)
        computed_windows = np.empty((0, head), dtype=np.uint32)
    out = []
    p0 = w0 = 0
    for layout, found, todo, p_count, w_count in zip(
        layouts, known, todo_of, para_counts, window_counts, strict=True
    ):
        para_sigs = computed_paras[p0 : p0 + p_count]
        win_sigs = computed_windows[w0 : w0 + w_count]
        p0, w0 = p0 + p_count, w0 + w_count
        if todo is not None:  # known signatures and computed ones, in paragraph order
            first = np.concatenate([[0], np.cumsum(layout.win_counts)]).tolist()
            paras = np.empty((todo.shape[0], s.num_perm), dtype=np.uint32)
            wins = np.empty((first[-1], head), dtype=np.uint32)
            for k, (sig, rows) in found:
                paras[k] = sig
                wins[first[k] : first[k + 1]] = rows
            paras[todo] = para_sigs
            wins[np.repeat(todo, layout.win_counts)] = win_sigs
            para_sigs, win_sigs = paras, wins
        out.append((para_sigs, win_sigs, p_count))
    return out


def _summarise_many(
    docs: list[Document], s: DedupSettings, parent: _ParentIndex | None
) -> list[_Summary]:
    """The summaries of documents, their signatures computed in one pass for all of them."""
    texts = [doc.text for doc in docs]
    forms = [minhash.comparison_form(text) for text in texts]
    layouts = [_layout(text, form, s.window_chars) for text, form in zip(texts, forms, strict=True)]
    signed = _sign_layouts(forms, layouts, s, parent)
    out = []
    for doc, text, layout, (para_sigs, win_sigs, computed) in zip(
        docs, texts, layouts, signed, strict=True
    ):
        src_pos, src_off = source_breaks(doc._src)
        out.append(
            _Summary(
                id=doc.id,
                text_utf8=_summary_text(text),
                src_pos=src_pos,
                src_off=src_off,
                spans=layout.spans,
                cf=layout.cf,
                hashes=np.array(layout.hashes, dtype=np.uint64),
                win_counts=layout.win_counts,
                win_spans=layout.windows,
                para_sigs=para_sigs,
                win_sigs=win_sigs,
                sig=_min_rows(para_sigs, s.num_perm),
                computed=computed,
                reused=para_sigs.shape[0] - computed,
            )
        )
    return out


# --------------------------------------------------------------------------- the parent index
def _params(s: DedupSettings) -> dict[str, Any]:
    return {
        "format": INDEX_FORMAT,
        "scheme": minhash.SCHEME,
        "shingle_size": s.shingle_size,
        "num_perm": s.num_perm,
        "window_num_perm": s.window_num_perm,
        "seed": s.seed,
        "window_chars": s.window_chars,
    }


_BAND_TABLES_MEMBER = "lsh_bands"  # the member naming the bands of an index file's band tables
# ... and how their entries were made (`_band_hashes`, `_folded`, `_BandTable.entries`): tables
# made otherwise are not read (they would name other rows).
_BAND_TABLE_HASH = "polynomial-0x100000001B3, 32 bits folded, above a 32-bit row"


def _bands_by_kind(s: DedupSettings) -> dict[str, tuple[tuple[int, int], ...]]:
    """The LSH bands a decision with these settings uses, by kind of row (`_BandTable`)."""
    rows = lsh_params.bands(s.candidate_threshold, s.num_perm)
    return {"doc": rows, "para": rows, "win": lsh_params.bands(s.window_threshold, s.window_num_perm)}


def _warn(context: Any, message: str) -> None:
    context.state.setdefault("warnings", []).append(message)


def _read_parent_index(s: DedupSettings, context: Any) -> _ParentIndex | None:
    """The parent version's index: its own segment and those it builds on (`base`, in the
    folders of earlier versions of the corpus), or None (with a warning when one is unusable:
    unreadable, built with other settings, or not the file its parent recorded).

    Each file is hashed in a thread while this one reads it (hashlib and zlib let go of the
    GIL): on a parent of 312 MB, 0.18 s of hashing beside 0.1 s of reading. Nothing read from
    a file serves before its hash is checked."""
    parent = context.parent
    if not isinstance(parent, Path):
        return None
    path = parent / "index" / INDEX_NAME
    if not path.is_file():
        return None
    hashing = ThreadPoolExecutor(1, thread_name_prefix="curate-index-sha256")
    try:
        top = _read_segment(parent.name, path, s, _recorded_digest(parent), hashing)
        try:
            refs = json.loads(str(top.arrays["base"].reshape(-1)[0])) if "base" in top.arrays else []
            places = [(str(ref["version"]), str(ref["sha256"])) for ref in refs]
        except (ValueError, KeyError, TypeError) as exc:
            raise _Unusable(f"{path}: near-duplicate index names its base unreadably ({exc})") from exc
        read = [
            _read_segment(version, parent.parent / version / "index" / INDEX_NAME, s, sha256, hashing)
            for version, sha256 in places
        ]
        segments = [segment.checked() for segment in [*read, top]]
    except _Unusable as exc:
        _warn(
            context,
            f"{exc}, not used: this version is not compared with the documents of the versions "
            "before it, and its index starts anew",
        )
        return None
    finally:
        hashing.shutdown(cancel_futures=True)
    return _ParentIndex(segments)


class _Unusable(Exception):
    """A segment of the parent's index that cannot serve (the message names its file)."""


def _unreadable(path: Path, exc: Exception) -> _Unusable:
    return _Unusable(f"{path}: near-duplicate index unreadable ({exc})")


def _recorded_digest(version: Path) -> str | None:
    """The sha256 a version's manifest records for its index file, if it has a manifest (its
    signatures are mapped from the file, unchecked by zip's CRC: `_npz_arrays`)."""
    try:
        return str(read_manifest(version)["files"][f"index/{INDEX_NAME}"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _Segment(NamedTuple):
    """One file of a version's index: the rows its version wrote (see `_Engine._write_index`)."""

    version: str  # the version whose folder holds it
    sha256: str
    arrays: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        """Its paragraph rows (what reading or merging it costs)."""
        return int(self.arrays["para_doc"].shape[0])

    @property
    def gone(self) -> np.ndarray:
        """Ids of documents of the segments before it that the index no longer holds."""
        return self.arrays.get("gone", np.empty(0, "<U64"))


class _Read(NamedTuple):
    """An index file read, its hash still being computed (`_read_segment`)."""

    version: str
    path: Path
    recorded: str | None  # the sha256 recorded for it, if any
    digest: Future[str]
    arrays: dict[str, np.ndarray]

    def checked(self) -> _Segment:
        """The segment, once its file is the one recorded for it."""
        try:
            digest = self.digest.result()
        except OSError as exc:
            raise _unreadable(self.path, exc) from exc
        if self.recorded is not None and digest != self.recorded:
            raise _Unusable(
                f"{self.path}: near-duplicate index is not the file recorded for it "
                f"(sha256 {digest[:16]}…, recorded {self.recorded[:16]}…)"
            )
        return _Segment(self.version, digest, self.arrays)


def _read_segment(
    version: str, path: Path, s: DedupSettings, sha256: str | None, hashing: ThreadPoolExecutor
) -> _Read:
    """One index file, checked: readable and made with these settings; then (`_Read.checked`)
    the file recorded for it, when `sha256` is given (by its version's manifest, or by the
    index that refers to it), hashed by `hashing` meanwhile."""
    digest = hashing.submit(file_sha256, path)
    try:
        arrays = _npz_arrays(path)
        params = json.loads(str(arrays["params"].reshape(-1)[0]))
    except (OSError, ValueError, KeyError, struct.error, zipfile.BadZipFile) as exc:
        raise _unreadable(path, exc) from exc
    if params.get("format") not in _READ_FORMATS or {**params, "format": INDEX_FORMAT} != _params(s):
        raise _Unusable(f"{path}: near-duplicate index built with other settings ({params})")
    return _Read(version, path, sha256, digest, arrays)


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The members of an .npz, as `numpy.load` gives them, but a stored (not deflated) array
    mapped from the file rather than read: the signatures, most of an index, are then pages of
    the file that the OS reads as they are used and may drop, not a copy in the heap (a parent
    index of 247 MB: 0.34 s to read whole). A member's data starts where the zip put it: at a
    multiple of 64 bytes in a file curate writes (`_Npz._open`), anywhere in one written before
    index format 2, whose arrays numpy reads correctly unaligned (copying, where an operation
    needs aligned values).
    """
    arrays: dict[str, Any] = {}
    with zipfile.ZipFile(path) as archive, path.open("rb") as raw:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.filename == name:  # not an array (the texts): its bytes
                arrays[name] = archive.read(info)
                continue
            if info.compress_type == zipfile.ZIP_STORED:
                raw.seek(info.header_offset)
                local = raw.read(30)
                if local[:4] != b"PK\x03\x04":
                    raise zipfile.BadZipFile(f"{info.filename}: no local header")
                name_length, extra_length = struct.unpack("<HH", local[26:30])
                raw.seek(info.header_offset + 30 + name_length + extra_length)
                version = np.lib.format.read_magic(raw)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(raw)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(raw)
                size = int(np.prod(shape)) * dtype.itemsize
                if not fortran and not dtype.hasobject and size and raw.tell() + size <= path.stat().st_size:
                    mapped = np.memmap(path, dtype=dtype, mode="r", offset=raw.tell(), shape=shape)
                    arrays[name] = mapped.view(np.ndarray)  # (a row of a memmap is slow to cut)
                    continue
            with archive.open(info) as member:
                arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
    return arrays


class _ParentIndex:
    """The parent version's index, as one set of rows, with its paragraph signatures looked up
    by text hash.

    A version's index file holds the rows of its own run and names the files of earlier
    versions it builds on (`base`), so that a run writes what is new, not the whole corpus
    again (`_Engine._write_index`). Read here, the segments are merged into the rows one index
    file holding everything would have: by document id, each id from the newest segment that
    names it (its `gone` ids name documents it dropped). `doc_segment`: which segment each
    document came from.
    """

    def __init__(self, segments: list[_Segment]) -> None:
        self.segments = [(segment.version, segment.sha256, segment.rows) for segment in segments]
        self.gone = [segment.gone for segment in segments]
        self.arrays, self.texts, picked = _merged(segments)
        # Band tables: each segment's (`_BandTable`), what they were made for, and where a
        # segment's rows of each kind went in the merged rows (None: row for row).
        self.band_tables = [_band_tables_of(segment) for segment in segments]
        self.merged_row: dict[str, np.ndarray | None] = {}
        self.first_row: dict[str, list[int]] = {}
        for kind, column in _KIND_COLUMN.items():
            counts = [segment.arrays[column].shape[0] for segment in segments]
            self.first_row[kind] = [0, *accumulate(counts)]
            if picked is None:
                self.merged_row[kind] = None
            else:
                where = self.merged_row[kind] = np.full(sum(counts), -1, np.int64)
                where[picked[kind]] = np.arange(picked[kind].shape[0])
        hashes = self.arrays["para_hash"]
        self.by_hash = _FirstByHash(hashes)
        self.win_bounds = np.searchsorted(
            self.arrays["win_para"], np.arange(hashes.shape[0] + 1), side="left"
        )

    def lookup_all(self, hashes: list[int]) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """(paragraph signature, window signatures) of the first parent paragraph with each
        text hash, or None: one vectorised search for a document's paragraphs."""
        found: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(hashes)
        for k, p in self.by_hash.first(hashes):
            w0, w1 = int(self.win_bounds[p]), int(self.win_bounds[p + 1])
            found[k] = (self.arrays["para_sigs"][p], self.arrays["win_sigs"][w0:w1])
        return found

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (for `parallel` on other machines) without its band tables, which only the
        decision's candidates read, in the driver (the tables then read as absent)."""
        state = dict(self.__dict__)
        state["band_tables"] = [_NO_BAND_TABLES for _ in self.band_tables]
        return state

    def rows_sharing_a_band(self, kind: str, bands: tuple[tuple[int, int], ...], sigs: np.ndarray) -> np.ndarray:
        """The merged rows of `kind` (doc, para, win) that may share one of `bands` with a row
        of `sigs`, ascending: found in each segment's band table, or every row of a segment
        that has none for these bands (written before band tables, or for other thresholds)."""
        found = []
        for number, tables in enumerate(self.band_tables):
            first, end = self.first_row[kind][number], self.first_row[kind][number + 1]
            table = tables.table(kind, bands, end - first)
            if table is not None:
                found.append(first + _BandTable.rows_sharing(table, bands, sigs))
            else:
                found.append(np.arange(first, end))
        rows = np.concatenate(found)
        where = self.merged_row[kind]
        if where is None:
            return rows
        rows = where[rows]
        return np.sort(rows[rows >= 0])


_KIND_COLUMN = {"doc": "doc_ids", "para": "para_doc", "win": "win_para"}  # a column a row of each


class _BandTables(NamedTuple):
    """An index file's band tables (`_BandTable`): by kind (doc, para, win), each table and the
    bands it was made for. A kind without both has no table that serves."""

    bands: dict[str, tuple[tuple[int, int], ...]]
    tables: dict[str, np.ndarray]

    def table(self, kind: str, bands: tuple[tuple[int, int], ...], rows: int) -> np.ndarray | None:
        """The table of `kind` if it was made for these `bands` over `rows` rows, else None."""
        table = self.tables.get(kind)
        if table is None or self.bands.get(kind) != bands or table.shape != (len(bands), rows):
            return None
        return table


_NO_BAND_TABLES = _BandTables({}, {})


def _band_tables_of(segment: _Segment) -> _BandTables:
    """A segment's band tables (none when it has none, or names them unreadably, or made them
    with another hash)."""
    try:
        named = json.loads(str(segment.arrays[_BAND_TABLES_MEMBER].reshape(-1)[0]))
        if named.pop("hash") != _BAND_TABLE_HASH:  # (made with another hash: none serves)
            return _NO_BAND_TABLES
        bands = {kind: tuple((int(a), int(b)) for a, b in value) for kind, value in named.items()}
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        return _NO_BAND_TABLES
    tables = {}
    for kind in _KIND_COLUMN:
        table = segment.arrays.get(f"lsh_{kind}")
        if table is not None and table.dtype == np.uint64 and table.ndim == 2:
            tables[kind] = table
    return _BandTables(bands, tables)


_DOC_COLUMNS = ("doc_ids", "doc_sigs")
_PARA_COLUMNS = ("para_chars", "para_end", "para_hash", "para_sigs", "para_start")
_WINDOW_COLUMNS = ("win_end", "win_sigs", "win_start")


def _merged(
    segments: list[_Segment],
) -> tuple[dict[str, np.ndarray], _Texts, dict[str, np.ndarray] | None]:
    """The rows of an index's segments (oldest first) as one index holds them, and the
    paragraphs' texts: documents in id order, each id from the newest segment naming it (an
    entry, or a `gone` id that drops it), paragraphs and windows following their documents.
    And by kind of row (doc, para, win), the rows of the segments (one after the other) that
    the merged rows are, in order (None: all of one segment's, as they are)."""
    texts = _Texts.of(segments)
    if len(segments) == 1 and not segments[0].gone.shape[0]:  # one whole index, as written
        arrays = {name: segments[0].arrays[name] for name in (*_DOC_COLUMNS, *_PARA_COLUMNS, *_WINDOW_COLUMNS, "para_doc", "win_para")}
        arrays["doc_segment"] = np.zeros(arrays["doc_ids"].shape[0], np.int32)
        return arrays, texts, None
    numbers = np.arange(len(segments))
    ids = np.concatenate([s.arrays["doc_ids"] for s in segments])
    entries = ids.shape[0]
    keys = np.concatenate([ids, *(s.gone for s in segments)])
    segment_of_doc = np.repeat(numbers, [s.arrays["doc_ids"].shape[0] for s in segments])
    owner = np.concatenate([segment_of_doc, np.repeat(numbers, [s.gone.shape[0] for s in segments])])
    row = np.concatenate([np.arange(entries), np.full(keys.shape[0] - entries, -1)])
    order = np.lexsort((-owner, keys))  # by id, the newest segment first, then as stored
    keys, owner, row = keys[order], owner[order], row[order]
    first = np.ones(keys.shape[0], bool)
    first[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(first)
    newest = np.repeat(owner[starts], np.diff(np.append(starts, keys.shape[0])))
    take = row[(owner == newest) & (row >= 0)]  # documents kept, in id order

    def column(name: str, rows: np.ndarray) -> np.ndarray:
        return _gather([s.arrays[name] for s in segments], rows)

    para_count = np.concatenate(
        [np.bincount(s.arrays["para_doc"], minlength=s.arrays["doc_ids"].shape[0]) for s in segments]
    )
    win_count = np.concatenate([np.bincount(s.arrays["win_para"], minlength=s.rows) for s in segments])
    para_counts = para_count[take]
    paras = np.repeat((np.cumsum(para_count) - para_count)[take], para_counts) + _offsets_in_groups(para_counts)
    win_counts = win_count[paras]
    windows = np.repeat((np.cumsum(win_count) - win_count)[paras], win_counts) + _offsets_in_groups(win_counts)
    arrays = {name: column(name, take) for name in _DOC_COLUMNS if name != "doc_sigs"}
    arrays.update({name: column(name, paras) for name in _PARA_COLUMNS if name != "para_sigs"})
    arrays.update({name: column(name, windows) for name in _WINDOW_COLUMNS if name != "win_sigs"})
    # (the signatures, most of an index, are read where they are: `_Taken`)
    arrays["doc_sigs"] = _Taken([s.arrays["doc_sigs"] for s in segments], take)  # type: ignore[assignment]
    arrays["para_sigs"] = _Taken([s.arrays["para_sigs"] for s in segments], paras)  # type: ignore[assignment]
    arrays["win_sigs"] = _Taken([s.arrays["win_sigs"] for s in segments], windows)  # type: ignore[assignment]
    arrays["para_doc"] = np.repeat(np.arange(take.shape[0], dtype=np.int32), para_counts)
    arrays["win_para"] = np.repeat(np.arange(paras.shape[0], dtype=np.int32), win_counts)
    arrays["doc_segment"] = segment_of_doc[take].astype(np.int32)
    return arrays, texts.rows(paras), {"doc": take, "para": paras, "win": windows}


class _Taken:
    """`np.concatenate(parts)[rows]` as an array to index, each read made when asked for: the
    parts are a merged index's segments, mapped from their files, and a decision reads few of
    their signatures (a large parent's gathered whole were 160 MB, a quarter of a second)."""

    def __init__(self, parts: list[np.ndarray], rows: np.ndarray) -> None:
        self.parts, self.rows = parts, rows
        self.bounds = [0, *accumulate(part.shape[0] for part in parts)]
        self.shape = (rows.shape[0], *parts[0].shape[1:])
        self.dtype = np.result_type(*parts)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, key: int | slice | np.ndarray) -> np.ndarray:
        if isinstance(key, (int, np.integer)):  # a row: a view of its part
            row = int(self.rows[key])
            number = bisect_right(self.bounds, row) - 1
            return self.parts[number][row - self.bounds[number]]
        rows = self.rows[key]
        if isinstance(key, slice) and rows.shape[0]:  # consecutive rows of one part (a paragraph's windows): a view
            first, last = int(rows[0]), int(rows[-1])
            number = bisect_right(self.bounds, first) - 1
            if last - first == rows.shape[0] - 1 and last < self.bounds[number + 1] and (np.diff(rows) == 1).all():
                return self.parts[number][first - self.bounds[number] : last + 1 - self.bounds[number]]
        return _gather(self.parts, rows)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = _gather(self.parts, self.rows)
        return whole if dtype is None else whole.astype(dtype)


def _gather(parts: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """`np.concatenate(parts)[rows]`, made without the concatenation (the parts may be mapped
    from files: only the rows taken are read, into the one array made)."""
    if len(parts) == 1:
        return parts[0][rows]
    bounds = np.cumsum([0, *(part.shape[0] for part in parts)])
    result = np.empty((rows.shape[0], *parts[0].shape[1:]), dtype=np.result_type(*parts))
    owner = np.searchsorted(bounds, rows, side="right") - 1
    for number, part in enumerate(parts):
        picked = np.flatnonzero(owner == number)
        if picked.shape[0]:
            result[picked] = part[rows[picked] - bounds[number]]
    return result


class _Texts:
    """The paragraph texts of an index, each cut from its segment's text when asked for (most
    are never read: a parent paragraph's text serves only when it is a candidate, or rewritten
    into a merged file), not one string object a paragraph."""

    def __init__(self, sources: list[_SegmentTexts], segment: np.ndarray, row: np.ndarray) -> None:
        self.sources = sources
        self.segment, self.row = segment, row  # of each row: its segment, its row there

    @classmethod
    def of(cls, segments: list[_Segment]) -> _Texts:
        """The texts of the segments' rows, one after the other."""
        numbers = np.repeat(np.arange(len(segments)), [segment.rows for segment in segments])
        rows = _offsets_in_groups(np.array([segment.rows for segment in segments], np.int64))
        return cls([_SegmentTexts(segment) for segment in segments], numbers, rows)

    def rows(self, rows: np.ndarray) -> _Texts:
        """These rows' texts, in this order."""
        return _Texts(self.sources, self.segment[rows], self.row[rows])

    def __len__(self) -> int:
        return int(self.segment.shape[0])

    def __getitem__(self, row: int) -> str:
        return self.sources[self.segment[row]][int(self.row[row])]


class _SegmentTexts:
    """One index file's paragraph texts: LZ4 frames of consecutive rows (`_Npz.text`), a frame
    decoded when one of its rows is first read (a day's run reads few of a large parent's
    texts: decoded whole, they were its largest part in memory). An index written before
    frames has one frame of every row."""

    def __init__(self, segment: _Segment) -> None:
        arrays = segment.arrays
        self.arrays = {name: arrays[name] for name in (PARA_TEXT, PARA_TEXT_FRAMES, "para_text") if name in arrays}
        self.lengths = (arrays["para_end"] - arrays["para_start"]).astype(np.int64)
        frames = arrays.get(PARA_TEXT_FRAMES)
        if frames is None or PARA_TEXT not in arrays:
            frames = np.array([[-1, segment.rows]], np.int64)  # (-1: the whole text)
        self.byte_ends = [0, *frames[:, 0].tolist()]
        self.row_ends = [0, *frames[:, 1].tolist()]
        self.frames: dict[int, tuple[str, list[int]]] = {}  # decoded: text, each row's start

    def __getitem__(self, row: int) -> str:
        number = bisect_right(self.row_ends, row) - 1
        found = self.frames.get(number)
        if found is None:
            found = self.frames[number] = self._decoded(number)
        text, starts = found
        at = row - self.row_ends[number]
        return text[starts[at] : starts[at + 1] - 1]

    def _decoded(self, number: int) -> tuple[str, list[int]]:
        first, end = self.row_ends[number], self.row_ends[number + 1]
        if self.byte_ends[number + 1] < 0:
            text = _index_text(self.arrays) if end > first else ""
        else:
            text = _frame_text(self.arrays[PARA_TEXT], self.byte_ends[number], self.byte_ends[number + 1])
            text = text.removeprefix("\n" if number else "")
        lengths = self.lengths[first:end]
        if end > first and int(lengths.sum()) + end - first - 1 != len(text):
            # (not the spans' lengths: split at the separators)
            lengths = np.array([len(line) for line in text.split("\n")], np.int64)
        return text, [0, *accumulate((lengths + 1).tolist())]


class _FirstByHash:
    """Where each hash first occurs in an array of hashes (a stable sort of it, searched)."""

    def __init__(self, hashes: np.ndarray) -> None:
        self.order = np.argsort(hashes, kind="stable")  # first occurrence first
        self.sorted = hashes[self.order]

    def first(self, hashes: list[int]) -> Iterator[tuple[int, int]]:
        """(k, the first position of hashes[k]) for each of `hashes` that occurs."""
        if not hashes or self.sorted.shape[0] == 0:
            return iter(())
        wanted = np.array(hashes, dtype=np.uint64)
        at = np.minimum(np.searchsorted(self.sorted, wanted, side="left"), self.sorted.shape[0] - 1)
        hit = np.flatnonzero(self.sorted[at] == wanted)
        return zip(hit.tolist(), self.order[at[hit]].tolist(), strict=True)


class _RunSignatures:
    """This run's paragraph signatures by text hash (the first paragraph with it), for the
    documents re-signed after their edits (`_Engine._edited_block`). Built in the driver before
    the decision's workers fork, from the paragraphs' hashes alone: a worker then reads the few
    paragraphs it looks up. Built in each worker from every paragraph (a dict of them), it had
    touched every paragraph's page there: 100 MB more in each on the copies shape.
    `para`: the engine's paragraph by number (`_Engine._para`); `by_hash`: where each text hash
    first occurs among the run's paragraphs, in their order; `first`: the number of the first
    (the parent's come before them). Made for each use (`_Engine._signatures`): kept on the
    engine, it would hold the engine through `para`, a cycle only the cyclic collector frees."""

    def __init__(self, para: Callable[[int], _Para], by_hash: _FirstByHash, first: int) -> None:
        self.para, self.by_hash, self.first = para, by_hash, first

    def lookup_all(self, hashes: list[int]) -> list[tuple[np.ndarray, np.ndarray] | None]:
        found: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(hashes)
        for k, p in self.by_hash.first(hashes):
            para = self.para(self.first + p)
            found[k] = (para.sig, para.window_sigs)
        return found


# --------------------------------------------------------------------------- the decision
class _Engine:
    """Indexes, decides (deterministically) and plans the edits; one instance per `decide`.

    Picklable (`parallel` may ship its bound methods to other processes): see `__getstate__`.
    """

    _CACHE_DOCS = 256  # run documents whose text and comparison form are held at once
    _CHUNK = 64  # verifications per `parallel` item
    _INDEX_CHUNK = 8  # edited documents re-signed per `parallel` item
    _MAX_WAVES = 8  # `parallel` rounds per decision step; the rest is verified in this process

    def __init__(self, settings: DedupSettings, context: Any, parent: _ParentIndex | None) -> None:
        self.s = settings
        self.context = context
        self.parent = parent
        self.docs: list[_Doc] = []
        # Parent paragraphs first, then the run's; each None until read (`_para`).
        self.paras: list[_Para] = []
        self.window_owner = np.empty((0, 2), np.int64)  # window key -> (para, window index)
        self.stats = {"paragraphs": 0, "signatures_computed": 0, "signatures_reused": 0}
        self.pending: dict[int, list[_Removal]] = {}  # doc index -> removals decided
        self.unaligned: set[int] = set()  # docs with a passage candidate too repetitive to align
        self._cache: OrderedDict[int, list[Any]] = OrderedDict()  # doc -> [text, form | None]
        # 4-gram keys of forms (`_grams`: a range's gram map is made of them)
        self._keys: dict[int, tuple[minhash.ComparisonForm, np.ndarray]] = {}
        # (id of the _Para, start, end) -> `_grams`, in two generations (the one filling, the
        # one before); paragraphs live as long as the engine
        self._gram_cache: dict[tuple[int, int, int], list[Any]] = {}
        self._gram_cache_before: dict[tuple[int, int, int], list[Any]] = {}
        # Candidates of the step being decided: doc -> earlier candidate docs; paragraph ->
        # earlier candidate paragraphs (whole), (paragraph, split window) pairs (passages).
        self._doc_candidates: dict[int, list[int]] = {}
        self._copy_of: dict[int, int] = {}  # later exact copy -> first (`_earlier_copies`)
        # A kept first copy -> the reason its later copies are duplicates of it (`_decide_copy`):
        # formatted once, not for each of the copies shape's 178,000 (0.2-0.3 s).
        self._copy_reasons: dict[int, str] = {}
        self._whole: dict[int, list[int]] = {}
        self._ranked: dict[int, list[tuple[int, int]]] = {}
        self._verified: dict[tuple[Any, ...], Any] = {}  # verification key -> result
        self._run_hashes: _FirstByHash | None = None  # the run paragraphs' (`_signatures`)
        self._run_rows: _Rows | None = None  # the run documents' summaries (`_run_columns`)
        self._first_run_para = -1  # the first paragraph of a run document (the parent's first)
        self._run_para_doc: list[int] = []  # of each run paragraph, its document's number
        self._run_cf = np.empty((0, 2), np.int64)  # their form spans (`decide` to `_decide_paragraphs`)
        self.dropped: list[str] = []  # ids of parent documents this run re-curated (`_add_parent`)
        self._parent_rows = np.empty(0, np.int64)  # the index row of each parent paragraph here
        self._parent_first = 0  # the number of the first (`_add_parent`)
        self._parent_para_doc: list[int] = []  # of each, its document's number here
        self._parent_para_index: list[int] = []  # ... and its number in that document
        self._parent_win_spans = np.empty((0, 2), np.int64)  # (the index's windows' spans)
        self._first_run_doc = 0  # the first run document (the parent's come first)
        self._parent_doc_rows = np.empty(0, np.int64)  # the index row of each parent document

    def __getstate__(self) -> dict[str, Any]:
        """A pickled engine (`parallel` on other machines) is rebuilt from its inputs.

        The settings, the parent index and the run's summaries: the records as `decide` first
        builds them, without decisions, context (its services stay here) or caches. That is
        what the verifications and index blocks, pure functions of the summaries, read.
        Pickling the records themselves would copy every signature view one by one (twice
        the bytes, four times the time on the benchmark).
        """
        run = [(doc.summary, doc.position) for doc in self.docs if doc.summary is not None]
        return {"settings": self.s, "parent": self.parent, "run": run}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["settings"], None, state["parent"])  # type: ignore[misc]
        if self.parent is not None:
            self._add_parent(self.parent, skip={summary.id for summary, _ in state["run"]})
        for summary, position in state["run"]:
            self._add_run_doc(summary, position)

    # ------------------------------------------------------------------ main
    def decide(self, summaries: list[_Summarised]) -> dict[int, _Plan]:
        """Plans by position of observation; sets the index artifact and the statistics."""
        if self.parent is not None:
            self._add_parent(self.parent, skip={summary.id for summary in summaries})
        # By id, then position (a stable sort keeps equal ids in order): no tuple per summary.
        order = sorted(range(len(summaries)), key=[summary.id for summary in summaries].__getitem__)
        for i in order:
            self._add_run_doc(summaries[i], i)
        cf, hashes = self._run_columns(("cf", (2,), np.int64), ("hashes", (), np.uint64))
        self._count_run_chars(cf)
        self._run_cf = cf  # (`_decide_paragraphs`)
        self._run_hashes = _FirstByHash(hashes)  # (now, before the decision's workers fork)
        del cf, hashes
        if self.s.across_documents:
            self._decide_documents()
        self._decide_paragraphs()
        self._run_rows = None  # (the index reads the documents again, in id order)
        if self.unaligned:
            ids = sorted(self.docs[d].id for d in self.unaligned)
            _warn(
                self.context,
                f"dedup: {len(ids)} document(s) with a paragraph too repetitive to align with a "
                f"candidate (over {minhash._ALIGN_MAX_PAIRS:,} pairs of equal 4-grams): repeated "
                f"passages there were not looked for ({', '.join(ids[:5])}{', …' if len(ids) > 5 else ''})",
            )
        plans = self._plans()
        if self.s.incremental:
            self._save_index(plans)
        self.context.state["dedup"] = dict(self.stats)
        return {self.docs[d].position: plan for d, plan in plans.items()}

    # ------------------------------------------------------------------ collecting
    def _add_run_doc(self, summary: _Summarised, position: int) -> None:
        """A run document, its paragraphs numbered but made objects (`_Para`) only when one of
        them is first read (`_para`, `_make_run_paras`): most paragraphs are no candidate of
        anything, and making them all was about a fifth of the decision's serial work."""
        if self._first_run_para < 0:
            self._first_run_para = len(self.paras)
        doc_index = len(self.docs)
        p = summary.dims[1]
        first = len(self.paras)
        entry = _Doc(
            id=summary.id, rank=doc_index, summary=summary, position=position,
            paras=list(range(first, first + p)),
        )  # fmt: skip
        self.docs.append(entry)
        self.paras.extend([None] * p)  # type: ignore[list-item]
        self._run_para_doc.extend([doc_index] * p)
        self.stats["paragraphs"] += p
        self.stats["signatures_computed"] += summary.computed
        self.stats["signatures_reused"] += summary.reused

    def _make_run_paras(self, doc_index: int) -> None:
        """Every paragraph of a run document as an object (`_Para`), where `_add_run_doc`
        numbered them. One flat list of numbers: far fewer Python objects than the nested
        lists of 2-D `tolist`. A paragraph's windows and signatures are views of the summary's
        arrays."""
        doc = self.docs[doc_index]
        summary = doc.summary
        assert summary is not None
        p = summary.dims[1]
        numbers = summary.paragraph_numbers()  # spans, form spans, hashes, window counts
        para_sigs = list(summary.para_sigs)  # (row views, made in one call)
        windows, window_sigs = summary.win_spans, summary.win_sigs
        paras, first = self.paras, doc.paras[0] if doc.paras else 0
        w = 0
        for index in range(p):
            count = numbers[5 * p + index]
            paras[first + index] = _Para(
                doc=doc_index,
                index=index,
                start=numbers[2 * index],
                end=numbers[2 * index + 1],
                text_hash=numbers[4 * p + index],
                form=None,
                cf0=numbers[2 * p + 2 * index],
                cf1=numbers[2 * p + 2 * index + 1],
                offset=0,
                windows=windows[w : w + count],
                sig=para_sigs[index],
                window_sigs=window_sigs[w : w + count],
            )
            w += count

    def _data(self, doc_index: int, form: bool = False) -> list[Any]:
        """[text, comparison form or None] of a run document, from a small LRU cache."""
        entry = self._cache.get(doc_index)
        if entry is None:
            summary = self.docs[doc_index].summary
            assert summary is not None
            entry = self._cache[doc_index] = [_text_of(summary.text_utf8), None]
            if len(self._cache) > self._CACHE_DOCS:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(doc_index)
        if form and entry[1] is None:
            entry[1] = minhash.comparison_form(entry[0])
        return entry

    def _shingles(self, para: _Para) -> np.ndarray:
        """Sorted unique shingle ids of a paragraph (computed once, for exact verification)."""
        if para.ids is None:
            form = self._form(para)
            ids, _ = minhash.shingle_ids(
                form.codes[para.cf0 : para.cf1],
                np.array([0, para.cf1 - para.cf0]),
                self.s.shingle_size,
            )
            para.ids = minhash.sorted_unique(ids)
        return para.ids

    def _doc_shingles(self, doc: _Doc) -> np.ndarray:
        if doc.ids is None and doc.summary is not None and doc.paras:
            # One pass over the document's form, a segment per paragraph (as `_shingles`).
            paras = [self._para(p) for p in doc.paras]
            form = self._data(paras[0].doc, form=True)[1]
            codes = np.concatenate([form.codes[p.cf0 : p.cf1] for p in paras])
            bounds = np.cumsum([0, *(p.cf1 - p.cf0 for p in paras)])
            ids, _ = minhash.shingle_ids(codes, bounds, self.s.shingle_size)
            doc.ids = minhash.sorted_unique(ids)
        if doc.ids is None:
            parts = [self._shingles(self._para(p)) for p in doc.paras]
            doc.ids = minhash.sorted_unique(np.concatenate(parts)) if parts else np.empty(0, np.uint64)
        return doc.ids

    def _form(self, para: _Para) -> minhash.ComparisonForm:
        if self.docs[para.doc].summary is not None:
            return self._data(para.doc, form=True)[1]
        if para.form is None:  # a parent paragraph: its own text, compared on demand
            para.form = minhash.comparison_form(para.text)
            para.cf1 = len(para.form)
            windows = para.windows.copy()
            windows[:, 0] = np.maximum(windows[:, 0], 0)
            windows[:, 1] = np.minimum(windows[:, 1], para.cf1)
            para.windows = windows
        return para.form

    def _grams(self, para: _Para, start: int, end: int, mapped: bool = False) -> list[Any]:
        """[keys, gram map or None] of the 4-grams inside [start, end) of `_form(para)`: the
        keys, in order, a view of the form's `minhash.gram_keys` (made once for each of the
        `_CACHE_DOCS` forms read last; an entry keeps its form's keys alive: on the benchmark,
        at the most, 8 MB of 1,364 forms' for 2,757 entries, where copies of the ranges took
        15 MB); the map (`minhash.gram_map` of the keys) made at the first call `mapped`.

        A paragraph is compared with up to `max_candidates` others (and kept ones with many
        later copies), so what is made of its ranges is kept: at most `16 * _CACHE_DOCS`
        entries, in two generations of half that, the entries used since the last one filled
        and those it holds (an LRU cache's reordering at every hit, most calls, was most of
        a hit's time). Keyed by the paragraph (its form's content never changes, even when
        the form is made again): a hit touches neither the form nor its keys.
        """
        key = (id(para), start, end)
        grams = self._gram_cache.get(key)
        if grams is None:
            grams = self._gram_cache_before.pop(key, None)
            if grams is None:
                grams = self._new_grams(para, start, end)
            self._gram_cache[key] = grams
            if len(self._gram_cache) >= 8 * self._CACHE_DOCS:
                self._gram_cache_before, self._gram_cache = self._gram_cache, {}
        if mapped and grams[1] is None:
            grams[1] = minhash.gram_map(grams[0])
        return grams

    def _new_grams(self, para: _Para, start: int, end: int) -> list[Any]:
        """A new entry of `_grams`: [keys, None]."""
        form = self._form(para)
        keys = self._keys.get(id(form))
        if keys is None or keys[0] is not form:
            keys = self._keys[id(form)] = (form, minhash.gram_keys(form.codes))
            if len(self._keys) > self._CACHE_DOCS:
                del self._keys[next(iter(self._keys))]
        return [keys[1][start : max(start, end - 3)], None]

    def _text(self, para: _Para) -> str:
        if self.docs[para.doc].summary is not None:
            return self._data(para.doc)[0][para.start : para.end]
        return para.text

    def _sentences(self, para: _Para) -> tuple[list[int], list[int]]:
        """Sentences of a paragraph in document coordinates, leading whitespace skipped: their
        starts and their ends, both ascending (sentences do not overlap), for `bisect`."""
        if para.sentences is not None:
            return para.sentences
        text = self._text(para)
        starts, ends = [], []
        for s0, s1 in _sentence_spans(text):
            while s0 < s1 and text[s0].isspace():
                s0 += 1
            if s0 < s1:
                starts.append(s0 + para.start)
                ends.append(s1 + para.start)
        para.sentences = starts, ends
        return para.sentences

    # ------------------------------------------------------------------ candidates
    def _candidates(
        self,
        threshold: float,
        num_perm: int,
        keys: list[int],
        sigs: np.ndarray | _Stacked,
        wanted: Callable[[int], bool],
        asked: dict[int, int] | None = None,
        first_wanted: int = 0,
    ) -> Iterator[tuple[int, set[int]]]:
        """(key, the smaller keys sharing an LSH band with it), for the `wanted` keys that have
        any, in the order of `keys`: of what `MinHashLSH.query` returns with a MinHashLSH
        holding every row (`sigs[i]` is the signature of `keys[i]`), the keys before the key,
        at most the first `max_group_candidates` of each group of rows filed together (what
        every decision reads: a row is compared with earlier ones only). Of a key in `asked`,
        only whether `asked[key]` is one of them: (key, {asked[key]}) if it is, nothing if not
        (see `_decide_copy`). No key before `keys[first_wanted]` is wanted (the parent's rows,
        which come first): a group of those alone is not made.

        The bands are datasketch's `MinHashLSH` banding for the threshold. The rows filed
        together in a band are found with numpy in this process (`_band_groups`), or with a
        `group_by` service by a shuffle on datasketch's own band keys (`_band_rows`); a row's
        candidates are the union of the groups it is in, whatever order the groups come in.
        """
        bands = lsh_params.bands(threshold, num_perm)  # datasketch's banding (and its checks)
        if len(keys) < 2:
            return
        group_by = getattr(self.context, "group_by", None)
        if group_by is None:
            groups = _band_groups(bands, keys, sigs, first_wanted)
        else:
            from datasketch import MinHashLSH  # only with a shuffle service (Ray)

            lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
            groups = group_by(_band_rows(lsh, keys, sigs))
        # The same rows often share every band (copies): each distinct group is kept once, its
        # keys in ascending order. A key's candidates in a group are the keys before it, at
        # most the first `limit`: near-copies by the thousand share their bands, and all
        # pairs of them would grow with the square of their number.
        limit = self.s.max_group_candidates
        distinct = dict.fromkeys(tuple(sorted(group)) for group in groups if len(group) > 1)
        # (this generator lives until its caller has decided every key: what is no longer
        # needed goes now, not then)
        del groups, sigs
        member_of: dict[int, list[tuple[tuple[int, ...], int]]] = {}
        for group in distinct:
            for position in range(1, len(group)):
                member_of.setdefault(group[position], []).append((group, min(position, limit)))
        asked = asked or {}
        for key in keys:
            found_in = member_of.get(key)
            if found_in and wanted(key):
                probe = asked.get(key)
                if probe is None:
                    yield key, set().union(*(group[:count] for group, count in found_in))
                elif any(_among_first(group, count, probe) for group, count in found_in):
                    yield key, {probe}

    # ------------------------------------------------------------------ verification
    def _verify(self, key: tuple[Any, ...]) -> Any:
        """The exact check of one candidate pair: a pure function of the summaries.

        ("doc", k, c) and ("whole", k, c): (Jaccard, containment of k in c) of the shingle
        sets of documents / paragraphs; ("passage", k, other, split): `_find_passages`.
        """
        kind = key[0]
        if kind == "doc":
            doc, other = self.docs[key[1]], self.docs[key[2]]
            jaccard, contained, _ = minhash.exact_overlap(self._doc_shingles(doc), self._doc_shingles(other))
            return jaccard, contained
        para, kept = self._para(key[1]), self._para(key[2])
        if kind == "whole":
            jaccard, contained, _ = minhash.exact_overlap(
                self._shingles(para), self._shingles(kept)
            )
            return jaccard, contained
        return self._find_passages(para, kept, key[3])

    def _verify_chunk(self, keys: list[tuple[Any, ...]]) -> list[Any]:
        """`_verify` over a chunk of keys (the function given to `context.parallel`)."""
        return [self._verify(key) for key in keys]

    def _result(self, key: tuple[Any, ...]) -> Any:
        """A verification: verified ahead (`parallel`) or now, in this process."""
        result = self._verified.get(key)
        return result if result is not None else self._verify(key)

    def _in_waves(
        self,
        order: list[int],
        needs: Callable[[int], tuple[list[tuple[Any, ...]], int]],
        decide_one: Callable[[int], None],
    ) -> None:
        """`decide_one` for every key of `order`, in order; with `parallel`, verified ahead.

        `needs(k)` names the verifications the decision of k would read next and are not
        verified yet, given the decisions made so far: exactly for the next key to decide; for
        later keys, as if the undecided copies were kept. When the next key lacks some, the
        needs of all remaining keys are verified on the workers in one round, then the
        decisions go on in order until one lacks something again. Verifying what the choice
        will read rather than every candidate pair keeps the total work that of one process
        when copies are many (a pair is checked only while its earlier copy is kept). Rounds
        too small for a chunk, and all after `_MAX_WAVES`, are left to `_result`, on demand.

        `needs(k)` also gives the largest key whose decision it read (`order` is ascending:
        a key's decision reads those of smaller keys only). A key that needs nothing, having
        read decisions already made, needs nothing for good: it is not asked again (on the
        copies shape, 196,000 keys were asked again in each of five later rounds).
        """
        parallel = getattr(self.context, "parallel", None)
        waves = 0 if parallel is not None else self._MAX_WAVES
        settled: set[int] = set()
        for position, k in enumerate(order):
            if waves < self._MAX_WAVES and k not in settled and needs(k)[0]:
                wave = []
                for j in order[position:]:
                    if j in settled:
                        continue
                    needed, read = needs(j)
                    if needed:
                        wave.extend(needed)
                    elif read < k:
                        settled.add(j)
                if len(wave) < self._CHUNK:
                    waves = self._MAX_WAVES  # little is left: verified here, on demand
                else:
                    assert parallel is not None
                    chunks = [wave[i : i + self._CHUNK] for i in range(0, len(wave), self._CHUNK)]
                    results = parallel(self._verify_chunk, chunks)
                    for chunk, found in zip(chunks, results, strict=True):
                        self._verified.update(zip(chunk, found, strict=True))
                    waves += 1
            decide_one(k)
        self._verified.clear()

    # ------------------------------------------------------------------ documents
    def _decide_documents(self) -> None:
        """Candidates (LSH) -> exact verification -> choice, in rank order (see the module).

        A later exact copy of a run document is decided from the first copy's decision
        (`_decide_copy`), its candidates not gathered nor verified: 178,000 of the 214,000
        documents of `bench_shapes.py --shape copies`."""
        keys = [k for k, doc in enumerate(self.docs) if self._doc_chars(doc) >= self.s.min_chars]
        self._copy_of = self._earlier_copies(keys)
        self._doc_candidates = {}
        # Of the parent's documents (they come first; `_parent_doc_rows`: their rows of its
        # index), only those that may share an LSH band with one of the run's.
        split = bisect_left(keys, self._first_run_doc)
        parent_keys = np.array(keys[:split], np.int64)
        parent_sigs = (  # (not a view of the run's: it would hold them while deciding)
            self.parent.arrays["doc_sigs"] if self.parent is not None else np.empty((0, self.s.num_perm), np.uint32)
        )
        keys, sigs, first_wanted = self._rows_to_group(
            "doc", self.s.candidate_threshold, self.s.num_perm,
            parent_keys, self._parent_doc_rows[parent_keys], parent_sigs,
            keys[split:], self._run_signatures(keys[split:]),
        )  # fmt: skip
        for k, found in self._candidates(
            self.s.candidate_threshold,
            self.s.num_perm,
            keys,
            sigs,
            lambda key: self.docs[key].summary is not None,
            self._copy_of,
            first_wanted,
        ):
            self._doc_candidates[k] = sorted(found)  # (all before k: see `_candidates`)
        del sigs  # (not held while deciding: see `_candidates`)
        order = sorted(self._doc_candidates.keys() | self._copy_of.keys())
        self._in_waves(order, self._document_needs, self._decide_document)
        self._doc_candidates, self._copy_of, self._copy_reasons = {}, {}, {}

    def _earlier_copies(self, keys: list[int]) -> dict[int, int]:
        """Each key of a run document of the same (non-empty) text as an earlier one -> the
        first key of that text. Texts are compared as their UTF-8 bytes (a record's text is a
        numpy view: `tobytes`, a fifth of `bytes()`'s time). Empty when an exact copy would not
        pass as a duplicate (the thresholds above 1): `_decide_copy` relies on it, and nothing
        is a duplicate then."""
        if not self._is_duplicate(1.0, 1.0):
            return {}
        firsts: dict[bytes, int] = {}  # (the texts of the first copies, as UTF-8)
        copy_of: dict[int, int] = {}
        docs, nonempty = self.docs, self.s.min_chars > 0  # (keys are of min_chars or more)
        for k in keys:
            doc = docs[k]
            if doc.summary is not None and (nonempty or self._doc_chars(doc) > 0):
                first = firsts.setdefault(_as_bytes(doc.summary.text_utf8), k)
                if first != k:
                    copy_of[k] = first
        return copy_of

    def _is_duplicate(self, jaccard: float, contained: float) -> bool:
        return jaccard >= self.s.document_jaccard and contained >= self.s.document_containment

    def _document_needs(self, k: int) -> tuple[list[tuple[Any, ...]], int]:
        """The verification `_decide_document(k)` lacks next (its candidates until one
        passes), and the last candidate it read (see `_in_waves`)."""
        first = self._copy_of.get(k)
        if first is not None:
            return [], first
        candidates = self._doc_candidates[k]
        for c in candidates:
            if self.docs[c].duplicate:
                continue
            result = self._verified.get(("doc", k, c))
            if result is None:
                return [("doc", k, c)], c
            if self._is_duplicate(*result):
                return [], c
        return [], candidates[-1]

    def _decide_document(self, k: int) -> None:
        """Document k duplicates its first candidate that is kept and passes the exact check."""
        if k in self._copy_of:
            self._decide_copy(k, self._copy_of[k])
            return
        doc = self.docs[k]
        for c in self._doc_candidates[k]:
            kept = self.docs[c]
            if kept.duplicate:
                continue
            jaccard, contained = self._result(("doc", k, c))
            if self._is_duplicate(jaccard, contained):
                self._mark_duplicate(doc, kept, jaccard, contained)
                break

    def _decide_copy(self, k: int, first: int) -> None:
        """What `_decide_document(k)` decides, from the decision of `first`, an earlier
        document of the same text (`_earlier_copies`), and whether `first` is a candidate of k.

        The two have the same signature, so the same LSH groups, where `first` comes before
        k; k's candidates before `first` are then exactly `first`'s (the first
        `max_group_candidates` of each group, or all before `first`), and verify as
        `first`'s did (the same shingles), against the same decisions. So k duplicates what
        `first` duplicates; and when `first` is kept, k duplicates it if it is a candidate
        (an exact copy passes: checked in `_earlier_copies`), else k has only `first`'s
        candidates, none of which passed, and is kept too."""
        doc, model = self.docs[k], self.docs[first]
        if model.duplicate:
            doc.duplicate, doc.duplicate_of, doc.status_reason = True, model.duplicate_of, model.status_reason
        elif k in self._doc_candidates:  # (`first` is: see `_candidates`' `asked`)
            reason = self._copy_reasons.get(first)
            if reason is None:
                self._mark_duplicate(doc, model, 1.0, 1.0)
                self._copy_reasons[first] = doc.status_reason
            else:
                doc.duplicate, doc.duplicate_of, doc.status_reason = True, model.id, reason

    def _mark_duplicate(self, doc: _Doc, kept: _Doc, jaccard: float, contained: float) -> None:
        doc.duplicate = True
        doc.duplicate_of = kept.id
        doc.status_reason = (
            f"dedup.document: near-duplicate of document {kept.id} (exact Jaccard "
            f"{jaccard:.2f}, {contained:.0%} of its {self.s.shingle_size}-grams in it)"
        )

    def _doc_chars(self, doc: _Doc) -> int:
        if doc.chars >= 0:
            return doc.chars
        return sum(self._para(p).cf1 - self._para(p).cf0 for p in doc.paras)

    def _count_run_chars(self, cf: np.ndarray) -> None:
        """`_doc_chars` of every run document, from the form spans of the run's paragraphs
        (`cf`: as the parent's are counted from its index, `_add_parent`), not from its
        paragraphs made objects."""
        first = self._first_run_doc
        rows = np.array(self._run_para_doc, dtype=np.int64) - first
        chars = np.bincount(rows, weights=cf[:, 1] - cf[:, 0], minlength=len(self.docs) - first)
        for doc, count in zip(self.docs[first:], chars.tolist(), strict=True):
            doc.chars = int(count)

    # ------------------------------------------------------------------ paragraphs and passages
    def _decide_paragraphs(self) -> None:
        """Candidates of every paragraph -> verification -> choice, in rank order."""
        parent = self._parent_rows_of_eligible()  # (the parent's paragraphs come first)
        first = self._run_paras_from()
        # The run's eligible paragraphs (in a document not a duplicate, of `min_chars` or more
        # compared characters), picked with numpy from their documents' summaries, column by
        # column: no paragraph is made an object for it (`_para`), and a Python loop over the
        # benchmark's 24,600 paragraphs was serial work here.
        cf, self._run_cf = self._run_cf, np.empty((0, 2), np.int64)  # (`decide`'s, used once)
        assert cf.shape[0] == len(self._run_para_doc), "the run's form spans are `decide`'s"
        duplicate = np.fromiter((doc.duplicate for doc in self.docs), bool, len(self.docs))
        in_kept = ~duplicate[np.array(self._run_para_doc, dtype=np.int64)]  # (of every run paragraph)
        long_enough = cf[:, 1] - cf[:, 0] >= self.s.min_chars
        para_keys = [*parent.keys.tolist(), *(first + np.flatnonzero(in_kept & long_enough)).tolist()]
        # The columns below, of the kept documents only (their paragraphs are those `in_kept`,
        # in order): the copies shape keeps 35,036 of 213,816 documents, and cutting these
        # columns took 0.07-0.17 s, not 0.56-0.63 s for all of them (a loaded machine).
        kept_docs = np.flatnonzero(~duplicate[self._first_run_doc :])
        eligible = long_enough[in_kept]  # (of the kept documents' paragraphs)
        del cf, duplicate, in_kept, long_enough
        all_counts, all_spans, all_window_sigs, all_sigs = self._run_columns(
            ("win_counts", (), np.int64),
            ("win_spans", (2,), np.int64),
            ("win_sigs", (self.s.window_num_perm,), np.uint32),
            ("para_sigs", (self.s.num_perm,), np.uint32),
            documents=kept_docs,
        )
        in_eligible = np.repeat(eligible, all_counts)  # (of every window of those)
        run_counts = all_counts[eligible]
        run_sigs = all_sigs[eligible]
        del all_counts, all_sigs
        # The windows long enough to be LSH keys, picked with numpy (82,000 windows on the
        # benchmark: a Python loop over them was serial work in the decision). A paragraph's
        # windows and its rows of window signatures line up; `rows` are the picked ones in the
        # concatenated blocks (the parent's, then the run's), `local` every row's window index
        # in its paragraph.
        counts = np.concatenate([parent.window_counts, run_counts])
        local = _offsets_in_groups(counts)
        spans = all_spans[in_eligible]
        del all_spans
        lengths = np.concatenate([parent.window_lengths, spans[:, 1] - spans[:, 0]])
        assert lengths.shape[0] == local.shape[0], "windows and window signatures differ"
        rows = np.flatnonzero(lengths >= self.s.window_min_chars)
        owner_para = np.repeat(np.array(para_keys, dtype=np.int64), counts)[rows]
        self.window_owner = np.stack([owner_para, local[rows]], axis=1)
        # The parent's read where they are, a block of rows at a time as they are banded
        # (`_Stacked`): a block a paragraph joined, then picked, took a second for 163,000
        # parent paragraphs' windows, and gathered whole they were 150 MB more at the peak.
        # Of the parent's rows, only those that may share an LSH band with one of the run's
        # (`_sharing_a_band`).
        from_parent = parent.window_rows.shape[0]
        split = int(np.searchsorted(rows, from_parent))
        run_window_sigs = (
            all_window_sigs[np.flatnonzero(in_eligible)[rows[split:] - from_parent]]
            if split < rows.shape[0]
            else np.empty((0, self.s.window_num_perm), np.uint32)
        )
        del in_eligible, all_window_sigs
        window_keys, window_sigs, parent_windows = self._rows_to_group(
            "win", self.s.window_threshold, self.s.window_num_perm,
            np.arange(split), parent.window_rows[rows[:split]], parent.index_window_sigs,
            range(split, rows.shape[0]), run_window_sigs,
        )  # fmt: skip
        del run_window_sigs
        whole_keys, whole_sigs, parent_paras = self._rows_to_group(
            "para", self.s.candidate_threshold, self.s.num_perm,
            parent.keys, parent.rows, parent.index_para_sigs,
            para_keys[parent.keys.shape[0] :], run_sigs,
        )  # fmt: skip
        del run_sigs
        budget = self.s.max_candidates

        def in_run(k: int) -> bool:
            return k >= first

        # 1. Whole paragraphs: the first `max_candidates` earlier candidates.
        self._whole = {}
        for k, found in self._candidates(
            self.s.candidate_threshold,
            self.s.num_perm,
            whole_keys,
            whole_sigs,
            in_run,
            first_wanted=parent_paras,
        ):
            earlier = sorted(c for c in found if c < k)[:budget]
            if earlier:
                self._whole[k] = earlier
        del whole_sigs  # (not held while deciding: see `_candidates`)
        # 2. Passages: (earlier paragraph, -1) or (the same paragraph, split window), ranked by
        # how many windows hit them.
        owner_of = owner_para.tolist()
        self._ranked = _rank_passages(
            self.window_owner,
            self._candidates(
                self.s.window_threshold,
                self.s.window_num_perm,
                window_keys,
                window_sigs,
                lambda key: in_run(owner_of[key]),
                first_wanted=parent_windows,
            ),
            budget,
        )
        del window_sigs
        order = sorted(self._whole.keys() | self._ranked.keys())
        self._in_waves(order, self._paragraph_needs, self._decide_paragraph)
        self._whole, self._ranked = {}, {}

    def _rows_to_group(
        self,
        kind: str,
        threshold: float,
        num_perm: int,
        parent_keys: np.ndarray,
        parent_rows: np.ndarray,
        parent_sigs: Any,
        run_keys: Iterable[int],
        run_sigs: np.ndarray,
    ) -> tuple[list[int], _Stacked, int]:
        """The keys and signatures `_candidates` groups: of the parent's (`parent_keys`, each
        signature the row of `parent_sigs` in `parent_rows`), those `_sharing_a_band` picks,
        then the run's; and how many of the parent's come first (`first_wanted`)."""
        picked = self._sharing_a_band(kind, threshold, num_perm, parent_rows, run_sigs)
        keys = [*parent_keys[picked].tolist(), *run_keys]
        sigs = _Stacked([(parent_sigs, parent_rows[picked]), (run_sigs, None)], num_perm)
        return keys, sigs, int(picked.shape[0])

    def _sharing_a_band(
        self, kind: str, threshold: float, num_perm: int, parent_rows: np.ndarray, run_sigs: np.ndarray
    ) -> np.ndarray:
        """Of the parent's rows of `kind` in a decision (`parent_rows`: rows of its index,
        ascending), the positions of those that may share an LSH band with a run row
        (`run_sigs`): the only parent rows a decision reads, for `_band_groups` leaves out the
        groups of parent rows alone, and a group with a run row in it holds every row sharing
        that band. Found in the index's band tables (`_ParentIndex.rows_sharing_a_band`): a
        day's run on 163,000 parent paragraphs banded them all, and their 568,000 windows."""
        if self.parent is None or not parent_rows.shape[0] or not run_sigs.shape[0]:
            return np.empty(0, np.int64)
        bands = lsh_params.bands(threshold, num_perm)
        sharing = self.parent.rows_sharing_a_band(kind, bands, run_sigs)
        at = np.searchsorted(parent_rows, sharing)
        inside = at < parent_rows.shape[0]
        at = at[inside]
        return at[parent_rows[at] == sharing[inside]]

    def _parent_rows_of_eligible(self) -> _ParentRows:
        """The parent's paragraphs that take part in the decision (those long enough: a parent
        document is never a duplicate), as arrays, from the parent's index: their paragraph
        numbers here, signatures, and windows (rows of the index's windows, their lengths,
        their number a paragraph)."""
        parent, rows = self.parent, self._parent_rows
        if parent is None or not rows.shape[0]:
            empty = np.empty(0, np.int64)
            no_sigs = np.empty((0, self.s.num_perm), np.uint32)
            return _ParentRows(empty, empty, no_sigs, empty, empty, empty, np.empty((0, self.s.window_num_perm), np.uint32))
        index = parent.arrays
        eligible = np.flatnonzero(index["para_chars"][rows] >= self.s.min_chars)
        keys, rows = self._parent_first + eligible, rows[eligible]
        w0, w1 = parent.win_bounds[rows], parent.win_bounds[rows + 1]
        counts = (w1 - w0).astype(np.int64)
        window_rows = np.repeat(w0, counts) + _offsets_in_groups(counts)
        lengths = (index["win_end"][window_rows] - index["win_start"][window_rows]).astype(np.int64)
        return _ParentRows(keys, rows, index["para_sigs"], counts, window_rows, lengths, index["win_sigs"])

    def _allowed(self, para: _Para, other: _Para) -> bool:
        same = para.doc == other.doc
        return self.s.within_documents if same else self.s.across_documents

    def _paragraph_needs(self, k: int) -> tuple[list[tuple[Any, ...]], int]:
        """The verifications `_decide_paragraph(k)` lacks next: its whole candidates until one
        passes (one at a time), else the alignments of all its passage candidates; and the
        largest candidate it read (see `_in_waves`)."""
        para = self._para(k)
        read = -1
        for c in self._whole.get(k, ()):
            read = c
            kept = self._para(c)
            if kept.removed_whole or not self._allowed(para, kept):
                continue
            result = self._verified.get(("whole", k, c))
            if result is None:
                return [("whole", k, c)], read
            if result[1] >= self.s.paragraph_containment:
                return [], read
        needed = []
        for other, split in self._ranked.get(k, ()):
            read = max(read, other)
            kept = self._para(other)
            if kept.removed_whole or not self._allowed(para, kept):
                continue
            if ("passage", k, other, split) not in self._verified:
                needed.append(("passage", k, other, split))
        return needed, read

    def _decide_paragraph(self, k: int) -> None:
        para = self._para(k)
        # 1. The whole paragraph repeats a kept earlier one.
        for c in self._whole.get(k, ()):
            kept = self._para(c)
            if kept.removed_whole or not self._allowed(para, kept):
                continue
            jaccard, contained = self._result(("whole", k, c))
            if contained >= self.s.paragraph_containment:
                self._remove_whole(para, kept, jaccard, contained)
                return
        # 2. A passage of it repeats (part of) a kept earlier paragraph, or an earlier part of itself.
        for other, split in self._ranked.get(k, ()):
            kept = self._para(other)
            if kept.removed_whole or not self._allowed(para, kept):
                continue
            found = self._result(("passage", k, other, split))
            if found == _UNALIGNED:
                self.unaligned.add(para.doc)
                continue
            for a_cf, b_cf, similarity in found:
                self._consider_passage(para, kept, a_cf, b_cf, similarity)

    def _remove_whole(self, para: _Para, kept: _Para, jaccard: float, contained: float) -> None:
        para.removed_whole = True
        where = (
            "in this document" if para.doc == kept.doc else f"of document {self.docs[kept.doc].id}"
        )
        para.removed = [(para.start, para.end)]
        self._removals_of(para).append(
            _Removal(
                start=para.start,
                end=para.end,
                rule="dedup.paragraph",
                reason=(
                    f"repeats paragraph {kept.index + 1} {where} (exact Jaccard {jaccard:.2f}, "
                    f"{contained:.0%} of its {self.s.shingle_size}-grams found there)"
                ),
                link=self._link(kept, kept.start, kept.end),
                evidence={
                    "jaccard": round(jaccard, 4),
                    "containment": round(contained, 4),
                    "shingle": f"char-{self.s.shingle_size}",
                    "method": "minhash-lsh candidates, exact shingle verification",
                },
            )
        )

    def _find_passages(
        self, para: _Para, kept: _Para, split: int
    ) -> tuple[tuple[tuple[int, int], tuple[int, int], float], ...]:
        """Aligned regions of `para` with the kept paragraph that may be repeated passages:
        (form span in kept, form span in para, similarity), for `_consider_passage`.

        Pure (no decision state), so it can run on the workers. The forms of run paragraphs
        are read only for an alignment: most pairs stop at the coverage bound, on cached gram maps.
        """
        for p in (para, kept):
            if self.docs[p.doc].summary is None:
                self._form(p)  # a parent paragraph: its spans are set with its form, at first use
        if split >= 0:  # the same paragraph: its start up to the window after `split`
            cut = int(para.windows[split, 1])
            a0, a1, b0, b1 = para.cf0, cut, cut, para.cf1
        else:
            a0, a1, b0, b1 = kept.cf0, kept.cf1, para.cf0, para.cf1
        if a1 - a0 < self.s.passage_min_chars or b1 - b0 < self.s.passage_min_chars:
            return ()
        original = kept if split < 0 else para  # (whose range a0..a1 is)
        # A passage aligns at least passage_similarity * passage_min_chars characters (in
        # blocks of >= 4, chained across gaps of at most max_gap); the characters of the copy
        # inside 4-grams the original also has, in the stretch that has the most (parted by
        # more than max_gap characters in no such 4-gram), bound that from above for a
        # fraction of the alignment's cost (most candidate pairs share a phrase or a stock
        # sentence only, or a few far apart). The margin absorbs float rounding.
        wanted = self.s.passage_similarity * self.s.passage_min_chars - 1e-6
        a_map, b_keys = self._grams(original, a0, a1, True)[1], self._grams(para, b0, b1)[0]
        if minhash.gram_coverage(b_keys, a_map, self.s.max_gap) < wanted:
            return ()
        # difflib's matching blocks (of >= 4 characters), computed on the code arrays; not
        # made for millions of equal 4-gram pairs (difflib itself would take minutes there).
        blocks = minhash.matching_blocks(
            self._form(kept).codes[a0:a1], self._form(para).codes[b0:b1], 4, a_map, b_keys,
            fallback=False,
        )
        if blocks is None:
            return _UNALIGNED
        found = []
        for ra0, ra1, rb0, rb1, matched in _regions(blocks, self.s.max_gap, 4):
            # region offsets are relative to a0 / b0
            if rb1 - rb0 < self.s.passage_min_chars:
                continue
            similarity = matched / max(ra1 - ra0, rb1 - rb0)
            if similarity < self.s.passage_similarity:
                continue
            found.append(((a0 + ra0, a0 + ra1), (b0 + rb0, b0 + rb1), similarity))
        return tuple(found)

    def _consider_passage(
        self,
        para: _Para,
        kept: _Para,
        a_cf: tuple[int, int],
        b_cf: tuple[int, int],
        similarity: float,
    ) -> None:
        snap = self.s.snap_chars
        b_start, b_end, b_sentences, b_mid_start, b_mid_end, took_start, took_end = self._snap(
            para, *b_cf, snap, snap
        )
        # The original moves to its sentence boundary only where the copy did (a changed first
        # word on both sides); otherwise the link names exactly the text the copy repeats.
        a_start, a_end, a_sentences, *_ = self._snap(
            kept, *a_cf, snap if took_start else 0, snap if took_end else 0
        )
        whole_original = (a_cf[1] - a_cf[0]) >= 0.9 * (kept.cf1 - kept.cf0)
        if b_sentences < self.s.passage_min_sentences and not whole_original:
            return  # a shared phrase or single stock sentence inside different paragraphs
        if b_mid_end or (b_mid_start and para.doc != kept.doc):
            # Cutting a sentence of the copy would damage it: only a copy spliced into its own
            # document may start mid-sentence (flagged), and every copy must end a sentence.
            return
        if any(s < b_end and b_start < e for s, e in para.removed):
            return
        if any(s < a_end and a_start < e for s, e in kept.removed):
            return  # the original is itself gone: never link to removed text
        if kept is para and a_end > b_start:
            return
        if b_start == para.start and b_end == para.end:
            # the whole paragraph: drop it (and its line) like a repeated paragraph
            para.removed_whole = True
        para.removed.append((b_start, b_end))
        where = (
            "earlier in this document"
            if para.doc == kept.doc
            else f"in document {self.docs[kept.doc].id}"
        )
        removal = _Removal(
            start=b_start,
            end=b_end,
            rule="dedup.passage" if not para.removed_whole else "dedup.paragraph",
            reason=(
                f"repeats a passage {where} ({similarity:.0%} of {b_cf[1] - b_cf[0]} characters aligned)"
            ),
            link=self._link(kept, a_start, a_end),
            evidence={
                "similarity": round(similarity, 4),
                "characters": b_cf[1] - b_cf[0],
                "sentences": b_sentences,
                "original_sentences": a_sentences,
                "method": "minhash-lsh window candidates, difflib alignment",
            },
        )
        text = self._doc_text(para)
        if b_mid_start:
            removal.seam_before = _clause_start(text, b_start, para.start)
        self._removals_of(para).append(removal)

    def _snap(
        self, para: _Para, cf_start: int, cf_end: int, limit_start: int, limit_end: int
    ) -> tuple[int, int, int, bool, bool, int, int]:
        """Text span of an aligned region, snapped to sentence boundaries a few characters away.

        At most `limit_start` / `limit_end` comparison characters are taken in at each end
        (punctuation, which has none, always). Returns (start, end, complete sentences inside,
        starts mid-sentence, ends mid-sentence, characters taken in at the start, at the end).
        """
        form = self._form(para)
        start = para.offset + int(form.positions[cf_start])
        end = para.offset + int(form.positions[cf_end - 1]) + 1
        starts, ends = self._sentences(para)

        def chars_between(x: int, y: int) -> int:
            return form.chars_between(x - para.offset, y - para.offset)

        mid_start = mid_end = False
        took_start = took_end = 0
        i = bisect_right(ends, start)  # the sentence holding `start`, if any
        if i < len(ends) and starts[i] < start:
            took_start = chars_between(starts[i], start)
            if took_start <= limit_start:
                start = starts[i]
            else:
                mid_start, took_start = True, 0
        i = bisect_left(ends, end)  # the sentence holding the character before `end`, if any
        if i < len(ends) and starts[i] < end < ends[i]:
            took_end = chars_between(end, ends[i])
            if took_end <= limit_end:
                end = ends[i]
            else:
                mid_end, took_end = True, 0
        complete = max(0, bisect_right(ends, end) - bisect_left(starts, start))
        return start, end, complete, mid_start, mid_end, took_start, took_end

    def _doc_text(self, para: _Para) -> str:
        return self._data(para.doc)[0]

    def _removals_of(self, para: _Para) -> list[_Removal]:
        return self.pending.setdefault(para.doc, [])

    def _link(self, kept: _Para, start: int, end: int) -> dict[str, Any]:
        """Where the kept original is: its document and span (after this stage's removals)."""
        doc = self.docs[kept.doc]
        link: dict[str, Any] = {"doc": doc.id, "start": start, "end": end}
        if doc.summary is not None:  # as Document.source_span, from the compact map
            pos, off = doc.summary.src_pos, doc.summary.src_off
            at = np.searchsorted(pos, [start, end], side="right") - 1
            link["src_start"], link["src_end"] = start + int(off[at[0]]), end + int(off[at[1]])
            link["_para"] = kept  # shifted to the final coordinates in _plans
        return link

    # ------------------------------------------------------------------ planning the edits
    def _plans(self) -> dict[int, _Plan]:
        """The edits of every run document (doc index -> plan), in final link coordinates."""
        # Per document, the ends of its removed spans (they do not overlap: ascending) and the
        # characters removed before each, for the shift of a link into it (a bisection: a
        # document with thousands of removals made the sums quadratic).
        removed_before: dict[int, tuple[list[int], list[int]]] = {}
        spans_of: dict[int, list[tuple[_Removal, int, int]]] = {}
        for doc_index, removals in sorted(self.pending.items()):
            paras = [self._para(p) for p in self.docs[doc_index].paras]
            para_starts = [p.start for p in paras]  # ascending
            spans = []
            for removal in removals:
                start, end = removal.start, removal.end
                # Paragraphs are non-empty and do not overlap: the last one starting at or
                # before the removal holds it.
                position = bisect_right(para_starts, start) - 1
                para = paras[position]
                assert para.start <= start and end <= para.end, "a removal outside its paragraph"
                if para.removed_whole and (start, end) == (para.start, para.end):
                    start, end = _line_span(paras, position)
                spans.append((removal, start, end))
            spans.sort(key=lambda item: (item[1], item[2]))
            spans_of[doc_index] = spans
            removed_before[doc_index] = (
                [e for _, _, e in spans],
                list(accumulate((e - s for _, s, e in spans), initial=0)),
            )
        plans: dict[int, _Plan] = {}
        for doc_index, spans in spans_of.items():
            plan = plans[doc_index] = _Plan()
            for removal, start, end in spans:
                link = dict(removal.link)
                kept = link.pop("_para", None)
                if kept is not None:
                    ends, removed = removed_before.get(kept.doc, ([], [0]))
                    shift = removed[bisect_right(ends, link["start"])]
                    link["start"] -= shift
                    link["end"] -= shift
                change = Change(
                    start=start,
                    end=end,
                    after="",
                    rule=removal.rule,
                    reason=removal.reason,
                    action="drop",
                    kind="duplicate",
                    evidence=removal.evidence,
                    link=link,
                )
                seam = removal.start - removal.seam_before if removal.seam_before >= 0 else -1
                plan.changes.append((change, seam))
        for doc_index, doc in enumerate(self.docs):
            if doc.duplicate and doc.summary is not None:
                plans[doc_index] = _Plan(
                    duplicate_of=doc.duplicate_of, status_reason=doc.status_reason
                )
        return plans

    # ------------------------------------------------------------------ the index on disk
    def _add_parent(self, parent: _ParentIndex, skip: set[str]) -> None:
        """Documents of the parent version (kept first), but those of the ids in `skip` (this
        run's: `dropped`). Their paragraphs are numbered here, but made objects (`_Para`) only
        when read (`_para`): of a large parent's, few are candidates of a small run's."""
        index = parent.arrays
        para_doc = index["para_doc"]
        kept_docs = np.ones(index["doc_ids"].shape[0], bool)
        segments = index["doc_segment"].tolist()
        first_doc = len(self.docs)
        assert first_doc == 0, "the parent's documents come first (`_parent_doc_rows`)"
        for d, doc_id in enumerate(index["doc_ids"].tolist()):
            if doc_id in skip:
                self.dropped.append(doc_id)
                kept_docs[d] = False
                continue
            self.docs.append(_Doc(id=doc_id, rank=len(self.docs), summary=None, segment=segments[d]))
        self._first_run_doc = len(self.docs)
        self._parent_doc_rows = np.flatnonzero(kept_docs)  # (the index row of each parent document)
        rows = self._parent_rows = np.flatnonzero(kept_docs[para_doc])  # of each parent paragraph here
        # Each kept document's paragraphs, and its characters (as `_doc_chars` counts them).
        counts = np.bincount(para_doc, minlength=kept_docs.shape[0])[kept_docs]
        chars = np.bincount(para_doc, weights=index["para_chars"], minlength=kept_docs.shape[0])[kept_docs]
        bounds = (len(self.paras) + np.concatenate([[0], np.cumsum(counts)])).tolist()
        for number, doc_chars in enumerate(chars.tolist()):
            doc = self.docs[first_doc + number]
            doc.paras = list(range(bounds[number], bounds[number + 1]))
            doc.chars = int(doc_chars)
        self._parent_para_doc = np.repeat(np.arange(first_doc, len(self.docs)), counts).tolist()
        self._parent_para_index = _offsets_in_groups(counts).tolist()
        self._parent_win_spans = np.stack([index["win_start"], index["win_end"]], axis=1).astype(np.int64)
        self._parent_first = len(self.paras)
        self.paras.extend([None] * rows.shape[0])  # type: ignore[list-item]

    def _run_paras_from(self) -> int:
        """The number of the first run paragraph (all before it are the parent's)."""
        return self._first_run_para if self._first_run_para >= 0 else len(self.paras)

    def _run_columns(
        self, *columns: tuple[str, tuple[int, ...], Any], documents: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Arrays of every run document's summary (or of `documents`, their numbers among the
        run's, ascending), each (name, shape of a row, dtype) of `columns` (`cf`, `win_sigs`,
        ...: rows of paragraphs or of windows) joined over the documents: the rows of the run's
        paragraphs (or of their windows) in their numbers' order. The documents' `_Rows` are
        made once for the decision's reads, at the first (once the run's documents are all
        added): 0.2 s on 213,816 short documents."""
        rows = self._rows_of_run()
        return [rows.column(name, shape, dtype, documents=documents) for name, shape, dtype in columns]

    def _run_signatures(self, keys: list[int]) -> np.ndarray:
        """The signatures of run documents `keys` (ascending), a row each (`_Rows.signatures`)."""
        documents = np.array(keys, np.int64) - self._first_run_doc
        return self._rows_of_run().signatures(documents, self.s.num_perm)

    def _rows_of_run(self) -> _Rows:
        """The run documents' `_Rows`, made at the first read (once they are all added)."""
        if self._run_rows is None:
            self._run_rows = _Rows([doc.summary for doc in self.docs[self._first_run_doc :]])
        assert len(self._run_rows.items) == len(self.docs) - self._first_run_doc
        return self._run_rows

    def _para(self, k: int) -> _Para:
        """Paragraph `k`, made when first read: a parent's from its rows of the index, a run
        document's with all of that document's (`_make_run_paras`)."""
        para = self.paras[k]
        if para is None:
            first = self._first_run_para
            if 0 <= first <= k:
                self._make_run_paras(self._run_para_doc[k - first])
                para = self.paras[k]
            else:
                para = self.paras[k] = self._parent_para(k)
        return para

    def _parent_para(self, k: int) -> _Para:
        assert self.parent is not None
        index, j = self.parent.arrays, k - self._parent_first
        r = int(self._parent_rows[j])
        w0, w1 = int(self.parent.win_bounds[r]), int(self.parent.win_bounds[r + 1])
        start = int(index["para_start"][r])
        return _Para(
            doc=self._parent_para_doc[j],
            index=self._parent_para_index[j],
            start=start,
            end=int(index["para_end"][r]),
            text_hash=int(index["para_hash"][r]),
            form=None,
            cf0=0,
            cf1=int(index["para_chars"][r]),
            offset=start,
            windows=self._parent_win_spans[w0:w1],
            text=self.parent.texts[r],
            sig=index["para_sigs"][r],
            window_sigs=index["win_sigs"][w0:w1],
        )

    def _save_index(self, plans: dict[int, _Plan]) -> None:
        """The index artifact of this version (see `_write_index`).

        Only the re-signing of edited documents needs the engine's workers (`parallel`), so
        it runs now; the rest, about a quarter of a second of serial work on 19 MB (the kept
        paragraphs' texts and signatures written column by column), is handed to the writer
        as a deferred artifact that writes itself into the version (`Streamed`), built while
        the next pass runs (`defer_artifact`).
        """
        edited = {
            doc_index: [(change.start, change.end) for change, _ in plan.changes]
            for doc_index, plan in sorted(plans.items())
            if not self.docs[doc_index].duplicate and self.docs[doc_index].summary is not None
        }
        blocks: dict[int, tuple[_IndexBlock, int]] = {}
        parallel = getattr(self.context, "parallel", None)
        if parallel is not None and edited:
            items = list(edited.items())
            size = self._INDEX_CHUNK
            chunks = [items[i : i + size] for i in range(0, len(items), size)]
            for chunk, found in zip(chunks, parallel(self._edited_blocks, chunks), strict=True):
                blocks.update(zip((doc_index for doc_index, _ in chunk), found, strict=True))
        for doc_index, spans in edited.items():
            if doc_index not in blocks:
                blocks[doc_index] = self._edited_block(doc_index, spans)
        fresh = sum(computed for _, computed in blocks.values())
        if fresh:
            self.stats["signatures_computed_after_edits"] = fresh
        # The parent's segments this version's index refers to (see `_write_index`), named in
        # the manifest (`curate verify` checks them).
        rows = sum(
            blocks[doc_index][0].spans.shape[0] if doc_index in edited else doc.summary.dims[1]
            for doc_index, doc in enumerate(self.docs)
            if not doc.duplicate and doc.summary is not None
        )
        segments = self.parent.segments if self.parent is not None else []
        keep = _merge_point([size for _, _, size in segments], rows)
        references = self.context.state.setdefault("references", {})
        for version, sha256, _ in segments[:keep]:
            references[f"{version}/index/{INDEX_NAME}"] = sha256
        defer_artifact(
            self.context.state, INDEX_NAME, Streamed(lambda file: self._write_index(file, edited, blocks, keep))
        )

    def _write_index(
        self,
        file: BinaryIO,
        edited: dict[int, list[tuple[int, int]]],
        blocks: dict[int, tuple[_IndexBlock, int]],
        keep: int,
    ) -> None:
        """This version's index, written into `file`: this run's kept documents, and the parent's
        documents not re-curated, in document id order; or only some of the parent's, with the
        segments that hold the rest named (`base`) and the ids of the documents this version no
        longer holds listed (`gone`).

        The segments: the parent's index is the newest of a list of files, each in the folder
        of the version that wrote it (see `_ParentIndex`). This version's file takes the place
        of the newest of them and refers to the older ones, each larger than all the newer
        ones and what this run adds together (`_merge_point`): so a run writes about as many
        rows as it adds, not the whole corpus again, a corpus of n rows is read from at most
        log2(n) + 1 files, and a row is rewritten about log2(n) times at most. With no parent,
        or one whose index holds no more than this run adds, it is one whole index, as before
        segments.

        Built from per-document blocks of arrays (a run document unchanged by this stage is
        stored straight from its summary, its paragraphs' texts cut from its text only as they
        are written), column by column. The signatures and the texts, nearly all
        of it, go into the file a few thousand paragraphs at a time (`_Npz.columns`, `_Npz.text`):
        the builder holds the integer columns and a chunk, not the index (on the benchmark its
        process peaked at 169 MB, PSS, when it made the file's bytes first, for 35 MB of index),
        and the rows' band hashes (4 bytes a row and band) until it writes the band tables.
        `edited`: the spans this stage removed from each kept document it changed; `blocks`:
        the blocks of those documents, re-signed after the edits, by document; `keep`: how many
        of the parent's segments this one refers to (`_merge_point`).
        """
        rows: list[tuple[str, np.ndarray | None, _IndexBlock | _Summarised]] = []
        parent_docs: list[int] = []
        for doc_index, doc in enumerate(self.docs):
            if doc.duplicate:
                continue
            summary = doc.summary
            if summary is None:
                parent_docs.append(doc_index)
            elif doc_index not in edited:  # unchanged by this stage: as collected
                rows.append((doc.id, summary.sig, summary))
            else:
                rows.append((doc.id, None, blocks[doc_index][0]))
        segments = self.parent.segments if self.parent is not None else []
        for doc_index in parent_docs:  # (its signature as the parent's index holds it)
            doc = self.docs[doc_index]
            if doc.segment >= keep:
                assert self.parent is not None
                sig = self.parent.arrays["doc_sigs"][int(self._parent_doc_rows[doc_index])]
                rows.append((doc.id, sig, self._parent_block(doc)))
        base = [{"version": version, "sha256": sha256} for version, sha256, _ in segments[:keep]]
        gone: list[str] = []
        if keep:  # the ids the older segments may hold that this version does not
            assert self.parent is not None
            written = {doc_id for doc_id, _, _ in rows}
            gone = sorted(set(chain(self.dropped, *(ids.tolist() for ids in self.parent.gone[keep:]))) - written)
        rows.sort(key=lambda row: row[0])
        ordered = _Rows([block for _, _, block in rows])
        perm, wperm = self.s.num_perm, self.s.window_num_perm
        para_counts = ordered.counts()
        win_counts = ordered.column("win_counts", (), np.int64)
        spans = ordered.column("spans", (2,), np.int64)
        cf = ordered.column("cf", (2,), np.int64)
        windows = ordered.column("win_spans", (2,), np.int64)
        # Window spans are stored relative to their paragraph's comparison form.
        win_base = np.repeat(cf[:, 0], win_counts)
        chunks = _chunks(para_counts, _INDEX_CHUNK_ROWS)
        # The band tables of the rows, filled as their signatures are written (`_BandTable`).
        tables = {kind: _BandTable(bands) for kind, bands in _bands_by_kind(self.s).items()}
        # (members in name order, as the index has always had them, then the band tables)
        with _Npz(file) as npz:
            if base:
                npz.array("base", np.array([json.dumps(base, sort_keys=True)]))
            npz.array("doc_ids", np.array([doc_id for doc_id, _, _ in rows], dtype="<U64"))
            npz.columns(
                "doc_sigs",
                (len(rows), perm),
                (
                    tables["doc"].add(
                        _stack(
                            [sig if sig is not None else _min_rows(block.para_sigs, perm) for _, sig, block in rows[a:b]],
                            perm,
                        )
                    )
                    for a, b in chunks
                ),
            )
            if gone:
                npz.array("gone", np.array(gone, dtype="<U64"))
            npz.array("para_chars", (cf[:, 1] - cf[:, 0]).astype(np.int32))
            npz.array("para_doc", np.repeat(np.arange(len(rows), dtype=np.int32), para_counts))
            npz.array("para_end", spans[:, 1])
            npz.array("para_hash", ordered.column("hashes", (), np.uint64))
            npz.columns(
                "para_sigs",
                (spans.shape[0], perm),
                (tables["para"].add(ordered.column("para_sigs", (perm,), np.uint32, a, b)) for a, b in chunks),
            )
            npz.array("para_start", spans[:, 0])
            frames = npz.text(
                PARA_TEXT,
                (ordered.lines(a, b) for a, b in chunks),
                int((spans[:, 1] - spans[:, 0]).sum()) + spans.shape[0],
            )
            npz.array(PARA_TEXT_FRAMES, frames)
            npz.array("params", np.array([json.dumps(_params(self.s), sort_keys=True)]))
            npz.array("win_end", (windows[:, 1] - win_base).astype(np.int32))
            npz.array("win_para", np.repeat(np.arange(spans.shape[0], dtype=np.int32), win_counts))
            npz.columns(
                "win_sigs",
                (windows.shape[0], wperm),
                (tables["win"].add(ordered.column("win_sigs", (wperm,), np.uint32, a, b)) for a, b in chunks),
            )
            npz.array("win_start", (windows[:, 0] - win_base).astype(np.int32))
            named = {"hash": _BAND_TABLE_HASH, **{kind: table.bands for kind, table in tables.items()}}
            npz.array(_BAND_TABLES_MEMBER, np.array([json.dumps(named)]))
            for kind, table in tables.items():
                npz.columns(f"lsh_{kind}", table.shape, table.entries(), np.uint64)

    def _edited_blocks(
        self, items: list[tuple[int, list[tuple[int, int]]]]
    ) -> list[tuple[_IndexBlock, int]]:
        """`_edited_block` over a chunk of documents (the function given to `parallel`)."""
        return [self._edited_block(doc_index, cuts) for doc_index, cuts in items]

    def _edited_block(
        self, doc_index: int, cuts: list[tuple[int, int]]
    ) -> tuple[_IndexBlock, int]:
        """The index block of a run document after its planned removals (`cuts`, in order),
        and how many paragraph signatures were computed for it: pure, per document."""
        summary = self.docs[doc_index].summary
        assert summary is not None
        text = _text_of(summary.text_utf8)
        # The text `apply` will leave: every planned removal dropped.
        pieces, cursor = [], 0
        for start, end in cuts:
            pieces.append(text[cursor:start])
            cursor = end
        pieces.append(text[cursor:])
        text = "".join(pieces)
        form = minhash.comparison_form(text)
        layout = _layout(text, form, self.s.window_chars)
        ((para_sigs, win_sigs, computed),) = _sign_layouts(
            [form], [layout], self.s, self.parent, self._signatures()
        )
        block = _IndexBlock(
            layout.spans, layout.cf, layout.hashes, para_sigs, _slices(text, layout.spans),
            layout.win_counts, layout.windows, win_sigs,
        )  # fmt: skip
        return block, computed

    def _signatures(self) -> _RunSignatures:
        """Signatures of this run's paragraphs by text hash (the first one); the hashes found
        once, before the decision's workers fork (see `_RunSignatures`)."""
        if self._run_hashes is None:
            (hashes,) = self._run_columns(("hashes", (), np.uint64))
            self._run_hashes = _FirstByHash(hashes)
        return _RunSignatures(self._para, self._run_hashes, self._run_paras_from())

    def _parent_block(self, doc: _Doc) -> _IndexBlock:
        """A parent document's paragraphs as stored (windows in each paragraph's own form)."""
        paras = [self._para(p) for p in doc.paras]
        return _IndexBlock(
            spans=np.array([(p.start, p.end) for p in paras], np.int64).reshape(-1, 2),
            cf=np.array([(p.cf0, p.cf1) for p in paras], np.int64).reshape(-1, 2),
            # (hashed again: a row of an index before format 3 holds BLAKE2b's hash, and this
            # file is of format 3; the text is at hand, and XXH3 costs about 1 ns a character)
            hashes=[text_hash(p.text) for p in paras],
            para_sigs=_stack([p.sig for p in paras], self.s.num_perm),
            texts=[p.text for p in paras],
            win_counts=[len(p.windows) for p in paras],
            win_spans=_concat([p.windows for p in paras], 2, np.int64),
            win_sigs=_concat([p.window_sigs for p in paras], self.s.window_num_perm),
        )


# --------------------------------------------------------------------------- helpers
def _merge_point(segments: list[int], rows: int) -> int:
    """How many of the parent index's segments (their paragraph rows, oldest first) a version
    adding `rows` keeps as they are (`_Engine._write_index`): the oldest ones that each hold
    more rows than all those after them and the new ones together. The rest are rewritten into
    the version's own file. So every segment is larger than all the newer ones together: their
    sizes at least double going back, and a corpus of n rows in all is read from at most
    log2(n) + 1 files (runs of equal size merge as a binary counter's digits carry)."""
    after = rows  # the rows after each segment, this run's included
    keep = len(segments)
    for number in range(len(segments) - 1, -1, -1):
        if segments[number] <= after:
            keep = number
        after += segments[number]
    return keep


def _among_first(group: tuple[int, ...], count: int, key: int) -> bool:
    """Whether `key` is one of the first `count` keys of a group (ascending)."""
    at = bisect_left(group, key, 0, count)
    return at < count and group[at] == key


def _as_bytes(data: bytes | np.ndarray) -> bytes:
    return data if isinstance(data, bytes) else data.tobytes()


def _band_groups(
    bands: tuple[tuple[int, int], ...], keys: list[int], sigs: np.ndarray | _Stacked, first_wanted: int = 0
) -> Iterator[list[int]]:
    """The keys whose signatures (`sigs[i]` of `keys[i]`) a MinHashLSH with these bands files
    together (equal values in a band), for every group of two or more, band after band (a
    band's groups are made only when the ones before are taken): what it holds with
    all the rows inserted, without an insert or a query per row. Rows are told apart by a
    64-bit hash of the band's values: a row alone in its slot of a small table of hash bits
    (`np.bincount`) shares its hash with no other row, so only the others are sorted (most
    rows share no band: on the benchmark's 81,772 windows the sorts were half the time).
    Rows with equal hashes are then checked value by value, so that a hash collision never
    puts two rows together.

    A group the band before made too (the same rows) is not given again: copies share every
    band (25 for documents), and the caller keeps each distinct group once, a tuple and a
    dict entry per group given (`bench_shapes.py --shape copies`: `_candidates` 1.7 -> 1.2 s).
    A group of band b is one of band b-1 when each of its rows was in the group of its
    smallest row there, a group of its size.

    Groups of rows before `first_wanted` alone (the parent version's, whose candidates nobody
    asks for) are left out, however many: 568,000 windows of a parent grouped among themselves
    for the few hundred of a small run took a third of a second."""
    key_array = np.array(keys, dtype=np.int64)
    count = key_array.shape[0]
    before: tuple[np.ndarray, np.ndarray] | None = None  # the band before: `_groups_by_row`
    slot_bits = max(10, min(24, count.bit_length() + 3))  # 8 to 16 slots a row
    mask = np.uint64((1 << slot_bits) - 1)
    with np.errstate(over="ignore"):
        for band, hashed in _band_hashes(bands, sigs):
            slots = ((hashed ^ (hashed >> np.uint64(29))) & mask).astype(np.intp)
            crowded = np.flatnonzero(np.bincount(slots, minlength=1 << slot_bits)[slots] > 1)
            if crowded.size == 0:
                before = None
                continue
            order = crowded[np.argsort(hashed[crowded])]  # any order: groups become sets
            hashed = hashed[order]
            heads = np.flatnonzero(np.concatenate([[True], hashed[1:] != hashed[:-1]]))
            sizes = np.diff(np.append(heads, order.shape[0]))
            shared = sizes > 1
            if not shared.any():
                before = None
                continue
            heads, sizes = heads[shared], sizes[shared]
            ends = np.cumsum(sizes)
            # The rows of the groups, group after group (each a run of the sorted order).
            members = order[np.repeat(heads - ends + sizes, sizes) + np.arange(int(ends[-1]))]
            head_rows = np.repeat(order[heads], sizes)
            exact = np.ones(members.shape[0], dtype=bool)
            for values in band:  # (each row as its group's first, value by value)
                exact &= values[members] == values[head_rows]
            if exact.all():
                grouped = _groups_by_row(count, members, ends - sizes, sizes)
                if before is not None:  # each row in its smallest row's group there, of this size
                    label = grouped[0][members]
                    alike = np.logical_and.reduceat(before[0][members] == label, ends - sizes)
                    new = ~(alike & (before[1][label[ends - sizes]] == sizes))
                    members, sizes = members[np.repeat(new, sizes)], sizes[new]
                    ends = np.cumsum(sizes)
                before = grouped
                if first_wanted and sizes.shape[0]:
                    wanted = np.maximum.reduceat(members, ends - sizes) >= first_wanted
                    members, sizes = members[np.repeat(wanted, sizes)], sizes[wanted]
                    ends = np.cumsum(sizes)
                member_keys = key_array[members].tolist()
                yield from (member_keys[g0:g1] for g0, g1 in zip((ends - sizes).tolist(), ends.tolist(), strict=True))
                continue
            before = None  # (groups by value below: not compared with the next band's)
            member_keys = key_array[members].tolist()
            bounds = zip((ends - sizes).tolist(), ends.tolist(), strict=True)
            member_rows = members.tolist()
            for g0, g1 in bounds:  # a hash collision in some group: group by the values
                by_value: dict[bytes, list[int]] = {}
                for row, key in zip(member_rows[g0:g1], member_keys[g0:g1], strict=True):
                    by_value.setdefault(band[:, row].tobytes(), []).append(key)
                yield from (found for found in by_value.values() if len(found) > 1)


class _Stacked:
    """Signatures, the rows of `parts` one under the other, each part a whole array or its
    `rows` (an array of row numbers), never joined whole: read a block of rows at a time
    (`_row_block`). The parent's rows in a decision are rows of its index's arrays (mapped from
    the file): gathered whole, a large parent's were a copy of 150 MB."""

    def __init__(self, parts: list[tuple[np.ndarray, np.ndarray | None]], width: int) -> None:
        self.parts = [(part, rows) for part, rows in parts if (part if rows is None else rows).shape[0]]
        sizes = [(part if rows is None else rows).shape[0] for part, rows in self.parts]
        self.bounds = [0, *accumulate(sizes)]
        self.shape = (self.bounds[-1], width)
        self.dtype = np.result_type(np.uint32, *(part.dtype for part, _ in self.parts))

    def block(self, start: int, end: int) -> np.ndarray:
        """Rows start..end (as `np.concatenate` of the parts would give them)."""
        pieces = []
        for (part, rows), low, high in zip(self.parts, self.bounds, self.bounds[1:], strict=False):
            a, b = max(start, low), min(end, high)
            if a < b:
                pieces.append(part[a - low : b - low] if rows is None else part[rows[a - low : b - low]])
        if not pieces:
            return np.empty((0, self.shape[1]), np.uint32)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def _row_block(sigs: np.ndarray | _Stacked, start: int, end: int) -> np.ndarray:
    """Rows start..end of signatures held either way."""
    return sigs.block(start, end) if isinstance(sigs, _Stacked) else sigs[start:end]


def _band_columns(bands: tuple[tuple[int, int], ...], sigs: np.ndarray | _Stacked) -> Iterator[np.ndarray]:
    """Each band's columns of `sigs` (rows: signatures), as rows of their own: a band's values,
    row after row, end to end. Transposed a block of rows and `_TRANSPOSE_COLUMNS` columns at
    a time (0.06 s for 213,000 signatures of 128 values: each cache line of them read once,
    where cutting each band's few columns out of every row read it again for the next band,
    6 ms a band, and numpy's own transpose took 0.7 s), so that at most those columns are
    held twice."""
    count = sigs.shape[0]
    held, first, last = None, 0, 0  # columns first..last of sigs, transposed
    for start, end in bands:
        if held is None or start < first or end > last:
            first, last = start, max(end, min(sigs.shape[1], start + _TRANSPOSE_COLUMNS))
            held = np.empty((last - first, count), dtype=sigs.dtype)
            for row in range(0, count, _TRANSPOSE_ROWS):
                held[:, row : row + _TRANSPOSE_ROWS] = _row_block(sigs, row, row + _TRANSPOSE_ROWS)[:, first:last].T
        yield held[start - first : end - first]


def _band_hashes(
    bands: tuple[tuple[int, int], ...], sigs: np.ndarray | _Stacked
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each band's columns of `sigs` (`_band_columns`) and a 64-bit polynomial hash of each
    row's values in it: rows equal in a band hash equal (what `_band_groups` sorts and a
    `_BandTable` stores)."""
    with np.errstate(over="ignore"):
        for band in _band_columns(bands, sigs):
            hashed = np.zeros(band.shape[1], dtype=np.uint64)
            for values in band:
                hashed *= _BAND_HASH_BASE
                hashed += values
            yield band, hashed


def _band_hash_rows(bands: tuple[tuple[int, int], ...], sigs: np.ndarray) -> np.ndarray:
    """The hashes `_band_hashes` gives each band of `sigs` (uint32 signature rows), a row of
    them a band (bands x rows, uint64): made row by row by `curate._kernels.band_hashes` where
    built, without the columns `_band_groups` also needs (a `_BandTable` files hashes only)."""
    kernels = minhash._kernels
    if kernels is None or sigs.dtype != np.uint32:
        return np.stack([hashed for _, hashed in _band_hashes(bands, sigs)])
    limits = np.array(bands, dtype=np.int64).reshape(-1)
    return kernels.band_hashes(np.ascontiguousarray(sigs), limits, int(_BAND_HASH_BASE))


class _BandTable:
    """The LSH band hashes of an index file's rows (documents, paragraphs or windows), sorted
    band by band, written into the file beside the signatures (`lsh_<kind>`), so that a later
    run finds the parent's rows that share a band with its own by a search: banding every
    parent row each run cost as much as the run's own decision on a large corpus.

    An entry is a row's hash (32 bits of it) above its row number (32 bits), so one sort of
    a band's entries orders them by hash; a hash names the rows that may share the band's
    values with a run row (equal values hash equal; rows whose hashes alone agree are told
    apart later, value by value, by `_band_groups`)."""

    def __init__(self, bands: tuple[tuple[int, int], ...]) -> None:
        self.bands = bands
        self.parts: list[np.ndarray] = []
        self.rows = 0

    def add(self, sigs: np.ndarray) -> np.ndarray:
        """File the next rows' signatures; returns them (to tap a stream of blocks)."""
        if sigs.shape[0]:
            self.parts.append(_folded(_band_hash_rows(self.bands, sigs)).astype(np.uint32))
            self.rows += sigs.shape[0]
        return sigs

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.bands), self.rows)

    def entries(self) -> Iterator[np.ndarray]:
        """Each band's entries (uint64), in ascending order, a band at a time: the table is
        (bands, rows), and what it was filed from is held as 32-bit hashes until then."""
        if self.rows > 0xFFFFFFFF:
            raise ValueError(f"dedup index: {self.rows} rows, more than a band table numbers")
        kernels = minhash._kernels
        row = np.arange(self.rows, dtype=np.uint64) if kernels is None else None
        for number in range(len(self.bands)):
            hashes = np.concatenate([part[number] for part in self.parts]) if self.parts else np.empty(0, np.uint32)
            if kernels is not None:  # (the same, by a radix sort of the hashes: `band_entries`)
                yield kernels.band_entries(hashes)
                continue
            entries = hashes.astype(np.uint64) << np.uint64(32) | row
            entries.sort()
            yield entries

    @staticmethod
    def rows_sharing(table: np.ndarray, bands: tuple[tuple[int, int], ...], sigs: np.ndarray) -> np.ndarray:
        """The rows of a stored `table` (made for these `bands`) that hash equal to one of
        `sigs` in some band, ascending, without repeats."""
        found = []
        low_bits = np.uint64(0xFFFFFFFF)
        for number, (_, hashed) in enumerate(_band_hashes(bands, sigs)):
            entries = table[number]
            first = minhash.sorted_unique(_folded(hashed)) << np.uint64(32)
            start = np.searchsorted(entries, first, side="left")
            counts = np.searchsorted(entries, first | low_bits, side="right") - start
            found.append(entries[np.repeat(start, counts) + _offsets_in_groups(counts)] & low_bits)
        return minhash.sorted_unique(np.concatenate(found)).astype(np.int64) if found else np.empty(0, np.int64)


def _folded(hashed: np.ndarray) -> np.ndarray:
    """32 bits of 64-bit hashes (both halves mixed), as uint64."""
    return (hashed ^ (hashed >> np.uint64(32))) & np.uint64(0xFFFFFFFF)


def _groups_by_row(
    count: int, members: np.ndarray, starts: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A band's groups (`members`, group after group, from `starts`) by row: each row's group
    named by its smallest row (-1: in none), and the size of the group each smallest row names."""
    smallest = np.minimum.reduceat(members, starts)
    label = np.full(count, -1, dtype=np.int64)
    label[members] = np.repeat(smallest, sizes)
    size = np.zeros(count, dtype=np.int64)
    size[smallest] = sizes
    return label, size


def _band_rows(
    lsh: Any, keys: list[int], sigs: np.ndarray | _Stacked
) -> Iterator[tuple[bytes, int]]:
    """(band key, row key) for every band of every row (`sigs[i]` of `keys[i]`): the key `lsh`
    files the row under in that band (`lsh._H(hashvalues[start:end])`: the band's values,
    big-endian), after the band's number (2 bytes) so that bands do not mix. One numpy pass
    per band."""
    sigs = _row_block(sigs, 0, sigs.shape[0])  # (joined: a shuffle of every band of every row)
    for band, (start, end) in enumerate(lsh.hashranges):
        swapped = np.ascontiguousarray(sigs[:, start:end]).byteswap()
        keyed = np.empty((len(keys), 2 + swapped.itemsize * (end - start)), dtype=np.uint8)
        keyed[:, :2] = np.frombuffer(band.to_bytes(2, "big"), dtype=np.uint8)
        keyed[:, 2:] = swapped.view(np.uint8).reshape(len(keys), -1)
        raw, width = keyed.tobytes(), keyed.shape[1]
        if raw[2:width] != lsh._H(sigs[0][start:end]):  # datasketch files bands otherwise
            raise RuntimeError("dedup: datasketch's MinHashLSH band keys are not as expected")
        yield from zip((raw[i : i + width] for i in range(0, len(raw), width)), keys, strict=True)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a while (as it was, after).

    `decide` builds a few container objects per paragraph and keeps them to the end, none in
    a reference cycle (reference counting frees them); the full collections this allocation
    triggers walk every one of them again, ~10% of `decide` on the benchmark.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _slices(text: str, spans: np.ndarray) -> list[str]:
    """text[start:end] for each (start, end) row of `spans` (one flat list, no nested ones)."""
    bounds = spans.ravel().tolist()
    return [text[bounds[i] : bounds[i + 1]] for i in range(0, len(bounds), 2)]


def _summary_text(text: str) -> bytes:
    """The text as a summary keeps it until `decide`: its UTF-8, as it is.

    Every document's text is kept, and most are read back only when the index is saved. On
    the benchmark's 13.2 MB of news, compressed they were 10.2 MB with LZ4's block format, for
    0.032 s of compression and 0.008 s to read them back (7.4 MB with zlib at level 1, for
    0.27 s): 23% of the text's bytes for 0.04 s of a run (`bench/bench_summary_text.py`).
    """
    return text.encode("utf-8")


def _text_of(data: bytes | np.ndarray) -> str:
    """A summary's text back (`_summary_text`; a record's is a view of it)."""
    return str(data, "utf-8")


def _index_text(index: dict[str, Any]) -> str:
    """The paragraph texts of an index, "\\n"-joined: an LZ4 frame (`_Npz.text`), or, in an
    index written before 2026-12-05, UTF-8 that the npz deflated."""
    if PARA_TEXT in index:
        data, frames = index[PARA_TEXT], index.get(PARA_TEXT_FRAMES)
        if frames is None:
            return lz4.frame.decompress(data).decode("utf-8")
        starts = [0, *frames[:, 0].tolist()]
        return "".join(_frame_text(data, a, b) for a, b in zip(starts, starts[1:], strict=False))
    return bytes(index["para_text"]).decode("utf-8")


def _frame_text(data: bytes, start: int, end: int) -> str:
    """The text of the LZ4 frame at data[start:end] (a frame after the first starts with
    the separator: `_Npz.text`)."""
    return lz4.frame.decompress(data[start:end]).decode("utf-8")


def _block_lines(block: _IndexBlock | _Summarised) -> list[bytes]:
    """The texts of a document's paragraphs in UTF-8, as the index stores them: an
    `_IndexBlock`'s (cut from its document's text, UTF-8, if that is what it holds), or cut
    from a summary's text (what `_Rows.lines` gives, compiled, for many documents; that
    refuses a span outside the text, which slicing here would clip: a summary's spans are
    always inside it)."""
    texts = block.texts if type(block) is _IndexBlock else block.text_utf8
    if isinstance(texts, list):
        return [text.encode("utf-8") for text in texts]
    return [text.encode("utf-8") for text in _slices(_text_of(texts), block.spans)]


def _chunks(counts: list[int], rows: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive runs of items holding about `rows` rows each (`counts`: the
    rows of each item), the last run shorter."""
    bounds, total = [0], 0
    for i, count in enumerate(counts, start=1):
        total += count
        if total >= rows:
            bounds.append(i)
            total = 0
    if bounds[-1] != len(counts):
        bounds.append(len(counts))
    return list(zip(bounds[:-1], bounds[1:], strict=False))


def _min_rows(rows: list[np.ndarray] | np.ndarray, num_perm: int) -> np.ndarray:
    """The element-wise minimum of signature rows: a document's signature from its paragraphs'."""
    if len(rows) == 0:
        return np.full(num_perm, minhash.MAX_HASH, dtype=np.uint32)
    if len(rows) == 1:  # (a document of one paragraph, most short ones: its row, a quarter of the time)
        return np.array(rows[0])
    return np.minimum.reduce(np.asarray(rows), axis=0)


def _stack(rows: list[np.ndarray], width: int) -> np.ndarray:
    """Signatures (each `width` values) as the rows of one (read-only) array (`_joined`: their
    bytes joined, a quarter of `np.concatenate`'s time for 213,000 rows, 0.35 s: it checks and
    converts every row; itself a third of `np.stack`'s, a 2-D view of each row first)."""
    stacked = _joined(rows, (), np.dtype(np.uint32))
    if stacked.shape != (len(rows) * width,):
        raise ValueError(f"dedup: {len(rows)} signatures of {width} values expected, got {stacked.shape}")
    return stacked.reshape(-1, width)


def _joined(parts: list[np.ndarray], shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Arrays of rows of `shape` as one (read-only) array of `dtype`, one after the other: their
    bytes joined where they are all of `dtype` and contiguous (a quarter of `np.concatenate`'s
    time: see `_stack`)."""
    if not parts:
        return np.empty((0, *shape), dtype)
    if all(part.dtype == dtype for part in parts):
        try:
            return np.frombuffer(b"".join(parts), dtype).reshape(-1, *shape)
        except (TypeError, BufferError):  # (a part that is not contiguous)
            pass
    # (each part cast first: numpy joins uint64 with int64 as float64, which rounds hashes)
    return np.concatenate([np.asarray(part).reshape(-1, *shape).astype(dtype, copy=False) for part in parts])


def _offsets_in_groups(sizes: np.ndarray) -> np.ndarray:
    """For consecutive groups of these sizes, each element's offset in its group:
    [2, 3] -> [0, 1, 0, 1, 2]."""
    return np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _lexsort(keys: tuple[np.ndarray, ...]) -> np.ndarray:
    """`np.lexsort(keys)` (int64 keys, the last one first): where the keys' ranges fit in 63
    bits, one stable sort of them packed into one integer, in the same order (`_rank_chunk`'s
    82,000 hits on the benchmark: 2 ms, where `np.lexsort`, a pass per key, took 5)."""
    packed, bits = None, 0
    for key in keys:
        low = int(key.min()) if key.shape[0] else 0
        width = (int(key.max()) - low).bit_length() if key.shape[0] else 0
        if bits + width > 63:
            return np.lexsort(keys)
        shifted = (key - low) << bits
        packed = shifted if packed is None else packed | shifted
        bits += width
    return np.argsort(packed, kind="stable") if packed is not None else np.lexsort(keys)


def _concat(blocks: list[np.ndarray], width: int, dtype: Any = np.uint32) -> np.ndarray:
    """Blocks of rows (k x width) one under the other (signatures; (start, end) pairs as int64);
    the one block that has rows, if only one has, as it is (not copied)."""
    blocks = [block for block in blocks if block.size]
    if not blocks:
        return np.empty((0, width), dtype=dtype)
    joined = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    return np.ascontiguousarray(joined.astype(dtype, copy=False).reshape(-1, width))


def _regions(
    blocks: list[tuple[int, int, int]], max_gap: int, min_block: int
) -> list[tuple[int, int, int, int, int]]:
    """Aligned regions: matching blocks (of at least `min_block`) chained across small gaps."""
    regions: list[list[int]] = []
    for a, b, size in blocks:
        if size < min_block:
            continue
        if regions:
            last = regions[-1]
            if 0 <= a - last[1] <= max_gap and 0 <= b - last[3] <= max_gap:
                last[1], last[3], last[4] = a + size, b + size, last[4] + size
                continue
        regions.append([a, a + size, b, b + size, size])
    return [tuple(r) for r in regions]  # type: ignore[misc]


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """`curate.textutil.sentence_spans(text)` for a line (no newline), with one regex scan."""
    if "\n" in text:
        return sentence_spans(text)
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    if start < len(text) and text[start:].strip():
        spans.append((start, len(text)))
    return spans


def _clause_start(text: str, seam: int, floor: int) -> int:
    """Start of the clause fragment that ends at `seam` (for the splice flag)."""
    pos = seam
    while pos > floor and seam - pos < _SPLICE_CONTEXT and text[pos - 1] not in _CLAUSE_MARKS:
        pos -= 1
    return pos


def _line_span(paras: list[_Para], position: int) -> tuple[int, int]:
    """The span to drop for the whole paragraph `paras[position]`: with the blank lines after it
    (or before, if last)."""
    para = paras[position]
    if position + 1 < len(paras):
        return para.start, paras[position + 1].start
    if position > 0 and not paras[position - 1].removed_whole:
        return paras[position - 1].end, para.end
    return para.start, para.end


_RANK_CHUNK_HITS = 1 << 20  # window hits ranked at once (`_rank_passages`)
# `_find_passages` of a pair too repetitive to align (`minhash.matching_blocks` without fallback)
_UNALIGNED: tuple[Any, ...] = ("unaligned",)


def _rank_passages(
    owner: np.ndarray | list[tuple[int, int]],
    candidates: Iterator[tuple[int, set[int]]],
    budget: int,
) -> dict[int, list[tuple[int, int]]]:
    """For each paragraph, its passage candidates ranked by how many of its windows hit them
    (most first, then in order), the first `budget`: (earlier paragraph, -1) for a window of an
    earlier paragraph, (the paragraph, window) for an earlier window of its own.

    `owner[key]` = (paragraph, window) of a window key; `candidates` = (window key, window keys
    sharing a band with it: `_candidates`), keys ascending (a paragraph's windows are
    consecutive keys).
    The hits are ranked a chunk of paragraphs at a time (about `_RANK_CHUNK_HITS`), so their
    arrays stay bounded however many copies share a window.
    """
    windows = np.asarray(owner, dtype=np.int64).reshape(-1, 2)
    ranked: dict[int, list[tuple[int, int]]] = {}
    keys: list[int] = []
    found: list[set[int]] = []
    hits = 0
    for key, others in candidates:
        if hits >= _RANK_CHUNK_HITS and windows[key, 0] != windows[keys[-1], 0]:
            _rank_chunk(windows, keys, found, budget, ranked)
            keys, found, hits = [], [], 0
        keys.append(key)
        found.append(others)
        hits += len(others)
    if keys:
        _rank_chunk(windows, keys, found, budget, ranked)
    return ranked


def _rank_chunk(
    windows: np.ndarray,
    keys: list[int],
    found: list[set[int]],
    budget: int,
    ranked: dict[int, list[tuple[int, int]]],
) -> None:
    """`_rank_passages` for the paragraphs of `keys` (all their windows among them), into
    `ranked`. Counted and sorted with numpy over all hits at once (about 165,000 on the
    benchmark: a Python loop over them was serial work in the decision)."""
    sizes = [len(others) for others in found]
    src = np.repeat(np.array(keys, dtype=np.int64), sizes)
    dst = np.fromiter(chain.from_iterable(found), dtype=np.int64, count=sum(sizes))
    para, window = windows[src, 0], windows[src, 1]
    other, other_window = windows[dst, 0], windows[dst, 1]
    earlier = other < para
    wanted = earlier | ((other == para) & (other_window < window))
    first = np.where(earlier, other, para)[wanted]  # (other, -1) or (para, other window)
    second = np.where(earlier, -1, other_window)[wanted]
    para = para[wanted]
    if not len(para):
        return
    # Hits per (paragraph, pair): sort, then count runs of equal rows.
    order = _lexsort((second, first, para))
    para, first, second = para[order], first[order], second[order]
    new = np.ones(len(para), dtype=bool)
    new[1:] = (para[1:] != para[:-1]) | (first[1:] != first[:-1]) | (second[1:] != second[:-1])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(para)))
    para, first, second = para[starts], first[starts], second[starts]
    # Rank within each paragraph: most hits first, then the pair in order.
    order = _lexsort((second, first, -counts, para))
    para, first, second = para[order], first[order], second[order]
    # The first `budget` of each paragraph's pairs (its rows are consecutive): of 80,000
    # distinct pairs on the benchmark, a few thousand go on to Python.
    heads = np.flatnonzero(np.concatenate(([True], para[1:] != para[:-1])))
    kept = _offsets_in_groups(np.diff(np.append(heads, len(para)))) < budget
    for k, a, b in zip(para[kept].tolist(), first[kept].tolist(), second[kept].tolist(), strict=True):
        ranked.setdefault(k, []).append((a, b))


class _Npz:
    """An .npz (readable by `numpy.load`) written into a file member by member, with fixed
    timestamps (same index, same bytes). Signatures are uniform random bits and the texts go in
    compressed already: deflate cannot shrink those, only cost time; the integer columns are
    deflated (level 1: ~3x faster than the default 6, ~10% larger)."""

    def __init__(self, file: BinaryIO) -> None:
        self.archive = zipfile.ZipFile(file, "w")

    def __enter__(self) -> _Npz:
        return self

    def __exit__(self, *exc: object) -> None:
        self.archive.close()

    def array(self, name: str, array: np.ndarray) -> None:
        """A whole array, deflated."""
        member = io.BytesIO()
        np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
        self.archive.writestr(self._info(f"{name}.npy", zipfile.ZIP_DEFLATED), member.getvalue(), compresslevel=1)

    def columns(
        self, name: str, shape: tuple[int, int], parts: Iterable[np.ndarray], dtype: Any = np.uint32
    ) -> None:
        """An array of `shape` (of `dtype`) given as consecutive blocks of its rows (or single
        rows), stored (mapped when read: `_npz_arrays`): the same bytes `array` would give the
        whole, never held whole."""
        dtype = np.dtype(dtype)
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        )
        size = dtype.itemsize * shape[0] * shape[1]
        rows = 0
        with self._open(name + ".npy", size) as member:
            member.write(header.getvalue())
            for part in parts:
                if part.ndim == 1:
                    part = part[None, :]
                if part.dtype != dtype or part.shape[1:] != shape[1:]:
                    raise ValueError(f"dedup index: {name}: a block of {part.dtype} {part.shape}, rows of {shape[1]} {dtype} expected")
                if part.size:  # (a view with a zero in its shape cannot be cast)
                    member.write(np.ascontiguousarray(part).data.cast("B"))
                rows += part.shape[0]
        if rows != shape[0]:
            raise ValueError(f"dedup index: {name} has {rows} rows, {shape[0]} expected")

    def text(self, name: str, parts: Iterable[list[bytes]], characters: int) -> np.ndarray:
        """Lines (UTF-8), "\\n"-joined, `_TEXT_FRAME_LINES` of them an LZ4 frame, the frames one after the
        other in a member of their own (not an array: its length is known only once written;
        `characters`: how many they hold, which bounds it). Returns where the frames end,
        (byte, line) a frame, for a reader that decodes only the frames it needs
        (`_SegmentTexts`); a frame after the first starts with its separator. On the benchmark,
        11.5 MB of text: 0.024 s for 8.2 MB, where deflate at level 1 (what the index used
        before) took 0.14 s for 5.7 MB, in the process that builds the index beside the last
        pass, when every core is busy."""
        ends: list[tuple[int, int]] = []
        written = 0
        held: list[bytes] = []
        with self._open(name, 5 * characters + (1 << 16)) as member:  # (LZ4's worst case, and more)
            for lines in chain(parts, [None]):
                if lines is not None:
                    held.extend(lines)
                # (frames of a fixed number of lines, whatever the parts: the same bytes)
                while len(held) >= _TEXT_FRAME_LINES or (lines is None and held):
                    frame_lines, held = held[:_TEXT_FRAME_LINES], held[_TEXT_FRAME_LINES:]
                    text = b"\n".join(frame_lines) if not ends else b"\n" + b"\n".join(frame_lines)
                    frame = lz4.frame.compress(text)
                    member.write(frame)
                    written += len(frame)
                    ends.append((written, (ends[-1][1] if ends else 0) + len(frame_lines)))
        return np.array(ends, np.int64).reshape(-1, 2)

    def _open(self, name: str, size: int) -> Any:
        """A stored member of at most `size` bytes: zip64 only where that may need it (zipfile's
        limit without: 2 GiB - 1), decided by the data alone. Its data starts at a multiple of
        64 bytes in the file (padding in its local header's extra field, as Android's zipalign
        pads; an .npy header is a multiple of 64 bytes long), so that an array mapped from the
        file is aligned: numpy copies an unaligned array whole for a binary search in it."""
        info = self._info(name, zipfile.ZIP_STORED)
        zip64 = size >= _ZIP64_FROM
        data = self.archive.fp.tell() + 30 + len(name.encode()) + (20 if zip64 else 0) + 4  # type: ignore[union-attr]
        padding = -data % _MEMBER_ALIGN
        info.extra = struct.pack("<HH", _ALIGN_EXTRA_ID, padding) + bytes(padding)
        return self.archive.open(info, "w", force_zip64=zip64)

    @staticmethod
    def _info(name: str, compression: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = compression
        info.external_attr = 0o644 << 16
        info.create_system = 3
        return info


_ZIP64_FROM = 1 << 30  # bytes from which a member written as it is made is zip64
_MEMBER_ALIGN = 64  # where a stored member's data starts in the file (`_Npz._open`)
_ALIGN_EXTRA_ID = 0xD935  # the extra field that pads it there (zipalign's id)
