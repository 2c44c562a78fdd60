"""The compiled-pattern cache: the rule packs' patterns built from it are the ones `regex`
compiles, and a cache that is off, damaged or stale changes nothing but the time taken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import patterncache
from curate.rules import load_rules

from .conftest import ROOT

RULES = load_rules([ROOT / "rules"])
PATTERNS = [rule.pattern for pack in RULES.packs for rule in pack.rules]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path))
    return tmp_path / "patterns"


def from_cache(pattern: str, flags: int, monkeypatch: pytest.MonkeyPatch) -> regex.Pattern:
    """The pattern built from its cache entry, `regex.compile` unavailable meanwhile."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled, not read from the cache")

    with monkeypatch.context() as patched:
        patched.setattr(patterncache.regex, "compile", refuse)
        return patterncache.compile(pattern, flags)


def matches(pattern: regex.Pattern, text: str) -> list[tuple[tuple[int, int], dict[str, Any]]]:
    return [(m.span(), m.groupdict()) for m in pattern.finditer(text)]


def test_every_rule_pattern_from_the_cache_is_the_compiled_one(cache, monkeypatch):
    assert len(PATTERNS) > 50
    for original in PATTERNS:
        patterncache.compile(original.pattern, original.flags)  # (stores the entry)
        built = from_cache(original.pattern, original.flags, monkeypatch)
        assert (built.pattern, built.flags, built.groups, built.groupindex) == (
            original.pattern, original.flags, original.groups, original.groupindex
        )
    assert len(list(cache.glob("*.json"))) == len(set(PATTERNS))
    for pack in RULES.packs:
        for rule in pack.rules:
            built = from_cache(rule.pattern.pattern, rule.pattern.flags, monkeypatch)
            for example in [*rule.must_match, *rule.must_not_match]:
                assert matches(built, example.text) == matches(rule.pattern, example.text), rule.id


# Characters the rules are written in: Han, credit words, punctuation, Latin, digits, space.
ALPHABET = st.sampled_from(
    list("记者编辑责任来源作者摄影图文本报网社讯电话张三李四王的了在是（）()【】：:/／|，。 　\nabcAB12_")
)


@settings(max_examples=60, deadline=None)
@given(text=st.text(ALPHABET, max_size=60), which=st.integers(0, len(PATTERNS) - 1))
def test_a_pattern_from_the_cache_matches_as_the_compiled_one(text, which, tmp_path_factory):
    original = PATTERNS[which]
    folder = tmp_path_factory.mktemp("patterns")
    with pytest.MonkeyPatch.context() as patched:
        patched.setenv("CURATE_CACHE_DIR", str(folder))
        patterncache.compile(original.pattern, original.flags)
        built = from_cache(original.pattern, original.flags, patched)
    assert matches(built, text) == matches(original, text)


def test_a_damaged_or_stale_entry_is_compiled_anew(cache, monkeypatch):
    pattern, flags = r"(?P<value>\p{Han}{2,4})记者", regex.MULTILINE
    expected = [((0, 4), {"value": "张三"})]
    patterncache.compile(pattern, flags)
    (entry,) = cache.glob("*.json")
    entry_data = json.loads(entry.read_text(encoding="utf-8"))
    fields = entry_data["fields"]
    damaged_entries = [
        "{not json",
        json.dumps({**entry_data, "fields": {**fields, "code": "AAAA"}}),  # (its digest now wrong)
        json.dumps({"sha256": patterncache._digest({**fields, "pattern": "other"}),
                    "fields": {**fields, "pattern": "other"}}),  # (another pattern's)
    ]
    for damaged in damaged_entries:
        entry.write_text(damaged, encoding="utf-8")
        built = patterncache.compile(pattern, flags)
        assert matches(built, "张三记者") == expected
    # The last compile stored a good entry again.
    assert matches(from_cache(pattern, flags, monkeypatch), "张三记者") == expected


def test_the_cache_switched_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_CACHE_DIR", "off")
    monkeypatch.chdir(tmp_path)
    assert patterncache.compile("记者", 0).search("本报记者") is not None
    assert not any(tmp_path.rglob("*.json"))
