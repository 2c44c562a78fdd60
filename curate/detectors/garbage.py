"""garbage: windows of text that are statistically not Chinese prose.

Each character gets its bigram surprise under a model of clean news (curate.detectors.bigram);
a window of `garbage_window` (16) characters is scored by its mean surprise, in bits per
character. It is flagged when the mean is both
- far above the document's own level: >= the median window of the document +
  `garbage_margin_bits` (8.0), and
- high in absolute terms: >= `garbage_min_bits` (17.0).
Why these numbers (16-character windows, measured with bench/bench_corruption.py's model on the
THUCNews validation file, which the model never saw): clean documents have a median window of
6.4–9.1 bits (5th–95th percentile) and their worst window is 11.5 bits typically, 15.0 at the
99th percentile and 16.6 at the very worst (dense lists of rare brand or fashion words). UTF-8
decoded as GBK scores ~19.6 and GBK decoded as Big5 ~18.8; a shuffle of ordinary characters
only ~11.5, which is why word salad made of common characters is left to the spam detector.
The floor of 17.0 sits above the worst clean document seen (16.6) and below both kinds of
mojibake (~18.8 and ~19.6): at 15.0, 4 of those 1,000 clean documents were flagged for poems,
emoticons and lists of names.
The relative margin keeps documents that are rare-worded throughout (poetry, lists of names)
from being flagged for being themselves; the absolute floor keeps ordinary documents, whose
median is low, from being flagged for one rare proper name.
Windows that are mostly not Han (numbers, English, URLs) are skipped: being "not Chinese" is
not damage. Overlapping flagged windows are merged into one span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.detectors import DetectorContext, TextBatch
from curate.detectors.bigram import (
    BOS,
    LOOKUP_SIZE,
    OTHER,
    SPACE,
    UNK_HAN,
    UNK_HAN_CODES,
    BigramModel,
)
from curate.document import Document, Flag

try:
    from curate._kernels import garbage_may_reach as _compiled_may_reach
    from curate._kernels import garbage_windows as _compiled_windows
except ImportError:  # not built (the extension is optional at install): numpy
    _compiled_windows = _compiled_may_reach = None

MIN_HAN_SHARE = 0.5


@dataclass(frozen=True)
class Windows:
    """The windows of one text: surprise sums, characters counted, whether usable. Their means
    are divided out (`means`) only for the rare text that may flag: most never need them."""

    sums: np.ndarray
    counts: np.ndarray
    usable: np.ndarray
    may_flag: bool  # a usable window reaches garbage_min_bits, below which nothing is flagged

    def means(self) -> np.ndarray:
        """Mean surprise per window, 0 where not usable. Elementwise, so a text's slice gets
        the values the whole batch would."""
        return _means(self.sums, self.counts, self.usable)


def _means(sums: np.ndarray, counts: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Mean surprise per window (0 where not usable): the definition every comparison uses."""
    return np.where(usable, sums / np.maximum(counts, 1), 0.0)


# `_reaching`'s slack: a mean fl(s / c) >= floor > 0 has s >= c * floor * (1 - 2**-53) exactly
# (rounding to nearest moves s / c by at most 2**-53 of it), and c * fl(floor * (1 - 1e-12)) in
# floating point stays below that, so the cheap test keeps every such window. Relative errors
# that small hold for normal numbers only: below `_REACH_FLOOR_MIN` (near subnormals, where
# s / c rounds to fewer bits) the general test decides.
_REACH_SLACK = 1 - 1e-12
_REACH_FLOOR_MIN = 1e-290


def _reaching(sums: np.ndarray, counts: np.ndarray, usable: np.ndarray, floor: float) -> np.ndarray:
    """Positions of the usable windows whose mean (`_means`) is at least `floor`.

    Why not `_means(...) >= floor` over the batch: a division per window for a test that almost
    no window passes. For a positive floor (not a tiny one), a multiplication rules out all but a few windows
    (never one that passes: see `_REACH_SLACK`), and those few get the general test.
    """
    if not floor >= _REACH_FLOOR_MIN:
        return np.flatnonzero(usable & (_means(sums, counts, usable) >= floor))
    maybe = np.flatnonzero(usable & (sums >= counts * (floor * _REACH_SLACK)))
    kept = _means(sums.take(maybe), counts.take(maybe), usable.take(maybe)) >= floor
    return maybe[kept]


def _window_counts(mask: np.ndarray, width: int) -> np.ndarray:
    """How many of each `width` consecutive entries of `mask` are true, as float64.

    Exact integer running sums; int32 (faster to accumulate) is exact too: were the running sum
    to wrap around, the difference of two, modulo 2**32, would still be the window's count.
    """
    running = np.zeros(mask.size + 1, dtype=np.int32)
    np.add.accumulate(mask.view(np.uint8), dtype=np.int32, out=running[1:])
    return (running[width:] - running[:-width]).astype(np.float64)


def windows(batch: TextBatch, ctx: DetectorContext) -> list[Windows | None]:
    """The windows of every text of `batch` (None: shorter than two windows), computed on the
    joined texts at once. A window's values depend only on its own characters, so those of a
    text's windows are the ones it would get alone; windows across two texts are not used.
    A text none of whose windows can flag gets `QUIET` (`detect` reads nothing else of it).
    Where it can, `_may_reach` rules most texts out first, and only the others are scored
    (their surprise too): those of the benchmark's 4,962 long enough, 10 pass, where 3 reach."""
    width = ctx.garbage_window
    lengths = np.diff(batch.starts)
    found: list[Windows | None] = [None] * len(batch.texts)
    long_enough = np.flatnonzero(lengths >= 2 * width)
    if long_enough.size == 0:
        return found
    for i in long_enough.tolist():
        found[i] = QUIET
    may_reach = _may_reach(batch, ctx)
    if may_reach is None:
        chosen, scored, inner = long_enough, batch, long_enough
    else:
        chosen = long_enough[may_reach.take(long_enough)]
        if chosen.size == 0:
            return found
        scored = TextBatch.of([batch.texts[i] for i in chosen.tolist()], ctx.model)
        inner = np.arange(chosen.size)
    sums, counts, usable = _window_scores(scored, ctx.model, width)
    # The threshold is never below garbage_min_bits, so a text with no usable window that high
    # has nothing to flag, and needs no baseline (a median: the costly part per text).
    reaching = _reaching(sums, counts, usable, ctx.garbage_min_bits)
    starts = scored.starts[inner]
    stops = scored.starts[inner + 1] - width + 1
    may_flag = np.searchsorted(reaching, stops) > np.searchsorted(reaching, starts)
    for i, start, stop in zip(
        chosen[may_flag].tolist(), starts[may_flag].tolist(), stops[may_flag].tolist(), strict=True
    ):
        found[i] = Windows(sums[start:stop], counts[start:stop], usable[start:stop], True)
    return found


def _may_reach(batch: TextBatch, ctx: DetectorContext) -> np.ndarray | None:
    """Per text of `batch`: whether a usable window of it may reach garbage_min_bits, told
    without the surprise (a probe of the pair table a character, most of the detector's
    work); None where this cannot be told (then every text is scored).

    Why it misses none: a character's surprise is its pair's stored bits or, unstored,
    float32(backoff + unigram), and the model says that the latter is never below the former
    (`BigramModel.backoff_bounds_stored`), so a window's sum of those bounds is at least its
    sum of surprise. Both sums are exact (`BigramModel.exact_sum_terms`; the same kind of
    values), and a mean that reaches the floor has a sum of at least its count times the floor
    less `_REACH_SLACK` (see there), which is the test made here."""
    model, width, floor = ctx.model, ctx.garbage_window, ctx.garbage_min_bits
    if (
        _compiled_may_reach is None
        or _compiled_windows is None  # (the windows then come from numpy's convolution)
        or width > model.exact_sum_terms
        or not model.backoff_bounds_stored
        or not floor >= _REACH_FLOOR_MIN
    ):
        return None
    return _compiled_may_reach(*_may_reach_arguments(batch, model, width, floor)).view(np.bool_)


def _may_reach_arguments(batch: TextBatch, model: BigramModel, width: int, floor: float) -> tuple:
    """The arguments of the compiled `_may_reach` (and of its numpy twin). The code points,
    not the symbol ids: the loop looks them up as it goes (no batch's ids are made then)."""
    return (
        np.ascontiguousarray(batch.codes, dtype=np.uint32),
        np.ascontiguousarray(batch.starts, dtype=np.int64),
        np.ascontiguousarray(model.lookup, dtype=np.uint32),
        LOOKUP_SIZE,
        *UNK_HAN_CODES,
        UNK_HAN,
        OTHER,
        np.ascontiguousarray(model.han_symbols, dtype=np.bool_).view(np.uint8),
        SPACE,
        np.ascontiguousarray(model.backoff_bits),  # (float32: `backoff_bounds_stored` says so)
        np.ascontiguousarray(model.unigram_bits),
        BOS,
        width,
        width * 0.75,
        width * MIN_HAN_SHARE,
        floor * _REACH_SLACK,
    )


def _may_reach_numpy(
    codes: np.ndarray,
    starts: np.ndarray,
    lookup: np.ndarray,
    inside: int,
    unk_han_first: int,
    unk_han_last: int,
    unk_han: int,
    other: int,
    han_symbols: np.ndarray,
    space: int,
    backoff_bits: np.ndarray,
    unigram_bits: np.ndarray,
    bos: int,
    width: int,
    min_kept: float,
    min_han: float,
    floor: float,
) -> np.ndarray:
    """The compiled `_may_reach`'s specification: per text, whether a usable window of it
    (`_window_scores_numpy`, over each character's bound in place of its surprise) sums to
    `floor` times its count or more (uint8). Symbols as `BigramModel.ids_of_codes` gives them."""
    ids = np.full(codes.shape, other, dtype=np.uint32)
    known = codes < inside
    ids[known] = lookup.take(codes[known])
    ids[~known & (codes >= unk_han_first) & (codes <= unk_han_last)] = unk_han
    before = np.empty_like(ids)
    before[1:] = ids[:-1]
    before[starts[:-1][starts[:-1] < ids.size]] = bos
    bounds = backoff_bits.take(before) + unigram_bits.take(ids)
    sums, counts, usable = _scores_of(bounds, ids, starts, han_symbols.view(np.bool_), space, width, min_kept, min_han)
    passing = np.flatnonzero(usable & (sums >= counts * floor))
    last_windows = np.maximum(starts[1:] - width + 1, starts[:-1])
    return (np.searchsorted(passing, last_windows) > np.searchsorted(passing, starts[:-1])).astype(np.uint8)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


# What `windows` gives a text that cannot flag: one object for all of them (its arrays read-only).
QUIET = Windows(*(_read_only(a) for a in (np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))), False)


def _window_scores(batch: TextBatch, model: BigramModel, width: int) -> tuple[np.ndarray, ...]:
    """(sums, counts, usable) of every window of `width` characters of the joined texts
    (`_window_scores_numpy`), in one compiled loop where its running sums are exact
    (`BigramModel.exact_sum_terms`: then numpy's sums are exact too, and the same)."""
    if _compiled_windows is None or width > model.exact_sum_terms:
        return _window_scores_numpy(batch, model, width)
    return _compiled_windows(
        batch.surprise,
        np.ascontiguousarray(batch.ids, dtype=np.uint32),
        np.ascontiguousarray(model.han_symbols, dtype=np.bool_).view(np.uint8),
        SPACE,
        np.ascontiguousarray(batch.starts, dtype=np.int64),
        width,
        width * 0.75,
        width * MIN_HAN_SHARE,
    )


def _window_scores_numpy(batch: TextBatch, model: BigramModel, width: int) -> tuple[np.ndarray, ...]:
    """Per window of `width` characters of the joined texts: the sum of the surprise of the
    characters it keeps, how many it keeps, and whether it is usable (at least three quarters
    kept, at least `MIN_HAN_SHARE` Han). The specification of the compiled loop, and its
    fallback."""
    return _scores_of(
        batch.surprise, batch.ids, batch.starts, model.han_symbols, SPACE, width, width * 0.75, width * MIN_HAN_SHARE
    )


def _scores_of(
    values: np.ndarray,
    ids: np.ndarray,
    starts: np.ndarray,
    han_symbols: np.ndarray,
    space: int,
    width: int,
    min_kept: float,
    min_han: float,
) -> tuple[np.ndarray, ...]:
    """`_window_scores_numpy` with each character's `values` in place of its surprise. No
    window in texts shorter than one (numpy's convolution would swap its arguments)."""
    if ids.size < width:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool)
    is_han = han_symbols.take(ids)
    # A line break starts a fresh context: neither it nor the character after it (in the same
    # text) is evidence for or against; their surprise is left out of the windows.
    breaks = ids == space
    skipped = breaks.copy()
    skipped[1:] |= breaks[:-1]
    lengths = np.diff(starts)
    firsts = starts[:-1][lengths > 0]
    skipped[firsts] = breaks[firsts]
    filled = values.astype(np.float64)
    np.copyto(filled, 0.0, where=skipped)
    sums = np.convolve(filled, np.ones(width), "valid")
    # Counts per window: exact integer running sums (the same values the float convolution gave).
    counts = _window_counts(~skipped, width)
    han = _window_counts(is_han, width)
    usable = (counts >= min_kept) & (han >= min_han)
    return sums, counts, usable


def _median(values: np.ndarray) -> float:
    """`np.median` of a 1-D float array: the middle value, or the mean of the two middle ones
    (NaN if any is NaN), added up as np.median's mean adds them, from 0.0 and in the array's
    type (so its sign too: -0.0 becomes 0.0, a negative subnormal halved -0.0). np.median
    imports numpy.ma on its first call: 8 ms of every run's start, on one core, once it was
    imported there before the workers fork."""
    count = values.shape[0]
    if count == 0 or np.isnan(values).any():
        return float("nan")
    half = count // 2
    if count % 2:
        return float(0.0 + np.partition(values, half)[half])
    middle = np.partition(values, (half - 1, half))
    return float((0.0 + middle[half - 1] + middle[half]) / 2)


def detect(doc: Document, ctx: DetectorContext) -> list[Flag]:
    text = doc.text
    width = ctx.garbage_window
    if len(text) < 2 * width:
        return []
    found: Windows = ctx.derived("garbage", text, windows)
    if not found.may_flag:
        return []
    means, usable = found.means(), found.usable
    baseline = _median(means[usable])
    threshold = max(ctx.garbage_min_bits, baseline + ctx.garbage_margin_bits)
    hot = np.flatnonzero(usable & (means >= threshold))
    if hot.size == 0:
        return []
    spans: list[list[int]] = []
    for i in hot.tolist():
        if spans and i <= spans[-1][1]:
            spans[-1][1] = i + width
        else:
            spans.append([i, i + width])
    flags = []
    for start, end in spans:
        peak = float(means[start : end - width + 1].max())
        flags.append(
            Flag(
                kind="garbage",
                start=start,
                end=end,
                text=text[start:end],
                reason=f"reads as noise: {peak:.1f} bits/char against the document's {baseline:.1f}",
                severity="warning",
                detector="garbage.bigram",
                evidence={
                    "peak_bits": round(peak, 2),
                    "document_bits": round(baseline, 2),
                    "threshold_bits": round(threshold, 2),
                    "window": width,
                },
            )
        )
    return flags
