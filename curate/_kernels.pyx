# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled loops for the per-character work of near-duplicate detection, of the report's
inline diff and its entries' encoding, of the quick scans that tell whether a text holds a
character of a class, of the lines every stage reads, of the repair stage's filter of runs
that may be UTF-8 read as GBK, of the punctuation stage's pairs and the conversion's unchanged
ends, of the corrupted-span detectors' bigram surprise and garbage windows, of the rules'
trigger scan, and of the columns of many documents' summaries that the near-duplicate
decision and index read.

Each function here computes exactly what its numpy (or plain Python, or regex) twin in
`curate.minhash`, `curate.document`, `curate.report.model`, `curate.textutil`,
`curate.stages.repair`, `curate.stages.convert`, `curate.stages.punctuation`,
`curate.detectors.bigram`, `curate.detectors.garbage`, `curate.rules` or `curate.stages.dedup`
computes (that twin is the specification, and the fallback when this module was not built: the
extension is optional at install). numpy already runs each of those operations in C; what
costs there is numpy's fixed price per call (a few microseconds) times the many small arrays of
one document or one candidate pair, and the temporary arrays between calls (and, for the
Python and regex twins, an object a line or a character). One loop per call here does the
whole thing. tests/test_kernels.py checks every function against its twin (the repair stage's:
tests/test_normalise_fastpaths.py).
"""

import numpy as np

cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from cpython.unicode cimport (
    PyUnicode_1BYTE_KIND,
    PyUnicode_2BYTE_KIND,
    PyUnicode_DATA,
    PyUnicode_FindChar,
    PyUnicode_FromKindAndData,
    PyUnicode_KIND,
    PyUnicode_READ,
    Py_UNICODE_ISSPACE,
)
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memchr, memcpy
from cpython cimport array
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.buffer cimport (
    PyBUF_C_CONTIGUOUS,
    PyBUF_SIMPLE,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_GetBuffer,
)

import array as _array

_INT_ARRAY = _array.array("i")  # the template of `source_from_breaks`' arrays (Document._src)


cdef extern from "Python.h":
    Py_ssize_t PY_SSIZE_T_MAX
    bint PyUnicode_IS_ASCII(object text)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)


cdef inline Py_ssize_t _str_size(str text, Py_ssize_t ascii_header, Py_ssize_t header) except -1:
    """What `sys.getsizeof` gives a compact `str` that holds no UTF-8 copy of itself."""
    __Pyx_PyUnicode_READY(text)
    if PyUnicode_IS_ASCII(text):
        return ascii_header + PyUnicode_GET_LENGTH(text) + 1
    return header + (PyUnicode_GET_LENGTH(text) + 1) * <Py_ssize_t>PyUnicode_KIND(text)


def texts_size(str text not None, list edits not None, list flags not None, Py_ssize_t ascii_header, Py_ssize_t header):
    """`document.Document.memory_size`'s strings: the text's, each edit's `before` and `after`
    and each flag's `text`, as `sys.getsizeof` counts a string that holds no UTF-8 copy of
    itself (`ascii_header` and `header`: its overhead for an ASCII and for any other string),
    without a call for each: through `sys.getsizeof` a string cost about 1,300 instructions,
    102,618 of them a 1-worker run. `TypeError` for a text that is not a `str`."""
    cdef Py_ssize_t total = _str_size(text, ascii_header, header)
    for edit in edits:
        total += _str_size(<str?>edit.before, ascii_header, header) + _str_size(<str?>edit.after, ascii_header, header)
    for flag in flags:
        total += _str_size(<str?>flag.text, ascii_header, header)
    return total


def comparison_form(str text, const uint32_t[::1] folded, const uint8_t[::1] kept):
    """(codes, positions) of `minhash.comparison_form`: folded[c] of every character c of
    `text` with kept[c], and where each one is in `text`.

    The kept characters are counted first, so that both arrays are made at their size and
    written through their own buffers (`_data_of`): no slices copied, no typed view made of
    either (a document of a sentence spent more on those than on its characters)."""
    cdef Py_ssize_t n = len(text), i = 0, count = 0
    cdef Py_UCS4 c
    for c in text:
        if kept[c]:
            count += 1
    positions = np.empty(count, dtype=np.int64)
    codes = np.empty(count, dtype=np.uint32)
    cdef int64_t *pos_out
    cdef uint32_t *code_out
    _data_of(positions, <void **>&pos_out)
    _data_of(codes, <void **>&code_out)
    count = 0
    for c in text:
        if kept[c]:
            pos_out[count] = i
            code_out[count] = folded[c]
            count += 1
        i += 1
    return codes, positions


cdef int _data_of(object array, void **data) except -1:
    """The memory of a writable, C-contiguous array this module has just made (so of a type
    it knows: no format to check), without the object and checks of a typed memoryview
    (about 150 ns each). The buffer is let go at once: the memory stays while the caller
    holds the array, which nothing else can resize meanwhile."""
    cdef Py_buffer view
    PyObject_GetBuffer(array, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)
    data[0] = view.buf
    PyBuffer_Release(&view)
    return 0


def shingle_ids(
    const uint32_t[::1] codes,
    const int64_t[::1] bounds,
    int size,
    uint64_t base,
    uint64_t fold=0,
    bint mix=False,
):
    """(ids, starts) of `minhash.shingle_ids`: the polynomial ids of the `size`-grams inside
    each segment [bounds[s], bounds[s + 1]), and for a short non-empty segment one id of its
    characters padded with zeros, its length mixed into the top bits. With `fold`, (hashes,
    starts) of `minhash.shingle_hashes`: each id folded to 32 bits as it is made (`fold32`:
    times `fold`, the top half), so the 64-bit ids are never written out (two passes and two
    arrays of 8 bytes a character more). `fold` 0: the ids themselves. With `fold` and `mix`,
    each hash then mixed by `minhash._fmix32` (what a signature permutes), in the same pass:
    numpy's five passes over the hashes and their copy cost as much as the hashes did."""
    if size < 1:  # (a segment would give more shingles than it has characters: past the arrays)
        raise ValueError(f"shingle size should be at least 1, got {size}")
    values = np.empty(codes.shape[0], dtype=np.uint32 if fold else np.uint64)
    starts = np.empty(codes.shape[0], dtype=np.int64)
    cdef void *out
    cdef int64_t *start_out
    _data_of(values, &out)
    _data_of(starts, <void **>&start_out)
    cdef Py_ssize_t count = _shingles(codes, bounds, size, base, fold, mix, out, start_out)
    return values[:count], starts[:count]


cdef uint32_t _FMIX_FIRST = 0x85EBCA6B, _FMIX_SECOND = 0xC2B2AE35  # (`minhash._fmix32`'s)


cdef inline uint32_t _folded_hash(uint64_t value, uint64_t fold, bint mix) noexcept nogil:
    """An id folded to 32 bits (`minhash.fold32`), and with `mix` then mixed as
    `minhash._fmix32` mixes (MurmurHash3's finalizer)."""
    cdef uint32_t h = <uint32_t>((value * fold) >> 32)
    if mix:
        h ^= h >> 16
        h *= _FMIX_FIRST
        h ^= h >> 13
        h *= _FMIX_SECOND
        h ^= h >> 16
    return h


cdef Py_ssize_t _shingles(
    const uint32_t[::1] codes,
    const int64_t[::1] bounds,
    int size,
    uint64_t base,
    uint64_t fold,
    bint mix,
    void *out,
    int64_t *start_out,
) noexcept:
    """The shingles of `shingle_ids` written to `out`, as uint64 ids, or, with `fold`, as
    uint32 hashes (with `mix`, mixed), and their starts; how many."""
    cdef uint64_t *id_out = <uint64_t *>out
    cdef uint32_t *hash_out = <uint32_t *>out
    cdef Py_ssize_t segments = bounds.shape[0] - 1
    cdef Py_ssize_t s, i, k, start, end, length, count = 0
    cdef uint64_t value, top = 1  # (base ** (size - 1): the first character's weight)
    for k in range(size - 1):
        top *= base
    for s in range(segments):
        start, end = bounds[s], bounds[s + 1]
        length = end - start
        if length <= 0:
            continue
        if length < size:
            value = 0
            for k in range(size):
                value = value * base + (codes[start + k] if k < length else 0)
            value = value ^ (<uint64_t>length << 59)
            if fold:
                hash_out[count] = _folded_hash(value, fold, mix)
            else:
                id_out[count] = value
            start_out[count] = start
            count += 1
            continue
        # The first id in full, each next one rolled from it (the first character's term out,
        # the next character's in): the same sum, mod 2**64, in two multiplications.
        value = 0
        for k in range(size):
            value = value * base + codes[start + k]
        for i in range(start, end - size + 1):
            if i > start:
                value = (value - codes[i - 1] * top) * base + codes[i + size - 1]
            if fold:
                hash_out[count] = _folded_hash(value, fold, mix)
            else:
                id_out[count] = value
            start_out[count] = i
            count += 1
    return count


cdef uint64_t _GOLDEN = 0x9E3779B97F4A7C15  # (Fibonacci hashing: a key's place from its top bits)
# A gram map word's low half (a position + 1) as a C constant: the bare literal, too large for a C
# int, is a Python int to Cython, and `word & 0xFFFFFFFF` made two Python ints a position
# (the benchmark decision's maps and alignments: 870,000 of them).
cdef uint64_t _LOW_HALF = 0xFFFFFFFF
cdef enum:
    _MAP_HEAD = 2  # a gram map's header: size, n


cdef struct _GramMap:
    Py_ssize_t size, n  # slots (2^k, k >= 2), positions
    int shift  # 64 - k
    const uint64_t *keys  # of each slot (0: empty); slot `size` stands for the key 0
    const uint64_t *heads  # of each slot: how many positions have its key << 32 | the last + 1
    const uint64_t *nexts  # of each position, the one before with its key + 1 (0: none)
    const uint64_t *bits  # a filter of 8 * size bits, one set for each key


cdef inline Py_ssize_t _map_length(Py_ssize_t size, Py_ssize_t n) noexcept:
    return _MAP_HEAD + 2 * (size + 1) + n + size // 8 + 1


cdef int _read_map(const uint64_t[::1] table, _GramMap *m) except -1:
    """The parts of a `gram_map` table; ValueError for an array that is not one."""
    cdef Py_ssize_t size, n
    cdef int k = 2
    if table.shape[0] < _MAP_HEAD:
        raise ValueError("not a gram map")
    size, n = <Py_ssize_t>table[0], <Py_ssize_t>table[1]
    while k < 40 and (<Py_ssize_t>1 << k) < size:
        k += 1
    if size != (<Py_ssize_t>1 << k) or n < 0 or size < 2 * n or table.shape[0] != _map_length(size, n):
        raise ValueError("not a gram map")
    m.size, m.n, m.shift = size, n, 64 - k
    m.keys = &table[_MAP_HEAD]
    m.heads = m.keys + size + 1
    m.nexts = m.heads + size + 1
    m.bits = m.nexts + n
    return 0


cdef inline Py_ssize_t _slot_of(const _GramMap *m, uint64_t key) noexcept nogil:
    """The slot of `key` in the map, or -1: most keys looked up are not there, and the filter
    says so in one load. (At most `size` slots probed: a table that `_read_map` took but no
    `gram_map` made may have no empty slot.)"""
    cdef uint64_t hashed = key * _GOLDEN
    cdef uint64_t bit = hashed >> (m.shift - 3)
    cdef Py_ssize_t slot, probed
    if not (m.bits[bit >> 6] >> (bit & 63)) & 1:
        return -1
    if key == 0:
        return m.size if m.heads[m.size] else -1
    slot = <Py_ssize_t>(hashed >> m.shift)
    for probed in range(m.size):
        if m.keys[slot] == key:
            return slot
        if m.keys[slot] == 0:
            return -1
        slot = (slot + 1) & (m.size - 1)
    return -1


def gram_map(const uint64_t[::1] keys):
    """`minhash.gram_map`: the positions of each distinct key of `keys`, in one uint64 array
    (`_GramMap`: a header; the keys of 2^k slots, at most half of them used, found by linear
    probing from the top bits of key * golden ratio, slot 2^k for the key 0; of each slot its
    count and its last position + 1, in one word; of each position the one before with its key
    + 1; and a filter of 8 bits a slot)."""
    cdef Py_ssize_t n = keys.shape[0], size = 4, i, slot
    cdef int shift = 62
    cdef uint64_t key, hashed, bit
    if <uint64_t>n >= _LOW_HALF:
        raise ValueError("gram_map: too many keys")
    while size < 2 * n:
        size *= 2
        shift -= 1
    table = np.zeros(_map_length(size, n), np.uint64)
    cdef uint64_t[::1] view = table
    view[0], view[1] = size, n
    cdef uint64_t *slot_keys = &view[_MAP_HEAD]
    cdef uint64_t *heads = slot_keys + size + 1
    cdef uint64_t *nexts = heads + size + 1
    cdef uint64_t *bits = nexts + n
    for i in range(n):
        key = keys[i]
        hashed = key * _GOLDEN
        bit = hashed >> (shift - 3)
        bits[bit >> 6] |= <uint64_t>1 << (bit & 63)
        if key == 0:
            slot = size
        else:
            slot = <Py_ssize_t>(hashed >> shift)
            while slot_keys[slot] != 0 and slot_keys[slot] != key:
                slot = (slot + 1) & (size - 1)
            slot_keys[slot] = key
        nexts[i] = heads[slot] & _LOW_HALF
        heads[slot] = (heads[slot] >> 32 << 32) + (<uint64_t>1 << 32) + <uint64_t>(i + 1)
    return table


def gram_coverage(const uint64_t[::1] keys, const uint64_t[::1] table, Py_ssize_t max_gap):
    """`minhash.gram_coverage`: the characters of a range inside one of its 4-grams whose key
    the other range's `gram_map` has, in the stretch of them that has the most, stretches
    parted by more than `max_gap` (>= 0) characters in no such 4-gram (`max_gap` >= n + 3: one
    stretch, all of them); `keys` in the range's order. One pass over them: the 4-grams found
    come in order, so the characters they cover are counted as they come."""
    cdef _GramMap m
    _read_map(table, &m)
    cdef Py_ssize_t n = keys.shape[0], p
    cdef Py_ssize_t covered = 0, stretch = 0, end = 0
    for p in range(n):
        if _slot_of(&m, keys[p]) < 0:
            continue
        # [p, p + 4) is covered: its stretch goes on if at most max_gap characters lie between
        # the stretch's end and p
        if p >= end:
            if p - end > max_gap:
                stretch = 0
            stretch += 4
        else:
            stretch += p + 4 - end
        end = p + 4
        if stretch > covered:
            covered = stretch
    return covered


def gram_runs(
    const uint32_t[::1] a,
    const uint32_t[::1] b,
    const uint64_t[::1] a_map,
    const uint64_t[::1] b_keys,
    Py_ssize_t max_pairs,
):
    """The maximal diagonal runs of equal 4-grams of `a` and `b`, as `minhash.matching_blocks`
    finds them: (run_i, run_d, lengths in characters) ordered by diagonal d = j - i, then i;
    None when there are more than `max_pairs` pairs of equal keys. `a_map`: the `gram_map` of
    a's 4-gram keys; `b_keys`: b's, in order. The pairs of equal keys whose four characters are
    equal too (keys are hashes) are written as (j - i + len(a)) * (len(a) + 1) + i, and sorted."""
    cdef _GramMap m
    _read_map(a_map, &m)
    cdef Py_ssize_t la = a.shape[0], nb = b_keys.shape[0], x, j, t, slot, runs, count = 0, total = 0
    cdef int64_t i
    cdef uint64_t left
    if m.n != max(la - 3, 0) or nb != max(b.shape[0] - 3, 0):
        raise ValueError("gram_runs: the keys are not those of a and b")
    for j in range(nb):
        slot = _slot_of(&m, b_keys[j])
        if slot >= 0:
            total += m.heads[slot] >> 32
    if total > max_pairs:
        return None
    keys = np.empty(max(total, 1), dtype=np.int64)
    cdef int64_t[::1] key_view = keys
    for j in range(nb):
        slot = _slot_of(&m, b_keys[j])
        if slot < 0:
            continue
        # The slot's count of positions, no more (`total` was made of the counts): a table
        # that `_read_map` took but no `gram_map` made is refused rather than written past.
        left = m.heads[slot] >> 32
        i = <int64_t>(m.heads[slot] & _LOW_HALF) - 1
        while left:
            left -= 1
            if i < 0 or i >= m.n:
                raise ValueError("not a gram map")
            for t in range(4):
                if a[i + t] != b[j + t]:
                    break
            else:
                key_view[count] = (j - i + la) * (la + 1) + i
                count += 1
            i = <int64_t>m.nexts[i] - 1
    keys = keys[:count]
    keys.sort()
    key_view = keys
    run_i = np.empty(count, dtype=np.int64)
    run_d = np.empty(count, dtype=np.int64)
    lengths = np.empty(count, dtype=np.int64)
    cdef int64_t[::1] ri = run_i, rd = run_d, rl = lengths
    runs = 0
    for x in range(count):
        if x and key_view[x] == key_view[x - 1] + 1:
            rl[runs - 1] += 1
            continue
        ri[runs] = key_view[x] % (la + 1)
        rd[runs] = key_view[x] // (la + 1) - la
        rl[runs] = 4
        runs += 1
    return run_i[:runs], run_d[:runs], lengths[:runs]


def recurse_runs(
    const int64_t[::1] run_i,
    const int64_t[::1] run_d,
    const int64_t[::1] lengths,
    Py_ssize_t la,
    Py_ssize_t lb,
):
    """difflib's `get_matching_blocks` recursion over maximal diagonal runs, as
    `minhash._recurse_blocks` does it: the longest run clipped to the rectangle (smallest i,
    then smallest j among equal sizes), then the rectangles before and after it; blocks of
    >= 4 characters, unmerged and unordered: [(i, j, size), ...]."""
    cdef Py_ssize_t runs = run_i.shape[0], x, k, n, kept_count
    cdef Py_ssize_t alo, ahi, blo, bhi, start, size, best, bi, bj, i, d, e
    found = []
    everything = np.arange(runs, dtype=np.int64)
    stack = [(0, la, 0, lb, everything)]
    cdef const int64_t[::1] members
    cdef int64_t[::1] kept_view
    while stack:
        alo, ahi, blo, bhi, member_array = stack.pop()
        members = member_array
        n = members.shape[0]
        kept = np.empty(n, dtype=np.int64)
        kept_view = kept
        kept_count = 0
        best, bi, bj = 3, 0, 0
        for k in range(n):
            x = members[k]
            i, d = run_i[x], run_d[x]
            e = i + lengths[x]
            start = i if i > alo else alo
            if blo - d > start:
                start = blo - d
            size = e if e < ahi else ahi
            if bhi - d < size:
                size = bhi - d
            size -= start
            if size < 4:
                continue
            kept_view[kept_count] = x
            kept_count += 1
            if size > best or (size == best and (start < bi or (start == bi and start + d < bj))):
                best, bi, bj = size, start, start + d
        if kept_count == 0:
            continue
        found.append((bi, bj, best))
        kept = kept[:kept_count]
        if alo < bi and blo < bj:
            stack.append((alo, bi, blo, bj, kept))
        if bi + best < ahi and bj + best < bhi:
            stack.append((bi + best, ahi, bj + best, bhi, kept))
    return found


cdef inline bint _among(Py_UCS4 c, const uint32_t[::1] chars):
    cdef Py_ssize_t k
    for k in range(chars.shape[0]):
        if chars[k] == c:
            return True
    return False


# A 1,024-bit filter of a few characters (their code points modulo 1,024): a character whose bit
# is clear is none of them. Text is mostly Han and letters, and a sentence end is one character
# in dozens: the filter answers for nearly every character in one lookup, where a search of the
# list took one comparison per character listed (the layout's scan cost 20 ns a character).
ctypedef uint64_t _Filter[16]


cdef inline void _fill_filter(_Filter bits, const uint32_t[::1] chars) noexcept:
    cdef Py_ssize_t k
    for k in range(16):
        bits[k] = 0
    for k in range(chars.shape[0]):
        bits[(chars[k] >> 6) & 15] |= (<uint64_t>1) << (chars[k] & 63)


cdef inline bint _may_be(const uint64_t *bits, Py_UCS4 c) noexcept:
    cdef uint32_t code = <uint32_t>c
    return (bits[(code >> 6) & 15] >> (code & 63)) & 1


cdef void _scan_lines(
    str text,
    const uint32_t[::1] ends,
    const uint32_t[::1] closers,
    int64_t *spans,
    int64_t *sentence_starts,
    Py_ssize_t *paragraphs,
    Py_ssize_t *cuts,
) noexcept:
    """One pass over `text`: how many paragraphs (non-blank lines) and sentence starts (after
    a run of `ends` characters and then `ends` or `closers`) it has, and, where `spans` and
    `sentence_starts` are given, their (start, end) and positions written there."""
    cdef Py_ssize_t n = len(text), i = 0, line_start = 0
    cdef bint blank = True, in_end = False  # in_end: inside a match of [ends][ends closers]*
    cdef Py_UCS4 c
    cdef _Filter end_filter
    _fill_filter(end_filter, ends)
    paragraphs[0] = cuts[0] = 0
    for c in text:
        if in_end and not (_among(c, ends) or _among(c, closers)):
            in_end = False
            if sentence_starts != NULL:
                sentence_starts[cuts[0]] = i
            cuts[0] += 1
        if not in_end and _may_be(end_filter, c) and _among(c, ends):
            in_end = True
        if c == u"\n":
            if not blank:
                if spans != NULL:
                    spans[2 * paragraphs[0]], spans[2 * paragraphs[0] + 1] = line_start, i
                paragraphs[0] += 1
            line_start, blank = i + 1, True
        elif blank and not Py_UNICODE_ISSPACE(c):
            blank = False
        i += 1
    if in_end:
        if sentence_starts != NULL:
            sentence_starts[cuts[0]] = n
        cuts[0] += 1
    if not blank:
        if spans != NULL:
            spans[2 * paragraphs[0]], spans[2 * paragraphs[0] + 1] = line_start, n
        paragraphs[0] += 1


def paragraph_spans(str text not None):
    """`textutil.paragraph_spans`: (start, end) of every non-blank line. A line's leading
    whitespace is read until its first other character; the rest of a non-blank line is
    searched for its newline (`PyUnicode_FindChar`, as the Python version's `find`, then
    `strip`, without a slice a line)."""
    cdef Py_ssize_t n = len(text), i = 0, start
    cdef int kind = PyUnicode_KIND(text)
    cdef void *data = PyUnicode_DATA(text)
    cdef Py_UCS4 c = 0
    spans = []
    while i <= n:
        start = i
        while i < n:
            c = PyUnicode_READ(kind, data, i)
            if c == u"\n" or not Py_UNICODE_ISSPACE(c):
                break
            i += 1
        if i < n and c != u"\n":
            i = PyUnicode_FindChar(text, u"\n", i + 1, n, 1)
            if i < 0:
                i = n
            spans.append((start, i))
        i += 1  # (past the newline, or the end)
    return spans


cdef Py_ssize_t _ONE_PASS_CHARS = 1 << 16  # `layout` scans texts up to this long once, longer ones twice


def layout(
    str text,
    const int64_t[::1] positions,
    Py_ssize_t window_chars,
    const uint32_t[::1] ends,
    const uint32_t[::1] closers,
):
    """(spans, cf, windows, win_counts) of `dedup._layout`, which specifies them: paragraphs
    (non-blank lines), their spans in the comparison form (`positions`: where each form
    character is in `text`), and their windows, cut at sentence starts (after a run of
    `ends` characters and then `ends` or `closers`), long ones cut into equal pieces.

    Spans and windows are worked out in memory of its own, then copied into arrays made at
    their size; cf and the window counts are written in place, through their arrays' buffers
    (`_data_of`): made per document, arrays and typed views for the work cost more than the
    work on a document of a sentence."""
    cdef Py_ssize_t forms = positions.shape[0], paragraphs, cuts, p, j, k, f
    cdef bint inner
    # Paragraph spans and sentence starts, written into room for the most there can be (a
    # paragraph takes two characters but the last, a sentence start one); for a long text they
    # are counted first instead, so that they take no more memory than they need.
    cdef Py_ssize_t n = len(text)
    if n > _ONE_PASS_CHARS:
        _scan_lines(text, ends, closers, NULL, NULL, &paragraphs, &cuts)
    else:
        paragraphs, cuts = n // 2 + 1, n + 1
    cdef Py_ssize_t step = window_chars if window_chars > 1 else 1
    cdef Py_ssize_t w0, w1, length, pieces, count = 0, before
    cdef int64_t *spans = <int64_t *>malloc((2 * paragraphs + cuts + 1) * sizeof(int64_t))
    cdef int64_t *windows = NULL
    cdef int64_t *cf
    cdef int64_t *cut_at
    cdef int64_t *win_counts
    cdef int64_t *sentence_starts
    if spans == NULL:
        raise MemoryError()
    try:
        sentence_starts = spans + 2 * paragraphs
        _scan_lines(text, ends, closers, spans, sentence_starts, &paragraphs, &cuts)
        span_array = np.empty((paragraphs, 2), dtype=np.int64)
        cf_array = np.empty((paragraphs, 2), dtype=np.int64)
        count_array = np.empty(paragraphs, dtype=np.int64)
        _data_of(cf_array, <void **>&cf)
        _data_of(count_array, <void **>&win_counts)
        # Windows: at most one per paragraph and cut, plus the pieces of long ones; after them,
        # the form positions of the sentence starts.
        length = paragraphs + cuts + forms // step + 1
        windows = <int64_t *>malloc((2 * length + cuts + 1) * sizeof(int64_t))
        if windows == NULL:
            raise MemoryError()
        cut_at = windows + 2 * length
        # Form positions of paragraph bounds and sentence starts (searchsorted, left: both rise).
        f = 0
        for p in range(paragraphs):
            while f < forms and positions[f] < spans[2 * p]:
                f += 1
            cf[2 * p] = f
            while f < forms and positions[f] < spans[2 * p + 1]:
                f += 1
            cf[2 * p + 1] = f
        f = 0
        for k in range(cuts):
            while f < forms and positions[f] < sentence_starts[k]:
                f += 1
            cut_at[k] = f
        j = 0
        for p in range(paragraphs):
            while j < cuts and sentence_starts[j] <= spans[2 * p]:
                j += 1
            before = count
            w0 = cf[2 * p]
            while True:
                inner = j < cuts and sentence_starts[j] < spans[2 * p + 1]
                w1 = cut_at[j] if inner else cf[2 * p + 1]
                j += inner
                if inner and not (w0 < w1 < cf[2 * p + 1]):
                    continue
                length = w1 - w0
                if length >= 2 * step:
                    pieces = (length + step - 1) // step
                    for k in range(pieces):
                        windows[2 * count] = w0 + length * k // pieces
                        windows[2 * count + 1] = w0 + length * (k + 1) // pieces
                        count += 1
                else:
                    windows[2 * count], windows[2 * count + 1] = w0, w1
                    count += 1
                if not inner:
                    break
                w0 = w1
            win_counts[p] = count - before
        window_array = np.empty((count, 2), dtype=np.int64)
        _copy_into(span_array, spans, 2 * paragraphs)
        _copy_into(window_array, windows, 2 * count)
    finally:
        free(spans)
        free(windows)
    return span_array, cf_array, window_array, count_array


cdef int _copy_into(object array, const int64_t *values, Py_ssize_t items) except -1:
    """`items` int64 values into an array of them this module has just made (`_data_of`)."""
    cdef void *data
    if items:
        _data_of(array, &data)
        memcpy(data, values, items * sizeof(int64_t))
    return 0


cdef extern from *:
    """
    /* The MinHash inner loop, compiled three times where GCC can: for AVX-512, for AVX2 and
       for the baseline x86-64, the right one picked when the module loads (`target_clones`).
       AVX-512's 16 lanes: 27.8 -> 19.3 ms for 2 M hashes by 128 permutations on this
       machine's Xeon (by hand, best of 5; 64 permutations 13.6 -> 11.1 ms). */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    #define CURATE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
    #else
    #define CURATE_CLONES
    #endif
    CURATE_CLONES
    static void curate_minima(const uint32_t *restrict hashes, const int64_t *restrict starts,
                              Py_ssize_t groups, const uint32_t *restrict a,
                              const uint32_t *restrict b, Py_ssize_t perms,
                              uint32_t *restrict out) {
        for (Py_ssize_t g = 0; g < groups; g++) {
            uint32_t *restrict row = out + g * perms;
            for (int64_t s = starts[g]; s < starts[g + 1]; s++) {
                const uint32_t h = hashes[s];
                for (Py_ssize_t r = 0; r < perms; r++) {
                    const uint32_t v = a[r] * h + b[r];
                    row[r] = v < row[r] ? v : row[r];
                }
            }
        }
    }
    """
    void curate_minima(const uint32_t *hashes, const int64_t *starts, Py_ssize_t groups,
                       const uint32_t *a, const uint32_t *b, Py_ssize_t perms,
                       uint32_t *out) nogil


def permuted_minima(
    const uint32_t[::1] hashes,
    const uint32_t[::1] a,
    const uint32_t[::1] b,
    const int64_t[::1] starts,
    uint32_t[:, ::1] out,
):
    """`minhash._permuted_minima` for one grouping: out[g, r] lowered to the minimum of
    (a[r] * h + b[r]) mod 2^32 over the (mixed) hashes h of group g, which is
    hashes[starts[g]:starts[g + 1]]. `out` comes filled (MAX_HASH: empty groups stay so)."""
    cdef Py_ssize_t groups = out.shape[0], perms = out.shape[1]
    if hashes.shape[0] == 0 or groups == 0 or perms == 0:
        return
    if starts.shape[0] < groups + 1 or a.shape[0] < perms or b.shape[0] < perms:
        raise ValueError("starts, a or b too short for out")
    if starts[0] < 0 or starts[groups] > hashes.shape[0]:
        raise ValueError("group starts outside the hashes")
    with nogil:
        curate_minima(&hashes[0], &starts[0], groups, &a[0], &b[0], perms, &out[0, 0])


ctypedef fused _Break:  # a map's breaks, as numpy columns (int64) or as they travel (int32)
    int32_t
    int64_t


cdef Py_ssize_t _break_count(const int32_t *src, Py_ssize_t n) noexcept nogil:
    """The breaks of a map of n >= 1 entries: its first position and each where src[i] - i
    changes, that is where src[i] - src[i - 1] is not 1 (counted without a branch, in 64 bits:
    a loop the compiler vectorises, where comparing src[i] - i took ten instructions an entry)."""
    cdef Py_ssize_t i, count = 1
    for i in range(1, n):
        count += (<int64_t>src[i] - <int64_t>src[i - 1]) != 1
    return count


cdef void _write_breaks(
    const int32_t *src, Py_ssize_t n, Py_ssize_t breaks, _Break *positions, _Break *offsets
) noexcept nogil:
    """Each break's position and the offset src[i] - i from it on (`breaks`, `_break_count`'s
    count of them: the entries after the last are not read again, none for a map of one)."""
    cdef Py_ssize_t i, count = 1
    positions[0], offsets[0] = 0, src[0]
    for i in range(1, n):
        if count == breaks:
            break
        if src[i] - i != src[i - 1] - (i - 1):
            positions[count], offsets[count] = <_Break>i, <_Break>(src[i] - i)
            count += 1


def source_map(object src):
    """(src_pos, src_off) of `document.source_breaks`: the positions where src[i] - i changes
    (the first is 0) and that offset from each of them on, of a map of int32 entries. An
    array('i') (a `Document`'s map) is read as its ints, as `packed_source` reads it: its
    typed view, made for every document, cost more than a short document's entries."""
    cdef const int32_t[::1] view
    cdef const int32_t *values
    cdef Py_ssize_t n
    if type(src) is array.array and (<array.array>src).ob_descr.typecode == b"i":
        values, n = <const int32_t *>(<array.array>src).data.as_ints, len(src)
    else:
        view = src
        n = view.shape[0]
        values = &view[0] if n else NULL
    if n == 0:
        return np.zeros(1, np.int64), np.zeros(1, np.int64)
    cdef Py_ssize_t count = _break_count(values, n)
    positions = np.empty(count, dtype=np.int64)
    offsets = np.empty(count, dtype=np.int64)
    cdef int64_t *pos_view
    cdef int64_t *off_view
    _data_of(positions, <void **>&pos_view)  # (arrays of a document each: no typed views)
    _data_of(offsets, <void **>&off_view)
    _write_breaks(values, n, count, pos_view, off_view)
    return positions, offsets


def source_from_breaks(Py_ssize_t length, const int32_t[::1] positions, const int32_t[::1] offsets):
    """`document.source_from_breaks` of int32 breaks: array('i') of `length` entries, entry i
    being i plus the offset of the last break at or before i."""
    out = array.clone(_INT_ARRAY, length, zero=False)
    cdef int[::1] view = out
    cdef Py_ssize_t runs = positions.shape[0], k, i, end
    cdef int offset
    for k in range(runs):
        end = positions[k + 1] if k + 1 < runs else length
        offset = offsets[k]
        for i in range(positions[k], end):
            view[i] = <int>(i + offset)
    return out


def packed_source(array.array src not None):
    """`document._packed_source` of an array('i') map: its length when it maps every position
    to itself, else (length, positions, offsets) of its breaks as int32 bytes, written straight
    into them (the map's items read as the array's own ints)."""
    if src.ob_descr.typecode != b"i":
        raise TypeError("packed_source takes an array('i')")
    cdef Py_ssize_t n = len(src)
    cdef const int32_t *values = <const int32_t *>src.data.as_ints
    if n == 0:
        return 0
    cdef Py_ssize_t count = _break_count(values, n)
    if count == 1 and values[0] == 0:
        return n
    positions = PyBytes_FromStringAndSize(NULL, count * 4)
    offsets = PyBytes_FromStringAndSize(NULL, count * 4)
    _write_breaks(values, n, count, <int32_t *>PyBytes_AS_STRING(positions), <int32_t *>PyBytes_AS_STRING(offsets))
    return n, positions, offsets


cdef enum:
    _PACKED_HEADER = 4  # the bytes before a packed string's characters (`packed_text`)


cdef bint _big_endian() noexcept:
    cdef uint16_t probe = 1
    return (<uint8_t *>&probe)[0] == 0


def packed_text(str text not None):
    """`document.packed_text`: `text` itself where Python stores it a byte a character, or
    where its UTF-8 would be smaller than its storage; else a header (its width, 2 or 4, and 1
    if this machine is big-endian; then two zero bytes, so that the characters after it are
    aligned) and its storage copied as it is."""
    cdef void *data
    cdef unsigned int kind = _storage(text, &data)
    cdef Py_ssize_t n = len(text), i, utf8 = 0
    cdef const uint16_t *narrow
    cdef const uint32_t *wide
    if kind == PyUnicode_1BYTE_KIND:
        return text
    if kind == PyUnicode_2BYTE_KIND:  # (a lone surrogate is 3 bytes, as "surrogatepass" writes it)
        narrow = <const uint16_t *>data
        for i in range(n):
            utf8 += 1 + (narrow[i] >= 0x80) + (narrow[i] >= 0x800)
    else:
        wide = <const uint32_t *>data
        for i in range(n):
            utf8 += 1 + (wide[i] >= 0x80) + (wide[i] >= 0x800) + (wide[i] >= 0x10000)
    if utf8 < n * kind:
        return text
    out = PyBytes_FromStringAndSize(NULL, n * kind + _PACKED_HEADER)
    cdef uint8_t *buffer = <uint8_t *>PyBytes_AS_STRING(out)
    buffer[0], buffer[1], buffer[2], buffer[3] = kind, _big_endian(), 0, 0
    memcpy(buffer + _PACKED_HEADER, data, n * kind)
    return out


def unpacked_text(bytes packed not None):
    """`document.unpacked_text` of what `packed_text` made of a string stored 2 or 4 bytes a
    character: the same string (`PyUnicode_FromKindAndData` copies the characters)."""
    cdef Py_ssize_t n = len(packed), i, count
    cdef const uint8_t *buffer = <const uint8_t *>PyBytes_AS_STRING(packed)
    cdef const uint32_t *wide
    if (
        n < _PACKED_HEADER or buffer[0] not in (2, 4) or (n - _PACKED_HEADER) % buffer[0]
        or buffer[1] > 1 or buffer[2] or buffer[3]
    ):
        raise ValueError("unpacked_text: not a packed string")
    if buffer[1] != _big_endian():
        raise ValueError("unpacked_text: a string packed in another byte order")
    count = (n - _PACKED_HEADER) // buffer[0]
    if buffer[0] == 4:  # (Python's own check stops at the first character past the BMP)
        wide = <const uint32_t *>(buffer + _PACKED_HEADER)
        for i in range(count):
            if wide[i] > 0x10FFFF:
                raise ValueError("unpacked_text: not a packed string (a code point past U+10FFFF)")
    return PyUnicode_FromKindAndData(buffer[0], buffer + _PACKED_HEADER, count)


cdef inline Py_ssize_t _next_difference(
    int kind_a, const void *a, int kind_b, const void *b, Py_ssize_t i, Py_ssize_t n
) noexcept:
    """The first position from `i` at which two texts of length `n` differ (`n`: none). Texts
    of one storage width, nearly always, are compared as arrays of it."""
    if kind_a == kind_b:
        if kind_a == PyUnicode_1BYTE_KIND:
            while i < n and (<const uint8_t *>a)[i] == (<const uint8_t *>b)[i]:
                i += 1
        elif kind_a == PyUnicode_2BYTE_KIND:
            while i < n and (<const uint16_t *>a)[i] == (<const uint16_t *>b)[i]:
                i += 1
        else:
            while i < n and (<const uint32_t *>a)[i] == (<const uint32_t *>b)[i]:
                i += 1
        return i
    while i < n and PyUnicode_READ(kind_a, <void *>a, i) == PyUnicode_READ(kind_b, <void *>b, i):
        i += 1
    return i


def aligned_spans(str before not None, str after not None, Py_ssize_t gap=0):
    """`report.model.aligned_spans`: two texts of the same length as consecutive
    (start, end, changed) spans, runs of differing positions less than `gap` + 1 unchanged
    characters apart being one run. One pass over both texts' code points."""
    cdef Py_ssize_t n = len(after), i, start = -1, prev = -1, pos = 0
    cdef int before_kind = PyUnicode_KIND(before), after_kind = PyUnicode_KIND(after)
    cdef const void *before_data = PyUnicode_DATA(before)
    cdef const void *after_data = PyUnicode_DATA(after)
    if len(before) != n:
        raise ValueError("aligned_spans: texts of different lengths")
    if gap > n:  # (any gap of n or more makes one run: kept from overflowing `gap + 1`)
        gap = n
    spans = []
    i = _next_difference(before_kind, before_data, after_kind, after_data, 0, n)
    while i < n:
        if start < 0:
            start = i
        elif i - prev > gap + 1:
            if start > pos:
                spans.append((pos, start, False))
            spans.append((start, prev + 1, True))
            pos, start = prev + 1, i
        prev = i
        i = _next_difference(before_kind, before_data, after_kind, after_data, i + 1, n)
    if start >= 0:
        if start > pos:
            spans.append((pos, start, False))
        spans.append((start, prev + 1, True))
        pos = prev + 1
    if pos < n:
        spans.append((pos, n, False))
    return spans


def count_differences(str before not None, str after not None):
    """`report.model.count_differences`: how many positions two texts of the same length
    differ at."""
    if len(before) != len(after):
        raise ValueError("count_differences: texts of different lengths")
    return _differences_in(before, after)


cdef inline Py_ssize_t _differences_in(str before, str after) noexcept:
    """`count_differences` of two texts of the same length (the caller checked)."""
    cdef Py_ssize_t n = len(after), i, count = 0
    cdef int before_kind = PyUnicode_KIND(before), after_kind = PyUnicode_KIND(after)
    cdef const void *before_data = PyUnicode_DATA(before)
    cdef const void *after_data = PyUnicode_DATA(after)
    i = _next_difference(before_kind, before_data, after_kind, after_data, 0, n)
    while i < n:
        count += 1
        i = _next_difference(before_kind, before_data, after_kind, after_data, i + 1, n)
    return count


# ----------------------------------------------------------------------- the report's inline diff
# `report.model.diff_segments` of a document without flags: the replay of its edits on its input
# text as pieces, then the pieces as segments, each step the same as its Python twin's (named
# after it where it has one; `_DiffPiece` is `_Piece`, a `_Step` an edit and its `_Span`). A
# report entry is made for nearly every document a run writes, and as Python the diff took
# about half of an entry's time (by hand, the benchmark's 5,702: 154-170 ms, 87-91 compiled).

@cython.freelist(256)  # (tens of thousands made and dropped a run)
cdef class _DiffPiece:
    """`report.model._Piece`: a run of text with one history."""
    cdef str text
    cdef Py_ssize_t inserted_by, removed_by, origin
    cdef object before  # a substitution: the text it replaced (a str); else None


cdef inline _DiffPiece _piece(
    str text, Py_ssize_t inserted_by, Py_ssize_t removed_by=-1, object before=None, Py_ssize_t origin=-1
):
    cdef _DiffPiece piece = _DiffPiece.__new__(_DiffPiece)
    piece.text = text
    piece.inserted_by = inserted_by
    piece.removed_by = removed_by
    piece.before = before
    piece.origin = origin
    return piece


cdef class _Step:
    """An edit as the replay reads it: its index in the document's edit list, its record's
    fields, and its span in the text as it was before its run (set by `_apply_run`)."""
    cdef Py_ssize_t index, start, end, span_start, span_end
    cdef str before, after
    cdef bint replace


class _NoReplay(Exception):
    """The edit log does not replay here: the Python twin says why."""


cdef _DiffPiece _slice(_DiffPiece piece, Py_ssize_t start, Py_ssize_t end):
    if piece.before is None:
        return _piece(piece.text[start:end], piece.inserted_by)
    return _piece(piece.text[start:end], piece.inserted_by, -1, (<str>piece.before)[start:end], piece.origin)


cdef list _expand(_DiffPiece piece):
    cdef str before = <str>piece.before, after = piece.text
    cdef Py_ssize_t edit = piece.inserted_by, start, end
    cdef list out = []
    for start, end, changed in aligned_spans(before, after):
        if changed:
            out.append(_piece(before[start:end], piece.origin, edit))
            out.append(_piece(after[start:end], edit, piece.removed_by))
        else:
            out.append(_piece(after[start:end], piece.origin, piece.removed_by))
    return out


cdef list _substitute(list pieces, Py_ssize_t index, str after):
    cdef list out = []
    cdef Py_ssize_t pos = 0
    cdef _DiffPiece piece
    cdef str text, new
    for piece in pieces:
        if piece.removed_by >= 0:
            out.append(piece)
            continue
        text = piece.text
        new = after[pos : pos + len(text)]
        pos += len(text)
        if new == text:
            out.append(piece)
        elif piece.before is not None:
            out.extend(_substitute(_expand(piece), index, new))
        else:
            out.append(_piece(new, index, -1, text, piece.inserted_by))
    return out


@cython.boundscheck(True)
@cython.wraparound(True)
cdef list _apply_to_range(list pieces, str before, _Step step, object opcodes):
    cdef str after = step.after
    cdef list ops
    cdef list out = []
    cdef Py_ssize_t pos = 0, n = 0, offset = 0, i2, j1, j2, count = len(pieces)
    cdef _DiffPiece current = None, part
    cdef bint changed
    if step.replace:
        if before and len(before) == len(after):
            return _substitute(pieces, step.index, after)
        ops = list(opcodes(before, after))
    else:
        ops = [("replace", 0, len(before), 0, len(after))]
    for tag, _, i2, j1, j2 in ops:
        changed = tag != "equal"
        while pos < i2:
            if current is None:
                if n >= count:
                    raise _NoReplay()
                current = <_DiffPiece?>pieces[n]
                offset = 0
                n += 1
                if current.removed_by >= 0:
                    out.append(current)
                    current = None
                    continue
            if pos + len(current.text) - offset <= i2:  # the rest of the piece
                part = current if offset == 0 else _slice(current, offset, len(current.text))
                pos += len(current.text) - offset
                current = None
            else:
                part = _slice(current, offset, offset + i2 - pos)
                offset += i2 - pos
                pos = i2
            if changed:
                part.removed_by = step.index
            out.append(part)
        if changed and j2 > j1:
            out.append(_piece(after[j1:j2], step.index))
    out.extend(pieces[n:])
    return out


@cython.boundscheck(True)
@cython.wraparound(True)
cdef list _replayed_range(list pieces, _Step step, object opcodes):
    """The pieces of a step's range once it is applied (`_NoReplay`: they do not hold its `before`)."""
    cdef str got
    cdef _DiffPiece piece  # (typed for the comprehension below: its fields are C fields)
    if len(pieces) == 1:
        got = (<_DiffPiece?>pieces[0]).text
    else:
        got = "".join([piece.text for piece in pieces if piece.removed_by < 0])
    if got != step.before:
        raise _NoReplay()
    return _apply_to_range(pieces, got, step, opcodes)


cdef list _apply_run_to_text(_DiffPiece piece, list run, object opcodes):
    cdef str text = piece.text
    cdef Py_ssize_t inserted_by = piece.inserted_by, pos = 0, start, end
    cdef list out = []
    cdef _Step step
    for step in run:
        start, end = step.span_start, step.span_end
        if start > pos:
            out.append(_piece(text[pos:start], inserted_by))
        out += _replayed_range([_piece(text[start:end], inserted_by)] if end > start else [], step, opcodes)
        pos = end
    if pos < len(text):
        out.append(_piece(text[pos:], inserted_by))
    return out


@cython.boundscheck(True)
@cython.wraparound(True)
cdef list _apply_run_to_pieces(list pieces, list run, object opcodes):
    cdef list out = [], pending = [], into
    cdef Py_ssize_t count = len(run), k = 0, pos = 0, n, piece_start, piece_end, part_end
    cdef _DiffPiece piece
    cdef _Step step
    for n in range(len(pieces)):
        if k == count:  # the run is applied: the rest is as it was
            out += pieces[n:]
            break
        piece = <_DiffPiece?>pieces[n]
        if piece.removed_by >= 0:
            (pending if pending else out).append(piece)
            continue
        piece_start = pos
        piece_end = pos + len(piece.text)
        step = <_Step>run[k]
        if pos < step.span_start >= piece_end:  # wholly before the next span
            out.append(piece)
            pos = piece_end
            continue
        while True:  # the piece's parts between cuts, one by one (a part at least)
            while k < count and (<_Step>run[k]).span_start == pos == (<_Step>run[k]).span_end:
                out += _replayed_range([], <_Step>run[k], opcodes)
                k += 1
            if k < count and (<_Step>run[k]).span_start <= pos:  # in span k (it ends after `pos`)
                part_end = min(piece_end, (<_Step>run[k]).span_end)
                into = pending
            else:
                part_end = piece_end if k == count else min(piece_end, (<_Step>run[k]).span_start)
                into = out
            if pos == piece_start and part_end == piece_end:
                into.append(piece)
            else:
                into.append(_slice(piece, pos - piece_start, part_end - piece_start))
            pos = part_end
            if into is pending and pos == (<_Step>run[k]).span_end:
                out += _replayed_range(pending, <_Step>run[k], opcodes)
                pending.clear()
                k += 1
            if pos >= piece_end:
                break
    while k < count:
        out += _replayed_range(pending, <_Step>run[k], opcodes)
        pending.clear()
        k += 1
    return out


cdef list _apply_run(list pieces, Py_ssize_t *length, list run, object opcodes):
    cdef Py_ssize_t delta = 0
    cdef _Step step
    cdef _DiffPiece first
    for step in run:
        step.span_start = step.start - delta
        step.span_end = step.end - delta
        delta += len(step.after) - (step.span_end - step.span_start)
    for step in run:
        if not 0 <= step.span_start <= step.span_end <= length[0]:
            raise _NoReplay()
    length[0] += delta
    if len(pieces) == 1:
        first = <_DiffPiece?>pieces[0]
        if first.removed_by < 0 and first.before is None:
            return _apply_run_to_text(first, run, opcodes)
    return _apply_run_to_pieces(pieces, run, opcodes)


cdef list _steps(list edits):
    """The edits that change text (not flags) as `_Step`s; `_NoReplay` where a record holds
    what a written log does not (the Python twin then reads it as it is)."""
    cdef list steps = []
    cdef Py_ssize_t index = -1
    cdef _Step step
    for edit in edits:
        index += 1
        if type(edit) is not dict:
            raise _NoReplay()
        action = (<dict>edit).get("action", "")
        if type(action) is not str:
            raise _NoReplay()
        if (<str>action).startswith("flag"):
            continue
        start, end = (<dict>edit)["start"], (<dict>edit)["end"]
        before, after = (<dict>edit).get("before", ""), (<dict>edit).get("after", "")
        if type(start) is not int or type(end) is not int or type(before) is not str or type(after) is not str:
            raise _NoReplay()
        step = _Step.__new__(_Step)
        step.index = index
        step.start = start
        step.end = end
        step.before = before
        step.after = after
        step.replace = action == "replace"
        steps.append(step)
    return steps


@cython.boundscheck(True)
@cython.wraparound(True)
cdef list _replay(str text, list edits, object opcodes):
    cdef list pieces = [_piece(text, -1)] if text else []
    cdef Py_ssize_t length = len(text), i = 0, j, count
    cdef list steps = _steps(edits)
    cdef _Step prev, step
    count = len(steps)
    while i < count:
        # A run: edits whose spans move left to right, as one `Document.apply` batch makes them.
        j = i + 1
        while j < count:
            prev, step = <_Step>steps[j - 1], <_Step>steps[j]
            if step.start < prev.start + len(prev.after):
                break
            j += 1
        pieces = _apply_run(pieces, &length, steps[i:j], opcodes)
        i = j
    return pieces


cdef list _expand_where_shown_apart(list pieces):
    """Its twin without flags: the substitutions removed since, or made over text an earlier
    edit inserted, expanded (shown as removals and insertions, not as "sub" segments)."""
    cdef list out = []
    cdef _DiffPiece piece
    for piece in pieces:
        if piece.before is not None and (piece.removed_by >= 0 or piece.origin >= 0):
            out.extend(_expand(piece))
        else:
            out.append(piece)
    return out


@cython.boundscheck(True)
@cython.wraparound(True)
cdef list _removal_labels(list pieces, Py_ssize_t *label):
    """Fills `label` (one a piece); returns the `via` tuples (one a piece)."""
    cdef Py_ssize_t count = len(pieces), i = 0, j, k, m, n, current, remover
    cdef list via = [()] * count, chain
    cdef _DiffPiece piece
    cdef bint one
    for n in range(count):
        label[n] = (<_DiffPiece>pieces[n]).removed_by
    while i < count:
        piece = <_DiffPiece>pieces[i]
        if piece.inserted_by >= 0 or piece.removed_by < 0:
            i += 1
            continue
        j = i
        while j < count and (<_DiffPiece>pieces[j]).inserted_by < 0 and (<_DiffPiece>pieces[j]).removed_by == piece.removed_by:
            j += 1
        current, chain, k = piece.removed_by, [], j
        while True:
            m = k
            while m < count and (<_DiffPiece>pieces[m]).inserted_by == current and (<_DiffPiece>pieces[m]).before is None:
                m += 1
            if m == k or (<_DiffPiece>pieces[k]).removed_by < 0:  # what the edit put there is still there
                break
            remover = (<_DiffPiece>pieces[k]).removed_by  # (the one remover of them all, or stop)
            one = True
            for n in range(k + 1, m):
                if (<_DiffPiece>pieces[n]).removed_by != remover:
                    one = False
                    break
            if not one or remover == -1:
                break
            chain.append(current)
            current = remover
            k = m
        if chain:
            for n in range(i, j):
                label[n] = current
                via[n] = tuple(chain)
        i = j
    return via


cdef int _KEEP = 0, _INS = 1, _DEL = 2, _NO_KEY = -1
_KINDS = ("keep", "ins", "del")


def diff_segments(object text, object edits, object opcodes, Py_ssize_t gap):
    """`report.model.diff_segments(text, edits, [])` (a document without flags), `opcodes`
    being `report.model.char_opcodes` and `gap` its `SUB_GAP`; None where that must decide
    (an edit log that does not replay, or that holds values a written log does not: its
    error, or its reading of them, is the Python's)."""
    if type(text) is not str or type(edits) is not list:
        return None
    try:
        pieces = _expand_where_shown_apart(_replay(<str>text, <list>edits, opcodes))
    except (_NoReplay, KeyError, OverflowError):  # (a missing field; an int past 64 bits)
        return None
    return _segments(pieces, gap)


@cython.boundscheck(True)
@cython.wraparound(True)
cdef list _segments(list pieces, Py_ssize_t gap):
    cdef Py_ssize_t count = len(pieces), n, edit, last_edit = -1
    cdef int kind, last_kind = _NO_KEY
    cdef Py_ssize_t *label = <Py_ssize_t *>malloc((count + 1) * sizeof(Py_ssize_t))
    cdef list via, segments = [], joined = [], parts
    cdef _DiffPiece piece
    cdef dict segment
    if label == NULL:
        raise MemoryError()
    try:
        via = _removal_labels(pieces, label)
        for n in range(count):
            piece = <_DiffPiece>pieces[n]
            if piece.before is not None:  # a substitution shown as it is: visible, unflagged
                parts = _substitution_parts(<str>piece.before, piece.text, piece.inserted_by, gap)
                if parts[0]["k"] == "keep" and last_kind == _KEEP and last_edit == -1:
                    _join(segments[-1], parts.pop(0)["t"], joined)
                segments += parts
                if segments[-1]["k"] == "keep":
                    last_kind, last_edit = _KEEP, -1
                else:
                    last_kind = _NO_KEY
                continue
            if piece.removed_by < 0:
                if piece.inserted_by < 0:
                    kind, edit = _KEEP, -1
                else:
                    kind, edit = _INS, piece.inserted_by
            elif piece.inserted_by >= 0:
                continue  # intermediate text that is neither in the input nor in the output
            else:
                kind, edit = _DEL, label[n]
            if kind == last_kind and edit == last_edit:  # one segment (its text joined below)
                segment = <dict>segments[-1]
                _join(segment, piece.text, joined)
                if via[n]:
                    segment["via"] = sorted(set(segment.get("via", ())) | set(via[n]))
                continue
            segment = {"k": _KINDS[kind], "t": piece.text}
            if edit >= 0:
                segment["e"] = edit
            if via[n]:
                segment["via"] = list(via[n])
            segments.append(segment)
            last_kind, last_edit = kind, edit
    finally:
        free(label)
    for segment in joined:
        segment["t"] = "".join(segment["t"])
    return segments


cdef list _substitution_parts(str before, str after, Py_ssize_t edit, Py_ssize_t gap):
    return [
        {"k": "sub", "t": before[start:end], "a": after[start:end], "e": edit}
        if changed
        else {"k": "keep", "t": after[start:end]}
        for start, end, changed in aligned_spans(before, after, gap)
    ]


cdef inline int _join(dict segment, str text, list joined) except -1:
    """Text added to a segment as a list of parts, joined once at the end."""
    cdef object parts = segment["t"]
    if type(parts) is str:
        parts = [parts]
        segment["t"] = parts
        joined.append(segment)
    (<list>parts).append(text)
    return 0


# ------------------------------------------------------------------ the report's diff, once made
# `report.model`'s passes over a document's segments after `diff_segments`: `collapse`'s walk
# (`_collapsed_runs`), `compact_substitutions` and `shown_chars`, each the same as its Python
# twin. A report entry is made for nearly every document a run writes, and as compiled Python
# (generic objects: a lookup and a call a key) these three took a fifth of an entry's
# instructions. Each gives None where a segment holds what the report's segments never do (a
# key missing, text not a `str`): its Python twin then decides, and raises where it raises.

def shown_chars(list segments not None):
    """`report.model.shown_chars` (None: its twin decides)."""
    cdef Py_ssize_t size = 0
    cdef object segment, text, after
    for segment in segments:
        if type(segment) is not dict:
            return None
        text = (<dict>segment).get("t", "")
        kind = (<dict>segment).get("k")
        if type(text) is not str or kind is None:
            return None
        size += len(<str>text)
        if kind == "sub":
            after = (<dict>segment).get("a")
            if type(after) is not str or len(<str>after) != len(<str>text):
                return None
            size += _differences_in(<str>text, <str>after)
    return size


def collapsed_runs(list segments not None, Py_ssize_t context):
    """`report.model._collapsed_runs`: (segments, bound) (None: its twin decides)."""
    cdef list out = []
    cdef Py_ssize_t n, count = len(segments), last = count - 1, bound = 0, head, tail, length
    cdef object segment, text, after
    if context < 0:
        return None
    # (a text longer than 2 x `context` + 20 characters: none, past this; kept from overflowing)
    context = min(context, (PY_SSIZE_T_MAX - 20) // 2)
    for n in range(count):
        segment = segments[n]
        if type(segment) is not dict:
            return None
        text = (<dict>segment).get("t")
        kind = (<dict>segment).get("k")
        if type(text) is not str or kind is None:
            return None
        length = len(<str>text)
        if kind != "keep" or "f" in <dict>segment or length <= 2 * context + 20:
            out.append(segment)
            if "a" not in <dict>segment:
                bound += length
                continue
            after = (<dict>segment)["a"]
            if type(after) is not str:
                return None
            bound += length + len(<str>after)
            continue
        head = context if n > 0 else 0
        tail = context if n < last else 0
        if n == 0 and n == last:
            head = 2 * context
        if head:
            out.append({"k": "keep", "t": (<str>text)[:head]})
        out.append({"k": "gap", "n": length - head - tail})
        if tail:
            out.append({"k": "keep", "t": (<str>text)[length - tail :]})
        bound += head + tail
    return out, bound


cdef inline bint _differ_everywhere(str first, str second) noexcept:
    """Whether two texts of the same length (the caller checked) differ at every position."""
    cdef Py_ssize_t i
    cdef int first_kind = PyUnicode_KIND(first), second_kind = PyUnicode_KIND(second)
    cdef const void *first_data = PyUnicode_DATA(first)
    cdef const void *second_data = PyUnicode_DATA(second)
    for i in range(len(first)):
        if PyUnicode_READ(first_kind, first_data, i) == PyUnicode_READ(second_kind, second_data, i):
            return False
    return True


cdef class _SubUnit:
    """`report.model._unit`'s tuple: a substitution that starts at a segment."""
    cdef object edit
    cdef str before, after
    cdef Py_ssize_t size


class _Unreadable(Exception):
    """A segment holds what the report's segments never do: the Python twin decides."""


cdef _SubUnit _unit_at(list segments, Py_ssize_t n):
    """`report.model._unit` (None: no substitution starts there; `_Unreadable`)."""
    cdef dict segment = <dict>segments[n], second
    cdef object kind = segment.get("k"), text, after, edit
    cdef _SubUnit unit
    if kind == "sub":
        edit, text, after = segment.get("e"), segment.get("t"), segment.get("a")
        if edit is None or type(text) is not str or type(after) is not str:
            raise _Unreadable()
        unit = _SubUnit.__new__(_SubUnit)
        unit.edit, unit.before, unit.after, unit.size = edit, <str>text, <str>after, 1
        return unit
    # `_substitution`: a del followed by an ins of the same edit and length, different everywhere
    if kind != "del" or n + 1 >= len(segments):
        return None
    if type(segments[n + 1]) is not dict:
        raise _Unreadable()
    second = <dict>segments[n + 1]
    if second.get("k") != "ins" or "via" in segment or "f" in second:
        return None
    edit = segment.get("e")
    text, after = segment.get("t"), second.get("t")
    if edit is None or type(text) is not str or type(after) is not str:
        raise _Unreadable()
    if second.get("e") != edit or len(<str>text) != len(<str>after) or not _differ_everywhere(<str>text, <str>after):
        return None
    unit = _SubUnit.__new__(_SubUnit)
    unit.edit, unit.before, unit.after, unit.size = edit, <str>text, <str>after, 2
    return unit


def compact_substitutions(list segments not None, Py_ssize_t gap):
    """`report.model.compact_substitutions`, `gap` being its `SUB_GAP` (None: its twin decides)."""
    cdef list out = [], before, after
    cdef Py_ssize_t n = 0, count = len(segments), size
    cdef object segment, kind, text
    cdef _SubUnit unit, following
    for segment in segments:  # (each a dict with a kind: read as such below)
        if type(segment) is not dict or "k" not in <dict>segment:
            return None
    try:
        while n < count:
            segment = segments[n]
            kind = (<dict>segment).get("k")
            if kind is None:
                return None
            unit = _unit_at(segments, n) if kind == "sub" or kind == "del" else None
            if unit is None:
                out.append(segment)
                n += 1
                continue
            before, after, size = [unit.before], [unit.after], unit.size
            n += size
            while n + 1 < count:
                segment = segments[n]
                if (<dict>segment).get("k") != "keep" or "f" in <dict>segment:
                    break
                text = (<dict>segment).get("t")
                if type(text) is not str:
                    return None
                if not 0 < len(<str>text) <= gap:
                    break
                following = _unit_at(segments, n + 1)
                if following is None or following.edit != unit.edit:
                    break
                before += (text, following.before)
                after += (text, following.after)
                n += 1 + following.size
            if size == 1 and len(before) == 1:
                out.append(segments[n - 1])  # a "sub" segment as it was
            else:
                out.append({"k": "sub", "t": "".join(before), "a": "".join(after), "e": unit.edit})
    except _Unreadable:
        return None
    return out


def edit_entries(str doc_id not None, list edits not None, Py_ssize_t limit, object clip, object review_command):
    """`report.model._edit_entry` of each of a document's edit records, `clip` and
    `review_command` being the report's (None where a record holds what a written log does not:
    the Python twin then reads it). Every listed document's edits are listed: as compiled
    Python, a call for each field read (`dict.get`) made this a sixth of an entry's
    instructions."""
    cdef list out = []
    cdef dict e, entry
    cdef object record, action, before, after, link, evidence
    cdef Py_ssize_t n = 0
    for record in edits:
        if type(record) is not dict:
            return None
        e = <dict>record
        action, before, after = e.get("action", ""), e.get("before", ""), e.get("after", "")
        if type(action) is not str or type(before) is not str or type(after) is not str:
            return None
        entry = {
            "seq": e.get("seq", n),
            "stage": e.get("stage", ""),
            "rule": e.get("rule", ""),
            "action": action,
            "kind": e.get("kind", ""),
            "reason": e.get("reason", ""),
            "before": before if len(<str>before) <= limit else clip(before, limit),
            "after": after if len(<str>after) <= limit else clip(after, limit),
            "src_start": e.get("src_start", -1),
            "src_end": e.get("src_end", -1),
        }
        link = e.get("link")
        if link:
            entry["link"] = link
        evidence = e.get("evidence")
        if evidence:
            entry["evidence"] = evidence
        if action == "drop" or (<str>action).startswith("meta:"):
            entry["review"] = review_command(doc_id, e)
        out.append(entry)
        n += 1
    return out


cdef extern from *:
    int __Pyx_PyUnicode_READY(object) except -1  # (Cython's: a no-op where strings are always ready)


ctypedef fused _Unit:  # a `str`'s storage: 1, 2 or 4 bytes a character
    uint8_t
    uint16_t
    uint32_t


cdef inline uint32_t _pair_slot(uint32_t first, uint32_t second, int shift) noexcept nogil:
    """`textutil.pair_slot`: the hash of two code points (uint32 arithmetic, wrapping)."""
    return ((first * 0x9E3779B1u) ^ (second * 0x85EBCA77u)) >> shift


cdef Py_ssize_t _first_start(
    const _Unit *chars, Py_ssize_t start, Py_ssize_t n, const uint8_t *firsts, Py_ssize_t size,
    const uint8_t *pairs, int shift,
) noexcept nogil:
    cdef Py_ssize_t i
    cdef bint paired = pairs != NULL
    cdef uint32_t c, slot
    for i in range(start, n):
        c = chars[i]
        if c >= size:
            return -2 - i
        if firsts[c]:
            if not paired:
                return i
            if i + 1 < n:
                slot = _pair_slot(c, chars[i + 1], shift)
                if (pairs[slot >> 3] >> (slot & 7)) & 1:
                    return i
    return -1


cdef unsigned int _storage(str text, void **data) except 0:
    """The storage width of `text` (`PyUnicode_KIND`: 1, 2 or 4 bytes a character) and its
    buffer, the string made ready first (a string in Python 3.11's legacy form has no data yet)."""
    __Pyx_PyUnicode_READY(text)
    data[0] = PyUnicode_DATA(text)
    return PyUnicode_KIND(text)


cdef int _check_gb18030(const uint32_t[::1] encoded, const uint8_t[::1] lengths) except -1:
    """Refuse GB18030 tables that do not match (a length read past the encodings' end would be
    read out of bounds)."""
    if encoded.shape[0] < lengths.shape[0]:
        raise ValueError("GB18030 tables: fewer encodings than lengths")
    return 0


cdef Py_ssize_t _first_start_in(
    str text, const uint8_t *firsts, Py_ssize_t size, const uint8_t *pairs, int shift, Py_ssize_t start
) except? -3:
    """`_first_start` over the text's own buffer, in the loop for its storage width."""
    cdef void *data
    cdef unsigned int kind = _storage(text, &data)
    cdef Py_ssize_t n = len(text)
    if start < 0:
        start = 0
    if kind == PyUnicode_1BYTE_KIND:
        return _first_start(<const uint8_t *>data, start, n, firsts, size, pairs, shift)
    if kind == PyUnicode_2BYTE_KIND:
        return _first_start(<const uint16_t *>data, start, n, firsts, size, pairs, shift)
    return _first_start(<const uint32_t *>data, start, n, firsts, size, pairs, shift)



cdef int64_t _wide_utf8_starts(
    const _Unit *chars, Py_ssize_t n, const uint32_t[::1] encoded, const uint8_t[::1] lengths,
    int64_t *size,
) noexcept nogil:
    """`wide_utf8_starts` over one storage width: -1 at a character the tables do not hold."""
    cdef Py_ssize_t table = lengths.shape[0], i
    cdef uint32_t c, word, b, before = 0, last = 0  # the two bytes before `b` (0: none)
    cdef int length, k
    cdef int64_t starts = 0, total = 0
    for i in range(n):
        c = chars[i]
        if c >= table:
            return -1
        length = lengths[c]
        if length == 0 or length > 4:  # (more than a word's bytes: a table damaged)
            return -1
        word = encoded[c]
        total += length
        for k in range(length - 1, -1, -1):
            b = (word >> (8 * k)) & 0xFF
            # A lead byte E0-F4, then two continuation bytes 80-BF (`WIDE_UTF8_START`)
            if 0xE0 <= before <= 0xF4 and 0x80 <= last <= 0xBF and 0x80 <= b <= 0xBF:
                starts += 1
            before, last = last, b
    size[0] = total
    return starts


cdef list _runs_that_may_decode(
    const _Unit *chars, Py_ssize_t n, const uint8_t[::1] suspects, const uint32_t[::1] encoded,
    const uint8_t[::1] lengths, int64_t min_starts, int64_t percent,
):
    """`runs_that_may_decode` over one storage width."""
    cdef Py_ssize_t i = 0, start
    cdef uint32_t c
    cdef int64_t count, size, starts
    found = []
    while i < n:
        c = chars[i]
        if c < 0x80 or Py_UNICODE_ISSPACE(c):
            i += 1
            continue
        start = i
        count = 0
        while i < n:
            c = chars[i]
            if c < 0x80 or Py_UNICODE_ISSPACE(c):
                break
            if c < <uint32_t>suspects.shape[0] and suspects[c]:
                count += 1
            i += 1
        if count >= 2:
            size = 0
            starts = _wide_utf8_starts(chars + start, i - start, encoded, lengths, &size)
            if starts < 0 or (starts >= min_starts and 100 * starts >= percent * size):
                found.append((start, i, starts >= 0))
    return found


def runs_that_may_decode(
    str text not None, const uint8_t[::1] suspects, const uint32_t[::1] encoded,
    const uint8_t[::1] lengths, int64_t min_starts, int64_t percent,
):
    """`repair._runs_that_may_decode`'s loop: (start, end, counted) of each run of characters
    that are neither ASCII nor white space (`NON_ASCII_RUN`) holding two or more characters
    marked in `suspects` (BMP code points; none past it), in order, kept when its bytes
    (`wide_utf8_starts`) have at least `min_starts` wide starts and at least `percent` of them
    a hundred bytes, or when the tables do not hold one of its characters (counted False)."""
    cdef void *data
    _check_gb18030(encoded, lengths)
    cdef unsigned int kind = _storage(text, &data)
    cdef Py_ssize_t n = len(text)
    if kind == PyUnicode_1BYTE_KIND:
        return _runs_that_may_decode(<const uint8_t *>data, n, suspects, encoded, lengths, min_starts, percent)
    if kind == PyUnicode_2BYTE_KIND:
        return _runs_that_may_decode(<const uint16_t *>data, n, suspects, encoded, lengths, min_starts, percent)
    return _runs_that_may_decode(<const uint32_t *>data, n, suspects, encoded, lengths, min_starts, percent)


def wide_utf8_starts(str text not None, const uint32_t[::1] encoded, const uint8_t[::1] lengths):
    """`repair.wide_starts_and_size`'s count: (the places where a wide UTF-8 character may
    start in the bytes a GBK decoder read to produce `text`, how many bytes those are), each
    character's bytes from the tables (`encoded[c]`: its `lengths[c]` bytes, the first most
    significant); (-1, -1) at a character they do not hold (length 0, or past them)."""
    cdef void *data
    _check_gb18030(encoded, lengths)
    cdef unsigned int kind = _storage(text, &data)
    cdef Py_ssize_t n = len(text)
    cdef int64_t size = 0, starts
    if kind == PyUnicode_1BYTE_KIND:
        starts = _wide_utf8_starts(<const uint8_t *>data, n, encoded, lengths, &size)
    elif kind == PyUnicode_2BYTE_KIND:
        starts = _wide_utf8_starts(<const uint16_t *>data, n, encoded, lengths, &size)
    else:
        starts = _wide_utf8_starts(<const uint32_t *>data, n, encoded, lengths, &size)
    if starts < 0:
        return -1, -1
    return starts, size


def first_member(str text not None, bytes table not None, Py_ssize_t start=0):
    """`textutil.CharClass.first`'s scan: the index of the first character of `text` from
    `start` on whose code point c has byte `table[c]` set; -1 if there is none; -2 - its index
    when a character past the table comes first (the caller decides from there on).

    One loop for each storage width of `str` (1, 2 or 4 bytes a character), reading the text's
    buffer directly: a byte looked up per character, where `re` tests a class's ranges. The
    table is `bytes`, read where it lies: a typed view of an array cost more than the scan of a
    sentence, and a text is scanned several times."""
    return _first_start_in(text, <const uint8_t *><const char *>table, len(table), NULL, 0, start)


cdef Py_ssize_t _count_members(
    const _Unit *chars, Py_ssize_t start, Py_ssize_t n, const uint8_t *table, Py_ssize_t size, Py_ssize_t *stop
) noexcept nogil:
    """`count_members` over one storage width: `stop` the first character past the table, -1."""
    cdef Py_ssize_t i, count = 0
    cdef uint32_t c
    for i in range(start, n):
        c = chars[i]
        if c >= size:
            stop[0] = i
            return count
        count += table[c] != 0
    stop[0] = -1
    return count


def count_members(str text not None, bytes table not None, Py_ssize_t start=0):
    """`textutil.CharClass.count`'s loop: (how many characters of `text` from `start` on have
    byte table[c] set for their code point c, up to the first character past the table; that
    character's index, -1 if there is none), reading the text's own buffer."""
    cdef void *data
    cdef unsigned int kind = _storage(text, &data)
    cdef Py_ssize_t n = len(text), stop = -1, count, size = len(table)
    cdef const uint8_t *bits = <const uint8_t *><const char *>table
    if start < 0:
        start = 0
    if kind == PyUnicode_1BYTE_KIND:
        count = _count_members(<const uint8_t *>data, start, n, bits, size, &stop)
    elif kind == PyUnicode_2BYTE_KIND:
        count = _count_members(<const uint16_t *>data, start, n, bits, size, &stop)
    else:
        count = _count_members(<const uint32_t *>data, start, n, bits, size, &stop)
    return count, stop


def first_pair(str text not None, const uint8_t[::1] firsts, const uint8_t[::1] pairs, int shift, Py_ssize_t start=0):
    """`textutil.PairStarts.search`'s scan: the index of the first character of `text` from
    `start` on that may begin one of the pairs (`firsts[c]` set for it, and the bit of its
    pair's `_pair_slot` set in `pairs`: no pair is missed, a few other pairs may pass); -1 if
    there is none; -2 - its index when a character past `firsts` comes first (the caller
    decides from there on)."""
    if not 0 <= shift < 32 or pairs.shape[0] * 8 < (<int64_t>1 << (32 - shift)):
        raise ValueError("first_pair: the pairs' table is smaller than its hash's range")
    return _first_start_in(
        text, &firsts[0] if firsts.shape[0] else NULL, firsts.shape[0], &pairs[0], shift, start
    )


cdef inline bint _text_starts_at(const int64_t *starts, Py_ssize_t texts, Py_ssize_t *k, Py_ssize_t i) noexcept nogil:
    """Whether one of the `texts` ascending `starts` is `i`, `k[0]` moved on past those below
    it: a walk along texts joined end to end, one position after another."""
    while k[0] < texts and starts[k[0]] < i:
        k[0] += 1
    return k[0] < texts and starts[k[0]] == i


def garbage_windows(
    const float[::1] surprise,
    const uint32_t[::1] ids,
    const uint8_t[::1] han_symbols,
    uint32_t space,
    const int64_t[::1] starts,
    Py_ssize_t width,
    double min_kept,
    double min_han,
):
    """(sums, counts, usable) of `garbage._window_scores_numpy` over texts joined end to end
    (text t is [starts[t], starts[t + 1]) of `ids` and `surprise`, `starts` ascending): per
    window of `width` characters, the sum of the surprise of the characters not skipped (a
    line break, and the character after one in the same text), how many those are, and
    whether the window is usable (`min_kept` of them or more, and `min_han` Han characters
    or more).

    One loop, a window moved on by a character at a time. Its running sum is the exact sum of
    the window's values, as numpy's convolution is, only where every sum of up to `width`
    values is exact (`BigramModel.exact_sum_terms`): the caller checks that."""
    cdef Py_ssize_t n = ids.shape[0], texts = starts.shape[0], m, i, j, k = 0
    if surprise.shape[0] != n:
        raise ValueError("garbage_windows: surprise and ids of different lengths")
    if width < 1:
        raise ValueError("garbage_windows: width below 1")
    m = n - width + 1 if n >= width else 0
    sums = np.empty(m, dtype=np.float64)
    counts = np.empty(m, dtype=np.float64)
    usable = np.zeros(m, dtype=np.bool_)
    if m == 0:
        return sums, counts, usable
    cdef double[::1] sum_view = sums, count_view = counts
    cdef uint8_t[::1] usable_view = usable.view(np.uint8)
    cdef _Window window
    _window_open(&window, width)
    cdef Py_ssize_t symbols = han_symbols.shape[0]
    cdef bint is_space, after_space = False, first, skip
    cdef const int64_t *first_start = &starts[0] if texts else NULL
    cdef uint32_t symbol
    try:
        for i in range(n):
            symbol = ids[i]
            if symbol >= symbols:
                raise ValueError("garbage_windows: a symbol id past han_symbols")
            is_space = symbol == space
            first = _text_starts_at(first_start, texts, &k, i)  # (nothing before it in its text)
            skip = is_space or (after_space and not first)
            after_space = is_space
            _window_push(&window, 0.0 if skip else <double>surprise[i], not skip, han_symbols[symbol] != 0)
            if i >= width - 1:
                j = i - width + 1
                sum_view[j] = window.total
                count_view[j] = <double>window.kept_count
                usable_view[j] = (<double>window.kept_count >= min_kept) and (<double>window.han_count >= min_han)
    finally:
        _window_close(&window)
    return sums, counts, usable


cdef struct _Window:
    # The last `width` characters (at most) of a text: their values, whether each is kept and
    # whether each is Han (ring buffers), and the running totals of the three (the garbage
    # detector's windows, `garbage_windows` and `garbage_may_reach`).
    double *values
    uint8_t *kept
    uint8_t *han
    Py_ssize_t width
    Py_ssize_t filled  # characters in it, up to `width`
    Py_ssize_t slot  # where the next one goes (filled % width, without a division a character)
    double total
    Py_ssize_t kept_count
    Py_ssize_t han_count


cdef void _window_close(_Window *window) noexcept nogil:
    free(window.values)
    free(window.kept)
    free(window.han)
    window.values = window.kept = window.han = NULL


cdef inline void _window_empty(_Window *window) noexcept nogil:
    window.filled = window.slot = window.kept_count = window.han_count = 0
    window.total = 0.0


cdef int _window_open(_Window *window, Py_ssize_t width) except -1:
    """Room for `width` characters (MemoryError where there is none), the window empty."""
    window.values = <double *>malloc(width * sizeof(double))
    window.kept = <uint8_t *>malloc(width)
    window.han = <uint8_t *>malloc(width)
    if window.values == NULL or window.kept == NULL or window.han == NULL:
        _window_close(window)
        raise MemoryError()
    window.width = width
    _window_empty(window)
    return 0


cdef inline void _window_push(_Window *window, double value, bint kept, bint han) noexcept nogil:
    """The next character in, and the first out once the window is full."""
    cdef Py_ssize_t slot = window.slot
    if window.filled == window.width:  # the character leaving the window
        window.total -= window.values[slot]
        window.kept_count -= window.kept[slot]
        window.han_count -= window.han[slot]
    else:
        window.filled += 1
    window.values[slot] = value
    window.kept[slot] = kept
    window.han[slot] = han
    window.total += value
    window.kept_count += kept
    window.han_count += han
    slot += 1
    window.slot = 0 if slot == window.width else slot


cdef extern from *:
    """
    /* Ask for a cache line ahead of its read, where the compiler can (GCC, Clang). */
    #if defined(__GNUC__)
    #define curate_prefetch(address) __builtin_prefetch(address)
    #else
    #define curate_prefetch(address) ((void)(address))
    #endif
    """
    void curate_prefetch(const void *address) nogil


cdef inline uint32_t _shifted(uint32_t value, uint32_t shift) noexcept nogil:
    """value >> shift as numpy shifts a uint32: 0 from a shift of 32 on (C leaves that undefined)."""
    return value >> shift if shift < 32 else 0


def bigram_surprise(
    const uint32_t[::1] ids,
    const int64_t[::1] starts,
    const uint32_t[::1] bucket_salts,
    const uint64_t[::1] slot_pairs,
    const float[::1] backoff_bits,
    const float[::1] unigram_bits,
    uint32_t symbols,
    uint32_t bos,
    uint32_t key_mix,
    uint32_t slot_mix,
    uint32_t bucket_shift,
    uint32_t slot_shift,
):
    """`BigramModel.surprise_of_ids`' numpy twin (`_surprise_of_ids_numpy`): per symbol, the
    pair (the previous symbol, or `bos` at 0 and at each of `starts`, ascending; and this
    one) looked up in the perfect hash table (`_pair_slots`, uint32 arithmetic that wraps),
    whose slots hold a key in their low 32 bits and the float32 bits of its surprise in their
    high 32: the stored pair's bits, else the previous symbol's backoff plus this one's
    unigram bits, added in float32 as numpy adds them."""
    cdef Py_ssize_t n = ids.shape[0], texts = starts.shape[0], i, k = 0
    cdef Py_ssize_t buckets = bucket_salts.shape[0], slots = slot_pairs.shape[0]
    cdef Py_ssize_t history = backoff_bits.shape[0], followers = unigram_bits.shape[0]
    out = np.empty(n, dtype=np.float32)
    if n == 0:
        return out
    cdef float[::1] view = out
    cdef uint32_t prev = bos, symbol, key, mixed, bucket, bits
    cdef uint64_t pair
    cdef float stored, unstored
    cdef Py_ssize_t block, j, end
    cdef const int64_t *first_start = &starts[0] if texts else NULL
    cdef uint32_t keys[64]
    cdef uint32_t prevs[64]
    cdef uint32_t places[64]
    # In blocks of 64: the slots first (and their lines asked for), then the reads, so that
    # the table's cache misses overlap instead of waiting one after another.
    for block in range(0, n, 64):
        end = min(n, block + 64)
        for i in range(block, end):
            if _text_starts_at(first_start, texts, &k, i) or i == 0:
                prev = bos
            symbol = ids[i]
            if prev >= history or symbol >= followers:
                raise ValueError("bigram_surprise: a symbol past the backoff or unigram bits")
            key = prev * symbols + symbol
            mixed = key * key_mix
            bucket = _shifted(mixed, bucket_shift)
            if bucket >= buckets:
                raise ValueError("bigram_surprise: a bucket past the table")
            j = i - block
            places[j] = _shifted((mixed ^ bucket_salts[bucket]) * slot_mix, slot_shift)
            if places[j] >= slots:
                raise ValueError("bigram_surprise: a slot past the table")
            keys[j] = key
            prevs[j] = prev
            curate_prefetch(&slot_pairs[places[j]])
            prev = symbol
        for i in range(block, end):
            j = i - block
            pair = slot_pairs[places[j]]
            bits = <uint32_t>(pair >> 32)
            memcpy(&stored, &bits, 4)  # (the float32 whose bits these are)
            unstored = backoff_bits[prevs[j]] + unigram_bits[ids[i]]
            view[i] = stored if <uint32_t>pair == keys[j] else unstored
    return out


cdef Py_ssize_t _next_slot(
    const uint32_t *codes,
    Py_ssize_t i,
    Py_ssize_t n,
    const int32_t *rows,
    const int32_t *columns,
    const int32_t *slots,
    Py_ssize_t points,
    Py_ssize_t entries,
    int32_t *slot,
) noexcept nogil:
    """`trigger_positions`' scan: from i, the first place a pair of `codes` (n of them) has a
    slot (in `slot`); -1 none, -2 a code point past the tables, -3 a pair past the slots.

    A loop of its own, with nothing of Python's in it: its counters stay in registers (in the
    caller's body they lived on the stack: 4 ns a character on the benchmark's texts). Every
    pair is looked up, with no branch on its first character: 12% of the characters there
    start some pair, in no order a branch predicts."""
    cdef int64_t at
    while i < n - 1:
        if codes[i] >= points or codes[i + 1] >= points:
            return -2
        at = <int64_t>rows[codes[i]] + columns[codes[i + 1]]
        if at < 0 or at >= entries:
            return -3
        if slots[at] >= 0:
            slot[0] = slots[at]
            return i
        i += 1
    return -1


def trigger_positions(
    const uint32_t[::1] codes,
    const int32_t[::1] rows,
    const int32_t[::1] columns,
    const int32_t[::1] slots,
    const int32_t[::1] slot_bounds,
    const uint32_t[::1] trigger_codes,
    const int64_t[::1] trigger_bounds,
    tuple triggers,
    const int64_t[::1] offsets,
):
    """`rules._trigger_positions`: where each trigger (of two characters or more) starts in
    the folded texts whose `codes` are joined (text k from offsets[k]; `offsets` ascending,
    its last entry past the codes), as {trigger: [starts in text k]} for each text, in one
    pass. A pair of characters that starts triggers has a slot (`slots[rows[first] +
    columns[second]]`, -1 for none); slot s's triggers are triggers[slot_bounds[s]:slot_bounds[s
    + 1]], trigger t's code points trigger_codes[trigger_bounds[t]:trigger_bounds[t + 1]].
    Compared by code point where a pair may start one, as the Python loop compares strings
    there."""
    cdef Py_ssize_t n = codes.shape[0], i, j, k = 0, texts = offsets.shape[0] - 1
    cdef Py_ssize_t points = min(rows.shape[0], columns.shape[0]), entries = slots.shape[0]
    cdef Py_ssize_t groups = slot_bounds.shape[0] - 1
    cdef Py_ssize_t count = len(triggers), stored = trigger_codes.shape[0]
    cdef int64_t first, length, start
    cdef int32_t slot = -1, t
    cdef dict current
    if texts < 1 or offsets[0] != 0 or offsets[texts] < n or trigger_bounds.shape[0] != count + 1:
        raise ValueError("trigger_positions: offsets or trigger bounds that do not fit")
    for j in range(texts):
        if offsets[j + 1] < offsets[j]:
            raise ValueError("trigger_positions: offsets not ascending")
    for j in range(count):
        if trigger_bounds[j] < 0 or trigger_bounds[j + 1] < trigger_bounds[j] + 2 or trigger_bounds[j + 1] > stored:
            raise ValueError("trigger_positions: a trigger of fewer than two characters, or past the codes")
    for j in range(groups):
        if slot_bounds[j] < 0 or slot_bounds[j + 1] < slot_bounds[j] or slot_bounds[j + 1] > count:
            raise ValueError("trigger_positions: a slot past the triggers")
    found = [{} for _ in range(texts)]
    current = found[0]
    i = -1
    while True:
        i = _next_slot(&codes[0], i + 1, n, &rows[0], &columns[0], &slots[0], points, entries, &slot)
        if i < 0:
            if i == -1:
                break
            raise IndexError("trigger_positions: a code point past the tables" if i == -2 else "trigger_positions: a pair past the table")
        if slot >= groups:
            raise IndexError("trigger_positions: a slot past the bounds")
        while i >= offsets[k + 1]:
            k += 1
            current = found[k]
        for t in range(slot_bounds[slot], slot_bounds[slot + 1]):
            first = trigger_bounds[t]
            length = trigger_bounds[t + 1] - first
            if i + length > n:
                continue
            j = 0
            while j < length and codes[i + j] == trigger_codes[first + j]:
                j += 1
            if j < length:
                continue
            start = i - offsets[k]
            trigger = triggers[t]
            starts = current.get(trigger)
            if starts is None:
                current[trigger] = [start]
            else:
                (<list>starts).append(start)
    return found


def gather(list blocks, const int64_t[::1] starts, const int64_t[::1] lengths, Py_ssize_t itemsize, uint8_t[::1] out):
    """`dedup._cut_items`: into `out`, one after the other, items starts[i] to starts[i] + lengths[i]
    of each contiguous buffer blocks[i] (items of `itemsize` bytes). One memcpy a block where
    numpy made a view of each (a microsecond each, thousands of documents by several columns)."""
    cdef Py_ssize_t n = len(blocks), i, items, size, pos = 0
    cdef Py_buffer view
    cdef char *target = NULL
    if starts.shape[0] != n or lengths.shape[0] != n:
        raise ValueError("gather: one start and one length a block")
    if itemsize <= 0:
        raise ValueError("gather: items of no size")
    if out.shape[0]:
        target = <char *>&out[0]
    for i in range(n):
        PyObject_GetBuffer(blocks[i], &view, PyBUF_SIMPLE)
        try:
            items = view.len // itemsize  # (compared in items: no product to overflow)
            if starts[i] < 0 or lengths[i] < 0 or lengths[i] > items or starts[i] > items - lengths[i]:
                raise ValueError(f"gather: block {i} has no items {starts[i]} to {starts[i] + lengths[i]}")
            size = lengths[i] * itemsize
            if size > out.shape[0] - pos:
                raise ValueError("gather: out is too short")
            if size:
                memcpy(target + pos, <const char *>view.buf + starts[i] * itemsize, size)
        finally:
            PyBuffer_Release(&view)
        pos += size
    if pos != out.shape[0]:
        raise ValueError("gather: out is longer than the items")


cdef extern from *:
    """
    /* `utf8_lines`: from `*byte` (the start of a character, or where a word step left off
       inside one) with `*position` characters before it, to the first byte of character
       `target` (or the text's end, where that is all of them): its characters are counted by
       their first bytes (every byte but 10xxxxxx), eight bytes a step while the target lies
       beyond them. 0 where found, -1 where the text has fewer characters (`target` is not
       negative: the caller checks). */
    #include <string.h>
    static int curate_utf8_seek(const uint8_t *text, Py_ssize_t size, Py_ssize_t *byte,
                                int64_t *position, int64_t target) {
        Py_ssize_t at = *byte;
        int64_t count = *position;
        while (at + 8 <= size) {
            uint64_t word;
            memcpy(&word, text + at, 8);
            /* a byte's top bit where it is 10xxxxxx; their count summed across the lanes by
               one multiplication (no popcount instruction in the baseline x86-64) */
            uint64_t following = (word & ~(word << 1) & 0x8080808080808080ULL) >> 7;
            int firsts = 8 - (int)((following * 0x0101010101010101ULL) >> 56);
            if (count + firsts > target) break;
            count += firsts;
            at += 8;
        }
        for (; at < size; at++) {
            if ((text[at] & 0xC0) != 0x80) {
                if (count == target) break;
                count++;
            }
        }
        *byte = at;
        *position = count;
        return count == target ? 0 : -1;
    }
    """
    int curate_utf8_seek(const uint8_t *text, Py_ssize_t size, Py_ssize_t *byte, int64_t *position, int64_t target) nogil


def utf8_lines(list texts, const int64_t[::1] bounds, const int64_t[::1] counts):
    """`dedup._Rows.lines`: the UTF-8 of each span of each text, in order. texts[i] is a UTF-8
    text (any buffer: bytes, a record's view) with `counts[i]` spans, the next pairs of
    character positions of `bounds`, or a list of its span's texts as `str` (taken as they
    are, encoded). A span (a, b) of a UTF-8 text gives `str(text, "utf-8")[a:b].encode()`, cut
    from the UTF-8 as it is, nothing decoded (`curate_utf8_seek` counts the characters), so a
    text must be valid UTF-8 (not checked: a summary's text is `str.encode`'s). Positions in
    ascending order (a document's paragraph spans) are found in one pass over the text; one
    before the last found is counted again from its start. A negative position, one past a
    text's end, a span that ends before it starts, or counts and bounds that do not add up
    are refused (ValueError)."""
    cdef Py_buffer view
    cdef Py_ssize_t n = len(texts), i, k, pair = 0, byte, size, start = 0
    cdef int64_t position, target
    cdef const uint8_t *text
    if counts.shape[0] != n:
        raise ValueError("utf8_lines: one count a text")
    lines = []
    for i in range(n):
        if counts[i] < 0 or counts[i] > (bounds.shape[0] - 2 * pair) // 2:
            raise ValueError(f"utf8_lines: text {i} has more spans than the bounds hold")
        item = texts[i]
        if type(item) is list:
            if len(<list>item) != counts[i]:
                raise ValueError(f"utf8_lines: text {i} has {len(<list>item)} lines, {counts[i]} spans")
            for line in <list>item:
                lines.append((<str?>line).encode("utf-8"))
            pair += counts[i]
            continue
        PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
        try:
            text = <const uint8_t *>view.buf
            size = view.len
            byte, position = 0, 0
            for k in range(2 * counts[i]):
                target = bounds[2 * pair + k]
                if target < 0:
                    raise ValueError(f"utf8_lines: text {i}: a negative position, {target}")
                if target < position:
                    byte, position = 0, 0
                if curate_utf8_seek(text, size, &byte, &position, target) < 0:
                    raise ValueError(f"utf8_lines: text {i}: position {target} is past its end")
                if k % 2 == 0:
                    start = byte
                elif byte < start:
                    raise ValueError(f"utf8_lines: text {i}: a span ends at {target}, before it starts")
                else:
                    lines.append(PyBytes_FromStringAndSize(<const char *>text + start, byte - start))
        finally:
            PyBuffer_Release(&view)
        pair += counts[i]
    if 2 * pair != bounds.shape[0]:
        raise ValueError("utf8_lines: more bounds than spans")
    return lines


def band_hashes(const uint32_t[:, ::1] sigs, const int64_t[::1] bands, uint64_t base):
    """`dedup._band_hash_rows`: for each band [bands[2b], bands[2b + 1]) of the signature rows
    `sigs`, each row's polynomial hash of its values there (h = h * base + value, from 0, mod
    2^64), a row of the result (bands x rows). Read row by row as the signatures lie in memory,
    where numpy's twin turned a block of rows into columns first (a transposed copy), then made
    a pass over all the rows for each column."""
    cdef Py_ssize_t rows = sigs.shape[0], width = sigs.shape[1], count = bands.shape[0] // 2
    cdef Py_ssize_t r, b, c
    cdef uint64_t value
    cdef uint64_t *out
    if bands.shape[0] % 2:
        raise ValueError("band_hashes: a start and an end a band")
    for b in range(count):
        if not 0 <= bands[2 * b] <= bands[2 * b + 1] <= width:
            raise ValueError(f"band_hashes: band {bands[2 * b]}-{bands[2 * b + 1]} outside rows of {width} values")
    hashed = np.empty((count, rows), dtype=np.uint64)
    if rows == 0 or count == 0:
        return hashed
    _data_of(hashed, <void **>&out)
    with nogil:
        for r in range(rows):
            for b in range(count):
                value = 0
                for c in range(bands[2 * b], bands[2 * b + 1]):
                    value = value * base + sigs[r, c]
                out[b * rows + r] = value
    return hashed


cdef enum:
    _RADIX_BITS = 11  # `band_entries` sorts 32-bit hashes in three passes of 11, 11 and 10 bits
    _RADIX_SIZE = 1 << _RADIX_BITS


def band_entries(const uint32_t[::1] hashes):
    """`dedup._BandTable.entries` of one band: each row's hash above its row number (hashes[i]
    << 32 | i), ascending. Sorted by the hashes alone, a least significant digit radix sort
    (stable: rows come in ascending order, so equal hashes keep them so, as sorting the entries
    would), in three passes over them where numpy's sort of the entries took about 40 ns an
    entry. A pass whose digit is the same in every hash is skipped (it would move nothing)."""
    cdef Py_ssize_t n = hashes.shape[0], i, d, p, total
    if <uint64_t>n > 0xFFFFFFFF:
        raise ValueError(f"band_entries: {n} rows, more than an entry numbers")
    entries = np.empty(n, dtype=np.uint64)
    if n == 0:
        return entries
    cdef uint64_t *out
    _data_of(entries, <void **>&out)
    cdef uint64_t *spare = <uint64_t *>malloc(n * sizeof(uint64_t))
    cdef Py_ssize_t *counts = <Py_ssize_t *>calloc(3 * _RADIX_SIZE, sizeof(Py_ssize_t))
    cdef uint64_t *source
    cdef uint64_t *target
    cdef uint64_t entry
    cdef int shift
    if spare == NULL or counts == NULL:
        free(spare)
        free(counts)
        raise MemoryError()
    with nogil:
        for i in range(n):
            counts[hashes[i] & (_RADIX_SIZE - 1)] += 1
            counts[_RADIX_SIZE + ((hashes[i] >> _RADIX_BITS) & (_RADIX_SIZE - 1))] += 1
            counts[2 * _RADIX_SIZE + (hashes[i] >> (2 * _RADIX_BITS))] += 1
        # The entries start in `out`; where the last pass made wrote them into `spare`, they
        # are copied back (below).
        source, target = out, spare
        for i in range(n):
            out[i] = (<uint64_t>hashes[i]) << 32 | <uint64_t>i
        for p in range(3):
            if counts[p * _RADIX_SIZE + ((source[0] >> (32 + p * _RADIX_BITS)) & (_RADIX_SIZE - 1))] == n:
                continue  # (every entry has this digit: the order stays)
            total = 0
            for d in range(p * _RADIX_SIZE, (p + 1) * _RADIX_SIZE):
                total, counts[d] = total + counts[d], total
            shift = 32 + p * _RADIX_BITS
            for i in range(n):
                entry = source[i]
                d = p * _RADIX_SIZE + ((entry >> shift) & (_RADIX_SIZE - 1))
                target[counts[d]] = entry
                counts[d] += 1
            source, target = target, source
        if source != out:
            memcpy(out, source, n * sizeof(uint64_t))
    free(spare)
    free(counts)
    return entries


def holds_line_separator(const uint8_t[::1] data):
    """`report.model._holds_line_separator`: whether UTF-8 `data` holds U+2028 or U+2029
    (E2 80 A8, E2 80 A9), found by `memchr` on their first byte (which also begins “”‘’…—•※℃
    and the other symbols of U+2000-U+2FFF: far rarer in Chinese text than its Han)."""
    cdef Py_ssize_t n = data.shape[0], i = 0
    cdef const uint8_t *start
    cdef const uint8_t *found
    if n < 3:
        return False
    start = &data[0]
    while i < n - 2:
        found = <const uint8_t *>memchr(start + i, 0xE2, n - 2 - i)
        if found == NULL:
            return False
        i = found - start
        if start[i + 1] == 0x80 and (start[i + 2] == 0xA8 or start[i + 2] == 0xA9):
            return True
        i += 1
    return False


def common_affixes(str a not None, str b not None):
    """`convert._common_affixes`: (the length of the common prefix of `a` and `b`, that of
    their common suffix within what the prefix leaves of the shorter), read a character at a
    time from each end (a conversion changes a text near both: a few characters read, where
    the slices of a binary search copied the text a dozen times)."""
    cdef Py_ssize_t na = len(a), nb = len(b), shorter = na if na < nb else nb, head = 0, tail = 0
    cdef int ka = PyUnicode_KIND(a), kb = PyUnicode_KIND(b)
    cdef void *da = PyUnicode_DATA(a)
    cdef void *db = PyUnicode_DATA(b)
    head = _next_difference(ka, da, kb, db, 0, shorter)
    while tail < shorter - head and (
        PyUnicode_READ(ka, da, na - 1 - tail) == PyUnicode_READ(kb, db, nb - 1 - tail)
    ):
        tail += 1
    return head, tail


def pair_spans(str text not None, Py_ssize_t longest):
    """`punctuation._pair_spans`: the spans of the matches of `[(（][^()]{0,longest}[)）]` in
    `text`, as `re.finditer` finds them (leftmost, not overlapping; the content greedy: the
    last closing paren, of either width, within `longest` characters holding no half-width
    paren). `re` tried every character of each candidate's content against a class, forwards
    and then back."""
    cdef Py_ssize_t n = len(text), i = 0, k, p, close
    cdef int kind = PyUnicode_KIND(text)
    cdef void *data = PyUnicode_DATA(text)
    cdef Py_UCS4 c
    spans = []
    while i < n:
        c = PyUnicode_READ(kind, data, i)
        if c == u"(" or c == u"（":
            k = 0  # the content as far as it may run
            while k < longest and i + 1 + k < n:
                c = PyUnicode_READ(kind, data, i + 1 + k)
                if c == u"(" or c == u")":
                    break
                k += 1
            close = -1  # the last closing paren it may end with
            p = i + 1 + k
            while p > i:
                if p < n:
                    c = PyUnicode_READ(kind, data, p)
                    if c == u")" or c == u"）":
                        close = p
                        break
                p -= 1
            if close >= 0:
                spans.append((i, close + 1))
                i = close + 1
                continue
        i += 1
    return spans


cdef extern from *:
    """
    /* `text_hash`: XXH3-64 (xxHash, vendored: curate/_vendor/xxhash) of a text's code points
       as UTF-32LE, read from Python's own storage: 4-byte storage hashed as it is where the
       machine is little-endian, 1- and 2-byte storage widened a block at a time on the stack
       and streamed. No encoded copy of the text is made. */
    #define XXH_INLINE_ALL
    #include "xxhash.h"

    #define CURATE_HASH_BLOCK 1024
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    #define CURATE_LE32(c) __builtin_bswap32(c)
    #define CURATE_UCS4_AS_LE 0
    #else
    #define CURATE_LE32(c) (c)
    #define CURATE_UCS4_AS_LE 1
    #endif

    static void curate_widen(int kind, const void *data, Py_ssize_t start, Py_ssize_t count, uint32_t *out) {
        Py_ssize_t i;
        if (kind == PyUnicode_1BYTE_KIND) {
            const Py_UCS1 *s = (const Py_UCS1 *)data + start;
            for (i = 0; i < count; i++) out[i] = CURATE_LE32((uint32_t)s[i]);
        } else if (kind == PyUnicode_2BYTE_KIND) {
            const Py_UCS2 *s = (const Py_UCS2 *)data + start;
            for (i = 0; i < count; i++) out[i] = CURATE_LE32((uint32_t)s[i]);
        } else {
            const Py_UCS4 *s = (const Py_UCS4 *)data + start;
            for (i = 0; i < count; i++) out[i] = CURATE_LE32((uint32_t)s[i]);
        }
    }

    static uint64_t curate_text_hash(int kind, const void *data, Py_ssize_t start, Py_ssize_t end) {
        uint32_t block[CURATE_HASH_BLOCK];
        Py_ssize_t n = end - start, done;
        XXH3_state_t state;
        if (kind == PyUnicode_4BYTE_KIND && CURATE_UCS4_AS_LE)
            return XXH3_64bits((const Py_UCS4 *)data + start, (size_t)n * 4);
        if (n <= CURATE_HASH_BLOCK) {
            curate_widen(kind, data, start, n, block);
            return XXH3_64bits(block, (size_t)n * 4);
        }
        XXH3_64bits_reset(&state);
        for (done = 0; done < n; done += CURATE_HASH_BLOCK) {
            Py_ssize_t count = n - done < CURATE_HASH_BLOCK ? n - done : CURATE_HASH_BLOCK;
            curate_widen(kind, data, start + done, count, block);
            XXH3_64bits_update(&state, block, (size_t)count * 4);
        }
        return XXH3_64bits_digest(&state);
    }
    """
    uint64_t curate_text_hash(int kind, const void *data, Py_ssize_t start, Py_ssize_t end) nogil


def text_hash(str text not None):
    """`textutil.text_hash`: XXH3-64 of the text's code points as UTF-32LE, as an int."""
    cdef void *data
    cdef int kind = _storage(text, &data)
    return curate_text_hash(kind, data, 0, len(text))


def span_hashes(str text not None, const int64_t[:, ::1] spans not None):
    """`text_hash` of `text[start:end]` for each (start, end) row of `spans` (bounds checked,
    as a slice clamps them: an empty or reversed span hashes as the empty text), without the
    slices."""
    cdef void *data
    cdef int kind = _storage(text, &data)
    cdef Py_ssize_t n = len(text), i, start, end
    if spans.shape[1] != 2:
        raise ValueError(f"spans of shape ({spans.shape[0]}, {spans.shape[1]}), (n, 2) expected")
    hashes = []
    for i in range(spans.shape[0]):
        start = _clamped(spans[i, 0], n)
        end = _clamped(spans[i, 1], n)
        hashes.append(curate_text_hash(kind, data, start, end if end > start else start))
    return hashes


cdef inline Py_ssize_t _clamped(int64_t index, Py_ssize_t n) noexcept nogil:
    """A slice bound as Python reads it: from the end when negative, then into [0, n]."""
    if index < 0:
        index += n
        return 0 if index < 0 else <Py_ssize_t>index
    return n if index > n else <Py_ssize_t>index


def mapped_text(str text not None, const uint32_t[::1] table not None, bint with_codes=False):
    """`textutil.mapped_text`: `table[c]` of each character c of `text`, as a str (and, with
    `with_codes`, as a uint32 array too), in one pass over the text's own storage: no encoded
    copy, no numpy gather, no decoding. `table` covers every code point."""
    if table.shape[0] < 0x110000:
        raise ValueError(f"a table of {table.shape[0]} code points, 0x110000 expected")
    cdef void *data
    cdef int kind = _storage(text, &data)
    cdef Py_ssize_t n = len(text)
    codes = np.empty(n, np.uint32)
    cdef uint32_t[::1] out = codes
    cdef uint32_t bits  # (every value's bits: above 0x10FFFF only if some value may be)
    if kind == PyUnicode_1BYTE_KIND:
        bits = _mapped_run(<const uint8_t *>data, n, &table[0], &out[0])
    elif kind == PyUnicode_2BYTE_KIND:
        bits = _mapped_run(<const uint16_t *>data, n, &table[0], &out[0])
    else:
        bits = _mapped_run(<const uint32_t *>data, n, &table[0], &out[0])
    _check_code_points(bits, codes)
    mapped = PyUnicode_FromKindAndData(4, &out[0], n) if n else ""
    return (mapped, codes) if with_codes else mapped


cdef inline uint32_t _mapped_run(const _Unit *units, Py_ssize_t n, const uint32_t *table, uint32_t *out) noexcept nogil:
    """`mapped_text` over units[:n] (one storage width); returns the values or'd."""
    cdef Py_ssize_t i
    cdef uint32_t bits = 0
    for i in range(n):
        out[i] = table[units[i]]
        bits |= out[i]
    return bits


def plain_keys(
    str text not None, const uint32_t[::1] table not None, const int64_t[::1] bounds not None,
    uint32_t dropped,
):
    """`repeated_lines.plain_key_texts`' pass over the joined texts, without numpy's copies:
    each character c mapped to `table[min(c, 0x10000)]`; the mapped characters below `dropped`
    joined (the keys' text); at each of `bounds` (positions in `text`, non-decreasing), how
    many characters before it were kept, and how many mapped to the table's not-plain code
    (`dropped + 1`). Returns (joined, kept before, not plain before); a ValueError where
    `bounds` decrease or leave the text."""
    if table.shape[0] != 0x10001 or dropped == 0xFFFFFFFF:
        raise ValueError("a table of 0x10001 codes and a dropped code below the not-plain one expected")
    cdef void *data
    cdef int kind = _storage(text, &data)
    cdef Py_ssize_t n = len(text), m = bounds.shape[0], i, b
    for b in range(m):
        if bounds[b] < 0 or bounds[b] > n or (b and bounds[b] < bounds[b - 1]):
            raise ValueError("bounds decrease or leave the text")
    out = np.empty(n, np.uint32)
    before = np.empty(m, np.int64)
    odd = np.empty(m, np.int64)
    cdef uint32_t[::1] kept_codes = out
    cdef int64_t[::1] kept_before = before, not_plain_before = odd
    cdef _PlainCount count
    count.kept = 0
    count.not_plain = 0
    count.bits = 0
    cdef Py_ssize_t at = 0, stop
    for b in range(m + 1):  # the characters up to the next bound, in the loop of their width
        stop = bounds[b] if b < m else n
        if kind == PyUnicode_1BYTE_KIND:
            _plain_run(<const uint8_t *>data, at, stop, &table[0], dropped, &kept_codes[0], &count)
        elif kind == PyUnicode_2BYTE_KIND:
            _plain_run(<const uint16_t *>data, at, stop, &table[0], dropped, &kept_codes[0], &count)
        else:
            _plain_run(<const uint32_t *>data, at, stop, &table[0], dropped, &kept_codes[0], &count)
        at = stop
        if b < m:
            kept_before[b] = count.kept
            not_plain_before[b] = count.not_plain
    _check_code_points(count.bits, out[: count.kept])
    joined = PyUnicode_FromKindAndData(4, &kept_codes[0], count.kept) if count.kept else ""
    return joined, before, odd


cdef int _check_code_points(uint32_t bits, object codes) except -1:
    """A ValueError where a mapped value is no code point (a str made of it would be invalid:
    `PyUnicode_FromKindAndData` does not check); `bits`, all the values or'd, tell most texts
    apart at once."""
    if bits > 0x10FFFF and np.asarray(codes).max(initial=0) > 0x10FFFF:
        raise ValueError("a table maps a character to a value past U+10FFFF")
    return 0


cdef struct _PlainCount:
    Py_ssize_t kept
    Py_ssize_t not_plain
    uint32_t bits  # the kept values or'd (`_check_code_points`)


cdef inline void _plain_run(
    const _Unit *units, Py_ssize_t start, Py_ssize_t stop, const uint32_t *table, uint32_t dropped,
    uint32_t *out, _PlainCount *count,
) noexcept nogil:
    """`plain_keys` over units[start:stop] (one storage width)."""
    cdef Py_ssize_t i, kept = count.kept, not_plain = count.not_plain
    cdef uint32_t c, code, bits = count.bits
    for i in range(start, stop):
        c = units[i]
        if _Unit is uint32_t:
            if c > 0x10000:
                c = 0x10000
        code = table[c]
        if code < dropped:
            out[kept] = code
            bits |= code
            kept += 1
        elif code != dropped:
            not_plain += 1
    count.kept = kept
    count.not_plain = not_plain
    count.bits = bits


# --- The garbage detector's pre-check (garbage._may_reach) ---


cdef struct _SymbolOf:
    # `BigramModel.ids_of_codes`: lookup[code] below `inside`, else `unk_han` from
    # `unk_han_first` to `unk_han_last`, else `other`.
    const uint32_t *lookup
    uint32_t inside
    uint32_t unk_han_first
    uint32_t unk_han_last
    uint32_t unk_han
    uint32_t other


cdef int _text_may_reach(
    const uint32_t *codes,
    Py_ssize_t length,
    _SymbolOf symbol_of,
    const uint8_t *han_symbols,
    uint32_t symbols,
    uint32_t space,
    const float *backoff_bits,
    const float *unigram_bits,
    uint32_t bos,
    Py_ssize_t width,
    double min_kept,
    double min_han,
    double floor,
    _Window *window,
) noexcept nogil:
    """`garbage_may_reach` for one text (`window`: room for `width`): 1 if a window passes, 0
    if none does, -1 at a symbol of `symbols` or past it."""
    cdef Py_ssize_t i
    cdef bint is_space, after_space = False, skip
    cdef uint32_t code, symbol, prev = bos
    cdef float bound
    _window_empty(window)
    for i in range(length):
        code = codes[i]
        if code < symbol_of.inside:
            symbol = symbol_of.lookup[code]
        elif symbol_of.unk_han_first <= code <= symbol_of.unk_han_last:
            symbol = symbol_of.unk_han
        else:
            symbol = symbol_of.other
        if symbol >= symbols:
            return -1
        is_space = symbol == space
        skip = is_space or after_space  # (never after a line break in another text)
        after_space = is_space
        bound = backoff_bits[prev] + unigram_bits[symbol]  # (in float32, as the surprise's)
        prev = symbol
        _window_push(window, 0.0 if skip else <double>bound, not skip, han_symbols[symbol] != 0)
        if (
            i >= width - 1
            and <double>window.kept_count >= min_kept
            and <double>window.han_count >= min_han
            and window.total >= <double>window.kept_count * floor
        ):
            return 1
    return 0


def garbage_may_reach(
    const uint32_t[::1] codes,
    const int64_t[::1] starts,
    const uint32_t[::1] lookup,
    uint32_t inside,
    uint32_t unk_han_first,
    uint32_t unk_han_last,
    uint32_t unk_han,
    uint32_t other,
    const uint8_t[::1] han_symbols,
    uint32_t space,
    const float[::1] backoff_bits,
    const float[::1] unigram_bits,
    uint32_t bos,
    Py_ssize_t width,
    double min_kept,
    double min_han,
    double floor,
):
    """`garbage._may_reach_numpy`: per text (text t is [starts[t], starts[t + 1]) of `codes`,
    `starts` ascending from 0 to the length; each code point's symbol as
    `BigramModel.ids_of_codes` gives it), whether a window of `width` characters inside
    it, made as `garbage_windows` makes them, is usable and sums to at least its count of
    kept characters times `floor`, each character's value being float32(backoff_bits of the
    one before it, or of `bos` at its text's start, + its unigram_bits) in place of its
    surprise. A text at a time, its window's running sum started afresh (exact where
    `garbage_windows`' is: the same kind of values)."""
    cdef Py_ssize_t n = codes.shape[0], texts = starts.shape[0] - 1, t
    if width < 1:
        raise ValueError("garbage_may_reach: width below 1")
    if texts < 0 or starts[0] != 0 or starts[texts] != n:
        raise ValueError("garbage_may_reach: starts do not cover the ids")
    # Symbols below all three tables, and <bos> below the backoffs: no check of the previous.
    cdef Py_ssize_t symbols = min(han_symbols.shape[0], unigram_bits.shape[0], backoff_bits.shape[0])
    if bos >= backoff_bits.shape[0]:
        raise ValueError("garbage_may_reach: <bos> past the backoff bits")
    if inside > lookup.shape[0]:
        raise ValueError("garbage_may_reach: the lookup is shorter than its inside")
    cdef _SymbolOf symbol_of
    symbol_of.lookup = &lookup[0] if lookup.shape[0] else NULL
    symbol_of.inside = inside
    symbol_of.unk_han_first = unk_han_first
    symbol_of.unk_han_last = unk_han_last
    symbol_of.unk_han = unk_han
    symbol_of.other = other
    out = np.zeros(texts, dtype=np.uint8)
    if n == 0:
        return out
    cdef uint8_t[::1] out_view = out
    cdef _Window window
    _window_open(&window, width)
    cdef int found = 0
    cdef Py_ssize_t length
    try:
        for t in range(texts):
            length = starts[t + 1] - starts[t]
            if length < 0 or starts[t + 1] > n:
                raise ValueError("garbage_may_reach: starts not ascending")
            if length < width:  # (no window)
                continue
            found = _text_may_reach(
                &codes[starts[t]], length, symbol_of, &han_symbols[0], <uint32_t>min(symbols, 0xFFFFFFFF),
                space, &backoff_bits[0], &unigram_bits[0], bos, width, min_kept, min_han, floor, &window,
            )
            if found < 0:
                raise ValueError("garbage_may_reach: a symbol past the tables")
            out_view[t] = found
    finally:
        _window_close(&window)
    return out
