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

The counts (`curate/data/bigram_zh.tsv.gz`) are measured by `bench/build_bigram_table.py`; its
docstring names the source text. The same script compiles them into the model the detectors
load (`curate/data/bigram_zh.npz`: the arrays below, ready to use), so that a run loads one
small file instead of parsing and smoothing the counts; a test checks that the two agree. A
`.tsv.gz` table given in the settings is compiled when loaded.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import zipfile
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from curate import tablecache
from curate.textutil import code_points

try:
    from curate._kernels import bigram_surprise as _compiled_surprise
except ImportError:  # not built (the extension is optional at install): numpy
    _compiled_surprise = None

# Fixed class symbols (ids 0..5); table symbols start at FIRST_SYMBOL.
CLASS_SYMBOLS = ("<han>", "<lat>", "<dig>", "<sp>", "<oth>", "<bos>")
UNK_HAN, LATIN, DIGIT, SPACE, OTHER, BOS = range(6)
FIRST_SYMBOL = len(CLASS_SYMBOLS)
LOOKUP_SIZE = 0x30000  # covers the BMP and CJK Extension B..; higher code points are classed
UNK_HAN_CODES = (0x20000, 0x3FFFF)  # past the lookup, these (first, last) are unknown Han

# Half-width punctuation folded to full-width before lookup (Chinese text uses either).
HALF_TO_FULL = {",": "，", ";": "；", ":": "：", "?": "？", "!": "！", "(": "（", ")": "）"}

MAX_SYMBOLS = 0xFFFF  # ids fit uint16, pair keys a * n + b fit uint32 below EMPTY_SLOT

DATA = Path(__file__).resolve().parent.parent / "data"
DEFAULT_TABLE = DATA / "bigram_zh.tsv.gz"  # the counts (what the builder measured)
DEFAULT_MODEL = DATA / "bigram_zh.npz"  # the same model compiled from them, ready to use


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
    lookup: np.ndarray  # code point -> symbol id (uint32, the dtype pair keys are computed in)
    bucket_salts: np.ndarray  # the stored pairs' hash table (see PairTable): salt per bucket
    slot_keys: np.ndarray  # pair key a * n + b held by each slot, or EMPTY_SLOT (uint32)
    slot_bits: np.ndarray  # surprise of the pair in each slot (float32)
    backoff_bits: np.ndarray  # -log2(1 - lambda_a)
    unigram_bits: np.ndarray  # -log2 P1(b)
    han_symbols: np.ndarray  # [id] -> whether the symbol is a Han character (or unknown Han)

    @classmethod
    def from_counts(
        cls, unigrams: dict[str, int], bigrams: dict[tuple[str, str], int]
    ) -> BigramModel:
        """Build the model from symbol counts (Witten-Bell interpolation, add-one unigram)."""
        symbols = list(CLASS_SYMBOLS) + sorted(s for s in unigrams if s not in CLASS_SYMBOLS)
        if len(symbols) > MAX_SYMBOLS:
            raise ValueError(f"bigram table: {len(symbols)} symbols, at most {MAX_SYMBOLS}")
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
        table = PairTable.build(key_arr.astype(np.uint32), pair_bits)
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
            lookup=lookup.astype(np.uint32),
            bucket_salts=table.bucket_salts,
            slot_keys=table.slot_keys,
            slot_bits=table.slot_bits,
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
        """Load a compiled model (.npz, see `save`) or a counts table written by
        `bench/build_bigram_table.py` (.tsv.gz, compiled here). Default: the shipped model."""
        file = Path(path or DEFAULT_MODEL)
        if file.suffix == ".npz":
            return cls._load_compiled(file)
        unigrams: dict[str, int] = {}
        bigrams: dict[tuple[str, str], int] = {}
        for line in gzip.decompress(file.read_bytes()).decode("utf-8").splitlines():
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            if parts[0] == "U":
                unigrams[_unescape(parts[1])] = int(parts[2])
            elif parts[0] == "B":
                bigrams[(_unescape(parts[1]), _unescape(parts[2]))] = int(parts[3])
        return cls.from_counts(unigrams, bigrams)

    def save(self, path: Path) -> None:
        """Write the compiled arrays (deterministic bytes), so that loading is one `np.load`."""
        arrays = {name: getattr(self, name) for name in COMPILED_ARRAYS}
        arrays["symbols"] = np.frombuffer(
            "\n".join(_escape(s) for s in self.symbols).encode("utf-8"), dtype=np.uint8
        )
        with zipfile.ZipFile(path, "w") as zf:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
                zf.writestr(
                    zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH),
                    buffer.getvalue(),
                    compress_type=zipfile.ZIP_DEFLATED,
                    compresslevel=6,
                )

    @classmethod
    def _load_compiled(cls, path: Path) -> BigramModel:
        """The arrays come from the table cache (`curate.tablecache`, keyed by the file's
        bytes): inflating the zip was about 15 ms of serial work at the start of a run's last
        pass, and the cache's memory-mapped copy is one set of pages for all of a run's processes."""
        names = ("symbols", *COMPILED_ARRAYS)

        def inflate() -> tuple[np.ndarray, ...]:
            with np.load(path, allow_pickle=False) as data:
                loaded = {name: data[name] for name in names}
            exact = _exact_sum_terms(loaded["slot_bits"], loaded["backoff_bits"], loaded["unigram_bits"])
            bounded = _backoff_bounds_stored(
                loaded["slot_keys"],
                loaded["slot_bits"],
                loaded["backoff_bits"],
                loaded["unigram_bits"],
                bytes(loaded["symbols"]).count(b"\n") + 1,  # (as `symbols` below splits them)
            )
            derived = (
                _packed_slots(loaded["slot_keys"], loaded["slot_bits"]),
                np.array([exact], np.int64),
                np.array([bounded], np.int64),
            )
            return (*loaded.values(), *derived)

        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        # (this module's source too: the derived values are computed by it, and change with it)
        depends = [digest, tablecache.source_digest(__name__), *DERIVED]
        cached = tablecache.arrays("bigram-model", inflate, depends)
        arrays = dict(zip((*names, *DERIVED), cached, strict=True))
        symbols = bytes(arrays.pop("symbols")).decode("utf-8").split("\n")
        model = cls(symbols=[_unescape(s) for s in symbols], **{name: arrays[name] for name in COMPILED_ARRAYS})
        model.__dict__.update(
            _slot_pairs=arrays["slot_pairs"],
            exact_sum_terms=int(arrays["exact_sum_terms"][0]),
            backoff_bounds_stored=bool(arrays["backoff_bounds_stored"][0]),
        )
        return model

    def ids(self, text: str) -> np.ndarray:
        """Symbol id of every character of `text` (uint32)."""
        return self.ids_of_codes(code_points(text))

    def ids_of_codes(self, cps: np.ndarray) -> np.ndarray:
        """Symbol id of every code point of `cps` (`curate.textutil.code_points` of a text)."""
        if cps.size == 0 or int(cps.max()) < LOOKUP_SIZE:  # the usual case: one lookup
            return self.lookup.take(cps)
        out = np.full(cps.shape, OTHER, dtype=self.lookup.dtype)
        inside = cps < LOOKUP_SIZE
        out[inside] = self.lookup[cps[inside]]
        out[~inside & (cps >= UNK_HAN_CODES[0]) & (cps <= UNK_HAN_CODES[1])] = UNK_HAN
        return out

    def surprise(self, text: str, ids: np.ndarray | None = None) -> np.ndarray:
        """Bits of surprise of each character given the previous one (index 0 after <bos>).

        `ids` may pass `self.ids(text)` when the caller has it already.
        """
        if ids is None:
            ids = self.ids(text)
        return self.surprise_of_ids(ids, np.zeros(1, dtype=np.intp))

    @cached_property
    def exact_sum_terms(self) -> int:
        """How many surprise values may be added in float64 with every partial sum exact
        (`_exact_sum_terms`; a compiled model's comes with its arrays from the table cache)."""
        return _exact_sum_terms(self.slot_bits, self.backoff_bits, self.unigram_bits)

    @cached_property
    def backoff_bounds_stored(self) -> bool:
        """Whether float32(backoff_bits[a] + unigram_bits[b]), an unstored pair's surprise, is
        at least every stored pair's (`_backoff_bounds_stored`): then it bounds the surprise of
        every character without a probe of the pair table (the garbage detector's pre-check)."""
        return _backoff_bounds_stored(
            self.slot_keys, self.slot_bits, self.backoff_bits, self.unigram_bits, len(self.symbols)
        )

    def surprise_of_ids(self, ids: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Surprise of the symbols `ids` of texts joined end to end; a text begins at 0 and at
        each of `starts` (ascending), where the previous symbol is <bos>. Each value depends only
        on its character and the one before, so joining texts changes none of them.

        One hash-table probe per character (see PairTable): a stored pair gives its own bits,
        any other pair the backoff of its history plus the follower's unigram bits. Computed
        in one compiled loop where the tables have the types it reads (`_surprise_of_ids_numpy`
        is its specification, and its fallback).
        """
        tables = self._kernel_tables
        if tables is None:
            return self._surprise_of_ids_numpy(ids, starts)
        return _compiled_surprise(
            np.ascontiguousarray(ids, dtype=np.uint32),
            np.ascontiguousarray(starts, dtype=np.int64),
            *tables,
        )

    @cached_property
    def _kernel_tables(self) -> tuple[Any, ...] | None:
        """The arguments after (ids, starts) of the compiled `surprise_of_ids`, or None where
        it cannot be used (not built, or tables of other types than uint32 and float32)."""
        uint32 = (self.bucket_salts, self.slot_keys)
        float32 = (self.slot_bits, self.backoff_bits, self.unigram_bits)
        if _compiled_surprise is None or not (
            all(a.dtype == np.uint32 and a.flags.c_contiguous for a in uint32)
            and all(a.dtype == np.float32 and a.flags.c_contiguous for a in float32)
        ):
            return None
        return (
            self.bucket_salts,
            self._slot_pairs,
            self.backoff_bits,
            self.unigram_bits,
            len(self.symbols),
            BOS,
            int(_KEY_MIX),
            int(_SLOT_MIX),
            _shift_for(self.bucket_salts.size),
            _shift_for(self.slot_keys.size),
        )

    @cached_property
    def _slot_pairs(self) -> np.ndarray:
        """`_packed_slots` of the pair table (a compiled model's comes with its arrays)."""
        return _packed_slots(self.slot_keys, self.slot_bits)

    def _surprise_of_ids_numpy(self, ids: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """`surprise_of_ids` with numpy."""
        ids = ids.astype(np.uint32, copy=False)
        prev = np.empty_like(ids)
        prev[:1] = BOS
        prev[1:] = ids[:-1]
        prev[starts[starts < ids.size]] = BOS
        keys = prev * np.uint32(len(self.symbols)) + ids
        slots = _pair_slots(keys, self.bucket_salts, self.slot_keys.size)
        # `take`: numpy's fastest gather (indexing with [] first converts the indices to intp).
        bits = self.slot_bits.take(slots)
        unstored = np.flatnonzero(self.slot_keys.take(slots) != keys)  # ~1 in 5 in news
        bits[unstored] = self.backoff_bits.take(prev.take(unstored)) + self.unigram_bits.take(
            ids.take(unstored)
        )
        return bits


def _exact_sum_terms(slot: np.ndarray, backoff: np.ndarray, unigram: np.ndarray) -> int:
    """How many surprise values (`surprise_of_ids`) may be added in float64, in any order,
    with every partial sum exact: the window sums of the garbage detector then do not
    depend on how they are added (a convolution, or a running sum). 0 if none is sure.

    Every value is a stored pair's bits or float32(backoff + unigram), which lies between
    the smallest unigram and float32(largest backoff + largest unigram) when no backoff is
    negative and every unigram is positive (rounding is monotonic). A float32 of magnitude
    2**e or more is a multiple of 2**(e - 23); t of them add up to a multiple of that
    grid no larger than t times the largest, which float64 holds exactly up to 2**53
    steps of the grid. The shipped model: values from 0.0084 to 28.0 bits, 299,244 terms.
    """
    if any(a.dtype != np.float32 or a.size == 0 or not np.isfinite(a).all() for a in (slot, backoff, unigram)):
        return 0
    if backoff.min() < 0 or unigram.min() <= 0:
        return 0
    largest = max(float(np.abs(slot).max()), float(backoff.max() + unigram.max()))
    nonzero = np.abs(slot[slot != 0])
    smallest = min(float(nonzero.min()) if nonzero.size else np.inf, float(unigram.min()))
    grid = math.frexp(smallest)[1] - 1 - 23  # (frexp: smallest = f * 2**e, 0.5 <= f < 1)
    return int(math.ldexp(1.0, 53 + grid) // largest)


def _backoff_bounds_stored(
    slot_keys: np.ndarray, slot_bits: np.ndarray, backoff: np.ndarray, unigram: np.ndarray, symbols: int
) -> bool:
    """Whether no stored pair (a, b), key a * symbols + b, has more bits than
    float32(backoff[a] + unigram[b]).

    Witten-Bell interpolation gives P(b | a) >= (1 - lambda_a) P1(b), so a stored pair's
    surprise is at most the backoff estimate, but float32 rounding may cross it by a bit: the
    tables say. (The shipped model: none of its 125,865 stored pairs does.) False for tables
    of other types than float32 (the sums would not be the surprise kernel's), and for bits
    of more or fewer symbols than `symbols`: past them, a pair's key a * symbols + b is
    another pair's (the surprise reads that one's stored bits, which its estimate may not bound)."""
    if any(a.dtype != np.float32 for a in (slot_bits, backoff, unigram)) or slot_keys.dtype != np.uint32:
        return False
    if backoff.size != symbols or unigram.size != symbols:
        return False
    stored = np.flatnonzero(slot_keys != EMPTY_SLOT)
    keys = slot_keys.take(stored).astype(np.int64)
    before, after = np.divmod(keys, symbols)
    if keys.size and (int(before.max()) >= backoff.size or int(after.max()) >= unigram.size):
        return False  # (keys of symbols the model has no bits for: not a pair it can look up)
    estimate = backoff.take(before) + unigram.take(after)  # (float32, as the surprise adds them)
    return bool(np.all(slot_bits.take(stored) <= estimate))


def _packed_slots(slot_keys: np.ndarray, slot_bits: np.ndarray) -> np.ndarray:
    """Each slot's key (low 32 bits) and the float32 bits of its surprise (high 32) in one
    64-bit word, as the compiled `surprise_of_ids` reads them: one read from memory a
    character, where two arrays took two. Empty for tables of other types than uint32 and
    float32 (the compiled loop is not used then)."""
    if slot_keys.dtype != np.uint32 or slot_bits.dtype != np.float32:
        return np.zeros(0, dtype=np.uint64)
    return slot_keys.astype(np.uint64) | (slot_bits.view(np.uint32).astype(np.uint64) << np.uint64(32))


# What a compiled model's arrays bring with them from the table cache (`_load_compiled`): the
# derived values each process would otherwise make again (about 10 ms).
DERIVED = ("slot_pairs", "exact_sum_terms", "backoff_bounds_stored")


# The compiled model file holds these arrays (plus the symbols), ready to use.
COMPILED_ARRAYS = (
    "lookup",
    "bucket_salts",
    "slot_keys",
    "slot_bits",
    "backoff_bits",
    "unigram_bits",
    "han_symbols",
)
# Fixed member timestamps: the file's bytes depend on its content only.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

EMPTY_SLOT = np.uint32(0xFFFFFFFF)  # above every key a * n + b, as n <= MAX_SYMBOLS
_KEY_MIX = np.uint32(0x9E3779B9)  # odd multipliers: multiplication modulo 2**32 is a bijection
_SLOT_MIX = np.uint32(0x85EBCA6B)
_SALT_STEP = np.uint32(0xC2B2AE35)


def _pair_slots(keys: np.ndarray, bucket_salts: np.ndarray, size: int) -> np.ndarray:
    """The one slot each pair key may occupy: its bucket's salt mixed into the key's hash.

    Returned as intp, the index type numpy gathers with (two gathers use it).
    """
    mixed = keys * _KEY_MIX  # uint32 arithmetic wraps modulo 2**32
    bucket = mixed >> np.uint32(_shift_for(bucket_salts.size))
    slots = ((mixed ^ bucket_salts.take(bucket)) * _SLOT_MIX) >> np.uint32(_shift_for(size))
    return slots.astype(np.intp)


def _shift_for(size: int) -> int:
    """The right shift that leaves a 32-bit hash's top log2(`size`) bits (`size` a power of
    two): an index into a table of `size`."""
    return 32 - (size.bit_length() - 1)


@dataclass(frozen=True)
class PairTable:
    """A perfect hash table of the stored pairs ("hash, displace", as in CHD): each key lies in
    the one slot `_pair_slots` gives it, so a lookup is one probe and a key that is not stored
    is told by the slot holding another key (or none). A binary search of the sorted keys needs
    ~17 scattered reads and linear probing a loop of rounds; here every character costs a fixed
    handful of vectorised operations on 32-bit numbers.

    Keys are spread over buckets (~4 per bucket) by the top bits of their hash; each bucket
    gets the first salt that places all its keys in free slots (table at most half full).
    """

    bucket_salts: np.ndarray  # uint32, a power-of-two count
    slot_keys: np.ndarray  # uint32, a power-of-two count; EMPTY_SLOT where no key
    slot_bits: np.ndarray  # float32

    MAX_ROUNDS: ClassVar[int] = 100_000

    @classmethod
    def build(cls, keys: np.ndarray, bits: np.ndarray) -> PairTable:
        """Place distinct uint32 `keys` (< EMPTY_SLOT) with their `bits`; deterministic.

        Vectorised, in rounds: buckets are placed largest first (they are the hard ones, and
        the table is emptiest then); each round, every unplaced bucket of the current size tries
        its next salt, and a bucket is placed when all its keys land in free slots that no other
        key of the round (of its own or a lower-numbered bucket) claims.
        """
        keys = np.asarray(keys, dtype=np.uint32)
        slot_count = 1 << max(4, int(np.ceil(np.log2(max(1, keys.size) * 2))))
        bucket_count = 1 << max(1, int(np.ceil(np.log2(max(1, keys.size) / 4))))
        bucket_salts = np.zeros(bucket_count, dtype=np.uint32)
        owner = np.full(slot_count, -1, dtype=np.int64)  # index into keys
        mixed = keys * _KEY_MIX
        bucket = (mixed >> np.uint32(_shift_for(bucket_count))).astype(np.int64)
        sizes = np.bincount(bucket, minlength=bucket_count)
        key_sizes = sizes[bucket]
        rounds = 0
        for size in range(int(sizes.max(initial=0)), 0, -1):
            pending = np.flatnonzero(key_sizes == size)
            while pending.size:
                rounds += 1
                if rounds > cls.MAX_ROUNDS:
                    raise RuntimeError("bigram pair table: no salt places every bucket")
                owners = bucket[pending]
                slots = _pair_slots(keys[pending], bucket_salts, slot_count)
                order = np.lexsort((owners, slots))
                by_slot, by_owner = slots[order], owners[order]
                repeat = np.zeros(order.size, dtype=bool)  # not the first claim on its slot
                repeat[1:] = by_slot[1:] == by_slot[:-1]
                lost = repeat.copy()
                lost[:-1] |= repeat[1:] & (by_owner[1:] == by_owner[:-1])  # two keys of one bucket
                failed = np.zeros(order.size, dtype=bool)
                failed[order] = lost
                failed |= owner[slots] != -1
                failed_buckets = np.unique(owners[failed])
                placed = ~np.isin(owners, failed_buckets)
                owner[slots[placed]] = pending[placed]
                bucket_salts[failed_buckets] += _SALT_STEP
                pending = pending[~placed]
        filled = owner != -1
        slot_keys = np.full(slot_count, EMPTY_SLOT, dtype=np.uint32)
        slot_bits = np.zeros(slot_count, dtype=np.float32)
        slot_keys[filled] = keys[owner[filled]]
        slot_bits[filled] = np.asarray(bits, dtype=np.float32)[owner[filled]]
        return cls(bucket_salts=bucket_salts, slot_keys=slot_keys, slot_bits=slot_bits)


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
