"""curate.minhash: the comparison form, shingles and vectorised signatures."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import minhash
from curate.stages import dedup

# Sentences written for these tests (no third-party text).
RIVER = (
    "沿河步道去年秋天完成改造，新铺的透水砖让雨后路面不再积水。"
    "附近居民每天傍晚都会来这里散步，孩子们在草坪上放风筝。"
    "管理处表示，明年还将在步道两侧增设二十处休息座椅和饮水点。"
)
MARKET = (
    "早市上的蔬菜价格本周有所回落，青菜每斤比上周便宜了三角钱。"
    "摊主说今年雨水充足，本地菜大量上市，外地菜的运输成本也降了。"
)


def test_comparison_form_folds_and_maps_back_to_the_text() -> None:
    text = "民族團結，ＡＢＣ　abc（１２）“好”"
    form = minhash.comparison_form(text)
    assert form.string() == "民族团结abcabc12好"
    # Every comparison character comes from the text position the map names.
    for i, pos in enumerate(form.positions.tolist()):
        assert text[pos] in "民族團結ＡＢＣabc１２好"
        assert minhash.comparison_form(text[pos]).string() == form.string(i, i + 1)
    start = form.index_at(text.index("abc"))
    assert form.string(start, start + 3) == "abc"
    assert form.text_span(start, start + 3) == (text.index("abc"), text.index("abc") + 3)
    # Counted between any two text positions as index_at counts them (punctuation has none).
    for a in range(len(text) + 1):
        for b in range(a, len(text) + 1):
            assert form.chars_between(a, b) == form.index_at(b) - form.index_at(a)
    assert form.chars_between(text.index("，"), text.index("abc")) == 3  # ＡＢＣ


def test_shingles_never_cross_a_segment_boundary() -> None:
    codes = minhash.comparison_form("甲乙丙丁戊己庚辛").codes
    ids, starts = minhash.shingle_ids(codes, np.array([0, 4, 8]), 3)
    first, _ = minhash.shingle_ids(codes[:4], np.array([0, 4]), 3)
    second, _ = minhash.shingle_ids(codes[4:], np.array([0, 4]), 3)
    assert starts.tolist() == [0, 1, 4, 5]
    assert ids.tolist() == first.tolist() + second.tolist()


def test_short_segment_gets_one_shingle_of_its_own_characters() -> None:
    codes = minhash.comparison_form("甲乙丙丁").codes
    ids, starts = minhash.shingle_ids(codes, np.array([0, 2, 4]), 5)
    alone, _ = minhash.shingle_ids(codes[:2], np.array([0, 2]), 5)
    assert starts.tolist() == [0, 2]
    assert ids[0] == alone[0] and ids[0] != ids[1]


def test_signatures_equal_datasketch_affine32_on_the_same_hashes() -> None:
    form = minhash.comparison_form(RIVER)
    ids, _ = minhash.shingle_ids(form.codes, np.array([0, len(form)]), 5)
    hashes = minhash.fold32(ids)
    ours = minhash.signatures(hashes, np.array([0, hashes.shape[0]]), 128, 7)[0]
    reference = MinHash(num_perm=128, seed=7, hashfunc=int, scheme="affine32")
    reference.update_batch(hashes.tolist())
    assert np.array_equal(ours, reference.hashvalues)


def test_signatures_across_block_boundaries_and_empty_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**32, 50, dtype=np.uint64).astype(np.uint32)
    starts = np.array([0, 3, 3, 20, 21, 50])  # one empty group, groups spanning blocks
    monkeypatch.setattr(minhash, "_CHUNK_ROWS", 7)
    sigs = minhash.signatures(hashes, starts, 16, 1)
    a, b = minhash.permutations(16, 1)
    with np.errstate(over="ignore"):
        permuted = minhash._fmix32(hashes)[:, None] * a[None, :] + b[None, :]
    for g in range(5):
        lo, hi = starts[g], starts[g + 1]
        expected = permuted[lo:hi].min(axis=0) if hi > lo else np.full(16, minhash.MAX_HASH)
        assert np.array_equal(sigs[g], expected), g


@pytest.mark.parametrize(("num_perm", "seed"), [(128, 1), (32, 1), (256, 7), (5, 0), (1, 12345)])
def test_permutations_are_the_ones_datasketch_draws(num_perm: int, seed: int) -> None:
    # Drawn without importing datasketch (start-up time); they must stay datasketch's own.
    a, b = minhash.permutations(num_perm, seed)
    expected_a, expected_b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    assert a.dtype == np.uint32 and b.dtype == np.uint32
    assert np.array_equal(a, expected_a) and np.array_equal(b, expected_b)
    assert (a % 2 == 1).all()  # odd multipliers: bijective permutations


def test_estimate_tracks_exact_jaccard_and_lsh_finds_the_near_copy() -> None:
    edited = RIVER.replace("二十处", "三十处").replace("孩子们", "小朋友")
    sig_a, sig_b, sig_c = (minhash.text_signature(t) for t in (RIVER, edited, MARKET))
    ids = []
    for text in (RIVER, edited):
        form = minhash.comparison_form(text)
        ids.append(np.unique(minhash.shingle_ids(form.codes, np.array([0, len(form)]), 5)[0]))
    exact = minhash.exact_overlap(ids[0], ids[1])[0]
    assert abs(minhash.estimate_jaccard(sig_a, sig_b) - exact) < 0.15
    assert minhash.estimate_jaccard(sig_a, sig_c) < 0.1
    lsh = MinHashLSH(threshold=0.6, num_perm=128)
    lsh.insert("river", minhash.lean(sig_a))
    lsh.insert("market", minhash.lean(sig_c))
    assert lsh.query(minhash.lean(sig_b)) == ["river"]


def test_traditional_and_punctuation_width_do_not_change_the_signature() -> None:
    traditional = "瀋陽市今年擴建了三座圖書館，閱覽座位增加一倍。"
    simplified = "沈阳市今年扩建了三座图书馆,阅览座位增加一倍."
    assert np.array_equal(minhash.text_signature(traditional), minhash.text_signature(simplified))


def test_signatures_are_the_same_on_every_call() -> None:
    assert np.array_equal(
        minhash.text_signature(RIVER, seed=5), minhash.text_signature(RIVER, seed=5)
    )
    assert not np.array_equal(
        minhash.text_signature(RIVER, seed=5), minhash.text_signature(RIVER, seed=6)
    )


# --------------------------------------------------------------------------- fast paths
def three_pass_comparison_form(text: str) -> tuple[list[int], list[int]]:
    """The comparison form as first written: t2s table, then the two folds, then the test."""
    codes = minhash._t2s_table()[
        np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    ]
    codes = np.where((codes >= 0xFF01) & (codes <= 0xFF5E), codes - np.uint32(0xFEE0), codes)
    codes = np.where((codes >= 0x41) & (codes <= 0x5A), codes + np.uint32(0x20), codes)
    positions = np.flatnonzero(minhash._kept_code_points()[codes])
    return codes[positions].tolist(), positions.tolist()


# Han (Simplified and Traditional), ASCII and full-width letters and digits, punctuation of
# both widths, spaces, line ends (CRLF too), non-BMP letters, an emoji, a lone surrogate.
ALPHABET = list(
    "民族團結进步瀋陽圖書館abcXYZ019ＡＢＣｘｙｚ０１９，。！？；：、“”（）《》!?;:,. \t\u3000\r\n"
) + ["\U00020000", "\U0001d400", "\U0001f600", "\ud800"]


@given(st.text(alphabet=st.sampled_from(ALPHABET), max_size=80))
@settings(max_examples=300, deadline=None)
def test_comparison_form_equals_the_three_pass_form(text: str) -> None:
    form = minhash.comparison_form(text)
    assert (form.codes.tolist(), form.positions.tolist()) == three_pass_comparison_form(text)
    assert form.codes.dtype == np.uint32 and form.positions.dtype == np.int64
    assert form.text_length == len(text)


def test_comparison_form_equals_the_three_pass_form_on_every_code_point() -> None:
    every = np.arange(0x110000, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")
    form = minhash.comparison_form(every)
    codes, positions = three_pass_comparison_form(every)
    assert form.codes.tolist() == codes and form.positions.tolist() == positions


def random_groups(rng: np.random.Generator, total: int, groups: int) -> np.ndarray:
    """Group starts over `total` items: sorted cut points, some repeated (empty groups)."""
    cuts = np.sort(rng.integers(0, total + 1, size=groups - 1))
    return np.concatenate([[0], cuts, [total]]).astype(np.int64)


@pytest.mark.parametrize("chunk", [7, 64, 8192, "compiled"])
@pytest.mark.parametrize(("num_perm", "window_num_perm"), [(128, 32), (16, 16), (16, 4)])
def test_nested_signatures_equal_window_signatures_reduced_per_paragraph(
    monkeypatch: pytest.MonkeyPatch, chunk: int | str, num_perm: int, window_num_perm: int
) -> None:
    # numpy's blocks of `chunk` shingles, or the compiled loop (curate._kernels) when built.
    if chunk == "compiled":
        if minhash._kernels is None:
            pytest.skip("curate._kernels was not built")
        chunk = 0
    else:
        monkeypatch.setattr(minhash, "_kernels", None)
        monkeypatch.setattr(minhash, "_CHUNK_ROWS", chunk)
    rng = np.random.default_rng(chunk + num_perm + window_num_perm)
    for total, windows, paragraphs in [(200, 40, 9), (50, 12, 12), (0, 3, 2), (1, 1, 1)]:
        hashes = rng.integers(0, 2**32, total, dtype=np.uint64).astype(np.uint32)
        window_starts = random_groups(rng, total, windows)
        # Windows per paragraph, some paragraphs without any.
        counts = np.diff(random_groups(rng, windows, paragraphs))
        para_sigs, win_sigs = minhash.nested_signatures(
            hashes, window_starts, counts, num_perm, window_num_perm, 3
        )
        full = minhash.signatures(hashes, window_starts, num_perm, 3)
        assert np.array_equal(win_sigs, full[:, :window_num_perm])
        # The same from the hashes mixed already (`shingle_hashes(..., mixed=True)`).
        premixed = minhash.nested_signatures(
            minhash._fmix32(hashes), window_starts, counts, num_perm, window_num_perm, 3, mixed=True
        )
        assert np.array_equal(premixed[0], para_sigs) and np.array_equal(premixed[1], win_sigs)
        first = np.concatenate([[0], np.cumsum(counts)])
        for p in range(paragraphs):
            rows = full[first[p] : first[p + 1]]
            expected = rows.min(axis=0) if rows.shape[0] else np.full(num_perm, minhash.MAX_HASH)
            assert np.array_equal(para_sigs[p], expected), (total, p)


def covered_by_shared_grams(a: np.ndarray, b: np.ndarray, max_gap: int | None = None) -> int:
    """Characters of b inside a 4-gram that a also has, by brute force; with `max_gap`, those
    of the stretch that has the most (parted by more than `max_gap` characters outside)."""
    grams = {tuple(a[i : i + 4].tolist()) for i in range(len(a) - 3)}
    covered = set()
    for j in range(len(b) - 3):
        if tuple(b[j : j + 4].tolist()) in grams:
            covered.update(range(j, j + 4))
    if max_gap is None or not covered:
        return len(covered)
    max_gap = max(max_gap, 0)  # (a negative gap: stretches of adjacent characters, as 0)
    stretches, previous = [0], None
    for position in sorted(covered):
        if previous is not None and position - previous - 1 > max_gap:
            stretches.append(0)
        stretches[-1] += 1
        previous = position
    return max(stretches)


@given(
    st.lists(st.integers(0, 3), max_size=60),
    st.lists(st.integers(0, 3), max_size=60),
    st.none() | st.integers(-2, 8),
)
@settings(max_examples=300, deadline=None)
def test_gram_coverage_counts_the_characters_in_shared_4_grams(
    a_values: list[int], b_values: list[int], max_gap: int | None
) -> None:
    a = np.array(a_values, dtype=np.uint32) + 0x4E00
    b = np.array(b_values, dtype=np.uint32) + 0x4E00
    a_map, b_keys = minhash.gram_map(minhash.gram_keys(a)), minhash.gram_keys(b)
    coverage = minhash.gram_coverage(b_keys, a_map, max_gap)
    assert coverage == covered_by_shared_grams(a, b, max_gap)
    # An upper bound on the characters of b in difflib's matching blocks (>= 4 characters),
    # and with max_gap on those of every chain of them across gaps of at most max_gap (the
    # near-duplicate stage's passages).
    blocks = minhash.matching_blocks(a, b, 4, a_map, b_keys)
    if max_gap is None:
        assert sum(size for _, _, size in blocks) <= coverage
    else:
        assert all(matched <= coverage for *_, matched in dedup._regions(blocks, max_gap, 4))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), max_size=60),
    st.sampled_from([np.uint64, np.int64]),
    st.integers(1, 4),
)
def test_sorted_unique_is_the_distinct_values_sorted(values: list[int], dtype: type, repeat: int) -> None:
    # The shingle sets of exact verification: `np.unique`'s answer, each value once, in order.
    if dtype is np.int64:
        values = [v - 2**63 for v in values]
    array = np.array(values * repeat, dtype=dtype)
    got = minhash.sorted_unique(array)
    assert got.dtype == array.dtype
    assert got.tolist() == sorted(set(values))
    assert np.array_equal(got, np.unique(array))
