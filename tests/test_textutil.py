"""`curate.textutil`: a text's code points and back; where a text first holds a character of a
class (`CharClass`), compiled and not, against `re`."""

from __future__ import annotations

import pickle
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import textutil
from curate.stages import punctuation as punctuation_module
from curate.stages import repair as repair_module
from curate.stages.base import RunContext
from curate.stages.invisible import Invisible
from curate.stages.repair import Repair
from curate.textutil import HAN_RANGES, CharClass, PairStarts, code_points, text_of_codes

# Any code point, lone surrogates included (scraped JSON has them, and `code_points` keeps them).
ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=()))


@given(ANY_TEXT)
def test_text_of_codes_is_the_inverse_of_code_points(text: str) -> None:
    codes = code_points(text)
    assert codes.dtype == np.uint32 and len(codes) == len(text)
    assert text_of_codes(codes) == text
    assert text_of_codes(codes.astype(np.int64)) == text  # whatever the integer type
    assert text_of_codes(codes[::-1]) == text[::-1]  # a view that is not contiguous


def test_text_of_codes_of_nothing_and_of_a_lone_surrogate() -> None:
    assert text_of_codes(np.empty(0, np.uint32)) == ""
    assert text_of_codes(np.array([0x4E2D, 0xD800, 0x6587])) == "中\ud800文"


# --------------------------------------------------------------------------- CharClass
# The classes the stages scan for, and one made here; each with its members and others near them.
def _char_classes() -> dict[str, CharClass]:
    context = RunContext(config=None)
    fixer = Repair(Repair.Settings(), context)
    stage = Invisible(Invisible.Settings(), context)
    assert fixer._dropped_chars is not None and stage._some_chars is not None
    return {
        "latin letters": repair_module.LATIN_LETTERS,
        "stray start": repair_module.STRAY_START,
        "gbk suspect": repair_module._gbk_suspect_chars(),
        "dropped": fixer._dropped_chars,
        "invisible": stage._some_chars,
        "punctuation marks": punctuation_module.CANDIDATE_START,
        "ascii letters": punctuation_module.ASCII_LETTERS,
        "marks": punctuation_module.MARK_START,
        "han or ideographic space": CharClass(re.compile(f"[{HAN_RANGES}\u3000]")),
    }


CLASSES = _char_classes()
# Members and non-members of each: ASCII, Latin-1 (letters, ×, NBSP, C1 controls), Han of both
# scripts, zero-width and bidi controls, the first and last BMP private-use characters, a lone
# surrogate, and beyond the BMP: private use (planes 15 and 16), a Han extension, an emoji.
ALPHABET = [
    *"a \n\x00\x7f中國，锟斤拷鍓嶅",
    *",:;?!()（",
    *"\u0080\u0085\u009f\u00a0\u00ad\u00b7\u00c3\u00d7\u00e9\u00ff\u0100",
    *"\u200b\u200d\u200e\u202a\u3000\ue000\uf8ff\ufeff\uffff\ud800",
    "\U00010000", "\U000f0000", "\U0010fffd", "\U00020000", "\U0001f600",
]


def _first_both_ways(chars: CharClass, text: str, start: int) -> tuple[int, int]:
    """(with the compiled scan, with the pattern alone) of `chars.first(text, start)`."""
    compiled = chars.first(text, start)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(textutil, "_kernel", lambda name: None)
        alone = chars.first(text, start)
    return compiled, alone


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from(ALPHABET), max_size=40), st.integers(-2, 42), st.sampled_from(sorted(CLASSES)))
def test_char_class_finds_where_its_pattern_finds(text: str, start: int, name: str) -> None:
    chars = CLASSES[name]
    found = chars.pattern.search(text, start)
    want = -1 if found is None else found.start()
    assert _first_both_ways(chars, text, start) == (want, want)
    assert chars.found_in(text) == (chars.pattern.search(text) is not None)


def _count_both_ways(chars: CharClass, text: str) -> tuple[int, int]:
    """(with the compiled loop, with the pattern alone) of `chars.count(text)`."""
    compiled = chars.count(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(textutil, "_kernel", lambda name: None)
        alone = chars.count(text)
    return compiled, alone


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from(ALPHABET), max_size=40), st.sampled_from(sorted(CLASSES)))
def test_char_class_counts_what_its_pattern_finds(text: str, name: str) -> None:
    chars = CLASSES[name]
    want = len(chars.pattern.findall(text))
    assert _count_both_ways(chars, text) == (want, want)


@pytest.mark.parametrize(
    ("text", "name", "want"),
    [
        ("中\U00020000文\U0001f600中", "han or ideographic space", 4),  # one beyond the BMP is one
        ("\U00020000" * 3, "han or ideographic space", 3),  # every one
        ("中\U0001f600\u200b\U000f0000", "invisible", 2),  # a private-use one beyond the BMP is one
        ("x" * 5000 + "\u00e9", "ascii letters", 5000),  # a text of one byte a character
        ("中" * 5000 + "ab", "ascii letters", 2),  # two
        ("\U00020000" * 3 + "a\u00e9", "ascii letters", 1),  # four
        ("", "ascii letters", 0),
    ],
)
def test_char_class_counts_in_texts_of_every_width(text: str, name: str, want: int) -> None:
    assert _count_both_ways(CLASSES[name], text) == (want, want)


# Patterns searched from the first character of a class their matches start with, and the
# class: a lookbehind in them looks at the text before that character.
SEARCHED_FROM = [
    (repair_module.STRAY, "stray start"),
    (punctuation_module.CANDIDATE, "punctuation marks"),
]


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from(ALPHABET), max_size=40), st.sampled_from(range(len(SEARCHED_FROM))))
def test_char_class_search_finds_what_the_pattern_finds(text: str, which: int) -> None:
    pattern, name = SEARCHED_FROM[which]
    want = pattern.search(text)
    compiled = CLASSES[name].search(pattern, text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(textutil, "_kernel", lambda name: None)
        alone = CLASSES[name].search(pattern, text)
    for got in (compiled, alone):
        assert (got and got.span()) == (want and want.span())


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([*ALPHABET, "?", "!", ";", "??!"]), max_size=40).map("".join))
def test_punctuation_marks_are_the_pattern_s_matches(text: str) -> None:
    # `_mark_matches` (from each mark `MARK_START` finds) is `MARKS.finditer`, with and without
    # the compiled scan.
    want = [m.span() for m in punctuation_module.MARKS.finditer(text)]
    assert [m.span() for m in punctuation_module._mark_matches(text)] == want
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(textutil, "_kernel", lambda name: None)
        assert [m.span() for m in punctuation_module._mark_matches(text)] == want


@pytest.mark.parametrize(
    ("text", "name", "want"),
    [
        ("中\U0001f600文\u200b", "invisible", 3),  # past a character beyond the BMP that is not one
        ("中\U000f0000\u200b", "invisible", 1),  # the first is beyond the BMP
        ("\U0001f600中文", "invisible", -1),
        ("x" * 5000 + "\u00e9", "latin letters", 5000),  # a text of one byte a character
        ("中" * 5000 + "\u00e9", "latin letters", 5000),  # two
        ("\U00020000" * 3 + "\u00e9", "latin letters", 3),  # four
        ("", "stray start", -1),
    ],
)
def test_char_class_in_texts_of_every_width(text: str, name: str, want: int) -> None:
    assert _first_both_ways(CLASSES[name], text, 0) == (want, want)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_char_class_table_is_its_pattern_over_the_bmp(name: str) -> None:
    chars = CLASSES[name]
    table = chars.table()
    members = [c for c in range(0x10000) if chars.pattern.fullmatch(chr(c))]
    assert table.dtype == np.uint8 and table.shape == (0x10000,)
    assert np.flatnonzero(table).tolist() == members
    assert members  # (every class here has members in the BMP)


def test_char_class_pickles_without_its_table_and_works_after() -> None:
    chars = CLASSES["invisible"]
    chars.table()
    chars.first("中文")  # (its scan's table made too)
    copy = pickle.loads(pickle.dumps(chars))
    assert copy._table is None and copy._scanned is None and copy.pattern == chars.pattern
    assert copy.first("中文\u200b") == 2 and copy.table().tolist() == chars.table().tolist()


def test_char_class_of_a_str_subclass_is_searched_by_the_pattern() -> None:
    class Text(str):
        pass

    assert CLASSES["latin letters"].first(Text("ab\u00e9")) == 2


def test_char_class_refuses_a_pattern_of_more_than_one_character() -> None:
    with pytest.raises(ValueError, match="more than one character"):
        CharClass(re.compile("ab|[\u4e00-\u4e05]")).table()


def test_char_class_scans_compiled_here() -> None:
    # Built by `make setup` (the extension is optional at install; CI fails a skip in
    # test_kernels.py): the figures in the README are of the compiled scan.
    if textutil._kernel("first_member") is None:
        pytest.skip("curate._kernels was not built")
    assert textutil._kernel("first_member")("ab\u00e9", repair_module.LATIN_LETTERS.table().tobytes(), 0) == 2


# --------------------------------------------------------------------------- PairStarts
# Phrases of two and more characters: one beginning beyond the BMP, one ending there, one of
# Latin-1 letters (a text of one byte a character), and the Traditional-to-Simplified ones.
PHRASES = ["中国", "中國人", "國家", "a\U00020000", "\U00020000中", "ab", "網站", "é\u00e0"]
PHRASE_RE = re.compile("|".join(map(re.escape, sorted(PHRASES, key=len, reverse=True))))
PHRASE_ALPHABET = sorted({*"".join(PHRASES), "文", "人", " ", "\n", "x", "\U0001f600", "\ud800"})


def _search_both_ways(starts: PairStarts, pattern: re.Pattern[str], text: str) -> tuple[Any, Any]:
    """The spans of `starts.search(pattern, text)` with the compiled scan and without it."""
    compiled = starts.search(pattern, text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(textutil, "_kernel", lambda name: None)
        alone = starts.search(pattern, text)
    return (compiled and compiled.span()), (alone and alone.span())


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(PHRASE_ALPHABET), max_size=30))
def test_pair_starts_search_finds_what_the_pattern_finds(text: str) -> None:
    starts = PairStarts(phrase[:2] for phrase in PHRASES)
    want = PHRASE_RE.search(text)
    assert _search_both_ways(starts, PHRASE_RE, text) == ((want and want.span()),) * 2


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_pair_starts_of_the_traditional_phrases(data: st.DataObject) -> None:
    from curate import t2s

    group = t2s._converter("t2s").groups[0]
    assert group.phrase_re is not None and group.phrase_starts is not None
    keys = sorted(k for _, _, mapping in group.phrase_dicts for k in mapping)
    pieces = data.draw(st.lists(st.sampled_from([*keys, *"中國的是，。a \n"]), max_size=12))
    text = "".join(pieces)
    want = group.phrase_re.search(text)
    assert _search_both_ways(group.phrase_starts, group.phrase_re, text) == ((want and want.span()),) * 2


def test_pair_starts_refuses_what_is_not_a_pair_and_pickles_without_its_tables() -> None:
    with pytest.raises(ValueError, match="two characters"):
        PairStarts(["中国", "中"])
    starts = PairStarts(["中国"])
    starts.tables()
    copy = pickle.loads(pickle.dumps(starts))
    assert copy._tables is None and copy.pairs == ["中国"]
    assert copy.search(re.compile("中国"), "在中国") is not None


def test_han_script_ranges_are_every_character_regex_reads_as_han():
    """`HAN_SCRIPT_RANGES` against `regex`'s \\p{Han} over every code point: a newer `regex`
    (a newer Unicode) that adds Han characters fails here until the ranges follow."""
    import regex

    codes = np.arange(0x110000, dtype=np.uint32)
    codes = codes[(codes < 0xD800) | (codes > 0xDFFF)]
    every = codes.astype("<u4").tobytes().decode("utf-32-le")
    found = [(ord(every[m.start()]), ord(every[m.end() - 1])) for m in regex.finditer(r"\p{Han}+", every)]
    assert tuple(found) == textutil.HAN_SCRIPT_RANGES
