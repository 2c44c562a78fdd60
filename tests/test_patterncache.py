"""The compiled-pattern cache: the rule packs' patterns built from it are the ones `regex`
compiles, and a cache that is off, damaged or stale changes nothing but the time taken."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import patterncache, tablecache
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


# The standard library's `re` patterns (`compile_re`): the stages' own, built from their entries.


def from_re_cache(pattern: str, flags: int, monkeypatch: pytest.MonkeyPatch) -> re.Pattern[str]:
    """The pattern built from its cache entry, `re`'s compiler unavailable meanwhile."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled, not read from the cache")

    with monkeypatch.context() as patched:
        patched.setattr(re._compiler, "compile", refuse)  # type: ignore[attr-defined]
        patched.setattr(re, "_cache", {})  # type: ignore[attr-defined]
        return patterncache.compile_re(pattern, flags)


def stage_patterns() -> list[re.Pattern[str]]:
    """The `re` patterns the stages keep, module-level and made by the stages' settings."""
    from curate.stages import invisible, punctuation, reflow, repair, repeated_lines
    from curate.stages.base import RunContext

    found = [value for module in (punctuation, reflow) for value in vars(module).values()
             if isinstance(value, re.Pattern)]
    context = RunContext(config=None)
    stage = invisible.Invisible(invisible.Invisible.Settings(), context)
    found += [stage._chars, stage._any_char, stage._some_char]
    fixer = repair.Repair(repair.Repair.Settings(), context)
    found += [fixer._dropped, fixer._dropped_char, fixer._deleted, *repeated_lines._plain_characters()]
    return [p for p in found if p is not None]


def test_the_stages_re_patterns_from_the_cache_are_the_compiled_ones(cache, monkeypatch):
    patterns = stage_patterns()
    assert len(patterns) > 15
    shutil.rmtree(cache)  # (what making the stages stored)
    for original in patterns:
        patterncache.compile_re(original.pattern, original.flags)  # (stores the entry)
        built = from_re_cache(original.pattern, original.flags, monkeypatch)
        assert built == original  # (patterns compare their compiled code)
        assert built is not original
    assert len(list(cache.glob("*.json"))) == len({(p.pattern, p.flags) for p in patterns})


def test_a_re_pattern_from_the_cache_keeps_its_groups_and_matches(cache, monkeypatch):
    pattern = "(?P<crlf>\r\n)|(?P<cr>\r)|(?P<han>[\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003134f]+)|[\ud800-\udfff]"
    text = "a\r\n记者\rb\U00020001\ud800"
    patterncache.compile_re(pattern, re.M)
    built = from_re_cache(pattern, re.M, monkeypatch)
    original = re.compile(pattern, re.M)
    assert built.groupindex == original.groupindex == {"crlf": 1, "cr": 2, "han": 3}
    found = [(m.span(), m.lastgroup) for m in built.finditer(text)]
    assert found == [(m.span(), m.lastgroup) for m in original.finditer(text)]
    assert found == [((1, 3), "crlf"), ((3, 5), "han"), ((5, 6), "cr"), ((7, 8), "han"), ((8, 9), None)]


def test_a_damaged_or_stale_re_entry_is_compiled_anew(cache, monkeypatch):
    pattern = "[\u4e00-\u9fff]{2}记者"
    patterncache.compile_re(pattern)
    (entry,) = cache.glob("*.json")
    entry_data = json.loads(entry.read_text(encoding="utf-8"))
    fields = entry_data["fields"]
    damaged_entries = [
        "{not json",
        json.dumps({**entry_data, "fields": {**fields, "code": [0]}}),  # (its digest now wrong)
        json.dumps({"sha256": patterncache._digest({**fields, "pattern": "other"}),
                    "fields": {**fields, "pattern": "other"}}),  # (another pattern's)
    ]
    for damaged in damaged_entries:
        entry.write_text(damaged, encoding="utf-8")
        assert patterncache.compile_re(pattern) == re.compile(pattern)
    assert from_re_cache(pattern, 0, monkeypatch) == re.compile(pattern)  # (stored again)


def test_no_re_entry_is_stored_unless_it_builds_the_compiled_pattern(cache, monkeypatch):
    real = patterncache._sre_data
    monkeypatch.setattr(patterncache, "_sre_data", lambda p, f: real("[0-9]", f))
    assert patterncache.compile_re("[\u4e00-\u9fff]").pattern == "[\u4e00-\u9fff]"

    def fails(pattern: str, flags: int) -> None:
        raise AttributeError("another Python's re")

    monkeypatch.setattr(patterncache, "_sre_data", fails)
    assert patterncache.compile_re("[\u3400-\u4dbf]").search("a㐀") is not None
    assert not list(cache.glob("*.json"))


def test_the_cache_switched_off_compiles_re_patterns_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_CACHE_DIR", "off")
    monkeypatch.chdir(tmp_path)
    assert patterncache.compile_re("[\u4e00-\u9fff]+").search("本报记者") is not None
    assert not any(tmp_path.rglob("*.json"))


def _re_entry_path(cache: Path, pattern: str, flags: int) -> Path:
    return cache / f"{tablecache.key(patterncache._RE_FORMAT, [str(int(flags)), pattern])}.json"


def test_a_re_entry_the_core_refuses_is_compiled_anew(cache, monkeypatch):
    pattern = "[\u4e00-\u9fff]+"
    patterncache.compile_re(pattern)
    entry = _re_entry_path(cache, pattern, 0)
    fields = {**json.loads(entry.read_text(encoding="utf-8"))["fields"], "code": ["not a number"]}
    entry.write_text(json.dumps({"sha256": patterncache._digest(fields), "fields": fields}), encoding="utf-8")
    assert patterncache.compile_re(pattern) == re.compile(pattern)
    assert from_re_cache(pattern, 0, monkeypatch) == re.compile(pattern)  # (stored again)


def test_a_re_entry_is_read_only_for_the_flags_it_was_stored_with(cache, monkeypatch):
    pattern = "[a-z\u4e00-\u9fff]+"
    patterncache.compile_re(pattern, 0)
    # The entry for no flags, where the entry for IGNORECASE would be (as a key that left the
    # flags out would find it).
    other = _re_entry_path(cache, pattern, re.IGNORECASE)
    other.write_text(_re_entry_path(cache, pattern, 0).read_text(encoding="utf-8"), encoding="utf-8")
    built = patterncache.compile_re(pattern, re.IGNORECASE)
    assert built == re.compile(pattern, re.IGNORECASE) != re.compile(pattern)
    assert built.search("ABC记者").group() == "ABC记者"
    assert from_re_cache(pattern, re.IGNORECASE, monkeypatch).search("ABC").group() == "ABC"


def test_no_re_entry_is_stored_when_the_groups_would_differ(cache, monkeypatch):
    real = patterncache._sre_data

    def swapped(pattern: str, flags: int) -> tuple[Any, ...]:
        data = real(pattern, flags)
        return (*data[:4], {"b": 1, "a": 2}, (None, "b", "a"))

    monkeypatch.setattr(patterncache, "_sre_data", swapped)
    assert patterncache.compile_re("(?P<a>[\u4e00-\u9fff])(?P<b>x)").groupindex == {"a": 1, "b": 2}
    assert not list(cache.glob("*.json"))


def test_re_patterns_with_debug_output_are_compiled_not_stored(cache, capsys):
    assert patterncache.compile_re("[\u4e00-\u9fff]", re.DEBUG).search("记") is not None
    assert "IN" in capsys.readouterr().out  # (re's own dump of the pattern)
    assert not cache.exists() or not list(cache.glob("*.json"))


def test_an_unwritable_cache_compiles_each_re_pattern_once(tmp_path, monkeypatch):
    (tmp_path / "a file").write_text("", encoding="utf-8")
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "a file"))  # (no folder can be made in it)

    prepared: list[str] = []  # (entries prepared for nowhere: a second compiling each)
    monkeypatch.setattr(patterncache, "_sre_data", lambda pattern, flags: prepared.append(pattern))
    assert patterncache.compile_re("[\u4e00-\u9fff]+").search("本报记者") is not None
    assert prepared == []


def test_a_regex_pattern_with_a_lone_surrogate_is_cached_too(cache, monkeypatch):
    pattern = "记者[\ud800-\udbff]?"
    assert patterncache.compile(pattern, 0).search("本报记者") is not None
    assert len(list(cache.glob("*.json"))) == 1
    assert from_cache(pattern, 0, monkeypatch).search("记者\ud800").group() == "记者\ud800"
