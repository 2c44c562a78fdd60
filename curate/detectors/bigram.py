"""A character bigram model of clean Chinese news prose, for measuring how well text "reads".

Why a bigram model: text that is not prose (byte-shifted mojibake, keyword salad, spam phrases
spliced into a sentence) is made of character pairs that clean news almost never contains, so the
per-character surprise -log2 P(c_i | c_{i-1}) rises sharply on it. A bigram model is enough for
that, runs fully vectorised in numpy, and its table is small enough to ship.

Symbols: every Han character or punctuation mark in the table is its own symbol; everything else
is folded into a class (unknown Han, Latin letters, digits, whitespace, other), and half-width
punctuation is folded to its full-width twin, so the model does not care whether the punctuation
stage ran. Smoothing is Witten-Bell interpolation with a unigram distribution (add-one), so an
unseen pair costs about log2 of the vocabulary size plus the follower's rarity.

The table (`curate/data/bigram_zh.tsv.gz`) is built by `bench/build_bigram_table.py`; its
docstring names the source text.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

# Fixed class symbols (ids 0..5); table symbols start at FIRST_SYMBOL.
CLASS_SYMBOLS = ("<han>", "<lat>", "<dig>", "<sp>", "<oth>", "<bos>")
UNK_HAN, LATIN, DIGIT, SPACE, OTHER, BOS = range(6)
FIRST_SYMBOL = len(CLASS_SYMBOLS)
LOOKUP_SIZE = 0x30000  # covers the BMP and CJK Extension B..; higher code points are classed

# Half-width punctuation folded to full-width before lookup (Chinese text uses either).
HALF_TO_FULL = {",": "，", ";": "；", ":": "：", "?": "？", "!": "！", "(": "（", ")": "）"}

DEFAULT_TABLE = Path(__file__).resolve().parent.parent / "data" / "bigram_zh.tsv.gz"


def base_class_of(codepoint: int) -> int:
    """The class of a code point that is not in the table."""
    if (
        0x4E00 <= codepoint <= 0x9FFF
        or 0x3400 <= codepoint <= 0x4DBF
        or 0xF900 <= codepoint <= 0xFAFF
        or 0x20000 <= codepoint <= 0x3FFFF
    ):
        return UNK_HAN
    ch = chr(codepoint)
    if ch.isspace():
        return SPACE
    if ch.isdigit():
        return DIGIT
    if ch.isalpha():
        return LATIN
    return OTHER


@cache
def _base_lookup() -> np.ndarray:
    """Code point -> class id for the whole lookup range (built once, ~0.2 s)."""
    table = np.full(LOOKUP_SIZE, OTHER, dtype=np.int32)
    table[0x4E00:0xA000] = UNK_HAN
    table[0x3400:0x4DC0] = UNK_HAN
    table[0xF900:0xFB00] = UNK_HAN
    table[0x20000:0x30000] = UNK_HAN
    for lo, hi in ((0, 0x3400), (0x4DC0, 0x4E00), (0xA000, 0xF900), (0xFB00, 0x20000)):
        for cp in range(lo, hi):
            if 0xD800 <= cp <= 0xDFFF:
                continue
            ch = chr(cp)
            if ch.isspace():
                table[cp] = SPACE
            elif ch.isdigit():
                table[cp] = DIGIT
            elif ch.isalpha():
                table[cp] = LATIN
    return table


def symbol_of_char(ch: str) -> str:
    """The table symbol a character is counted under (used by the table builder too)."""
    ch = HALF_TO_FULL.get(ch, ch)
    cls = base_class_of(ord(ch))
    if cls in (UNK_HAN, OTHER):
        return ch  # a candidate symbol of its own
    return CLASS_SYMBOLS[cls]


@dataclass
class BigramModel:
    """Surprise (bits) of each character given the one before it."""

    symbols: list[str]
    lookup: np.ndarray  # code point -> symbol id
    slot_keys: np.ndarray  # open-addressing hash table of the stored pairs: key a * n + b, or -1
    slot_bits: np.ndarray  # surprise of the pair in each slot
    max_probe: int  # longest probe sequence in the table
    backoff_bits: np.ndarray  # -log2(1 - lambda_a)
    unigram_bits: np.ndarray  # -log2 P1(b)
    han_symbols: np.ndarray  # [id] -> whether the symbol is a Han character (or unknown Han)

    @classmethod
    def from_counts(
        cls, unigrams: dict[str, int], bigrams: dict[tuple[str, str], int]
    ) -> BigramModel:
        """Build the model from symbol counts (Witten-Bell interpolation, add-one unigram)."""
        symbols = list(CLASS_SYMBOLS) + sorted(s for s in unigrams if s not in CLASS_SYMBOLS)
        ids = {s: i for i, s in enumerate(symbols)}
        n = len(symbols)
        uni = np.ones(n, dtype=np.float64)
        for s, c in unigrams.items():
            uni[ids[s]] += c
        p1 = uni / uni.sum()
        unigram_bits = -np.log2(p1)
        follow_count = np.zeros(n)  # c(a) as a history
        follow_types = np.zeros(n)  # T(a): distinct followers
        keys, counts = [], []
        for (a, b), c in bigrams.items():
            ia, ib = ids.get(a), ids.get(b)
            if ia is None or ib is None:
                continue
            follow_count[ia] += c
            follow_types[ia] += 1
            keys.append(ia * n + ib)
            counts.append(c)
        key_arr = np.array(keys, dtype=np.int64)
        count_arr = np.array(counts, dtype=np.float64)
        order = np.argsort(key_arr, kind="stable")
        key_arr, count_arr = key_arr[order], count_arr[order]
        denom = follow_count + follow_types
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = np.where(denom > 0, follow_count / np.maximum(denom, 1), 0.0)
        hist = key_arr // n
        foll = key_arr % n
        p_pair = (
            lam[hist] * count_arr / np.maximum(follow_count[hist], 1) + (1 - lam[hist]) * p1[foll]
        )
        pair_bits = (-np.log2(p_pair)).astype(np.float32)
        slot_keys, slot_bits, max_probe = _hash_table(key_arr, pair_bits)
        backoff_bits = -np.log2(np.maximum(1 - lam, 1e-12))
        lookup = _base_lookup().copy()
        for s, i in ids.items():
            if i >= FIRST_SYMBOL and len(s) == 1 and ord(s) < LOOKUP_SIZE:
                lookup[ord(s)] = i
        for half, full in HALF_TO_FULL.items():
            if full in ids:
                lookup[ord(half)] = ids[full]
        return cls(
            symbols=symbols,
            lookup=lookup,
            slot_keys=slot_keys,
            slot_bits=slot_bits,
            max_probe=max_probe,
            backoff_bits=backoff_bits.astype(np.float32),
            unigram_bits=unigram_bits.astype(np.float32),
            han_symbols=np.array(
                [
                    i == UNK_HAN
                    or (i >= FIRST_SYMBOL and base_class_of(ord(s[0])) == UNK_HAN and len(s) == 1)
                    for i, s in enumerate(symbols)
                ]
            ),
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> BigramModel:
        """Load a table written by `bench/build_bigram_table.py` (default: the shipped one)."""
        data = Path(path or DEFAULT_TABLE).read_bytes()
        unigrams: dict[str, int] = {}
        bigrams: dict[tuple[str, str], int] = {}
        for line in gzip.decompress(data).decode("utf-8").splitlines():
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            if parts[0] == "U":
                unigrams[_unescape(parts[1])] = int(parts[2])
            elif parts[0] == "B":
                bigrams[(_unescape(parts[1]), _unescape(parts[2]))] = int(parts[3])
        return cls.from_counts(unigrams, bigrams)

    def ids(self, text: str) -> np.ndarray:
        """Symbol id of every character of `text`."""
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        if cps.size == 0 or int(cps.max()) < LOOKUP_SIZE:  # the usual case: one lookup
            return self.lookup[cps].astype(np.int64)
        cps = cps.astype(np.int64)
        out = np.full(cps.shape, OTHER, dtype=np.int64)
        inside = cps < LOOKUP_SIZE
        out[inside] = self.lookup[cps[inside]]
        out[~inside & (cps >= 0x20000) & (cps <= 0x3FFFF)] = UNK_HAN
        return out

    def surprise(self, text: str, ids: np.ndarray | None = None) -> np.ndarray:
        """Bits of surprise of each character given the previous one (index 0 after <bos>).

        `ids` may pass `self.ids(text)` when the caller has it already.
        """
        if ids is None:
            ids = self.ids(text)
        if ids.size == 0:
            return np.zeros(0, dtype=np.float32)
        prev = np.concatenate(([BOS], ids[:-1]))
        keys = prev * len(self.symbols) + ids
        bits = (self.backoff_bits[prev] + self.unigram_bits[ids]).astype(np.float32)
        mask = len(self.slot_keys) - 1
        slots = _slot(keys, mask)
        pending = np.arange(keys.size)
        for _ in range(self.max_probe + 1):
            stored = self.slot_keys[slots]
            hit = stored == keys[pending]
            bits[pending[hit]] = self.slot_bits[slots[hit]]
            keep = ~hit & (stored != -1)
            pending, slots = pending[keep], (slots[keep] + 1) & mask
            if pending.size == 0:
                break
        return bits


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _slot(keys: np.ndarray, mask: int) -> np.ndarray:
    """Home slot of each key (Fibonacci hashing; the multiplication wraps modulo 2**64)."""
    with np.errstate(over="ignore"):
        mixed = keys.astype(np.uint64) * _GOLDEN
    return (mixed >> np.uint64(64 - int(mask).bit_length())).astype(np.int64)


def _hash_table(keys: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """An open-addressing table (linear probing, load <= 1/3): ~1.2 probes per lookup, where a
    binary search of the sorted keys needs ~17 scattered reads. Built vectorised: each round,
    every unplaced key tries its current slot; of several keys wanting one free slot the
    earliest wins, the others move on (deterministic for a given key order)."""
    size = 1 << max(4, int(np.ceil(np.log2(max(1, keys.size) * 3))))
    mask = size - 1
    slot_keys = np.full(size, -1, dtype=np.int64)
    slot_bits = np.zeros(size, dtype=np.float32)
    home = _slot(keys, mask)
    slots = home.copy()
    remaining = np.arange(keys.size)
    while remaining.size:
        wanted = slots[remaining]
        free = slot_keys[wanted] == -1
        taken_slots, first = np.unique(wanted[free], return_index=True)
        winners = remaining[free][first]
        slot_keys[taken_slots] = keys[winners]
        slot_bits[taken_slots] = bits[winners]
        placed = np.zeros(keys.size, dtype=bool)
        placed[winners] = True
        remaining = remaining[~placed[remaining]]
        slots[remaining] = (slots[remaining] + 1) & mask
    max_probe = int(((slots - home) & mask).max()) if keys.size else 0
    return slot_keys, slot_bits, max_probe


def _escape(symbol: str) -> str:
    return symbol.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _unescape(field: str) -> str:
    if "\\" not in field:  # nearly every field: nothing to undo
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 1 < len(field):
            out.append({"t": "\t", "n": "\n", "\\": "\\"}.get(field[i + 1], field[i + 1]))
            i += 2
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def write_table(
    path: Path, unigrams: dict[str, int], bigrams: dict[tuple[str, str], int], header: str
) -> None:
    """Write a table deterministically (sorted lines, gzip without a timestamp)."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"U\t{_escape(s)}\t{c}" for s, c in sorted(unigrams.items())]
    lines += [f"B\t{_escape(a)}\t{_escape(b)}\t{c}" for (a, b), c in sorted(bigrams.items())]
    payload = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))


@cache
def default_model() -> BigramModel:
    """The shipped model, loaded once per process."""
    return BigramModel.load()
