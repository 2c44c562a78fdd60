"""The compiled loops (`curate._kernels`) against the numpy code that specifies them, and both
against independent oracles (difflib, brute force). Every comparison runs the public
`curate.minhash` functions twice: with the extension and with it switched off."""

from __future__ import annotations

from difflib import SequenceMatcher
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import minhash

KERNELS = minhash._kernels
needs_kernels = pytest.mark.skipif(KERNELS is None, reason="curate._kernels was not built")


def both(monkeypatch: pytest.MonkeyPatch, call):
    """(with the kernels, with numpy only) results of `call()`."""
    compiled = call()
    with monkeypatch.context() as patch:
        patch.setattr(minhash, "_kernels", None)
        reference = call()
    return compiled, reference


def test_the_extension_is_built_here() -> None:
    # `make setup` builds it (setup.py, Cython); where it could not be built everything still
    # works, slower. In CI (.ci/run) a skip here fails the run: the speed figures assume it.
    if KERNELS is None:
        pytest.skip("curate._kernels was not built: numpy fallback in use")
    assert minhash.comparison_form("ab").codes.tolist() == [ord("a"), ord("b")]


# Han of both scripts, ASCII and full-width, punctuation of both widths, spaces and line ends,
# non-BMP letters, an emoji, a lone surrogate.
ALPHABET = list("民族團結进步瀋陽abcXYZ019ＡＢＣｘ０，。！？“”（）!?,. \t\u3000\r\n") + [
    "\U00020000",
    "\U0001d400",
    "\U0001f600",
    "\ud800",
]


@needs_kernels
@given(st.text(alphabet=st.sampled_from(ALPHABET), max_size=120))
@settings(max_examples=300, deadline=None)
def test_comparison_form_is_the_same(text: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        compiled, reference = both(monkeypatch, lambda: minhash.comparison_form(text))
    for name in ("codes", "positions"):
        got, want = getattr(compiled, name), getattr(reference, name)
        assert got.dtype == want.dtype and got.tolist() == want.tolist()
    assert compiled.text_length == reference.text_length == len(text)


@needs_kernels
@given(
    st.lists(st.integers(0, 0x10FFFF), max_size=50),
    st.lists(st.integers(0, 50), max_size=6),
    st.integers(1, 7),
    st.sampled_from([np.uint32, np.uint16, np.int64]),
)
@settings(max_examples=400, deadline=None)
def test_shingle_ids_are_the_same(values: list[int], cuts: list[int], size: int, dtype) -> None:
    codes = np.array(values, dtype=np.uint32).astype(dtype)
    bounds = np.array([0, *sorted(min(c, len(values)) for c in cuts), len(values)])
    with pytest.MonkeyPatch.context() as monkeypatch:
        compiled, reference = both(monkeypatch, lambda: minhash.shingle_ids(codes, bounds, size))
        hashes = both(monkeypatch, lambda: minhash.shingle_hashes(codes, bounds, size))
        mixed = both(monkeypatch, lambda: minhash.shingle_hashes(codes, bounds, size, mixed=True))
    for got, want in zip(compiled, reference, strict=True):
        assert got.dtype == want.dtype and got.tolist() == want.tolist()
    # What signatures read: those ids folded to 32 bits (`fold32`), made by the kernels without
    # the ids in between; mixed, those hashes through `_fmix32` (made in the same pass).
    for folded, starts in hashes:
        assert folded.dtype == np.uint32 and folded.tolist() == minhash.fold32(reference[0]).tolist()
        assert starts.dtype == np.int64 and starts.tolist() == reference[1].tolist()
    for folded, starts in mixed:
        assert folded.dtype == np.uint32
        assert folded.tolist() == minhash._fmix32(minhash.fold32(reference[0])).tolist()
        assert starts.tolist() == reference[1].tolist()


@needs_kernels
def test_a_shingle_of_no_characters_is_refused_not_written_past_the_arrays() -> None:
    codes, bounds = np.arange(10, dtype=np.uint32), np.array([0, 5, 10])
    for size in (0, -1):
        for fold in (0, 7):
            with pytest.raises(ValueError, match="shingle size should be at least 1"):
                KERNELS.shingle_ids(codes, bounds, size, 3, fold)


@given(
    st.lists(st.integers(-(2**31), 2**31 - 1), max_size=3),
    st.lists(st.tuples(st.integers(0, 60), st.integers(-3, 3)), max_size=5),
    st.integers(0, 60),
    st.sampled_from(["array", "numpy"]),
)
@settings(max_examples=300, deadline=None)
def test_source_maps_break_where_numpy_finds_the_breaks(
    extremes: list[int], shifts: list[tuple[int, int]], length: int, kind: str
) -> None:
    """`source_map`'s breaks (where src[i] - i changes) are numpy's, for maps of no break, of
    some, and of values at the ends of int32's range; given as an array('i') or as numpy's."""
    from array import array

    from curate import document

    values = np.arange(length, dtype=np.int64) + 7
    for at, step in shifts:
        values[at:] += step
    values = np.concatenate([values, extremes]).astype(np.int32)
    src = array("i", values.tobytes()) if kind == "array" else values
    with pytest.MonkeyPatch.context() as monkeypatch:
        compiled = document.source_breaks(src)
        monkeypatch.setattr(document, "_compiled_source_map", None)
        reference = document.source_breaks(src)
    for got, want in zip(compiled, reference, strict=True):
        assert got.dtype == want.dtype == np.int64 and got.tolist() == want.tolist()


def difflib_blocks(a: np.ndarray, b: np.ndarray, min_size: int) -> list[tuple[int, int, int]]:
    text_a, text_b = ("".join(map(chr, codes.tolist())) for codes in (a, b))
    blocks = SequenceMatcher(None, text_a, text_b, autojunk=False).get_matching_blocks()
    return [(i, j, k) for i, j, k in blocks if k >= min_size]


def shared_text(draw_values: list[int], inserted: list[int], at: int) -> np.ndarray:
    return np.array(draw_values[:at] + inserted + draw_values[at:], dtype=np.uint32) + 0x4E00


@needs_kernels
@given(
    st.lists(st.integers(0, 3), max_size=120),
    st.lists(st.integers(0, 3), max_size=120),
    st.integers(0, 120),
    st.integers(4, 6),
    st.integers(-2, 8),
)
@settings(max_examples=400, deadline=None)
def test_gram_coverage_and_matching_blocks_are_the_same_and_difflibs(
    a_values: list[int], b_values: list[int], at: int, min_size: int, max_gap: int
) -> None:
    # Few distinct characters: many equal 4-grams, many diagonal runs (> 48 takes the numpy
    # branch of the reference recursion), and b shares a stretch of a.
    a = np.array(a_values, dtype=np.uint32) + 0x4E00
    b = shared_text(b_values, a_values[len(a_values) // 3 :], at)
    a_keys, b_keys = minhash.gram_keys(a), minhash.gram_keys(b)

    def results():
        a_map, b_map = minhash.gram_map(a_keys), minhash.gram_map(b_keys)
        return (
            minhash.gram_coverage(b_keys, a_map),
            minhash.gram_coverage(a_keys, b_map),
            minhash.gram_coverage(b_keys, a_map, max_gap),
            minhash.matching_blocks(a, b, min_size, a_map, b_keys),
            minhash.matching_blocks(a, b, min_size),
        )

    with pytest.MonkeyPatch.context() as monkeypatch:
        compiled, reference = both(monkeypatch, results)
    assert compiled == reference
    assert compiled[3] == compiled[4] == difflib_blocks(a, b, min_size)


@needs_kernels
def test_too_many_equal_gram_pairs_fall_back_to_difflib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minhash, "_ALIGN_MAX_PAIRS", 10)
    a = np.full(30, 0x4E00, dtype=np.uint32)  # 27 4-grams, all equal, and b's 23: 621 pairs
    b = np.concatenate([a[:20], [0x4E01], a[:9]]).astype(np.uint32)
    a_map = KERNELS.gram_map(minhash.gram_keys(a))
    assert KERNELS.gram_runs(a, b, a_map, minhash.gram_keys(b), 10) is None
    compiled, reference = both(monkeypatch, lambda: minhash.matching_blocks(a, b, 4))
    assert compiled == reference == difflib_blocks(a, b, 4)
    # Without the fallback (dedup's passages: difflib takes minutes on a sentence repeated a
    # thousand times), None on both paths; below the limit the same blocks either way.
    compiled, reference = both(monkeypatch, lambda: minhash.matching_blocks(a, b, 4, fallback=False))
    assert compiled is None and reference is None
    # At the limit exactly (27 4-grams of a by 17 + 6 of b, all equal), aligned; one pair
    # fewer allowed, not.
    monkeypatch.setattr(minhash, "_ALIGN_MAX_PAIRS", 27 * 23)
    compiled, reference = both(monkeypatch, lambda: minhash.matching_blocks(a, b, 4, fallback=False))
    assert compiled == reference == difflib_blocks(a, b, 4)
    monkeypatch.setattr(minhash, "_ALIGN_MAX_PAIRS", 27 * 23 - 1)
    compiled, reference = both(monkeypatch, lambda: minhash.matching_blocks(a, b, 4, fallback=False))
    assert compiled is None and reference is None


# Keys whose product with the map's multiplier (the golden ratio, modulo 2^64) has its top 52
# bits set: whatever the table's size (up to 2^52 slots) they all start at its last slot, so
# they probe past one another and wrap around to the first.
GOLDEN = 0x9E3779B97F4A7C15
LAST_SLOT = [((1 << 64) - 1 - r) * pow(GOLDEN, -1, 1 << 64) % (1 << 64) for r in range(8)]
# Keys as a gram map meets them: 0 (the empty slot's value, kept apart), repeated keys (one slot,
# many positions), keys of one first slot, the largest, and random ones.
MAP_KEYS = st.lists(
    st.sampled_from([0, 1, 2, 1 << 63, (1 << 64) - 1, GOLDEN, *LAST_SLOT]) | st.integers(0, (1 << 64) - 1),
    max_size=80,
)


@needs_kernels
@given(MAP_KEYS, MAP_KEYS, st.none() | st.integers(-2, 8))
@settings(max_examples=400, deadline=None)
def test_gram_coverage_of_a_gram_map_is_the_same(a_keys: list[int], b_keys: list[int], max_gap: int | None) -> None:
    a, b = np.array(a_keys, dtype=np.uint64), np.array(b_keys, dtype=np.uint64)
    with pytest.MonkeyPatch.context() as monkeypatch:
        compiled, reference = both(monkeypatch, lambda: minhash.gram_coverage(b, minhash.gram_map(a), max_gap))
    assert compiled == reference
    shared = set(a_keys)
    assert (compiled == 0) == all(key not in shared for key in b_keys)


@needs_kernels
def test_keys_of_one_first_slot_wrap_around_the_map() -> None:
    assert {(key * GOLDEN % (1 << 64)) >> 60 for key in LAST_SLOT} == {15}  # (a map of 16 slots)
    for size in range(1, len(LAST_SLOT) + 1):
        keys = np.array(LAST_SLOT[:size], dtype=np.uint64)
        table = KERNELS.gram_map(keys)
        for n, key in enumerate(LAST_SLOT):
            found = KERNELS.gram_coverage(np.array([key], dtype=np.uint64), table, 0)
            assert found == (4 if n < size else 0), (size, n)


@needs_kernels
def test_a_gram_map_is_checked_before_it_is_read() -> None:
    a = np.array([0x4E00, 0x4E01, 0x4E02, 0x4E03, 0x4E00, 0x4E01, 0x4E02, 0x4E03], dtype=np.uint32)
    keys = minhash.gram_keys(a)
    table = KERNELS.gram_map(keys)
    assert KERNELS.gram_coverage(keys, table, 8) == 8
    assert KERNELS.gram_runs(a, a, table, keys, 100) is not None
    not_maps = [np.zeros(0, np.uint64), np.zeros(5, np.uint64), table[:-1], np.append(table, np.uint64(0))]
    for header in ([6, table[1]], [table[0], table[1] + 1], [1 << 45, 0]):
        changed = table.copy()
        changed[:2] = header
        not_maps.append(changed)
    for bad in not_maps:
        with pytest.raises(ValueError, match="not a gram map"):
            KERNELS.gram_coverage(keys, bad, 8)
        with pytest.raises(ValueError, match="not a gram map"):
            KERNELS.gram_runs(a, a, bad, keys, 100)
    # A position past the keys in a slot's chain: refused, not read past the arrays.
    broken = table.copy()
    size = int(table[0])
    heads = broken[2 + size + 1 : 2 + 2 * (size + 1)]
    heads[np.flatnonzero(heads)[0]] = (1 << 32) | 1000
    with pytest.raises(ValueError, match="not a gram map"):
        KERNELS.gram_runs(a, a, broken, keys, 100)
    # Counts and chains that disagree: refused, or walked no further than the count (a cycle),
    # never written past the pairs counted.
    used = int(np.flatnonzero(table[2 + size + 1 : 2 + 2 * (size + 1)])[0])
    longer = np.tile(a, 50)
    for change in ("more", "none", "cycle"):
        broken = table.copy()
        heads = broken[2 + size + 1 : 2 + 2 * (size + 1)]
        nexts = broken[2 + 2 * (size + 1) : 2 + 2 * (size + 1) + len(keys)]
        if change == "more":
            heads[used] += np.uint64(100 << 32)
        elif change == "none":
            heads[used] &= np.uint64(0xFFFFFFFF)
        else:
            nexts[int(heads[used] & np.uint64(0xFFFFFFFF)) - 1] = heads[used] & np.uint64(0xFFFFFFFF)
        if change == "more":
            with pytest.raises(ValueError, match="not a gram map"):
                KERNELS.gram_runs(a, longer, broken, minhash.gram_keys(longer), 1 << 20)
        else:
            KERNELS.gram_runs(a, longer, broken, minhash.gram_keys(longer), 1 << 20)
    # A table with no empty slot and every filter bit set: a key not there is looked for once
    # around the table, not forever.
    full = table.copy()
    full[2 : 2 + size] = np.arange(1, size + 1, dtype=np.uint64) * np.uint64(7919)
    full[2 + 2 * (size + 1) + len(keys) :] = np.uint64((1 << 64) - 1)
    assert KERNELS.gram_coverage(np.array([12345], dtype=np.uint64), full, 8) == 0
    # The keys must be those of the arrays aligned.
    with pytest.raises(ValueError, match="not those of a and b"):
        KERNELS.gram_runs(a, a[:6], table, keys, 100)
    with pytest.raises(ValueError, match="not those of a and b"):
        KERNELS.gram_runs(a[:6], a, table, keys, 100)


# Sentence ends and closing marks of both widths, line ends (CRLF, NEL, LINE SEPARATOR: not
# line ends here), spaces a paragraph may consist of; and characters the kernel's filter of
# sentence ends lets through (their code point is a sentence end's modulo 1,024: 。 and !).
LAYOUT_ALPHABET = list(
    "民族團結进步abX01ＡＢ，。！？；;!?…”’」』）)】》 \t\u3000\r\n\n\x0b\x85\u2028\u3402\u0421"
)


@needs_kernels
@given(
    st.text(alphabet=st.sampled_from(LAYOUT_ALPHABET), max_size=200),
    st.sampled_from([0, 1, 2, 3, 5, 12, 30]),
)
@settings(max_examples=500, deadline=None)
def test_dedup_layout_is_the_same(text: str, window_chars: int) -> None:
    from curate.stages.dedup import _layout

    form = minhash.comparison_form(text)
    with pytest.MonkeyPatch.context() as monkeypatch:
        compiled, reference = both(monkeypatch, lambda: _layout(text, form, window_chars))
    for name in ("spans", "cf", "windows", "win_counts"):
        got, want = getattr(compiled, name), getattr(reference, name)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tolist() == want.tolist()
    assert compiled.hashes == reference.hashes


@needs_kernels
@given(
    st.text(alphabet=st.sampled_from(LAYOUT_ALPHABET), min_size=1, max_size=200),
    st.sampled_from([0, 1, 3, 30]),
)
@settings(max_examples=12, deadline=None)
def test_dedup_layout_of_a_long_text_is_the_same(text: str, window_chars: int) -> None:
    # Texts longer than `_ONE_PASS_CHARS` are scanned twice (counted, then written into memory
    # of exactly that size: a count one short would write past it).
    from curate.stages.dedup import _layout

    text = text * (70_000 // len(text) + 1)
    form = minhash.comparison_form(text)
    with pytest.MonkeyPatch.context() as monkeypatch:
        compiled, reference = both(monkeypatch, lambda: _layout(text, form, window_chars))
    for name in ("spans", "cf", "windows", "win_counts"):
        assert getattr(compiled, name).tolist() == getattr(reference, name).tolist()


@needs_kernels
@pytest.mark.parametrize(("num_perm", "window_num_perm"), [(128, 32), (16, 16), (16, 4)])
def test_signatures_are_the_same(
    monkeypatch: pytest.MonkeyPatch, num_perm: int, window_num_perm: int
) -> None:
    rng = np.random.default_rng(num_perm + window_num_perm)
    # Many groups (more shingles than one numpy block: 8,192), empty groups and paragraphs
    # without windows, a single shingle, none.
    for total, windows, paragraphs in [(20_000, 900, 300), (200, 40, 9), (1, 1, 1), (0, 3, 2)]:
        hashes = rng.integers(0, 2**32, total, dtype=np.uint64).astype(np.uint32)
        cuts = np.sort(rng.integers(0, total + 1, windows - 1))
        starts = np.concatenate([[0], cuts, [total]]).astype(np.int64)
        cuts = np.sort(rng.integers(0, windows + 1, paragraphs - 1))
        counts = np.diff(np.concatenate([[0], cuts, [windows]]))

        def results(hashes=hashes, starts=starts, counts=counts):
            nested = minhash.nested_signatures(hashes, starts, counts, num_perm, window_num_perm, 7)
            return [*nested, minhash.signatures(hashes, starts, num_perm, 7)]

        compiled, reference = both(monkeypatch, results)
        for got, want in zip(compiled, reference, strict=True):
            assert got.dtype == want.dtype == np.uint32 and np.array_equal(got, want), total


@needs_kernels
@given(
    st.lists(st.integers(-3, 3), max_size=60) | st.lists(st.integers(-3, 3), min_size=100, max_size=400),
    st.integers(0, 1000),
)
@settings(max_examples=300, deadline=None)
def test_source_breaks_are_the_same(steps: list[int], start: int) -> None:
    from array import array

    from curate import document
    from curate.document import source_breaks, source_from_breaks

    # A text -> input map as edits leave it: runs of identity, jumps forward and back.
    src = array("i", [start])
    for step in steps:
        src.append(src[-1] + (1 if step == 0 else step))
    compiled = source_breaks(src)
    rebuilt = source_from_breaks(len(src), *compiled)
    packed = [document._packed_source(m) for m in (src, array("i"), document.identity_map(len(steps)))]
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(document, "_compiled_source_map", None)
        monkeypatch.setattr(document, "_compiled_from_breaks", None)
        monkeypatch.setattr(document, "_compiled_packed_source", None)
        reference = source_breaks(src)
        rebuilt_by_numpy = source_from_breaks(len(src), *reference)
        packed_by_numpy = [document._packed_source(m) for m in (src, array("i"), document.identity_map(len(steps)))]
    for got, want in zip(compiled, reference, strict=True):
        assert got.dtype == want.dtype and got.tolist() == want.tolist()
    assert rebuilt == rebuilt_by_numpy == src and rebuilt.typecode == rebuilt_by_numpy.typecode
    # As a document travels: its length alone for a map of every position to itself.
    assert packed == packed_by_numpy and packed[1:] == [0, len(steps) + 1]
    assert document._unpacked_source(packed[0]) == src


# ... and Latin-1, stored a byte a character as ASCII is, but not ASCII.
PACKED_ALPHABET = [*ALPHABET, "é", "ß", "\x85", "\xff"]


@needs_kernels
@given(
    st.text(alphabet=st.sampled_from(PACKED_ALPHABET), max_size=300)
    | st.text(alphabet=st.sampled_from(list("民族團結，。") + ["\U0001f600"]), max_size=300)
    | st.text(max_size=40)
)
@settings(max_examples=400, deadline=None)
def test_packed_texts_are_the_same(text: str) -> None:
    """A string as it travels pickled (`document.packed_text`): the kernel's bytes are numpy's,
    and both give the string back, whatever its width (ASCII, Latin-1, Han, non-BMP, a lone
    surrogate); packed only where that is no larger than its UTF-8."""
    from curate import document

    packed = document.packed_text(text)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(document, "_compiled_packed_text", None)
        monkeypatch.setattr(document, "_compiled_unpacked_text", None)
        packed_by_numpy = document.packed_text(text)
        assert document.unpacked_text(packed) == text
    assert type(packed) is type(packed_by_numpy) and packed == packed_by_numpy
    assert document.unpacked_text(packed) == text
    utf8 = len(text.encode("utf-8", "surrogatepass"))
    width = 1 if max(map(ord, text), default=0) < 0x100 else 2 if max(map(ord, text)) < 0x10000 else 4
    if width == 1 or utf8 < width * len(text):
        assert packed is text  # pickle's UTF-8 is a copy, or smaller than the storage
    else:
        assert len(packed) == 4 + width * len(text) <= 4 + utf8 and packed[0] == width


def test_texts_are_packed_where_their_storage_is_no_larger_than_their_utf8() -> None:
    from curate import document

    for compiled in (True, False):
        with pytest.MonkeyPatch.context() as monkeypatch:
            if not compiled or KERNELS is None:
                monkeypatch.setattr(document, "_compiled_packed_text", None)
            assert type(document.packed_text("中文，汉字。")) is bytes  # 2 bytes a character, 3 in UTF-8
            for text in ("ascii and one 中", "中文一个表情😀", "Zoë", ""):
                assert document.packed_text(text) is text


@needs_kernels
def test_unpacked_texts_refuse_what_no_packing_made() -> None:
    from curate import document

    good = document.packed_text("中文")
    assert isinstance(good, bytes)
    other_order = bytes((good[0], 1 - good[1])) + good[2:]
    wide = bytes((4, good[1], 0, 0))
    order = "big" if good[1] else "little"
    past_unicode = [  # (Python's own check stops at the first character past the BMP)
        wide + (0x1F600).to_bytes(4, order) + (0x110000).to_bytes(4, order),
        wide + (0x7FFFFFFF).to_bytes(4, order),
    ]
    for bad in (
        b"", good[:3], good[:-1], b"\x03" + good[1:], good[:2] + b"\x01\x00" + good[4:],
        good[:1] + b"\x02" + good[2:], other_order, *past_unicode,
    ):  # fmt: skip
        for compiled in (True, False):
            with pytest.MonkeyPatch.context() as monkeypatch:
                if not compiled:
                    monkeypatch.setattr(document, "_compiled_unpacked_text", None)
                with pytest.raises(ValueError, match="unpacked_text"):
                    document.unpacked_text(bad)


def _aligned_pair(draw: st.DrawFn) -> tuple[str, str]:
    """Two texts of one length that differ at some positions, in runs and alone."""
    before = draw(st.text(alphabet=st.sampled_from(ALPHABET), max_size=150))
    changed = draw(st.lists(st.booleans(), min_size=len(before), max_size=len(before)))
    other = draw(st.text(alphabet=st.sampled_from(ALPHABET), min_size=len(before), max_size=len(before)))
    after = "".join(o if c else b for b, o, c in zip(before, other, changed, strict=True))
    return before, after


aligned_pairs = st.composite(_aligned_pair)


@needs_kernels
@given(aligned_pairs(), st.integers(0, 25))
@settings(max_examples=400, deadline=None)
def test_aligned_spans_are_the_same(pair: tuple[str, str], gap: int) -> None:
    from curate.report import model

    before, after = pair
    compiled = model.aligned_spans(before, after, gap)
    shown = model.shown_chars([{"k": "sub", "t": before, "a": after, "e": 0}])
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(model, "_compiled_aligned_spans", None)
        monkeypatch.setattr(model, "_compiled_count_differences", None)
        reference = model.aligned_spans(before, after, gap)
        shown_by_python = model.shown_chars([{"k": "sub", "t": before, "a": after, "e": 0}])
    assert compiled == reference
    assert shown == shown_by_python
    # Independent oracle: the spans tile the text, and a span is "changed" exactly where it
    # holds a differing position; each changed span starts and ends at one.
    assert [s for s, _, _ in compiled] == [0, *(e for _, e, _ in compiled[:-1])][: len(compiled)]
    assert (compiled[-1][1] if compiled else 0) == len(after)
    assert all(start < end for start, end, _ in compiled)
    differing = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert shown == len(before) + len(differing)
    for start, end, is_changed in compiled:
        inside = [i for i in differing if start <= i < end]
        assert bool(inside) == is_changed
        if is_changed:
            assert inside[0] == start and inside[-1] == end - 1



@needs_kernels
def test_aligned_spans_of_a_gap_past_the_text_make_one_run() -> None:
    # (a gap near 2**63 once overflowed the kernel's `gap + 1`)
    from curate.report import model

    for gap in (5, 2**63 - 1):
        assert model.aligned_spans("ab-cd", "xb-cx", gap) == [(0, 5, True)]
        assert model.count_differences("ab-cd", "xb-cx") == 2

def _segment(draw: st.DrawFn) -> dict:
    """A diff segment of any kind the report makes, with the keys it may carry; texts short and
    of few characters, so del/ins pairs of one length that differ everywhere, and keeps about
    `SUB_GAP` long between substitutions, are common."""
    text = st.text(alphabet="甲乙丙a\n", max_size=24)
    kind = draw(st.sampled_from(["keep", "keep", "del", "ins", "sub", "mark"]))
    if kind == "sub":
        # (as `diff_segments` makes them: changed at both ends, maybe here and there between)
        before = draw(st.text(alphabet="甲乙丙a", min_size=1, max_size=24))
        inside = "".join(draw(st.sampled_from([c, "丁"])) for c in before[1:-1])
        after = "丁" if len(before) == 1 else "丁" + inside + "丁"
        return {"k": "sub", "t": before, "a": after, "e": draw(st.integers(0, 2))}
    segment = {"k": kind, "t": "" if kind == "mark" else draw(text if kind == "keep" else text.filter(bool))}
    if kind in ("del", "ins"):
        segment["e"] = draw(st.integers(0, 2))
    if kind != "del" and draw(st.booleans()):
        segment["f"] = [0]
    if kind == "del" and draw(st.integers(0, 4)) == 0:
        segment["via"] = [0]
    return segment


segment_lists = st.lists(st.composite(_segment)(), max_size=14)


def _outcome(call):
    """What a call returns, or the type of what it raises."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 (compared: the twins raise alike)
        return type(exc)


@needs_kernels
@given(segment_lists, st.integers(0, 30))
@settings(max_examples=500, deadline=None)
def test_a_diffs_collapse_compaction_and_size_are_the_same(segments: list[dict], context: int) -> None:
    from curate.report import model

    def passes() -> tuple:
        limits = model.Limits(context=context)
        compact = model.compact_substitutions(segments)
        return (compact, model.shown_chars(segments), model.shown_chars(compact),
                model._collapsed_runs(segments, context), model.collapse(segments, limits))

    compiled = passes()
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("compact_substitutions", "shown_chars", "collapsed_runs"):
            monkeypatch.setattr(model, f"_compiled_{name}", None)
        assert compiled == passes()
    compact, shown, shown_compact, (runs, _), _ = compiled
    # Independent of both: compaction changes neither the characters shown nor, once expanded,
    # the segments; collapsing keeps every character of the text, shown or counted in a gap.
    assert shown == shown_compact
    assert model.expand_substitutions(compact) == model.expand_substitutions(segments)
    assert sum(len(s.get("t", "")) + s.get("n", 0) for s in runs) == sum(len(s["t"]) for s in segments)


@needs_kernels
def test_substitutions_at_most_sub_gap_apart_are_compacted_into_one() -> None:
    from curate.report import model

    for between in (model.SUB_GAP, model.SUB_GAP + 1):
        keep = "a" * between
        segments = [{"k": "sub", "t": "甲", "a": "乙", "e": 0}, {"k": "keep", "t": keep},
                    {"k": "del", "t": "丙", "e": 0}, {"k": "ins", "t": "丁", "e": 0}]
        want = ([{"k": "sub", "t": "甲" + keep + "丙", "a": "乙" + keep + "丁", "e": 0}]
                if between == model.SUB_GAP else [segments[0], segments[1], {"k": "sub", "t": "丙", "a": "丁", "e": 0}])
        assert model.compact_substitutions(segments) == want


@needs_kernels
def test_segments_the_report_never_makes_are_left_to_the_python() -> None:
    # A key missing or a text not a str: the kernels give None, and the Python twin raises
    # (or reads it) as it always did.
    from curate.report import model

    odd = [
        [{"k": "gap", "n": 3}],  # (no text: `collapse` reads every segment's)
        [{"t": "甲"}],
        [{"k": "sub", "t": "甲", "e": 0}],
        [{"k": "sub", "t": "甲", "a": "乙丙", "e": 0}],
        [{"k": "del", "t": "甲"}, {"k": "ins", "t": "乙"}],
        [{"k": "keep", "t": ["甲"]}],
        [{"k": "del", "t": "甲", "e": 0}, {"k": "ins", "t": 5, "e": 0}],
        ["keep"],
        ({"k": "keep", "t": "甲乙"}, {"k": "del", "t": "甲", "e": 0}, {"k": "ins", "t": "乙", "e": 0}),  # (not a list)
    ]
    for segments in odd:
        for name, call in (("compact_substitutions", partial(model.compact_substitutions, segments)),
                           ("shown_chars", partial(model.shown_chars, segments)),
                           ("collapsed_runs", partial(model._collapsed_runs, segments, 1))):
            compiled = _outcome(call)
            with pytest.MonkeyPatch.context() as monkeypatch:
                monkeypatch.setattr(model, f"_compiled_{name}", None)
                assert compiled == _outcome(call), (name, segments)
    kernels = model._compiled_compact_substitutions.__module__
    assert kernels == "curate._kernels"


@needs_kernels
def test_collapse_with_a_context_past_a_c_integer_is_the_same() -> None:
    from curate.report import model

    segments = [{"k": "keep", "t": "甲" * 50}, {"k": "del", "t": "乙", "e": 0}, {"k": "keep", "t": "丙" * 50}]
    for context in (2**62, 2**63 - 1, 2**64, 3, -1, -(2**64)):
        out, cut = model.collapse(segments, model.Limits(context=context))
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setattr(model, "_compiled_collapsed_runs", None)
            assert (out, cut) == model.collapse(segments, model.Limits(context=context))
        assert (out == segments) is (context > 15)


def _edit_record(draw: st.DrawFn) -> dict:
    """An edit record as a version's log holds it, or one of a hand-made log (fields missing),
    its texts about as long as the test's limit."""
    record = {
        "doc": "d", "seq": draw(st.integers(0, 9)), "stage": "s", "rule": draw(st.sampled_from(["r", ""])),
        "action": draw(st.sampled_from(["drop", "replace", "meta:author", "flag", "metadata"])),
        "start": 0, "end": 1, "before": draw(st.text(alphabet="甲 a\n", max_size=8)),
        "after": draw(st.text(alphabet="乙b", max_size=8)), "reason": "why", "kind": "k",
        "src_start": 3, "src_end": 4,
        "evidence": draw(st.sampled_from([None, {}, {"x": 1}])), "link": draw(st.sampled_from([None, {"doc": "o"}])),
    }  # fmt: skip
    if record["evidence"] is None:
        del record["evidence"]
    if record["link"] is None:
        del record["link"]
    for key in draw(st.lists(st.sampled_from(sorted(record)), max_size=3)):
        record.pop(key, None)
    return record


@needs_kernels
@given(st.lists(st.composite(_edit_record)(), max_size=5), st.integers(0, 6))
@settings(max_examples=300, deadline=None)
def test_edit_entries_are_the_same(edits: list[dict], limit: int) -> None:
    from curate.report import model

    compiled = model._edit_entries("d", edits, limit)
    reference = [model._edit_entry("d", n, e, limit) for n, e in enumerate(edits)]
    assert compiled == reference
    assert [list(entry) for entry in compiled] == [list(entry) for entry in reference]  # (key order: the JSON's)
    for edit, entry in zip(edits, compiled, strict=True):  # (and what the report says they are)
        assert ("review" in entry) is (edit.get("action") == "drop" or edit.get("action", "").startswith("meta:"))
        assert len(entry["before"]) <= len(edit.get("before", "")) or "… (+" in entry["before"]


@needs_kernels
def test_edit_records_a_log_never_holds_are_left_to_the_python() -> None:
    from curate.report import model

    for edits in ([["drop"]], [{"action": 5}], [{"action": "drop", "before": 5}], [{"after": None}], ({"before": "甲"},)):
        compiled = _outcome(partial(model._edit_entries, "d", edits, 10))
        assert compiled == _outcome(lambda edits=edits: [model._edit_entry("d", n, e, 10) for n, e in enumerate(edits)])
    for limit in (2**62, 2**64, -(2**64)):  # (past a C integer: the Python's)
        assert model._edit_entries("d", [{"before": "甲乙"}], limit) == [model._edit_entry("d", 0, {"before": "甲乙"}, limit)]


@needs_kernels
def test_aligned_spans_reject_texts_of_different_lengths() -> None:
    from curate.report import model

    with pytest.raises(ValueError):
        model.aligned_spans("ab", "abc")
    with pytest.raises(ValueError):
        model.shown_chars([{"k": "sub", "t": "ab", "a": "abc", "e": 0}])


# Han (some of them rare, so that windows reach the garbage floor), Latin, digits, punctuation,
# spaces and line ends, a non-BMP Han and an emoji.
GARBAGE_ALPHABET = list("的新闻报道锟斤拷烫屯鬻龘abc019，。！ \r\n\n\t") + ["\U00020000", "\U0001f600"]


@needs_kernels
@given(
    st.lists(st.text(alphabet=st.sampled_from(GARBAGE_ALPHABET), max_size=60), max_size=6),
    st.sampled_from([1, 2, 3, 8, 16, 17]),
)
@settings(max_examples=400, deadline=None)
def test_garbage_window_scores_are_the_same(texts: list[str], width: int) -> None:
    # Texts joined in a batch (empty ones, ones shorter than a window, line breaks at their
    # edges, a batch shorter than a window): the compiled loop's sums, counts and usable
    # windows are numpy's, bit for bit.
    from curate.detectors import TextBatch, garbage
    from curate.detectors.bigram import default_model

    model = default_model()
    assert width <= model.exact_sum_terms  # (else the loop is not used)
    batch = TextBatch.of(texts, model)
    compiled = garbage._window_scores(batch, model, width)
    reference = garbage._window_scores_numpy(batch, model, width)
    for got, want in zip(compiled, reference, strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()


def test_window_sums_are_exact_only_where_the_model_says() -> None:
    # `exact_sum_terms` is what lets a running sum stand for numpy's convolution: values on a
    # coarse enough grid and small enough add up exactly in any order; a model whose values
    # are not gets 0, and the garbage detector keeps numpy's sums.
    import dataclasses

    from curate.detectors.bigram import default_model

    model = default_model()
    assert 16 <= model.exact_sum_terms < 2**24
    rng = np.random.default_rng(5)
    values = rng.choice(np.concatenate([model.slot_bits[:5000], model.unigram_bits]), 20_000)
    filled = values.astype(np.float64)
    running = np.concatenate([[0.0], np.cumsum(filled)])  # (the whole array is well within)
    assert filled.size <= model.exact_sum_terms
    assert np.array_equal(running[16:] - running[:-16], np.convolve(filled, np.ones(16), "valid"))
    # Far apart magnitudes: the same two computations differ, and such a model says so.
    wild = np.array([1e-7, 3e4, -3e4, 2.5e-7] * 50, dtype=np.float32).astype(np.float64)
    running = np.concatenate([[0.0], np.cumsum(wild)])
    assert not np.array_equal(running[16:] - running[:-16], np.convolve(wild, np.ones(16), "valid"))
    tiny = dataclasses.replace(model, slot_bits=np.array([1e-7, 3e4], dtype=np.float32))
    assert tiny.exact_sum_terms < 16
    negative = dataclasses.replace(model, backoff_bits=model.backoff_bits - 1)
    assert negative.exact_sum_terms == 0


def test_garbage_windows_use_numpy_where_sums_would_not_be_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from curate.detectors import (
        DetectorContext,
        SpamLexicon,
        TextBatch,
        default_lexicon_path,
        garbage,
    )
    from curate.detectors.bigram import default_model

    model = dataclasses.replace(default_model())
    model.__dict__["exact_sum_terms"] = 8  # (the cached value: a model sure of 8 terms only)
    ctx = DetectorContext(lexicon=SpamLexicon.load(default_lexicon_path()), model=model)
    texts = ["锟斤拷烫烫烫屯屯屯龘龘鬻鬻" * 4 + "\n" + "的新闻报道" * 10]
    calls = []

    def counted(*args):
        calls.append(args)
        return KERNEL_WINDOWS(*args)

    monkeypatch.setattr(garbage, "_compiled_windows", counted)
    found = garbage.windows(TextBatch.of(texts, model), ctx)  # (width 16: past the 8)
    assert calls == [] and found[0] is not None
    ctx = DetectorContext(lexicon=SpamLexicon.load(default_lexicon_path()), model=model, garbage_window=8)
    garbage.windows(TextBatch.of(texts, model), ctx)
    assert len(calls) == (KERNEL_WINDOWS is not None)


KERNEL_WINDOWS = getattr(KERNELS, "garbage_windows", None)

# Noise that the garbage detector flags (GBK read as Big5): windows of unstored pairs, whose
# bounds are their surprise, so a floor at their mean is the pre-check's tightest case.
GARBAGE_NOISE = "各地群众踊跃参加志愿服务活动现场气氛十分热烈".encode("gbk").decode("big5", errors="replace")
# (And code points past the model's lookup: an unknown Han one, another.)
GARBAGE_PIECES = GARBAGE_ALPHABET + [GARBAGE_NOISE[:8], GARBAGE_NOISE[8:20], "\U00030001", "\U000e0001"]


@needs_kernels
@given(
    st.lists(
        st.lists(st.sampled_from(GARBAGE_PIECES), max_size=80).map("".join),
        max_size=6,
    ),
    st.sampled_from([1, 2, 3, 8, 16, 17]),
    st.sampled_from([0.0, 5.0, 9.0, 17.0, 40.0]),
)
@settings(max_examples=400, deadline=None)
def test_garbage_may_reach_is_the_same(texts: list[str], width: int, floor: float) -> None:
    # The compiled pre-check and its numpy twin tell the same texts (empty ones, shorter than
    # a window, line breaks at their edges; floors every text passes, none does, and between).
    from curate.detectors import TextBatch, garbage
    from curate.detectors.bigram import default_model

    model = default_model()
    arguments = garbage._may_reach_arguments(TextBatch.of(texts, model), model, width, floor)
    compiled = KERNELS.garbage_may_reach(*arguments)
    reference = garbage._may_reach_numpy(*arguments)
    assert compiled.dtype == reference.dtype == np.uint8
    assert compiled.tobytes() == reference.tobytes()


def _detector_context(model=None):  # (the detectors' context: the shipped lexicon, and model by default)
    from curate.detectors import DetectorContext, SpamLexicon, default_lexicon_path

    lexicon = SpamLexicon.load(default_lexicon_path())
    return DetectorContext(lexicon=lexicon) if model is None else DetectorContext(lexicon=lexicon, model=model)


@needs_kernels
@given(
    st.lists(
        st.lists(st.sampled_from(GARBAGE_PIECES), max_size=90).map("".join),
        min_size=1,
        max_size=6,
    ),
    st.integers(0, 5),
    st.sampled_from([-1, 0, 1]),
)
@settings(max_examples=400, deadline=None)
def test_garbage_may_reach_misses_no_text_that_reaches(texts: list[str], pick: int, step: int) -> None:
    # Every text with a usable window whose mean (the full computation) reaches the floor
    # passes the pre-check, down to a floor equal to such a mean or one ulp either side.
    from curate.detectors import TextBatch, garbage

    ctx = _detector_context()
    batch = TextBatch.of(texts, ctx.model)
    sums, counts, usable = garbage._window_scores(batch, ctx.model, ctx.garbage_window)
    means = garbage._means(sums, counts, usable)
    inside = [  # (the means of each text's usable windows)
        means[start:last][usable[start:last]]
        for start, stop in zip(batch.starts[:-1].tolist(), batch.starts[1:].tolist(), strict=True)
        for last in [max(start, stop - ctx.garbage_window + 1)]
    ]
    text_means = [m for m in inside[pick % len(inside)].tolist() if m > 0]
    floors = [17.0, 9.0] + ([float(np.nextafter(max(text_means), max(text_means) + step))] if text_means else [])
    for floor in floors:
        ctx.garbage_min_bits = floor
        may = garbage._may_reach(batch, ctx)
        assert may is not None
        for i, values in enumerate(inside):
            if (values >= floor).any():
                assert may[i], (floor, texts[i])


@needs_kernels
@pytest.mark.parametrize(
    "noise",  # (windows of 13-15 kept characters: their mean rounds up to the floor)
    [
        "ァ\n轄�噙閩戰魂ァ閩華��弮衱\n��雄\n魂ァ衱ァ雄ァ雄跪昢\n虞閩衱珋跪\n煦",
        "煬煬閩虞部�昢\n��魂�ァ坋昢珋\n煦弮戰跪�祳珋\n",
        "煦祳坋坋��跪雄轄跪ァ弮\n珋閩\nァ跪弮祳�跪",
        GARBAGE_NOISE * 2,
    ],
)
def test_garbage_may_reach_finds_noise_at_its_own_mean(noise: str) -> None:
    # The tightest cases, fixed: noise (unstored pairs, whose bounds are their surprise), the
    # floor its best window's mean; without `_REACH_SLACK` the first three were missed.
    from curate.detectors import TextBatch, garbage

    ctx = _detector_context()
    batch = TextBatch.of(["的新闻" * 12, noise], ctx.model)
    sums, counts, usable = garbage._window_scores(batch, ctx.model, ctx.garbage_window)
    last = int(batch.starts[2]) - ctx.garbage_window + 1
    start = int(batch.starts[1])
    ctx.garbage_min_bits = float(garbage._means(sums, counts, usable)[start:last].max())
    assert ctx.garbage_min_bits > 17.0
    assert garbage._may_reach(batch, ctx).tolist() == [False, True]
    ctx.garbage_min_bits = 40.0  # (above any character's bound)
    assert garbage._may_reach(batch, ctx).tolist() == [False, False]


def test_garbage_may_reach_only_where_the_bound_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    # A model with one stored pair above its backoff estimate says so, and the detector then
    # scores every text (the same flags, as the shipped model's own check says it may not).
    import dataclasses

    from curate.detectors import TextBatch, bigram, garbage

    model = bigram.default_model()
    assert model.backoff_bounds_stored
    slot = int(np.flatnonzero(model.slot_keys != bigram.EMPTY_SLOT)[0])
    before, after = divmod(int(model.slot_keys[slot]), len(model.symbols))
    estimate = model.backoff_bits[before] + model.unigram_bits[after]
    for raised, holds in ((estimate, True), (np.nextafter(estimate, np.float32(99)), False)):
        bits = model.slot_bits.copy()
        bits[slot] = raised
        other = dataclasses.replace(model, slot_bits=bits)
        assert other.backoff_bounds_stored is holds
        ctx = _detector_context(other)
        assert (garbage._may_reach(TextBatch.of(["新闻" * 20], other), ctx) is None) is not holds
    # Keys of symbols the tables have no bits for: not a pair the model looks up, so no bound.
    keys = model.slot_keys.copy()
    keys[slot] = len(model.symbols) * len(model.symbols) + 1
    assert not dataclasses.replace(model, slot_keys=keys).backoff_bounds_stored


def test_garbage_windows_of_a_model_with_strided_tables_are_the_same() -> None:
    # A model's tables need not be contiguous (the surprise then comes from numpy): the
    # pre-check reads them all the same, and the windows are the model's own.
    import dataclasses

    from curate.detectors import TextBatch, garbage

    ctx = _detector_context()
    model = ctx.model

    def strided(table: np.ndarray) -> np.ndarray:
        return np.repeat(table, 2)[::2]

    other = dataclasses.replace(
        model, backoff_bits=strided(model.backoff_bits), unigram_bits=strided(model.unigram_bits)
    )
    assert not other.backoff_bits.flags.c_contiguous and other.backoff_bounds_stored
    texts = ["的新闻" * 12, GARBAGE_NOISE * 3]
    want = garbage.windows(TextBatch.of(texts, model), ctx)
    ctx.model = other
    got = garbage.windows(TextBatch.of(texts, other), ctx)
    assert [w is garbage.QUIET for w in got] == [w is garbage.QUIET for w in want] == [True, False]
    assert got[1].sums.tobytes() == want[1].sums.tobytes()


def test_no_bound_where_the_tables_are_longer_than_the_symbols() -> None:
    # A model file whose bits go on past its symbols (malformed, not one the builder writes):
    # a symbol id n + b from its lookup makes the key (a - 1) * n + (n + b) == a * n + b, a
    # stored pair's, whose bits its own backoff estimate does not bound. No pre-check then.
    import dataclasses

    from curate.detectors import TextBatch, bigram, garbage

    model = bigram.default_model()
    n = len(model.symbols)
    stored = np.flatnonzero(model.slot_keys != bigram.EMPTY_SLOT)
    before, after = np.divmod(model.slot_keys.take(stored).astype(np.int64), n)
    usable = before > bigram.FIRST_SYMBOL  # (a history before it that is a table symbol)
    pick = int(np.argmax(np.where(usable, model.slot_bits.take(stored), -1)))
    a, b = int(before[pick]), int(after[pick])
    size = n + b + 1
    lookup = model.lookup.copy()
    lookup[0xE000] = n + b
    longer = dataclasses.replace(
        model,
        lookup=lookup,
        backoff_bits=np.resize(model.backoff_bits, size),
        unigram_bits=np.concatenate([model.unigram_bits, np.full(size - n, model.unigram_bits.min(), np.float32)]),
        han_symbols=np.resize(model.han_symbols, size),
    )
    ids = longer.ids_of_codes(np.array([ord(model.symbols[a - 1]), 0xE000], dtype=np.uint32))
    surprise = longer.surprise_of_ids(ids, np.zeros(1, dtype=np.intp))[1]
    bound = longer.backoff_bits[a - 1] + longer.unigram_bits[n + b]
    assert surprise > bound  # (what the pre-check would have taken for the most it can be)
    assert not longer.backoff_bounds_stored
    ctx = _detector_context(longer)
    assert garbage._may_reach(TextBatch.of(["新闻" * 20], longer), ctx) is None


@needs_kernels
@given(
    st.lists(st.text(alphabet=st.sampled_from(GARBAGE_ALPHABET + ["報", "導", "ä", "\x00"]), max_size=80), max_size=5)
)
@settings(max_examples=300, deadline=None)
def test_bigram_surprise_is_the_same(texts: list[str]) -> None:
    # Texts joined (empty ones too: a start repeated), each starting after <bos>; more than
    # one block of 64 characters.
    from curate.detectors import TextBatch
    from curate.detectors.bigram import default_model

    model = default_model()
    assert model._kernel_tables is not None
    batch = TextBatch.of(texts, model)
    compiled = model.surprise_of_ids(batch.ids, batch.starts[:-1])
    reference = model._surprise_of_ids_numpy(batch.ids, batch.starts[:-1])
    assert compiled.dtype == reference.dtype == np.float32
    assert compiled.tobytes() == reference.tobytes()


def test_bigram_surprise_of_tables_of_other_types_is_numpys() -> None:
    # A model whose tables the compiled loop does not read (float64 bits) keeps numpy's
    # computation; a model built from counts (small tables) gets the loop, with the same values.
    import dataclasses

    from curate.detectors import TextBatch
    from curate.detectors.bigram import BigramModel, default_model

    texts = ["新闻报道的新闻。", "", "报道\n新闻abc"] * 30
    model = default_model()
    wide = dataclasses.replace(model, backoff_bits=model.backoff_bits.astype(np.float64))
    assert wide._kernel_tables is None
    batch = TextBatch.of(texts, wide)
    assert np.array_equal(wide.surprise_of_ids(batch.ids, batch.starts[:-1]),
                          wide._surprise_of_ids_numpy(batch.ids, batch.starts[:-1]))  # fmt: skip
    small = BigramModel.from_counts(
        {"新": 5, "闻": 5, "报": 3, "道": 3, "的": 9}, {("新", "闻"): 4, ("报", "道"): 3, ("的", "新"): 2}
    )
    assert (small._kernel_tables is not None) == (KERNELS is not None)
    batch = TextBatch.of(texts, small)
    got = small.surprise_of_ids(batch.ids, batch.starts[:-1])
    assert got.tobytes() == small._surprise_of_ids_numpy(batch.ids, batch.starts[:-1]).tobytes()


# Characters of the shipped rules' triggers, some of their variants (folded to them), and others.
TRIGGER_ALPHABET = list("记者編輯编辑來源来源责任原文链接本报讯免责声明扫一扫版权所有作享有轉載說明網絡，。：:© \n\uffff") + [
    "\U00020000"
]


def joined_for_scan(texts: list[str]) -> tuple[str, np.ndarray, list[int]]:
    """The texts as `TriggerIndex.locate_many` scans them: folded, joined by U+FFFF, with
    their code points and each text's start."""
    from itertools import accumulate

    from curate import rules

    folded, codes = rules.mapped_text(rules._JOINER.join(texts), rules._fold_codes(), with_codes=True)
    return folded, codes, list(accumulate((len(t) + 1 for t in texts), initial=0))


@needs_kernels
@given(st.lists(st.text(alphabet=st.sampled_from(TRIGGER_ALPHABET), max_size=100), min_size=1, max_size=4))
@settings(max_examples=300, deadline=None)
def test_trigger_positions_are_the_same(texts: list[str]) -> None:
    # Where the shipped rules' longer triggers start in each text: the kernel (uint32 codes)
    # and the Python loop over numpy's places (any other dtype), dicts in the same order.
    from curate import rules

    index = shipped_trigger_index()
    folded, codes, offsets = joined_for_scan(texts)
    got = rules._trigger_positions(index, folded, codes, offsets)
    want = rules._trigger_positions(index, folded, codes.astype(np.int64), offsets)
    assert got == want
    assert [list(found) for found in got] == [list(found) for found in want]


def test_trigger_positions_find_each_trigger_where_it_starts() -> None:
    # Every trigger of two characters or more, twice in its text: found at both places (the
    # second spelt with its first character's variant where it has one), and every position
    # given starts its trigger, in either computation.
    from curate import rules

    index = shipped_trigger_index()
    variant = {"记": "記", "编": "編", "来": "來"}
    triggers = [t for pair_triggers in index.starts.values() for t in pair_triggers]
    assert len(triggers) > 50
    texts = [f"x{t}y{variant.get(t[0], t[0])}{t[1:]}" for t in triggers]
    folded, codes, offsets = joined_for_scan(texts)
    for as_given in (codes, codes.astype(np.int64)):
        found = rules._trigger_positions(index, folded, as_given, offsets)
        for k, trigger in enumerate(triggers):
            assert found[k][trigger] == [1, len(trigger) + 2]
            for other, starts in found[k].items():
                assert all(folded.startswith(other, offsets[k] + p) for p in starts)


def test_trigger_positions_in_the_order_the_triggers_start() -> None:
    # Triggers of one pair where one starts another (作者, 作者享有; 轉載, 轉載說明): each
    # text's dict holds them in the order the Python loop finds them, in either computation.
    from curate import rules

    index = shipped_trigger_index()
    texts = ["作者享有版权", "转载说明：转载", "版权所有，作者"]
    folded, codes, offsets = joined_for_scan(texts)
    found = rules._trigger_positions(index, folded, codes, offsets)
    assert found == rules._trigger_positions(index, folded, codes.astype(np.int64), offsets)
    for k, text in enumerate(texts):
        want = []
        for p in range(len(text) - 1):
            for trigger in index.starts.get(folded[offsets[k] + p : offsets[k] + p + 2], []):
                if folded.startswith(trigger, offsets[k] + p) and trigger not in want:
                    want.append(trigger)
        assert list(found[k]) == want
    assert list(found[0])[:2] == ["作者", "作者享有"]


@needs_kernels
def test_trigger_positions_reject_what_does_not_fit() -> None:
    # Tables of code points 0-2 with one slot: the pair (1, 1) starts the trigger [1, 1, 2].
    rows, columns = np.array([2, 0, 2], dtype=np.int32), np.array([1, 0, 1], dtype=np.int32)
    slots, bounds = np.array([0, -1, -1, -1], dtype=np.int32), np.array([0, 1], dtype=np.int32)
    codes_of, code_bounds = np.array([1, 1, 2], dtype=np.uint32), np.array([0, 3], dtype=np.int64)

    def scan(codes: list[int], offsets: list[int], trigger_bounds: np.ndarray = code_bounds) -> list[dict]:
        return KERNELS.trigger_positions(
            np.array(codes, dtype=np.uint32), rows, columns, slots, bounds, codes_of, trigger_bounds,
            ("t",), np.array(offsets, dtype=np.int64),
        )  # fmt: skip

    assert scan([1, 1, 2, 0, 1, 1, 2, 1, 1], [0, 4, 10]) == [{"t": [0]}, {"t": [0]}]
    with pytest.raises(IndexError):
        scan([1, 3], [0, 3])  # code point 3: past the tables
    with pytest.raises(ValueError):
        scan([1, 1, 2], [0, 2])  # the codes go past the last offset
    with pytest.raises(ValueError):
        scan([1, 1, 2], [0, 4], np.array([0, 4], dtype=np.int64))  # a trigger past its codes


def shipped_trigger_index():
    from pathlib import Path

    from curate.rules import load_rules

    return load_rules([Path(__file__).resolve().parents[1] / "rules"]).trigger_index()


def test_bigram_surprise_starts_after_bos_whatever_the_starts_say() -> None:
    # The first symbol follows <bos> even where `starts` does not name 0 (both computations).
    from curate.detectors.bigram import default_model

    model = default_model()
    ids = model.ids("新闻报道新闻")
    expected = np.concatenate([model.surprise("新闻"), model.surprise("报道新闻")])
    for starts in ([0, 2], [2]):
        got = model.surprise_of_ids(ids, np.array(starts))
        assert got.tobytes() == model._surprise_of_ids_numpy(ids, np.array(starts)).tobytes()
        assert got.tobytes() == expected.tobytes()


def test_a_compiled_models_derived_tables_come_with_it_as_computed(tmp_path, monkeypatch) -> None:
    # The packed slots and the exact-sum bound are stored in the table cache with the model's
    # arrays: loaded (built, then read back from the cache) they are what computing them gives.
    from curate.detectors import bigram

    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path))
    for _ in range(2):  # built and stored, then read from the cache
        model = bigram.BigramModel.load(bigram.DEFAULT_MODEL)
        assert model.__dict__["exact_sum_terms"] == bigram._exact_sum_terms(
            model.slot_bits, model.backoff_bits, model.unigram_bits
        ) > 0
        assert model.__dict__["backoff_bounds_stored"] is bigram._backoff_bounds_stored(
            model.slot_keys, model.slot_bits, model.backoff_bits, model.unigram_bits, len(model.symbols)
        ) is True
        pairs = model.__dict__["_slot_pairs"]
        assert pairs.dtype == np.uint64
        assert pairs.tobytes() == bigram._packed_slots(model.slot_keys, model.slot_bits).tobytes()
        assert (pairs & 0xFFFFFFFF).astype(np.uint32).tobytes() == model.slot_keys.tobytes()
        assert (pairs >> 32).astype(np.uint32).view(np.float32).tobytes() == model.slot_bits.tobytes()
    assert any(tmp_path.iterdir())
    # Computed by this module's code: another version of its source computes them anew (a
    # fix of how one is derived is not hidden by the values an earlier version stored).
    inflated = []
    real = bigram._exact_sum_terms  # (computed where the arrays are inflated, not read back)
    monkeypatch.setattr(bigram, "_exact_sum_terms", lambda *a: inflated.append(1) or real(*a))
    bigram.BigramModel.load(bigram.DEFAULT_MODEL)
    assert not inflated
    monkeypatch.setattr(bigram.tablecache, "source_digest", lambda module: "another source")
    bigram.BigramModel.load(bigram.DEFAULT_MODEL)
    assert inflated


@needs_kernels
@given(
    st.lists(
        st.lists(st.integers(-(2**63), 2**63 - 1), max_size=12).flatmap(
            lambda items: st.tuples(
                st.just(items),
                st.integers(0, len(items)).flatmap(lambda a: st.tuples(st.just(a), st.integers(0, len(items) - a))),
            )
        ),
        max_size=8,
    )
)
@settings(max_examples=200, deadline=None)
def test_items_cut_from_blocks_are_the_same(cuts) -> None:
    from curate.stages import dedup

    blocks = [np.array(items, np.int64) for items, _ in cuts]
    starts = np.array([a for _, (a, _) in cuts], np.int64)
    lengths = np.array([n for _, (_, n) in cuts], np.int64)
    with pytest.MonkeyPatch.context() as monkeypatch:
        compiled, reference = both(
            monkeypatch, lambda: dedup._cut_items(blocks, starts, lengths, np.dtype(np.int64))
        )
    want = [item for items, (a, n) in cuts for item in items[a : a + n]]
    assert compiled.dtype == reference.dtype == np.int64
    assert compiled.tolist() == reference.tolist() == want


@needs_kernels
def test_items_cut_from_blocks_stay_inside_them() -> None:
    blocks = [np.arange(4, dtype=np.int64)]
    out = np.empty(3, np.int64)
    for starts, lengths in (([2], [3]), ([-1], [3]), ([0], [-1]), ([2**61], [1]), ([1], [2**61])):
        with pytest.raises(ValueError):
            KERNELS.gather(blocks, np.array(starts, np.int64), np.array(lengths, np.int64), 8, out.view(np.uint8))
    with pytest.raises(ValueError, match="longer"):  # (`out` must be filled: never left half made)
        KERNELS.gather(blocks, np.array([0], np.int64), np.array([2], np.int64), 8, out.view(np.uint8))
    with pytest.raises(ValueError, match="one start"):
        KERNELS.gather(blocks, np.array([0, 1], np.int64), np.array([1], np.int64), 8, out.view(np.uint8))
    KERNELS.gather(blocks, np.array([1], np.int64), np.array([3], np.int64), 8, out.view(np.uint8))
    assert out.tolist() == [1, 2, 3]


@needs_kernels
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 300),
    st.sampled_from([2, 3, 2**11, 2**22 + 5, 2**32]),
    st.lists(st.integers(1, 97), min_size=1, max_size=4),
)
@settings(max_examples=200, deadline=None)
def test_band_tables_are_the_same(seed: int, rows: int, values: int, blocks: list[int]) -> None:
    """A band table's hashes (`band_hashes`) and its entries, radix-sorted (`band_entries`),
    are numpy's, whatever the signatures' values: hashes that share every digit (a pass
    skipped), some, or none, and rows filed a block at a time."""
    from curate.stages import dedup

    rng = np.random.default_rng(seed)
    bands = ((0, 3), (3, 7), (7, 8), (8, 8))  # (an empty band too: every row hashes to 0)
    sigs = rng.integers(0, values, size=(rows, 8), dtype=np.uint64).astype(np.uint32)

    def table() -> tuple[list[np.ndarray], list[np.ndarray]]:
        made, start, sizes = dedup._BandTable(bands), 0, iter(blocks * (rows + 1))
        while start < rows:
            end = start + next(sizes)
            made.add(sigs[start:end])
            start = end
        return made.parts, list(made.entries())

    with pytest.MonkeyPatch.context() as monkeypatch:
        (parts, entries), (want_parts, want_entries) = both(monkeypatch, table)
    assert [part.tolist() for part in parts] == [part.tolist() for part in want_parts]
    assert [band.dtype for band in entries] == [band.dtype for band in want_entries] == [np.dtype(np.uint64)] * 4
    assert [band.tolist() for band in entries] == [band.tolist() for band in want_entries]
    assert all(band.tolist() == sorted(band.tolist()) for band in entries)


@needs_kernels
def test_band_hashes_refuse_bands_outside_the_rows() -> None:
    sigs = np.zeros((2, 4), np.uint32)
    for bounds in ([0, 5], [3, 2], [-1, 2], [0]):
        with pytest.raises(ValueError):
            KERNELS.band_hashes(sigs, np.array(bounds, np.int64), 3)


# Characters of every UTF-8 length: 1 (ASCII), 2 (é, ß, U+07FF), 3 (Han, full-width), 4 (astral).
UTF8_ALPHABET = [c for c in ALPHABET if c != "\ud800"] + ["é", "ß", "\u07ff", "\u0080"]


@st.composite
def _texts_and_spans(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]], str]:
    """A text (long enough for the eight-byte steps), spans inside it (empty ones and ones at
    its end too), in order or shuffled, and how the text is given."""
    text = draw(st.text(alphabet=st.sampled_from(UTF8_ALPHABET), max_size=200))
    ends = st.integers(0, len(text))
    spans = [tuple(sorted(pair)) for pair in draw(st.lists(st.tuples(ends, ends), max_size=6))]
    if draw(st.booleans()):
        spans.sort()
    return text, spans, draw(st.sampled_from(["bytes", "view", "list"]))


@needs_kernels
@given(st.lists(_texts_and_spans(), max_size=5))
@settings(max_examples=400, deadline=None)
def test_utf8_lines_cut_the_utf8_as_decoding_cutting_and_encoding_would(
    documents: list[tuple[str, list[tuple[int, int]], str]],
) -> None:
    """`utf8_lines` (the index's paragraph texts): each span of a UTF-8 text cut from its bytes
    is the span of the decoded text encoded again, for characters of 1 to 4 bytes, texts long
    enough for its eight-byte steps, spans in order or not, empty or at the end; a text given
    as its lines is taken as they are."""
    texts, bounds, counts, want = [], [], [], []
    for text, spans, form in documents:
        data = text.encode()
        cut = [text[a:b] for a, b in spans]
        texts.append({"bytes": data, "view": np.frombuffer(data, np.uint8), "list": cut}[form])
        bounds += [position for span in spans for position in span]
        counts.append(len(spans))
        want += [part.encode() for part in cut]
    assert KERNELS.utf8_lines(texts, np.array(bounds, np.int64), np.array(counts, np.int64)) == want


@needs_kernels
def test_utf8_lines_refuse_spans_the_text_does_not_have() -> None:
    data = "一二三ab".encode()
    for bounds, counts in (
        ([0, 6], [1]),  # past the end (5 characters)
        ([3, 2], [1]),  # ends before it starts
        ([-1, 2], [1]),  # a negative position
        ([0, 2, 2, 3], [1]),  # more bounds than spans
        ([0, 2], [2]),  # more spans than bounds
    ):
        with pytest.raises(ValueError, match="utf8_lines"):
            KERNELS.utf8_lines([data], np.array(bounds, np.int64), np.array(counts, np.int64))
    with pytest.raises(ValueError, match="utf8_lines"):  # a text given as more lines than spans
        KERNELS.utf8_lines([["一", "二"]], np.array([0, 1], np.int64), np.array([1], np.int64))
    assert KERNELS.utf8_lines([data], np.array([5, 5, 0, 3], np.int64), np.array([2], np.int64)) == [b"", "一二三".encode()]


@needs_kernels
@given(st.lists(st.sampled_from([b"\xe2", b"\x80", b"\xa8", b"\xa9", b"a", "“".encode(), "\u2028".encode(), "\u2029".encode(), "字".encode()]), max_size=12))
@settings(max_examples=400, deadline=None)
def test_a_line_separator_is_found_as_the_regex_finds_it(pieces: list[bytes]) -> None:
    # The report escapes U+2028 and U+2029 where the entry holds one (`safe_json`): the kernel
    # looks for their UTF-8 with memchr; the regex is its specification.
    from curate.report import model

    data = b"".join(pieces)
    compiled = model._holds_line_separator(data)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(model, "_compiled_holds_line_separator", None)
        assert model._holds_line_separator(data) is compiled
    assert compiled is ("\u2028".encode() in data or "\u2029".encode() in data)


@needs_kernels
@given(st.text(alphabet=st.sampled_from([*"ab字，\n\r\t \u3000\x0b\x0c\x1c\x85\xa0\u2028\u200b", "\U00020000"]), max_size=40))
@settings(max_examples=400, deadline=None)
def test_paragraph_spans_are_the_same(text: str) -> None:
    # Every stage that reads lines takes them from here (boilerplate, repeated lines, dedup,
    # convert, the truncation detector): the non-blank lines as str.strip tells them.
    from curate import textutil

    compiled = textutil.paragraph_spans(text)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(textutil, "_kernel", lambda name: None)
        assert textutil.paragraph_spans(text) == compiled
    lines, start = [], 0
    for line in text.split("\n"):
        if line.strip():
            lines.append((start, start + len(line)))
        start += len(line) + 1
    assert compiled == lines


@needs_kernels
@given(
    st.text(alphabet=st.sampled_from(list("體体a字é\U00020000")), max_size=8),
    st.text(alphabet=st.sampled_from(list("體体a字é\U00020000")), max_size=8),
    st.text(alphabet=st.sampled_from(list("體体a字é\U00020000")), max_size=8),
    st.text(alphabet=st.sampled_from(list("體体a字é\U00020000")), max_size=8),
)
@settings(max_examples=400, deadline=None)
def test_common_affixes_are_the_same(head: str, a: str, b: str, tail: str) -> None:
    # Where a conversion changed a text (`convert`): the prefix and suffix the two share, of
    # strings of any storage width (Latin-1, BMP, past it), the suffix within what the prefix
    # leaves of the shorter.
    from curate.stages import convert

    before, after = head + a + tail, head + b + tail
    compiled = convert._common_affixes(before, after)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(convert, "_compiled_common_affixes", None)
        assert convert._common_affixes(before, after) == compiled
    prefix, suffix = compiled
    assert before[:prefix] == after[:prefix] and prefix >= len(head)
    assert prefix + suffix <= min(len(before), len(after))
    assert before[len(before) - suffix :] == after[len(after) - suffix :]
    assert prefix == min(len(before), len(after)) or before[prefix] != after[prefix]


@needs_kernels
@given(st.text(alphabet=st.sampled_from(list("()（）字a\n")), max_size=40), st.integers(0, 6))
@settings(max_examples=500, deadline=None)
def test_pair_spans_are_the_regexs_matches(text: str, longest: int) -> None:
    # The punctuation stage's parenthesised pairs: what `re.finditer` finds of
    # `[(（][^()]{0,longest}[)）]` (leftmost, not overlapping, the content greedy), for bounds
    # short enough that the texts reach them, and for the stage's own.
    import re

    from curate.stages import punctuation

    for bound in (longest, punctuation.PAIR_LONGEST):
        pattern = re.compile(rf"[(（][^()]{{0,{bound}}}[)）]")
        assert punctuation._pair_spans(text, bound) == [m.span() for m in pattern.finditer(text)]
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setattr(punctuation, "_compiled_pair_spans", None)
            assert punctuation._pair_spans(text, bound) == [m.span() for m in pattern.finditer(text)]


def test_a_str_subclass_is_read_as_its_str_by_the_kernels_twins() -> None:
    # The kernels take exact `str`; their callers hand a subclass to the Python twin.
    from curate import textutil
    from curate.stages import convert, punctuation

    class Text(str):
        pass

    text = "第一段(甲)\n \n體驗，(乙"
    assert textutil.paragraph_spans(Text(text)) == textutil.paragraph_spans(text) == [(0, 6), (9, 14)]
    assert punctuation._pair_spans(Text(text)) == punctuation._pair_spans(text) == [(3, 6)]
    assert convert._common_affixes(Text("體驗一"), Text("体验一")) == convert._common_affixes("體驗一", "体验一") == (0, 1)


def _edit_log(draw: st.DrawFn) -> tuple[str, list[dict]]:
    """An input text and the edit log of up to four stages on it (substitutions of the same
    length, replacements, removals, metadata moves, flags), as edits.jsonl holds it; sometimes
    broken (a span moved, a text changed, a value of another type)."""
    from curate.document import Change, Document

    text = draw(st.text(alphabet=st.sampled_from(ALPHABET), max_size=60))
    doc = Document.new("x", text)
    table = str.maketrans("團結瀋陽，。", "团结沈阳,.")
    for stage in range(draw(st.integers(0, 4))):
        cuts = sorted(draw(st.lists(st.integers(0, len(doc.text)), max_size=8)))
        changes = []
        for start, end in zip(cuts[::2], cuts[1::2], strict=False):
            old = doc.text[start:end]
            after = draw(st.sampled_from(["", "，", "乙乙乙", old[::-1], old.translate(table), old.upper(), old + "x"]))
            action = draw(st.sampled_from(["", "replace", "meta:author"]))
            changes.append(Change(start, end, after, f"r{stage}", "test", action=action))
        doc.apply(f"s{stage}", changes)
    edits = [{"seq": n, **e.to_json()} for n, e in enumerate(doc.edits)]
    for _ in range(draw(st.integers(0, 2))):  # flags among the edits: not replayed
        at = draw(st.integers(0, len(edits)))
        edits.insert(at, {"seq": at, "action": "flag", "start": 0, "end": 1, "before": "?", "after": ""})
    if edits and draw(st.integers(0, 3)) == 0:
        wrong = edits[draw(st.integers(0, len(edits) - 1))]
        field, value = draw(st.sampled_from([
            ("start", 1), ("end", -1), ("before", "?"), ("after", "?"), ("start", "0"), ("after", None),
            ("action", None), ("start", True),
        ]))  # fmt: skip
        wrong[field] = wrong.get(field, 0) + value if isinstance(value, int) and not isinstance(value, bool) else (
            wrong.get(field, "") + value if value == "?" else value
        )
    return text, edits


@needs_kernels
@given(st.composite(_edit_log)())
@settings(max_examples=600, deadline=None)
def test_diff_segments_are_the_same(log: tuple[str, list[dict]]) -> None:
    # The compiled diff (a document without flags) gives the Python's segments, or leaves the
    # log to the Python: which then raises what it raises.
    from curate.report import model

    text, edits = log

    def outcome() -> object:
        try:
            return model.diff_segments(text, [dict(e) for e in edits], [], "x")
        except Exception as exc:  # noqa: BLE001 - the same error either way
            return (type(exc), str(exc))

    compiled = outcome()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(model, "_compiled_diff_segments", None)
        reference = outcome()
    assert compiled == reference
    made = model._compiled_diff_segments(text, [dict(e) for e in edits], model.char_opcodes, model.SUB_GAP)
    assert made is None or made == reference
    if isinstance(reference, list) and all(
        type(e.get("start")) is int and type(e.get("after", "")) is str and type(e.get("action", "")) is str
        for e in edits
    ):
        assert made is not None  # (a log the Python replays, of a written log's types, is the kernel's)


# Texts of every storage width (1, 2 and 4 bytes a character), lone surrogates among them, some
# longer than the kernel's block of 1,024 characters (hashed in pieces then).
HASHED_TEXTS = (
    st.text(max_size=60)
    | st.text(alphabet=st.sampled_from(["a", "é", "\n", "中", "文", "\U0001f600", "\ud800", "\udfff"]), max_size=60)
    | st.builds(lambda piece, times: piece * times, st.text(min_size=1, max_size=7), st.integers(1, 700))
)


@needs_kernels
@settings(max_examples=400, deadline=None)
@given(HASHED_TEXTS)
def test_text_hash_is_xxh3_of_the_text_as_utf32le(text: str) -> None:
    """The kernel against python-xxhash (another build of the same algorithm) on the bytes the
    docstring names; and `textutil.text_hash` without the kernel, the same."""
    import xxhash

    from curate import textutil

    want = xxhash.xxh3_64_intdigest(text.encode("utf-32-le", "surrogatepass"))
    assert KERNELS.text_hash(text) == want
    assert textutil.text_hash(text) == want
    asked: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(textutil, "_kernel", lambda name: asked.append(name))  # (None: not built)
        assert textutil.text_hash(text) == want
    assert asked == ["text_hash"]  # (the Python path was the one taken)


@needs_kernels
@settings(max_examples=300, deadline=None)
@given(HASHED_TEXTS, st.lists(st.tuples(st.integers(-3000, 3000), st.integers(-3000, 3000)), max_size=8))
def test_span_hashes_are_the_hashes_of_the_slices(text: str, spans: list[tuple[int, int]]) -> None:
    """Bounds as a slice reads them: negative from the end, clamped, reversed ones empty."""
    from curate import textutil

    want = [textutil.text_hash(text[s0:s1]) for s0, s1 in spans]
    array = np.array(spans, dtype=np.int64).reshape(-1, 2)
    assert KERNELS.span_hashes(text, array) == want
    assert textutil.span_hashes(text, array) == want
    assert textutil.span_hashes(text, spans) == want


def _remapping_table(seed: int) -> np.ndarray:
    """A table over every code point that maps some to others of every storage width (and to
    lone surrogates), the rest to themselves."""
    rng = np.random.default_rng(seed)
    table = np.arange(0x110000, dtype=np.uint32)
    picked = rng.choice(0x110000, 3000, replace=False)
    table[picked] = rng.choice([0x41, 0xE9, 0x4E2D, 0xD800, 0x1F600, 0x10FFFF], picked.shape[0])
    table[[ord("a"), ord("中"), 0x1F600, 0xDFFF]] = [0x6587, 0x61, 0xD801, 0x10000]
    return table


REMAPPING_TABLES = [_remapping_table(seed) for seed in range(2)]


@needs_kernels
@settings(max_examples=300, deadline=None)
@given(HASHED_TEXTS, st.sampled_from([0, 1]), st.booleans())
def test_mapped_text_is_the_gather_of_its_code_points(text: str, which: int, with_codes: bool) -> None:
    """The kernel against numpy's gather between `code_points` and `text_of_codes`."""
    from curate import textutil

    table = REMAPPING_TABLES[which]
    codes = table[textutil.code_points(text)]
    got = KERNELS.mapped_text(text, table, with_codes)
    if with_codes:
        assert got[0] == textutil.text_of_codes(codes) and got[1].dtype == np.uint32
        assert got[1].tolist() == codes.tolist()
    else:
        assert got == textutil.text_of_codes(codes)
    assert textutil.mapped_text(text, table) == textutil.text_of_codes(codes)


@needs_kernels
def test_mapped_text_wants_a_table_of_every_code_point() -> None:
    with pytest.raises(ValueError, match="0x110000"):
        KERNELS.mapped_text("abc", np.arange(0x10000, dtype=np.uint32))


@needs_kernels
@settings(max_examples=300, deadline=None)
@given(HASHED_TEXTS | st.text(alphabet=st.sampled_from(["中", "a", "A", "9", "，", " ", "\t", "\u200b", "😀", "Σ"]), max_size=80), st.data())
def test_plain_keys_are_numpys_mapping_and_counts(text: str, data: st.DataObject) -> None:
    """The kernel against `plain_key_texts`' numpy steps: the kept characters mapped, and at
    each bound how many were kept before it and how many were not plain."""
    from curate import textutil
    from curate.stages.repeated_lines import _DROPPED_CODE, _NOT_PLAIN_CODE, _plain_codes

    table = _plain_codes()
    bounds = np.array(sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=10))), np.int64)
    codes = table.take(np.minimum(textutil.code_points(text), 0x10000))
    gone = codes >= _DROPPED_CODE
    joined, kept, not_plain = KERNELS.plain_keys(text, table, bounds, _DROPPED_CODE)
    assert joined == textutil.text_of_codes(codes[~gone])
    assert kept.tolist() == (bounds - np.searchsorted(np.flatnonzero(gone), bounds)).tolist()
    assert not_plain.tolist() == np.searchsorted(np.flatnonzero(codes == _NOT_PLAIN_CODE), bounds).tolist()


@needs_kernels
def test_plain_keys_wants_bounds_in_order_inside_the_text() -> None:
    from curate.stages.repeated_lines import _DROPPED_CODE, _plain_codes

    for bounds in ([2, 1], [-1], [6]):
        with pytest.raises(ValueError, match="bounds"):
            KERNELS.plain_keys("a，b\tc", _plain_codes(), np.array(bounds, np.int64), _DROPPED_CODE)



def test_str_subclasses_take_the_python_paths() -> None:
    """The kernels take a `str` only: a subclass (numpy's `str_`) is hashed and mapped by the
    Python paths, to the same values."""
    from curate import t2s, textutil

    text = "這是一個測試，" * 20
    sub = np.str_(text)
    assert textutil.text_hash(sub) == textutil.text_hash(text)
    spans = np.array([[0, 5], [3, 40]], np.int64)
    assert textutil.span_hashes(sub, spans) == textutil.span_hashes(text, spans)
    table = REMAPPING_TABLES[0]
    assert textutil.mapped_text(sub, table) == textutil.mapped_text(text, table)
    assert t2s.convert(sub) == t2s.convert(text) != text


@needs_kernels
def test_mapped_text_refuses_a_value_past_the_last_code_point() -> None:
    from curate.stages.repeated_lines import _DROPPED_CODE

    table = np.arange(0x110000, dtype=np.uint32)
    table[ord("b")] = 0x110000
    with pytest.raises(ValueError, match="U\\+10FFFF"):
        KERNELS.mapped_text("abc", table)
    assert KERNELS.mapped_text("ac", table) == "ac"
    plain = np.arange(0x10001, dtype=np.uint32)
    plain[ord("b")] = 0x110000
    with pytest.raises(ValueError, match="U\\+10FFFF"):
        KERNELS.plain_keys("abc", plain, np.zeros(0, np.int64), _DROPPED_CODE)
