"""Properties of the whole normalisation (repair, invisible, convert, punctuation, reflow):
identity on clean Simplified Chinese, idempotence on any text, and nothing lost."""

from __future__ import annotations

from functools import cache

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.test_normalise_support import normalise, run


@cache
def _common_characters() -> list[str]:
    """GB2312 level 1: the 3,755 most common Simplified characters."""
    chars = []
    for lead in range(0xB0, 0xD8):
        for trail in range(0xA1, 0xFF):
            try:
                chars.append(bytes((lead, trail)).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return chars


common = st.sampled_from(_common_characters())
words = st.text(alphabet=common, min_size=1, max_size=12)
clause = st.builds(
    lambda w, mark: w + mark, words, st.sampled_from(["", "，", "、", "；", "：", "——"])
)
sentence = st.builds(
    lambda clauses, end, quote: (f"“{''.join(clauses)}{end}”" if quote == "“”"
                                 else f"（{''.join(clauses)}）{end}" if quote == "（）"
                                 else f"{''.join(clauses)}{end}"),
    st.lists(clause, min_size=1, max_size=4),
    st.sampled_from(["。", "！", "？", "……"]),
    st.sampled_from(["", "", "“”", "（）"]),
)
paragraph = st.builds("".join, st.lists(sentence, min_size=1, max_size=4))
clean_simplified = st.builds(
    lambda paras, sep: sep.join(paras), st.lists(paragraph, min_size=1, max_size=5),
    st.sampled_from(["\n", "\n\n"]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clean_simplified)
def test_clean_simplified_chinese_is_left_exactly_as_it_is(text):
    doc = run(text)
    assert doc.edits == []
    assert doc.text == text


# Any text, and text built from the characters the stages care about, so the interesting
# cases (mojibake pieces, controls, half-width marks, breaks) actually meet each other.
TRICKY = list(
    "中国人民团结進步這個，。、；：？！“”（）《》,:;?!() \t\n\n\r\u3000\u00a0\u200b\u200d\ufeff"
    "\x00\x07\x85\ue40c\ue600æ°\x91Ã©¸ü¶à¾«Ð£姘戞棌鍥㈢粨锟斤拷\ufffd12.3abcXhttp://@"
)
tricky_text = st.text(alphabet=st.sampled_from(TRICKY), max_size=80)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=80), tricky_text))
@example("æ°\x91æ\x97\x8få\x9b¢ç»\x93\u200b")
@example("㐀(）:")  # a mark converted beside a pair makes it Chinese context (found by this test)
@example("中" + "(" * 17 + "中" + ")" * 17)  # nested deeper than the pair passes used to go
@example("中" + "(a）" * 16 + "(a)中")  # a chain of pairs, each waiting for the next
@example("要深化内涵、丰富形\n\n式、创新方法，提出更多有用管用的办法举措；要把计划有形有感有效开展起来。")
def test_normalising_twice_equals_normalising_once(text):
    once = normalise(text)
    assert normalise(once) == once
