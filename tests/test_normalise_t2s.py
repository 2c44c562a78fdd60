"""curate.t2s gives exactly opencc-python-reimplemented's output, and detects Traditional text."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import opencc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import t2s
from tests.test_normalise_support import SEEDS

SEPARATORS = ["", "", "", "，", "。", " ", "\n", "、", "“", "”", "（", "）", "-", "…", "　"]


def _dictionary_entries(config: str) -> list[str]:
    """Every key (and first value) of every dictionary opencc uses for `config`."""
    reference = opencc.OpenCC(config)
    entries = []
    for group in reference._dict_chain_data:
        for _, _, mapping in group:
            for key, value in mapping.items():
                entries.append(key)
                entries.append(value.split(" ")[0])
    return entries


def _generated_sample(config: str, seed: int = 7) -> str:
    """All dictionary entries, shuffled and glued together in runs, so phrases overlap and meet
    each other and separators the way they do in real text."""
    rng = random.Random(seed)
    entries = _dictionary_entries(config)
    rng.shuffle(entries)
    parts = []
    for entry in entries:
        parts.append(entry)
        parts.append(rng.choice(SEPARATORS))
    return "".join(parts)


def _real_sample() -> str:
    """The five sample files, as they are and written in Traditional (Taiwan, Hong Kong)."""
    simplified = "".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt")))
    return "\n".join(
        [simplified] + [opencc.OpenCC(c).convert(simplified) for c in ("s2t", "s2tw", "s2hk")]
    )


@pytest.fixture(scope="module")
def real_sample() -> str:
    return _real_sample()


@pytest.mark.parametrize("config", t2s.CONFIGS)
def test_fast_converter_equals_opencc_on_real_text(config, real_sample):
    assert len(real_sample) > 60_000
    assert t2s.convert(real_sample, config) == opencc.OpenCC(config).convert(real_sample)


@pytest.mark.parametrize("config", t2s.CONFIGS)
def test_fast_converter_equals_opencc_on_every_dictionary_entry(config):
    sample = _generated_sample(config)
    assert t2s.convert(sample, config) == opencc.OpenCC(config).convert(sample)


PHRASE_CHARS = sorted({c for key in _dictionary_entries("tw2s") if len(key) > 1 for c in key})


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(PHRASE_CHARS + ["，", " ", "a", "-"]), max_size=40))
def test_fast_converter_equals_opencc_on_phrase_soup(text):
    # Strings made of phrase characters stress the longest-match-first rule.
    for config in t2s.CONFIGS:
        assert t2s.convert(text, config) == opencc.OpenCC(config).convert(text)


def test_unknown_configuration_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown conversion 's2t'"):
        t2s.convert("abc", "s2t")


def test_detector_separates_scripts():
    assert t2s.traditional_score("民族團結進步是西固區最悠久的歷史傳承") == 1.0
    assert t2s.traditional_score("民族团结进步是西固区最悠久的历史传承") == 0.0
    # Characters both scripts use (著, 乾, 台, 后, 里) are evidence for neither.
    evidence = t2s.script_evidence("著名的乾隆在台上，后面是里面")
    assert evidence.traditional == 0 and evidence.simplified == 0
    assert t2s.script_evidence("").score == 0.0


def test_importing_t2s_is_free():
    code = "import sys, curate.t2s; print('opencc' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent, check=True).stdout.split()
    assert out == ["False", "False"]


@pytest.mark.corpora
def test_fast_converter_equals_opencc_on_taiwan_news():
    folder = Path(__file__).parent.parent.parent / "shared" / "corpora" / "TaiwanStat-Taiwan-news-crawlers"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(folder.rglob("*.json")))
    text = text[:250_000]  # the reference converter is slow (~0.3 M chars/s)
    for config in t2s.CONFIGS:
        assert t2s.convert(text, config) == opencc.OpenCC(config).convert(text)
