"""`curate.textutil`: a text's code points and back."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from curate.textutil import code_points, text_of_codes

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
