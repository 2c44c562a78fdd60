"""Near-duplicates: repeated passages inside a document, paragraphs and documents across the corpus.

How a decision is made (LSH proposes, exact comparison decides):

1. Every OK document is cut into paragraphs (non-blank lines) and each paragraph into windows
   (sentences; long sentences into pieces of about `window_chars`). Each window gets a MinHash
   signature over character n-grams of the comparison form (curate.minhash); a paragraph's
   signature is the minimum over its windows, a document's over its paragraphs.
2. `datasketch.MinHashLSH` indexes documents, paragraphs and windows. It only *proposes* pairs.
3. Pairs are verified exactly before anything is removed:
   - documents and whole paragraphs: exact Jaccard (or containment of the later copy in the
     earlier one) of their shingle sets;
   - passages: `difflib.SequenceMatcher` aligns the two paragraphs' comparison forms; aligned
     blocks separated by small gaps form a region, which must be similar enough, long enough
     and cover whole sentences (or a whole earlier paragraph). Region ends are snapped to
     sentence boundaries when only a few characters away (a changed first word), otherwise kept
     exact, and a copy that starts or ends mid-sentence gets a `splice` flag at the seam.
4. Who is kept: the copy with the smallest (origin, document id, position) - documents of the
   parent version first, then this run's by stable id. Each later copy is compared only with
   copies that are themselves kept, so a chain of weak collisions (A~B, B~C) never removes C for
   resembling A through B: no clusters by transitive closure.
5. Never removed: paragraphs shorter than `min_chars` comparison characters (headings,
   datelines), and shared phrases inside otherwise different paragraphs (a region must hold
   `passage_min_sentences` complete sentences or a whole earlier paragraph).

Incremental: the index of the version (signatures, paragraph texts and spans, window
signatures) is saved as the artifact `dedup-index.npz`; the next run reads it from the parent
version, deduplicates new documents against it and reuses the signatures of paragraphs whose
text hash is unchanged instead of recomputing them. Size: about 900 bytes per paragraph on
news text (NewsSpider, bench/bench_dedup.py): 512 B paragraph signature (128 x uint32), ~250 B
window signatures (32 x uint32 per sentence window), ~100 B deflated paragraph text (needed to
verify new copies exactly against old paragraphs), ~35 B for document signatures, ~20 B for
spans and text hashes. Signatures are stored uncompressed (random bits), the rest deflated;
the file is byte-identical for identical input (fixed zip timestamps).
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import regex
from datasketch import MinHashLSH

from curate import minhash
from curate.config import setting
from curate.document import DUPLICATE, OK, Change, Document, Flag
from curate.stages.base import Stage, StageSettings
from curate.textutil import CLOSERS, SENTENCE_END, paragraph_spans, sentence_spans

INDEX_NAME = "dedup-index.npz"
INDEX_FORMAT = 1
# Characters that close a clause: a splice flag covers the clause fragment up to the seam.
_CLAUSE_MARKS = set("，。、；：？！,.;:?!…—“”‘’（）()《》【】「」『』 \t\u3000")
_SPLICE_CONTEXT = 30  # at most this many characters of context in a splice flag
# Where sentences end (as in curate.textutil.sentence_spans): an end mark, then closing marks.
_SENTENCE_END = regex.compile(
    f"[{regex.escape(SENTENCE_END)}][{regex.escape(SENTENCE_END + CLOSERS)}]*"
)


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


# --------------------------------------------------------------------------- index records
@dataclass
class _Doc:
    id: str
    rank: int  # order of preference: smaller is kept
    document: Document | None  # None for documents known only from the parent index
    form: minhash.ComparisonForm | None = None
    paras: list[int] = field(default_factory=list)
    sig: np.ndarray | None = None
    ids: np.ndarray | None = None  # sorted unique shingle ids of the whole document
    duplicate: bool = False


@dataclass
class _Para:
    doc: int
    index: int
    start: int  # span in the document text
    end: int
    text_hash: int
    form: minhash.ComparisonForm | None  # the doc's form (run) or the paragraph's own (parent)
    cf0: int  # span in `form`
    cf1: int
    offset: int  # add to form positions to get document positions
    windows: list[tuple[int, int]]  # spans in `form`
    text: str = ""  # the paragraph text (parent paragraphs only; run ones read the document)
    sig: np.ndarray | None = None
    window_sigs: np.ndarray | None = None
    ids: np.ndarray | None = None  # sorted unique shingle ids
    removed_whole: bool = False
    removed: list[tuple[int, int]] = field(default_factory=list)  # removed text spans


@dataclass
class _Removal:
    start: int
    end: int
    rule: str
    reason: str
    link: dict[str, Any]
    evidence: dict[str, Any]
    seam_before: int = -1  # start of a splice flag ending at the removal's start


class NearDuplicates(Stage):
    name: ClassVar[str] = "dedup"
    Settings: ClassVar[type] = DedupSettings

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        documents = list(docs)
        if self.settings.enabled:
            engine = _Engine(self.settings, self.context)
            engine.process(documents)
        yield from documents


# --------------------------------------------------------------------------- the engine
class _Engine:
    """Collects, indexes, decides (deterministically) and applies; one instance per run."""

    def __init__(self, settings: DedupSettings, context: Any) -> None:
        self.s = settings
        self.context = context
        self.docs: list[_Doc] = []
        self.paras: list[_Para] = []
        self.window_owner: list[tuple[int, int]] = []  # (para, window index)
        self.stats = {"paragraphs": 0, "signatures_computed": 0, "signatures_reused": 0}
        self.reuse: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # text hash -> sigs
        self.pending: dict[int, list[_Removal]] = {}  # doc index -> removals decided
        self._sketches: dict[int, Any] = {}
        self.para_indexed: set[int] = set()
        self.window_indexed: set[tuple[int, int]] = set()

    # ------------------------------------------------------------------ main
    def process(self, documents: list[Document]) -> None:
        parent = self._read_parent_index() if self.s.incremental else None
        run_docs = [d for d in documents if d.status == OK]
        run_ids = {d.id for d in run_docs}
        if parent is not None:
            self._add_parent(parent, skip=run_ids)
        order = sorted(range(len(run_docs)), key=lambda i: (run_docs[i].id, i))
        for i in order:
            self._add_run_doc(run_docs[i])
        self._sign_run_paragraphs()
        if self.s.across_documents:
            self._decide_documents()
        self._decide_paragraphs()
        self._apply()
        if self.s.incremental:
            self.context.state.setdefault("artifacts", {})[INDEX_NAME] = self._index_bytes()
        self.context.state["dedup"] = dict(self.stats)

    # ------------------------------------------------------------------ collecting
    def _layout(self, text: str, form: minhash.ComparisonForm, doc_index: int) -> list[_Para]:
        """Paragraphs of a text with their sentence windows (comparison-form spans).

        Windows partition their paragraph: cut at sentence starts, and sentences longer than
        twice `window_chars` cut into equal pieces. Positions are mapped with one vectorised
        searchsorted per document.
        """
        spans = paragraph_spans(text)
        if not spans:
            return []
        bounds = np.searchsorted(form.positions, np.array(spans, dtype=np.int64).ravel())
        sentence_starts = np.array([m.end() for m in _SENTENCE_END.finditer(text)], dtype=np.int64)
        cuts_all = np.searchsorted(form.positions, sentence_starts)
        step = max(1, self.s.window_chars)
        paras = []
        for index, (start, end) in enumerate(spans):
            cf0, cf1 = int(bounds[2 * index]), int(bounds[2 * index + 1])
            lo, hi = np.searchsorted(sentence_starts, [start + 1, end])
            cuts = [cf0, *(int(c) for c in cuts_all[lo:hi] if cf0 < c < cf1), cf1]
            windows: list[tuple[int, int]] = []
            for w0, w1 in zip(cuts, cuts[1:], strict=False):
                if w1 <= w0 and windows:
                    continue
                length = w1 - w0
                if length >= 2 * step:
                    pieces = -(-length // step)
                    edges = [w0 + (length * k) // pieces for k in range(pieces + 1)]
                    windows.extend(zip(edges, edges[1:], strict=False))
                else:
                    windows.append((w0, w1))
            paras.append(
                _Para(
                    doc=doc_index,
                    index=index,
                    start=start,
                    end=end,
                    text_hash=_text_hash(text[start:end]),
                    form=form,
                    cf0=cf0,
                    cf1=cf1,
                    offset=0,
                    windows=windows,
                )
            )
        return paras

    def _add_run_doc(self, document: Document) -> None:
        form = minhash.comparison_form(document.text)
        doc_index = len(self.docs)
        entry = _Doc(id=document.id, rank=doc_index, document=document, form=form)
        self.docs.append(entry)
        for para in self._layout(document.text, form, doc_index):
            entry.paras.append(len(self.paras))
            self.paras.append(para)
        self.stats["paragraphs"] += len(entry.paras)

    def _shingles(self, para: _Para) -> np.ndarray:
        """Sorted unique shingle ids of a paragraph (computed once, for exact verification)."""
        if para.ids is None:
            form = self._form(para)
            ids, _ = minhash.shingle_ids(
                form.codes[para.cf0 : para.cf1],
                np.array([0, para.cf1 - para.cf0]),
                self.s.shingle_size,
            )
            para.ids = np.unique(ids)
        return para.ids

    def _doc_shingles(self, doc: _Doc) -> np.ndarray:
        if doc.ids is None:
            parts = [self._shingles(self.paras[p]) for p in doc.paras]
            doc.ids = np.unique(np.concatenate(parts)) if parts else np.empty(0, np.uint64)
        return doc.ids

    def _form(self, para: _Para) -> minhash.ComparisonForm:
        if para.form is None:  # a parent paragraph: its own text, compared on demand
            para.form = minhash.comparison_form(para.text)
            para.cf1 = len(para.form)
            para.windows = [(max(0, w0), min(w1, para.cf1)) for w0, w1 in para.windows]
        return para.form

    def _text(self, para: _Para) -> str:
        document = self.docs[para.doc].document
        return document.text[para.start : para.end] if document is not None else para.text

    def _sentences(self, para: _Para) -> list[tuple[int, int]]:
        """Sentences of a paragraph in document coordinates, leading whitespace skipped."""
        text = self._text(para)
        spans = []
        for s0, s1 in sentence_spans(text):
            while s0 < s1 and text[s0].isspace():
                s0 += 1
            if s0 < s1:
                spans.append((s0 + para.start, s1 + para.start))
        return spans

    # ------------------------------------------------------------------ signatures
    def _sign_run_paragraphs(self) -> None:
        """Window, paragraph and document signatures of this run, reusing the parent's."""
        todo: list[_Para] = []
        for para in self.paras:
            if self.docs[para.doc].document is None:
                continue
            cached = self.reuse.get(para.text_hash)
            if cached is not None and len(cached[1]) == len(para.windows):
                para.sig, para.window_sigs = cached
                self.stats["signatures_reused"] += 1
            else:
                todo.append(para)
        if todo:
            self._compute_signatures(todo)
        for doc in self.docs:
            if doc.document is not None:
                doc.sig = _min_rows([self.paras[p].sig for p in doc.paras], self.s.num_perm)

    def _compute_signatures(self, paras: list[_Para], counter: str = "signatures_computed") -> None:
        """One vectorised pass over all given paragraphs (shingles never cross paragraphs)."""
        codes = [self._form(p).codes[p.cf0 : p.cf1] for p in paras]
        lengths = np.array([c.shape[0] for c in codes], dtype=np.int64)
        para_bounds = np.concatenate([[0], np.cumsum(lengths)])
        window_bounds = [0]
        first_window = []
        for p, base in zip(paras, para_bounds[:-1], strict=True):
            first_window.append(len(window_bounds) - 1)
            window_bounds.extend(int(base) + w1 - p.cf0 for _, w1 in p.windows)
        ids, starts = minhash.shingle_ids(
            np.concatenate(codes) if codes else np.empty(0, np.uint32),
            para_bounds,
            self.s.shingle_size,
        )
        group_starts = np.searchsorted(
            starts, np.asarray(window_bounds, dtype=np.int64), side="left"
        )
        window_sigs = minhash.signatures(
            minhash.fold32(ids), group_starts, self.s.num_perm, self.s.seed
        )
        first_window.append(window_sigs.shape[0])
        for k, para in enumerate(paras):
            rows = window_sigs[first_window[k] : first_window[k + 1]]
            para.sig = rows.min(axis=0)
            para.window_sigs = np.ascontiguousarray(rows[:, : self.s.window_num_perm])
            self.reuse[para.text_hash] = (para.sig, para.window_sigs)
        self.stats[counter] = self.stats.get(counter, 0) + len(paras)

    def _sketch(self, row: np.ndarray) -> Any:
        """A LeanMinHash view of one signature row for MinHashLSH.insert/query.

        MinHashLSH reads `hashvalues` at once and keeps only band hashes, so one LeanMinHash
        per width is reused (building and validating one per row costs more than the query).
        """
        sketch = self._sketches.get(row.shape[0])
        if sketch is None:
            sketch = self._sketches[row.shape[0]] = minhash.lean(row, self.s.seed)
        else:
            sketch.hashvalues = row
        return sketch

    # ------------------------------------------------------------------ documents
    def _lsh(
        self, threshold: float, num_perm: int, rows: list[tuple[int, np.ndarray]]
    ) -> tuple[MinHashLSH, set[int]]:
        """A MinHashLSH holding those of `rows` (key, signature) that can have a candidate.

        A pair is a MinHashLSH candidate only if some band of their signatures is equal, so
        rows whose every band is unique are left out (found with one numpy pass per band);
        what the index returns for the rest is exactly what it would return with all rows.
        """
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        if len(rows) < 2:
            return lsh, set()
        sigs = np.stack([sig for _, sig in rows])
        colliding = np.zeros(len(rows), dtype=bool)
        with np.errstate(over="ignore"):
            for start, end in lsh.hashranges:
                band = np.zeros(len(rows), dtype=np.uint64)
                for column in range(start, end):
                    band *= np.uint64(0x100000001B3)
                    band += sigs[:, column].astype(np.uint64)
                _, inverse, counts = np.unique(band, return_inverse=True, return_counts=True)
                colliding |= counts[inverse] > 1
        indexed = set()
        for (key, sig), keep in zip(rows, colliding.tolist(), strict=True):
            if keep:
                lsh.insert(key, self._sketch(sig), check_duplication=False)
                indexed.add(key)
        return lsh, indexed

    def _decide_documents(self) -> None:
        rows = [
            (k, doc.sig)
            for k, doc in enumerate(self.docs)
            if doc.sig is not None and self._doc_chars(doc) >= self.s.min_chars
        ]
        lsh, indexed = self._lsh(self.s.candidate_threshold, self.s.num_perm, rows)
        for k, doc in enumerate(self.docs):
            if doc.document is None or k not in indexed:
                continue
            candidates = sorted(c for c in lsh.query(self._sketch(doc.sig)) if c < k)
            for c in candidates:
                kept = self.docs[c]
                if kept.duplicate:
                    continue
                jaccard, contained, _ = minhash.exact_overlap(
                    self._doc_shingles(doc), self._doc_shingles(kept)
                )
                if jaccard >= self.s.document_jaccard and contained >= self.s.document_containment:
                    doc.duplicate = True
                    document = doc.document
                    document.status = DUPLICATE
                    document.duplicate_of = kept.id
                    document.status_reason = (
                        f"dedup.document: near-duplicate of document {kept.id} (exact Jaccard "
                        f"{jaccard:.2f}, {contained:.0%} of its {self.s.shingle_size}-grams in it)"
                    )
                    break

    def _doc_chars(self, doc: _Doc) -> int:
        return sum(self.paras[p].cf1 - self.paras[p].cf0 for p in doc.paras)

    # ------------------------------------------------------------------ paragraphs and passages
    def _eligible(self, para: _Para) -> bool:
        return not self.docs[para.doc].duplicate and para.cf1 - para.cf0 >= self.s.min_chars

    def _decide_paragraphs(self) -> None:
        para_rows, window_rows = [], []
        for k, para in enumerate(self.paras):
            if not self._eligible(para) or para.sig is None:
                continue
            para_rows.append((k, para.sig))
            for w, (w0, w1) in enumerate(para.windows):
                if w1 - w0 >= self.s.window_min_chars:
                    window_rows.append((len(self.window_owner), para.window_sigs[w]))
                    self.window_owner.append((k, w))
        para_lsh, self.para_indexed = self._lsh(
            self.s.candidate_threshold, self.s.num_perm, para_rows
        )
        window_lsh, indexed = self._lsh(
            self.s.window_threshold, self.s.window_num_perm, window_rows
        )
        self.window_indexed = {self.window_owner[key] for key in indexed}
        for k, para in enumerate(self.paras):
            if self.docs[para.doc].document is None or not self._eligible(para):
                continue
            self._decide_paragraph(k, para, para_lsh, window_lsh)

    def _allowed(self, para: _Para, other: _Para) -> bool:
        same = para.doc == other.doc
        return self.s.within_documents if same else self.s.across_documents

    def _decide_paragraph(
        self, k: int, para: _Para, para_lsh: MinHashLSH, window_lsh: MinHashLSH
    ) -> None:
        # 1. The whole paragraph repeats a kept earlier one.
        whole = []
        if k in self.para_indexed:
            whole = sorted(c for c in para_lsh.query(self._sketch(para.sig)) if c < k)
        for c in whole[: self.s.max_candidates]:
            kept = self.paras[c]
            if kept.removed_whole or not self._allowed(para, kept):
                continue
            jaccard, contained, _ = minhash.exact_overlap(
                self._shingles(para), self._shingles(kept)
            )
            if contained >= self.s.paragraph_containment:
                self._remove_whole(para, kept, jaccard, contained)
                return
        # 2. A passage of it repeats (part of) a kept earlier paragraph, or an earlier part of itself.
        hits: dict[tuple[int, int], int] = {}  # (earlier para, split window or -1) -> windows hit
        for w in range(len(para.windows)):
            if (k, w) not in self.window_indexed:
                continue
            for key in window_lsh.query(self._sketch(para.window_sigs[w])):
                other, other_w = self.window_owner[key]
                if other < k:
                    pair = (other, -1)
                elif other == k and other_w < w:
                    pair = (k, other_w)
                else:
                    continue
                hits[pair] = hits.get(pair, 0) + 1
        ranked = sorted(hits, key=lambda pair: (-hits[pair], pair))
        for other, split in ranked[: self.s.max_candidates]:
            kept = self.paras[other]
            if kept.removed_whole or not self._allowed(para, kept):
                continue
            self._find_passages(para, kept, split)

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

    def _find_passages(self, para: _Para, kept: _Para, split: int) -> None:
        """Align `para` with the kept paragraph; remove verified passages of `para`."""
        form_b = self._form(para)
        form_a = self._form(kept)
        if split >= 0:  # the same paragraph: its start up to the window after `split`
            cut = para.windows[split][1]
            a0, a1, b0, b1 = para.cf0, cut, cut, para.cf1
        else:
            a0, a1, b0, b1 = kept.cf0, kept.cf1, para.cf0, para.cf1
        if a1 - a0 < self.s.passage_min_chars or b1 - b0 < self.s.passage_min_chars:
            return
        matcher = difflib.SequenceMatcher(
            None, form_a.string(a0, a1), form_b.string(b0, b1), autojunk=False
        )
        for ra0, ra1, rb0, rb1, matched in _regions(
            matcher.get_matching_blocks(), self.s.max_gap, 4
        ):
            # region offsets are relative to a0 / b0
            if rb1 - rb0 < self.s.passage_min_chars:
                continue
            similarity = matched / max(ra1 - ra0, rb1 - rb0)
            if similarity < self.s.passage_similarity:
                continue
            self._consider_passage(
                para, kept, (a0 + ra0, a0 + ra1), (b0 + rb0, b0 + rb1), similarity
            )

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
        sentences = self._sentences(para)

        def chars_between(x: int, y: int) -> int:
            return form.index_at(y - para.offset) - form.index_at(x - para.offset)

        mid_start = mid_end = False
        took_start = took_end = 0
        for s0, s1 in sentences:
            if s0 <= start < s1:
                if start != s0:
                    took_start = chars_between(s0, start)
                    if took_start <= limit_start:
                        start = s0
                    else:
                        mid_start, took_start = True, 0
                break
        for s0, s1 in sentences:
            if s0 < end <= s1:
                if end != s1:
                    took_end = chars_between(end, s1)
                    if took_end <= limit_end:
                        end = s1
                    else:
                        mid_end, took_end = True, 0
                break
        complete = sum(1 for s0, s1 in sentences if start <= s0 and s1 <= end)
        return start, end, complete, mid_start, mid_end, took_start, took_end

    def _doc_text(self, para: _Para) -> str:
        document = self.docs[para.doc].document
        assert document is not None
        return document.text

    def _removals_of(self, para: _Para) -> list[_Removal]:
        return self.pending.setdefault(para.doc, [])

    def _link(self, kept: _Para, start: int, end: int) -> dict[str, Any]:
        """Where the kept original is: its document and span (after this stage's removals)."""
        doc = self.docs[kept.doc]
        link: dict[str, Any] = {"doc": doc.id, "start": start, "end": end}
        if doc.document is not None:
            link["src_start"], link["src_end"] = doc.document.source_span(start, end)
            link["_para"] = kept  # shifted to the final coordinates in _apply
        return link

    # ------------------------------------------------------------------ applying
    def _apply(self) -> None:
        removed_spans: dict[int, list[tuple[int, int]]] = {}
        plans: dict[int, list[tuple[_Removal, int, int]]] = {}
        for doc_index, removals in sorted(self.pending.items()):
            doc = self.docs[doc_index]
            paras = [self.paras[p] for p in doc.paras]
            text = doc.document.text
            spans = []
            for removal in removals:
                start, end = removal.start, removal.end
                para = next(p for p in paras if p.start <= start and end <= p.end)
                if para.removed_whole and (start, end) == (para.start, para.end):
                    start, end = _line_span(paras, para, text)
                spans.append((removal, start, end))
            spans.sort(key=lambda item: (item[1], item[2]))
            plans[doc_index] = spans
            removed_spans[doc_index] = [(s, e) for _, s, e in spans]
        for doc_index, spans in plans.items():
            document = self.docs[doc_index].document
            changes = []
            for removal, start, end in spans:
                link = dict(removal.link)
                kept = link.pop("_para", None)
                if kept is not None:
                    shift = sum(
                        e - s for s, e in removed_spans.get(kept.doc, []) if e <= link["start"]
                    )
                    link["start"] -= shift
                    link["end"] -= shift
                changes.append(
                    Change(
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
                )
            edits = document.apply("dedup", changes)
            if len(edits) != len(spans):  # every removal is non-empty, so each makes an edit
                raise RuntimeError(
                    f"dedup: {document.source}: {len(spans)} removals made {len(edits)} edits"
                )
            # Edit.start is the removal's position in the final text (earlier edits applied).
            for k, ((removal, _start, _end), edit) in enumerate(zip(spans, edits, strict=True)):
                floor = edits[k - 1].start if k else 0
                if removal.seam_before >= 0:
                    before = max(floor, edit.start - (removal.start - removal.seam_before))
                    self._flag_splice(document, before, edit.start, edit.link)

    @staticmethod
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

    # ------------------------------------------------------------------ the index on disk
    def _params(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "scheme": minhash.SCHEME,
            "shingle_size": self.s.shingle_size,
            "num_perm": self.s.num_perm,
            "window_num_perm": self.s.window_num_perm,
            "seed": self.s.seed,
            "window_chars": self.s.window_chars,
        }

    def _read_parent_index(self) -> dict[str, np.ndarray] | None:
        parent = self.context.parent
        if not isinstance(parent, Path):
            return None
        path = parent / "index" / INDEX_NAME
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            params = json.loads(str(arrays["params"].reshape(-1)[0]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            self._warn(f"{path}: near-duplicate index unreadable, not used: {exc}")
            return None
        if params != self._params():
            self._warn(
                f"{path}: near-duplicate index built with other settings ({params}), not used"
            )
            return None
        return arrays

    def _warn(self, message: str) -> None:
        self.context.state.setdefault("warnings", []).append(message)

    def _add_parent(self, index: dict[str, np.ndarray], skip: set[str]) -> None:
        """Documents of the parent version (kept first), and the signatures to reuse."""
        para_doc = index["para_doc"]
        texts = bytes(index["para_text"]).decode("utf-8").split("\n") if para_doc.shape[0] else []
        win_para = index["win_para"]
        win_bounds = np.searchsorted(win_para, np.arange(len(texts) + 1), side="left")
        doc_map: dict[int, int] = {}
        for d, doc_id in enumerate(index["doc_ids"].tolist()):
            if doc_id in skip:
                continue
            doc_map[d] = len(self.docs)
            self.docs.append(
                _Doc(id=doc_id, rank=len(self.docs), document=None, sig=index["doc_sigs"][d])
            )
        for p, text in enumerate(texts):
            w0, w1 = int(win_bounds[p]), int(win_bounds[p + 1])
            sig = index["para_sigs"][p]
            window_sigs = index["win_sigs"][w0:w1]
            text_hash = int(index["para_hash"][p])
            self.reuse.setdefault(text_hash, (sig, window_sigs))
            d = int(para_doc[p])
            if d not in doc_map:
                continue
            doc = self.docs[doc_map[d]]
            windows = list(
                zip(
                    index["win_start"][w0:w1].tolist(),
                    index["win_end"][w0:w1].tolist(),
                    strict=True,
                )
            )
            start = int(index["para_start"][p])
            para = _Para(
                doc=doc_map[d],
                index=len(doc.paras),
                start=start,
                end=int(index["para_end"][p]),
                text_hash=text_hash,
                form=None,
                cf0=0,
                cf1=int(index["para_chars"][p]),
                offset=start,
                windows=windows,
                text=text,
                sig=sig,
                window_sigs=window_sigs,
            )
            doc.paras.append(len(self.paras))
            self.paras.append(para)

    def _index_bytes(self) -> bytes:
        """This version's index: the parent's documents not re-curated, plus this run's kept ones."""
        rows: list[tuple[str, np.ndarray, list[dict[str, Any]]]] = []
        fresh: list[_Para] = []
        for doc_index, doc in enumerate(self.docs):
            if doc.duplicate:
                continue
            if doc.document is None:
                paras = [self._para_record(self.paras[p]) for p in doc.paras]
                rows.append((doc.id, doc.sig, paras))
                continue
            if not self.pending.get(doc_index):  # unchanged by this stage: as collected
                rows.append((doc.id, doc.sig, [self.paras[p] for p in doc.paras]))
                continue
            text = doc.document.text
            paras = self._layout(text, minhash.comparison_form(text), doc_index)
            for para in paras:
                para.text = text[para.start : para.end]
                cached = self.reuse.get(para.text_hash)
                if cached is not None and len(cached[1]) == len(para.windows):
                    para.sig, para.window_sigs = cached
                else:
                    fresh.append(para)
            rows.append((doc.id, None, paras))  # type: ignore[arg-type]
        if fresh:
            self._compute_signatures(fresh, "signatures_computed_after_edits")
        rows.sort(key=lambda row: row[0])
        doc_ids, doc_sigs = [], []
        para_cols: dict[str, list[Any]] = {
            k: [] for k in ("doc", "start", "end", "hash", "chars", "sig", "text")
        }
        win_cols: dict[str, list[Any]] = {k: [] for k in ("para", "start", "end", "sig")}
        for d, (doc_id, sig, paras) in enumerate(rows):
            doc_ids.append(doc_id)
            records = [p if isinstance(p, dict) else self._para_record(p) for p in paras]
            if sig is None:
                sig = _min_rows([r["sig"] for r in records], self.s.num_perm)
            doc_sigs.append(sig)
            for r in records:
                p_index = len(para_cols["doc"])
                para_cols["doc"].append(d)
                for key in ("start", "end", "hash", "chars", "sig", "text"):
                    para_cols[key].append(r[key])
                for (w0, w1), wsig in zip(r["windows"], r["window_sigs"], strict=True):
                    win_cols["para"].append(p_index)
                    win_cols["start"].append(w0)
                    win_cols["end"].append(w1)
                    win_cols["sig"].append(wsig)
        perm, wperm = self.s.num_perm, self.s.window_num_perm
        arrays = {
            "params": np.array([json.dumps(self._params(), sort_keys=True)]),
            "doc_ids": np.array(doc_ids, dtype="<U64"),
            "doc_sigs": _stack(doc_sigs, perm),
            "para_doc": np.array(para_cols["doc"], dtype=np.int32),
            "para_start": np.array(para_cols["start"], dtype=np.int64),
            "para_end": np.array(para_cols["end"], dtype=np.int64),
            "para_hash": np.array(para_cols["hash"], dtype=np.uint64),
            "para_chars": np.array(para_cols["chars"], dtype=np.int32),
            "para_sigs": _stack(para_cols["sig"], perm),
            "para_text": np.frombuffer(
                "\n".join(para_cols["text"]).encode("utf-8"), dtype=np.uint8
            ),
            "win_para": np.array(win_cols["para"], dtype=np.int32),
            "win_start": np.array(win_cols["start"], dtype=np.int32),
            "win_end": np.array(win_cols["end"], dtype=np.int32),
            "win_sigs": _stack(win_cols["sig"], wperm),
        }
        return _npz_bytes(arrays)

    def _para_record(self, para: _Para) -> dict[str, Any]:
        """A paragraph as stored: windows relative to the paragraph's own comparison form."""
        return {
            "start": para.start,
            "end": para.end,
            "hash": para.text_hash,
            "chars": para.cf1 - para.cf0,
            "sig": para.sig,
            "text": para.text if para.text else self._text(para),
            "windows": [(w0 - para.cf0, w1 - para.cf0) for w0, w1 in para.windows],
            "window_sigs": para.window_sigs,
        }


# --------------------------------------------------------------------------- helpers
def _text_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _min_rows(rows: list[np.ndarray], num_perm: int) -> np.ndarray:
    if not rows:
        return np.full(num_perm, minhash.MAX_HASH, dtype=np.uint32)
    return np.minimum.reduce(np.stack(rows), axis=0)


def _stack(rows: list[np.ndarray], width: int) -> np.ndarray:
    if not rows:
        return np.empty((0, width), dtype=np.uint32)
    return np.ascontiguousarray(np.stack(rows).astype(np.uint32))


def _regions(
    blocks: list[difflib.Match], max_gap: int, min_block: int
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


def _clause_start(text: str, seam: int, floor: int) -> int:
    """Start of the clause fragment that ends at `seam` (for the splice flag)."""
    pos = seam
    while pos > floor and seam - pos < _SPLICE_CONTEXT and text[pos - 1] not in _CLAUSE_MARKS:
        pos -= 1
    return pos


def _line_span(paras: list[_Para], para: _Para, text: str) -> tuple[int, int]:
    """The span to drop for a whole paragraph: with the blank lines after it (or before, if last)."""
    position = paras.index(para)
    if position + 1 < len(paras):
        return para.start, paras[position + 1].start
    if position > 0 and not paras[position - 1].removed_whole:
        return paras[position - 1].end, para.end
    return para.start, para.end


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (readable by numpy.load) with fixed timestamps: same index, same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            # Signatures are uniform random bits: deflate cannot shrink them, only cost time.
            random_bits = name.endswith("_sigs")
            info.compress_type = zipfile.ZIP_STORED if random_bits else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            member = io.BytesIO()
            np.lib.format.write_array(
                member, np.ascontiguousarray(arrays[name]), allow_pickle=False
            )
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()
