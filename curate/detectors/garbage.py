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

import numpy as np

from curate.detectors import DetectorContext
from curate.detectors.bigram import SPACE
from curate.document import Document, Flag

MIN_HAN_SHARE = 0.5


def _window_counts(mask: np.ndarray, width: int) -> np.ndarray:
    """How many of each `width` consecutive entries of `mask` are true, as float64."""
    running = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
    return (running[width:] - running[:-width]).astype(np.float64)


def detect(doc: Document, ctx: DetectorContext) -> list[Flag]:
    text = doc.text
    width = ctx.garbage_window
    if len(text) < 2 * width:
        return []
    bits = ctx.surprise(text).astype(np.float64)
    ids = ctx.ids(text)
    is_han = ctx.model.han_symbols[ids]
    # A line break starts a fresh context: it is neither evidence for nor against.
    bits[ids == SPACE] = np.nan
    starts_after_space = np.concatenate(([False], ids[:-1] == SPACE))
    bits[starts_after_space] = np.nan
    valid = ~np.isnan(bits)
    filled = np.where(valid, bits, 0.0)
    sums = np.convolve(filled, np.ones(width), "valid")
    # Counts per window: exact integer running sums (the same values the float convolution gave).
    counts = _window_counts(valid, width)
    han = _window_counts(is_han, width)
    usable = (counts >= width * 0.75) & (han >= width * MIN_HAN_SHARE)
    if not usable.any():
        return []
    means = np.where(usable, sums / np.maximum(counts, 1), 0.0)
    baseline = float(np.median(means[usable]))
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
