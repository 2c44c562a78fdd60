"""The spam lexicon in rules/lexicons: its examples must hold, and a broken file is a clear error."""

from __future__ import annotations

import pytest

from curate.detectors import DetectorContext, LexiconError, SpamLexicon, default_lexicon_path, spam
from curate.document import Document

LEXICON = SpamLexicon.load(default_lexicon_path())
CTX = DetectorContext(lexicon=LEXICON)


def test_lexicon_has_examples_of_both_kinds():
    assert len(LEXICON.spam_examples) >= 3 and len(LEXICON.clean_examples) >= 3


@pytest.mark.parametrize("example", LEXICON.spam_examples)
def test_spam_example_is_flagged(example):
    assert spam.detect(Document.new("x", example), CTX), example


@pytest.mark.parametrize("example", LEXICON.clean_examples)
def test_clean_example_is_not_flagged(example):
    assert spam.detect(Document.new("x", example), CTX) == [], example


def test_malformed_lexicon_names_the_file(tmp_path):
    bad = tmp_path / "spam.toml"
    bad.write_text("[strong]\nterms = 'not a list'\n", encoding="utf-8")
    with pytest.raises(LexiconError, match=r"spam\.toml: \[strong\] terms should be a list"):
        SpamLexicon.load(bad)
    bad.write_text("[strong\n", encoding="utf-8")
    with pytest.raises(LexiconError, match="spam.toml: cannot read"):
        SpamLexicon.load(bad)
