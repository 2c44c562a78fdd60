"""Vectorised MinHash signatures over character n-grams of a Chinese comparison form.

Why not `datasketch.MinHash.update` per shingle: a Python call per shingle runs at ~1 MB/s
(see /work/shared/ANCHORS.md). Here every step is a numpy operation over whole arrays:

    text --(t2s, full-width fold, drop punctuation/space)--> code points (uint32)
         --(polynomial n-gram hash, n shifted slices, uint64 wraparound)--> 64-bit shingle ids
         --(multiply-shift 64->32 bits)--> 32-bit shingle hashes
         --(datasketch "affine32" permutations: fmix32, then a*h+b mod 2^32)--> min per group

The last step reproduces datasketch 2.0's ``affine32`` scheme exactly (same permutation
parameters for the same seed, taken from datasketch itself), so a row of our signature matrix
is interchangeable with ``MinHash(seed=..., scheme="affine32", hashfunc=<our 32-bit id>)``
and can be wrapped in a `datasketch.LeanMinHash` for `datasketch.MinHashLSH`.

Shingles never cross a segment boundary (a paragraph); each shingle belongs to the group
(window) in which it starts, so window signatures min-reduce exactly to paragraph signatures,
and paragraph signatures to document signatures (the union of their shingle sets).

Where the per-call cost of numpy dominates (one document's comparison form and shingles, one
candidate pair's 4-gram comparison), `curate._kernels` does the same in one compiled loop;
the numpy code here specifies it, and runs where the optional extension was not built.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import regex

from curate.textutil import code_points, text_of_codes

try:
    from curate import _kernels
except ImportError:  # not built (the extension is optional at install): numpy throughout
    _kernels = None

SCHEME = "affine32"
MAX_HASH = np.uint32(0xFFFFFFFF)  # the value of an empty signature slot (datasketch's too)
# Odd 64-bit constants: the polynomial base of the n-gram hash and the multiply-shift fold.
_POLY_BASE = np.uint64(0x9E3779B97F4A7C15)
_FOLD_MULT = np.uint64(0xD6E8FEB86659FD93)
_KERNEL_CODES = (np.dtype(np.uint32), np.dtype(np.uint16), np.dtype(np.uint8))  # widened losslessly
_CHUNK_ROWS = 8192  # shingles permuted per block: 128 x 8192 x 4 B = 4 MB, stays in cache


# --------------------------------------------------------------------------- t2s fold
@cache
def _t2s_converter():
    """The Traditional->Simplified converter: curate.t2s when present, else OpenCC."""
    try:
        from curate.t2s import convert  # type: ignore[import-not-found]

        return convert
    except ImportError:
        import opencc

        return opencc.OpenCC("t2s").convert


@cache
def _t2s_table() -> np.ndarray:
    """Code point -> code point: each Traditional character folded to its Simplified form.

    Built once from the converter itself, character by character (every Han character on its
    own line, so no phrase spans two), keeping the one-character results. Folding per character
    keeps positions aligned by construction and is as fast as an array lookup; phrase-level
    choices do not matter for comparison, as both copies are folded the same way.
    """
    han = np.flatnonzero(_han_code_points())
    lines = np.full(2 * han.shape[0], ord("\n"), dtype="<u4")  # one character per line
    lines[0::2] = han
    source = text_of_codes(lines[:-1])
    converted = _t2s_converter()(source).split("\n")
    table = np.arange(0x110000, dtype=np.uint32)
    if len(converted) == han.shape[0]:
        for code, folded in zip(han.tolist(), converted, strict=True):
            if len(folded) == 1:
                table[code] = ord(folded)
    table.flags.writeable = False
    return table


# --------------------------------------------------------------------------- comparison form
def _code_point_class(pattern: str) -> np.ndarray:
    """Boolean table over all code points: True where the character matches `pattern`."""
    # The whole range as one str built from a code point array: "".join(map(chr, ...)) would
    # hold 1.1 million str objects at once (~100 MB of peak memory in every process).
    everything = text_of_codes(np.arange(0x110000))
    # regex over the whole range once (~0.1 s); surrogates match no class we use.
    marked = regex.sub(pattern, "\x01", everything)
    return code_points(marked) == 1


@cache
def _kept_code_points() -> np.ndarray:
    """Letters and digits: the characters we compare."""
    return _code_point_class(r"[\p{L}\p{N}]")


@cache
def _han_code_points() -> np.ndarray:
    return _code_point_class(r"\p{Han}")


@dataclass(slots=True)
class ComparisonForm:
    """The text as compared: letters and digits only, folded; with a map back to the text.

    `codes[i]` is the folded code point of comparison character i and `positions[i]` the
    index in the original text of the character it came from (strictly increasing).
    """

    codes: np.ndarray  # uint32
    positions: np.ndarray  # int64
    text_length: int

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def index_at(self, text_pos: int) -> int:
        """The first comparison character at or after text position `text_pos`. (The array's
        method: `np.searchsorted` dispatches to it, three times its time for one value.)"""
        return int(self.positions.searchsorted(text_pos, side="left"))

    def chars_between(self, start: int, end: int) -> int:
        """`index_at(end) - index_at(start)`: the comparison characters from text position
        `start` up to `end`, in one search of both (a passage snapped to its sentences)."""
        first, last = self.positions.searchsorted((start, end)).tolist()
        return last - first

    def text_span(self, start: int, end: int) -> tuple[int, int]:
        """The text span covering comparison characters [start, end) (end > start)."""
        return int(self.positions[start]), int(self.positions[end - 1]) + 1

    def string(self, start: int = 0, end: int | None = None) -> str:
        """The comparison characters as a str (for alignment with difflib)."""
        return text_of_codes(self.codes[start:end])


@cache
def _fold_tables() -> tuple[np.ndarray, np.ndarray]:
    """(folded code point, compared? as a byte 0 or 1) of every code point: the three folds
    composed once.

    Traditional->Simplified, then full-width->half-width, then ASCII upper->lower case, each
    applied to the previous one's result over the whole code point range; a character is
    compared when its folded form is a letter or digit. One lookup per character then does
    what three passes and a class test did per document. Kept on disk between runs
    (`curate.tablecache`: a quarter of a second of serial start-up otherwise).
    """
    from curate import t2s, tablecache

    depends = (
        tablecache.source_digest(__name__),
        tablecache.source_digest(t2s.__name__),
        tablecache.package_version("opencc-python-reimplemented"),
        tablecache.package_version("regex"),
    )
    folded, kept = tablecache.arrays("minhash-fold", _build_fold_tables, depends)
    return folded, kept


def _build_fold_tables() -> tuple[np.ndarray, np.ndarray]:
    folded = _t2s_table().copy()
    folded[(folded >= 0xFF01) & (folded <= 0xFF5E)] -= np.uint32(0xFEE0)
    folded[(folded >= 0x41) & (folded <= 0x5A)] += np.uint32(0x20)
    # (bytes, not bools: the type `_kernels.comparison_form` reads, without a view a document)
    return folded, _kept_code_points()[folded].view(np.uint8)


def comparison_form(text: str) -> ComparisonForm:
    """Traditional->Simplified, full-width->half-width, lower-case ASCII, no punctuation/space."""
    folded, kept = _fold_tables()
    if _kernels is not None:
        codes, positions = _kernels.comparison_form(text, folded, kept)
        return ComparisonForm(codes=codes, positions=positions, text_length=len(text))
    raw = code_points(text)
    positions = np.flatnonzero(kept[raw]).astype(np.int64, copy=False)
    return ComparisonForm(codes=folded[raw[positions]], positions=positions, text_length=len(text))


# --------------------------------------------------------------------------- hashing
def shingle_ids(codes: np.ndarray, bounds: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit ids of all character `size`-grams that lie inside one segment, and their starts.

    `bounds` are the segment boundaries in `codes` (0 = bounds[0] <= ... <= bounds[-1] = len).
    A segment shorter than `size` but not empty contributes one shingle (itself), so short
    paragraphs still have a signature. Computed as sum(code[i+k] * B^(size-1-k)) mod 2^64 with
    `size` vector operations: no per-shingle Python code.
    """
    made = _compiled_shingles(codes, bounds, size, 0)
    if made is not None:
        return made
    bounds = np.ascontiguousarray(bounds, dtype=np.int64)
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    total = codes.shape[0]
    if total == 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    padded = np.concatenate([codes, np.zeros(size, np.uint64)])
    ids = np.zeros(total, np.uint64)
    with np.errstate(over="ignore"):
        for k in range(size):
            ids *= _POLY_BASE
            ids += padded[k : k + total]
    lengths = np.diff(bounds)
    ends = np.repeat(bounds[1:], lengths)  # the end of the segment of each position
    full = np.arange(total, dtype=np.int64) + size <= ends
    # A short non-empty segment gives one shingle: its own characters, padded with zeros
    # instead of the next segment's, and its length mixed in ("ab" != "ab" + NUL).
    short = np.flatnonzero((lengths > 0) & (lengths < size))
    if short.shape[0]:
        seg_start, seg_end = bounds[:-1][short], bounds[1:][short]
        value = np.zeros(short.shape[0], np.uint64)
        with np.errstate(over="ignore"):
            for k in range(size):
                inside = seg_start + k < seg_end
                value *= _POLY_BASE
                value += np.where(inside, padded[np.minimum(seg_start + k, total)], np.uint64(0))
            value ^= (seg_end - seg_start).astype(np.uint64) << np.uint64(59)
        ids[seg_start] = value
        full[seg_start] = True
    keep = np.flatnonzero(full)
    return ids[keep], keep


def shingle_hashes(
    codes: np.ndarray, bounds: np.ndarray, size: int, mixed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(`fold32` of the shingle ids, their starts): what a signature needs of `shingle_ids`,
    made by the kernels without the 64-bit ids in between. With `mixed`, the hashes through
    `_fmix32` too, as `nested_signatures(..., mixed=True)` takes them (in the same pass)."""
    made = _compiled_shingles(codes, bounds, size, int(_FOLD_MULT), mixed)
    if made is not None:
        return made
    ids, starts = shingle_ids(codes, bounds, size)
    hashes = fold32(ids)
    return (_fmix32(hashes) if mixed else hashes), starts


def _compiled_shingles(
    codes: np.ndarray, bounds: np.ndarray, size: int, fold: int, mix: bool = False
) -> tuple[np.ndarray, np.ndarray] | None:
    """`_kernels.shingle_ids` (its ids, or with `fold` their hashes, with `mix` mixed), where
    built and where the codes widen to uint32 losslessly; else None."""
    if _kernels is None or codes.dtype not in _KERNEL_CODES:
        return None
    codes = np.ascontiguousarray(codes, dtype=np.uint32)
    bounds = np.ascontiguousarray(bounds, dtype=np.int64)
    return _kernels.shingle_ids(codes, bounds, size, int(_POLY_BASE), fold, mix)


def fold32(ids: np.ndarray) -> np.ndarray:
    """Multiply-shift from 64-bit shingle ids to the 32-bit hashes MinHash permutes."""
    with np.errstate(over="ignore"):
        return ((ids * _FOLD_MULT) >> np.uint64(32)).astype(np.uint32)


def _fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, exactly as datasketch's affine32 scheme pre-mixes."""
    h = values.astype(np.uint32, copy=True)
    with np.errstate(over="ignore"):
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
    return h


@cache
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the affine32 permutations: the draws datasketch 2.0's `MinHash` makes for the
    same seed (`_init_permutations`: odd a, any b, from `np.random.RandomState(seed)`).

    Drawn here rather than read off a `MinHash`, because importing datasketch imports scipy
    (~0.45 s of every run's serial start-up); tests/test_dedup_minhash.py checks the values
    against datasketch's own for several seeds and sizes. Kept on disk between runs
    (`curate.tablecache`): drawing them imports `numpy.random`, about 6 ms of serial start-up.
    """
    from curate import tablecache

    depends = (
        tablecache.source_digest(__name__),
        f"numpy=={np.__version__}",
        f"num_perm={num_perm}",
        f"seed={seed}",
    )
    a, b = tablecache.arrays("minhash-permutations", lambda: _draw_permutations(num_perm, seed), depends)
    return a, b


def _draw_permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.RandomState(seed)
    a = generator.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = generator.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return np.ascontiguousarray(a, dtype=np.uint32), np.ascontiguousarray(b, dtype=np.uint32)


def signatures(
    hashes32: np.ndarray, group_starts: np.ndarray, num_perm: int = 128, seed: int = 1
) -> np.ndarray:
    """MinHash signatures (groups x num_perm, uint32) of consecutive groups of shingle hashes.

    Group g holds hashes32[group_starts[g]:group_starts[g+1]] (`group_starts` has one more
    entry than there are groups, the last equal to len(hashes32)). Empty groups get MAX_HASH
    everywhere, as an empty datasketch MinHash does. Work is done in blocks of rows so the
    permuted block stays in cache; `np.minimum.reduceat` takes the per-group minimum.
    """
    a, b = permutations(num_perm, seed)
    return _permuted_minima(hashes32, a, b, [(num_perm, group_starts)])[0]


def nested_signatures(
    hashes32: np.ndarray,
    window_starts: np.ndarray,
    window_counts: np.ndarray,
    num_perm: int = 128,
    window_num_perm: int = 32,
    seed: int = 1,
    mixed: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(paragraph signatures, window signatures) where paragraphs are runs of windows.

    Window g holds hashes32[window_starts[g]:window_starts[g+1]] and paragraph p the next
    `window_counts[p]` windows. The same values as `signatures` over the windows, keeping the
    first `window_num_perm` columns for the windows and min-reducing every column over each
    paragraph's windows, at less cost: the first columns of a paragraph are reduced from its
    window rows, the other columns straight over the paragraph's shingles (fewer, longer
    groups than windows), all from one permuted block. `mixed`: the hashes come mixed
    already (`shingle_hashes(..., mixed=True)`).
    """
    a, b = permutations(num_perm, seed)
    window_starts = np.asarray(window_starts, dtype=np.int64)
    window_counts = np.asarray(window_counts, dtype=np.int64)
    head = min(window_num_perm, num_perm)
    first_window = np.concatenate([[0], np.cumsum(window_counts)])
    windows, rest = _permuted_minima(
        hashes32, a, b, [(head, window_starts), (num_perm - head, window_starts[first_window])], mixed
    )
    paragraphs = np.full((window_counts.shape[0], num_perm), MAX_HASH, dtype=np.uint32)
    paragraphs[:, head:] = rest
    with_windows = np.flatnonzero(window_counts > 0)
    if with_windows.shape[0]:
        paragraphs[with_windows, :head] = np.minimum.reduceat(
            windows, first_window[with_windows], axis=0
        )
    return paragraphs, windows


def _permuted_minima(
    hashes32: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    groupings: list[tuple[int, np.ndarray]],
    premixed: bool = False,
) -> list[np.ndarray]:
    """Per-group minima of the permuted hashes, for consecutive runs of permutations.

    `groupings` is [(permutations, group_starts), ...]: the first entry's groups take the
    minimum over the first `permutations` of (a, b), the next entry's over the following
    ones, and so on; each entry's result is groups x permutations (MAX_HASH for empty groups).
    `premixed`: the hashes are `_fmix32`'s already.
    """
    total = hashes32.shape[0]
    mixed = np.ascontiguousarray(hashes32, np.uint32) if premixed else _fmix32(hashes32)
    plans, outs, row = [], [], 0
    for count, group_starts in groupings:
        starts = np.ascontiguousarray(group_starts, dtype=np.int64)
        out = np.full((max(starts.shape[0] - 1, 0), count), MAX_HASH, dtype=np.uint32)
        outs.append(out)
        if _kernels is not None:  # one pass over each group's hashes, no permuted block
            _kernels.permuted_minima(mixed, a[row : row + count], b[row : row + count], starts, out)
        elif count and out.shape[0]:
            nonempty = np.flatnonzero(starts[1:] > starts[:-1])
            plans.append((row, row + count, out, nonempty, starts[nonempty], starts[nonempty + 1]))
        row += count
    if total == 0 or not plans:
        return outs
    # Permutations x shingles: the min-reduction then runs along contiguous memory, which
    # numpy vectorises (reducing along axis 0 of shingles x permutations is ~8x slower).
    # Sized to the input when it is smaller than a block (one document: no 4 MB allocation).
    block = np.empty((row, min(_CHUNK_ROWS, total)), dtype=np.uint32)
    a_col, b_col = a[:row, None], b[:row, None]
    with np.errstate(over="ignore"):
        for c0 in range(0, total, _CHUNK_ROWS):
            c1 = min(c0 + _CHUNK_ROWS, total)
            rows = block[:, : c1 - c0]
            np.multiply(a_col, mixed[None, c0:c1], out=rows)
            rows += b_col
            for r0, r1, out, nonempty, starts, ends in plans:
                if c0 == 0 and c1 == total:  # one block (most documents): every group inside
                    out[nonempty] = np.minimum.reduceat(rows[r0:r1], starts, axis=1).T
                    continue
                first = int(np.searchsorted(ends, c0, side="right"))
                last = int(np.searchsorted(starts, c1, side="left"))
                local = np.maximum(starts[first:last], c0) - c0
                reduced = np.minimum.reduceat(rows[r0:r1], local, axis=1).T
                target = nonempty[first:last]
                out[target] = np.minimum(out[target], reduced)
    return outs


def lean(signature: np.ndarray, seed: int = 1) -> Any:
    """A datasketch LeanMinHash around one signature row (for MinHashLSH)."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=seed, hashvalues=signature, scheme=SCHEME)


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Share of equal slots: the MinHash estimate of the Jaccard similarity."""
    return float(np.count_nonzero(sig_a == sig_b)) / sig_a.shape[0]


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values of a 1-D array, sorted: `np.unique` by one sort.

    Since numpy 2.3 `np.unique` finds the distinct integers with a hash table, which is several
    times slower than a sort when most values are distinct, as shingle ids are (numpy's own
    benchmarks show it slower for such data, numpy/numpy#30496): here 0.66-0.77 s against
    0.04-0.05 s for 720,000 random int64 values (the command is in the README). And its first
    call imports numpy.ma (8 ms, in every process that makes one)."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    first = np.empty(ordered.size, dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


def exact_overlap(ids_a: np.ndarray, ids_b: np.ndarray) -> tuple[float, float, float]:
    """(Jaccard, share of A in B, share of B in A) of two sorted unique shingle-id arrays."""
    if ids_a.shape[0] == 0 or ids_b.shape[0] == 0:
        return 0.0, 0.0, 0.0
    # Both sorted: look A's ids up in B (no merged copy to sort, as intersect1d makes).
    at = ids_b.searchsorted(ids_a)
    np.minimum(at, ids_b.shape[0] - 1, out=at)
    common = int(np.count_nonzero(ids_b[at] == ids_a))
    union = ids_a.shape[0] + ids_b.shape[0] - common
    return common / union, common / ids_a.shape[0], common / ids_b.shape[0]


def text_signature(
    text: str, shingle_size: int = 5, num_perm: int = 128, seed: int = 1
) -> np.ndarray:
    """The signature of one text as a single segment (convenience for tests and tools)."""
    form = comparison_form(text)
    hashes, _ = shingle_hashes(form.codes, np.array([0, len(form)]), shingle_size)
    return signatures(hashes, np.array([0, hashes.shape[0]]), num_perm, seed)[0]


# --------------------------------------------------------------------------- alignment
_ALIGN_MAX_PAIRS = 4_000_000  # equal 4-gram pairs above which `matching_blocks` uses difflib
_PYTHON_RUNS = 48  # up to this many diagonal runs, the block recursion runs in plain Python


def gram_keys(codes: np.ndarray) -> np.ndarray:
    """64-bit keys of the 4-grams of `codes` (key i: codes[i:i+4]; len(codes) - 3 of them).

    Equal 4-grams have equal keys; unequal ones almost never do (and `matching_blocks`
    checks the characters of every key match). Computed once per comparison form and sliced.
    """
    if codes.shape[0] < 4:
        return np.empty(0, np.uint64)
    return shingle_ids(codes, np.array([0, codes.shape[0]]), 4)[0]


def gram_index(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted keys, their positions) of the 4-gram keys of one range: `gram_map` without the
    kernels."""
    order = np.argsort(keys)
    return keys[order], order


# A range's 4-grams as `gram_coverage` and `matching_blocks` look them up (`gram_map`): a table
# of the kernels, or without them `gram_index`'s sorted keys and their positions.
GramMap = np.ndarray | tuple[np.ndarray, np.ndarray]


def gram_map(keys: np.ndarray) -> GramMap:
    """The 4-grams of one range as `gram_coverage` and `matching_blocks` look them up: the
    positions of each distinct key in a hash table (`_kernels.gram_map`), or without the
    kernels `gram_index`.

    Made in one pass, without a sort: most candidate pairs of the near-duplicate stage stop at
    the coverage bound, and an alignment looks up the other range's keys one by one.
    """
    if _kernels is not None:
        return _kernels.gram_map(keys)
    return gram_index(keys)


def gram_coverage(keys: np.ndarray, other: GramMap, max_gap: int | None = None) -> int:
    """How many characters of a range lie in one of its 4-grams whose key the other range has;
    with `max_gap`, only those of the stretch that has the most, stretches being parted by more
    than `max_gap` characters in no such 4-gram.

    `keys`: the range's 4-gram keys in order (a slice of `gram_keys`); `other`: the other
    range's `gram_map`. An upper bound on the characters of the range in `matching_blocks` of
    the two (every block of >= 4 characters is covered by its own 4-grams, and blocks do not
    overlap). With `max_gap`, an upper bound on those of any chain of blocks whose gaps on
    this range's side are at most `max_gap`: every character of the chain in no shared 4-gram
    lies in such a gap, so the chain lies in one stretch (a negative `max_gap` counts as 0:
    chains are then single blocks). One pass over the keys, a lookup each: callers that need
    many matched characters skip the alignment when the bound is already too small.
    """
    n = keys.shape[0]
    if n == 0:
        return 0
    # (n + 3: no gap is that long, one stretch)
    max_gap = n + 3 if max_gap is None else max(max_gap, 0)
    if _kernels is not None:
        return _kernels.gram_coverage(keys, other, max_gap)
    other_keys = other[0]
    if other_keys.shape[0] == 0:
        return 0
    # Array methods rather than the np.* wrappers: this runs once per candidate pair.
    at = other_keys.searchsorted(keys)
    np.minimum(at, other_keys.shape[0] - 1, out=at)
    starts = np.flatnonzero(other_keys[at] == keys)
    if starts.shape[0] == 0:
        return 0
    # The union of [start, start + 4) over sorted distinct starts, per stretch: a stretch ends
    # where the next start lies more than max_gap characters past the end of this one's 4-gram.
    steps = starts[1:] - starts[:-1]
    added = np.concatenate(([0], np.minimum(steps, 4).cumsum()))
    last = np.concatenate((np.flatnonzero(steps - 4 > max_gap), [starts.shape[0] - 1]))
    first = np.concatenate(([0], last[:-1] + 1))
    return int((added[last] - added[first]).max()) + 4


def matching_blocks(
    a: np.ndarray,
    b: np.ndarray,
    min_size: int = 4,
    a_map: GramMap | None = None,
    b_keys: np.ndarray | None = None,
    fallback: bool = True,
) -> list[tuple[int, int, int]] | None:
    """The blocks of at least `min_size` (>= 4) characters of difflib's matching blocks.

    Exactly what ``[m for m in SequenceMatcher(None, sa, sb, autojunk=False)
    .get_matching_blocks() if m.size >= min_size]`` returns for the strings of the code arrays
    `a` and `b`, as (i, j, size) triples in order, without difflib's per-character Python loop:

    - without junk, difflib's `find_longest_match` is the longest common substring inside the
      rectangle (a[alo:ahi] x b[blo:bhi]), the smallest i then the smallest j among equal
      lengths; `get_matching_blocks` takes it, then recurses on the rectangles before and after;
    - every common substring of >= 4 characters lies on a maximal diagonal run of equal 4-grams
      (pairs found by looking b's 4-gram keys up in a's `gram_map`, then checked character by
      character), and
      the longest common substring of a rectangle, when it has >= 4 characters, is the longest
      run clipped to the rectangle;
    - a rectangle whose longest match is shorter than 4 only yields shorter blocks below it, so
      the recursion stops there (those blocks are not returned).
    `a_map` / `b_keys`: `gram_map(gram_keys(a))` and `gram_keys(b)` when the caller has them
    (cached per paragraph). Falls back to difflib itself when there are millions of equal
    4-gram pairs (such as a long run of one character, or a sentence repeated a thousand
    times), where difflib can take minutes; with `fallback=False`, returns None there.
    """
    if min_size < 4:
        raise ValueError("min_size must be >= 4")
    la, lb = int(a.shape[0]), int(b.shape[0])
    if la < 4 or lb < 4:
        return []
    if a_map is None:
        a_map = gram_map(gram_keys(a))
    if b_keys is None:
        b_keys = gram_keys(b)
    if _kernels is not None and a.dtype == b.dtype == np.uint32:
        runs = _kernels.gram_runs(
            np.ascontiguousarray(a), np.ascontiguousarray(b), a_map, b_keys, _ALIGN_MAX_PAIRS
        )
        if runs is None:
            return _difflib_blocks(a, b, min_size) if fallback else None
        if runs[0].shape[0] == 0:
            return []
        return _merge_adjacent(_kernels.recurse_runs(*runs, la, lb), min_size)
    sorted_a, order_a = a_map if _kernels is None else gram_index(gram_keys(a))
    sorted_b, order_b = gram_index(b_keys)
    lo = np.searchsorted(sorted_b, sorted_a, side="left")
    counts = np.searchsorted(sorted_b, sorted_a, side="right") - lo
    total = int(counts.sum())
    if total == 0:
        return []
    if total > _ALIGN_MAX_PAIRS:
        return _difflib_blocks(a, b, min_size) if fallback else None
    hit = np.flatnonzero(counts)
    counts, lo = counts[hit], lo[hit]
    ia = np.repeat(order_a[hit].astype(np.int64), counts)
    first = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    jb = order_b[first + np.arange(total, dtype=np.int64)].astype(np.int64)
    same = a[ia] == b[jb]  # the keys are hashes: keep pairs whose 4 characters are equal
    for t in range(1, 4):
        same &= a[ia + t] == b[jb + t]
    if not same.all():
        ia, jb = ia[same], jb[same]
        if ia.shape[0] == 0:
            return []
    # Runs of consecutive equal 4-grams along each diagonal d = j - i.
    key = (jb - ia + la) * (la + 1) + ia
    key.sort()
    starts = np.flatnonzero(np.concatenate([[True], np.diff(key) != 1]))
    lengths = np.diff(np.append(starts, key.shape[0])) + 3  # characters of each run
    head = key[starts]
    run_i = head % (la + 1)
    run_d = head // (la + 1) - la
    return _recurse_blocks(run_i, run_d, lengths, la, lb, min_size)


def _recurse_blocks(
    run_i: np.ndarray, run_d: np.ndarray, lengths: np.ndarray, la: int, lb: int, min_size: int
) -> list[tuple[int, int, int]]:
    """difflib's get_matching_blocks recursion over maximal diagonal runs (see above)."""
    found: list[tuple[int, int, int]] = []
    if run_i.shape[0] <= _PYTHON_RUNS:
        _recurse_small(run_i.tolist(), run_d.tolist(), lengths.tolist(), la, lb, found)
        return _merge_adjacent(found, min_size)
    queue = [(0, la, 0, lb, run_i, run_d, run_i + lengths)]
    while queue:
        alo, ahi, blo, bhi, ri, rd, re = queue.pop()
        start = np.maximum(np.maximum(ri, alo), blo - rd)
        size = np.minimum(np.minimum(re, ahi), bhi - rd) - start
        best = int(size.max())
        if best < 4:
            continue
        at = np.flatnonzero(size == best)
        if at.shape[0] > 1:  # the smallest i, then the smallest j
            at = at[np.lexsort((start[at] + rd[at], start[at]))]
        i = int(start[at[0]])
        j = i + int(rd[at[0]])
        found.append((i, j, best))
        # Only runs with >= 4 characters here can have >= 4 in a smaller rectangle.
        keep = size >= 4
        ri, rd, re = ri[keep], rd[keep], re[keep]
        if alo < i and blo < j:
            queue.append((alo, i, blo, j, ri, rd, re))
        if i + best < ahi and j + best < bhi:
            queue.append((i + best, ahi, j + best, bhi, ri, rd, re))
    return _merge_adjacent(found, min_size)


def _recurse_small(
    run_i: list[int], run_d: list[int], lengths: list[int], la: int, lb: int, found: list
) -> None:
    """`_recurse_blocks` in plain Python, for a few runs (numpy calls cost more there)."""
    runs = [(i, d, i + n) for i, d, n in zip(run_i, run_d, lengths, strict=True)]
    queue = [(0, la, 0, lb, runs)]
    while queue:
        alo, ahi, blo, bhi, runs = queue.pop()
        best, bi, bj = 3, 0, 0
        kept = []
        for i, d, e in runs:
            start = max(i, alo, blo - d)
            size = min(e, ahi, bhi - d) - start
            if size < 4:
                continue
            kept.append((i, d, e))
            if size > best or (size == best and (start, start + d) < (bi, bj)):
                best, bi, bj = size, start, start + d
        if not kept:
            continue
        found.append((bi, bj, best))
        if alo < bi and blo < bj:
            queue.append((alo, bi, blo, bj, kept))
        if bi + best < ahi and bj + best < bhi:
            queue.append((bi + best, ahi, bj + best, bhi, kept))


def _merge_adjacent(found: list[tuple[int, int, int]], min_size: int) -> list[tuple[int, int, int]]:
    found.sort()
    merged: list[tuple[int, int, int]] = []
    for i, j, k in found:  # adjacent blocks (never produced without junk; as difflib does)
        if merged and merged[-1][0] + merged[-1][2] == i and merged[-1][1] + merged[-1][2] == j:
            pi, pj, pk = merged[-1]
            merged[-1] = (pi, pj, pk + k)
        else:
            merged.append((i, j, k))
    return [block for block in merged if block[2] >= min_size]


def _difflib_blocks(a: np.ndarray, b: np.ndarray, min_size: int) -> list[tuple[int, int, int]]:
    from difflib import SequenceMatcher

    matcher = SequenceMatcher(None, text_of_codes(a), text_of_codes(b), autojunk=False)
    return [(i, j, k) for i, j, k in matcher.get_matching_blocks() if k >= min_size]
