"""An inline rule's top-level alternatives searched one by one (`matches_apart`): where the rules
engine splits a pattern, where it refuses to, and the same matches as the pattern's own; and a
pattern (or alternative) that starts lines matched at 0 rather than searched (`starts_lines`)."""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import rules
from curate.rules import load_rules, matches_apart, pattern_branches, starts_lines

ROOT = Path(__file__).resolve().parent.parent


def compiled(pattern: str) -> regex.Pattern:
    return regex.compile(pattern, regex.MULTILINE)


def seen(pattern: regex.Pattern, matches: list) -> list[tuple]:
    """What the boilerplate stage reads of each match: its span, its text and its value (as
    `Rule.value` reads it: by the rule's pattern's groups)."""
    out = []
    for m in matches:
        value = m.group("value") if "value" in pattern.groupindex else None
        out.append((m.span(), m.group(0), value))
    return out


def by_pattern(pattern: regex.Pattern, line: str) -> list:
    return [m for m in pattern.finditer(line) if m.end() > m.start()]


def apart(pattern: regex.Pattern, line: str) -> list:
    parts = rules._compiled_branches(pattern)
    assert parts is not None, pattern.pattern
    return matches_apart(pattern, parts, line, line_starts=tuple(map(starts_lines, parts)))


@pytest.mark.parametrize(
    ("pattern", "branches"),
    [
        (r"a(b|c)|d", ("a(b|c)", "d")),
        (r"x[|]y|\||z", ("x[|]y", r"\|", "z")),
        (r"[]|]a|b", ("[]|]a", "b")),
        (r"(?:a|b)c|(?P<value>d|e)", ("(?:a|b)c", "(?P<value>d|e)")),
        (r"(?<=。)记者|^\s*摄|$", ("(?<=。)记者", r"^\s*摄", "$")),
    ],
)
def test_branches_are_cut_at_the_patterns_own_bars(pattern: str, branches: tuple[str, ...]) -> None:
    assert pattern_branches(compiled(pattern)) == branches


@pytest.mark.parametrize(
    "pattern",
    [
        r"abc",  # one alternative
        r"(a|b)c",  # the bar is inside a group
        r"(a)\1|b",  # a backreference
        r"(?P<x>a)(?P=x)|b",  # a named one
        r"(?P<x>a)\g<x>|b",
        r"(?P<x>a)|(?&x)b",  # a call
        r"(a)?(?(1)b|c)|d",  # a condition
        r"(?i)a|b",  # global flags
        r"\Ga|b",
        r"a\Kb|c",
        r"a{|b",  # not a pattern the parser knows
    ],
)
def test_nothing_ties_the_branches_together_or_no_split(pattern: str) -> None:
    assert pattern_branches(compiled(pattern)) is None


def test_groups_need_a_value_in_every_branch() -> None:
    # `Rule.value` reads group 1 when there is no `value` group: branch 2's own group 1 is not
    # the pattern's group 1.
    assert rules._compiled_branches(compiled(r"(a)x|(b)y")) is None
    assert rules._compiled_branches(compiled(r"(?P<value>a)x|y")) is None
    parts = rules._compiled_branches(compiled(r"(?P<value>a)x|(q)(?P<value>b)y"))
    assert parts is not None and [p.pattern for p in parts] == ["(?P<value>a)x", "(q)(?P<value>b)y"]
    assert rules._compiled_branches(compiled(r"ax|by")) is not None  # no group at all


# Alternatives that overlap, tie at one position (the first listed must win), look behind at
# what an earlier match took, anchor at line starts, and match empty (the pattern's own search).
PATTERNS = [
    r"ab|a|b",
    r"a|ab|b",
    r"b+|ab|a",
    r"(?P<value>a+)b|(?P<value>b)a|(?P<value>c)",
    r"(?<=a)b|ab|ba",
    r"(?<![ab])a|b(?=a)|aa",
    r"^a+|b$|ab",
    r"^\s*(?:a|b)c?|c",
    r"b|^a*|c",
    r"^a|^b|^",
    r"(?:a|b)c|c(?:a|b)|cc",
    r"a*|b",
    r"b|a*?c?",
    r"\ba|b\b|a b",
    r"(?P<value>[ab]{2,3}?)c|(?P<value>c)[ab]|(?P<value>a)",
]


@pytest.mark.parametrize(
    ("pattern", "flags", "starts"),
    [
        (r"^a", regex.MULTILINE, True),
        (r"^\s*(?:a|b)c", regex.MULTILINE, True),  # the bar is inside a group
        (r"^a", 0, True),
        (r"^a|b", regex.MULTILINE, False),  # an alternative that does not start lines
        (r"b|^a", regex.MULTILINE, False),
        (r"a^", regex.MULTILINE, False),
        (r"(?:^a)", regex.MULTILINE, False),  # (not seen inside a group: never wrongly said)
        (r"^*a", regex.MULTILINE, False),
        (r"^?a", regex.MULTILINE, False),
        (r"^a", regex.MULTILINE | regex.WORD, False),  # other line separators too
        (r"^a", regex.MULTILINE | regex.VERBOSE, False),
        (r"^a", regex.MULTILINE | regex.REVERSE, False),
        (r"^a{|b", regex.MULTILINE, False),  # not a pattern the parser knows
        (r"^(?#c)*a", regex.MULTILINE, False),  # a comment between `^` and its quantifier
        (r"^(?i)?a", regex.MULTILINE, False),  # ... or flags
    ],
)
def test_a_pattern_starts_lines_when_it_opens_with_a_caret(pattern: str, flags: int, starts: bool) -> None:
    assert starts_lines(regex.compile(pattern, flags)) is starts


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(PATTERNS),
    st.text(alphabet="abc \n", max_size=30),
)
def test_the_same_matches_as_the_pattern(pattern: str, line: str) -> None:
    p = compiled(pattern)
    assert seen(p, apart(p, line)) == seen(p, by_pattern(p, line))


def test_a_tie_goes_to_the_first_alternative() -> None:
    p = compiled(r"a|ab")
    assert seen(p, apart(p, "abab")) == [((0, 1), "a", None), ((2, 3), "a", None)]
    p = compiled(r"ab|a")
    assert seen(p, apart(p, "abab")) == [((0, 2), "ab", None), ((2, 4), "ab", None)]


def test_a_match_found_ahead_still_stands_after_the_next() -> None:
    # "c" is found once (ahead of the first "ab"), then used after the second, without a search.
    p = compiled(r"ab|c")
    assert seen(p, apart(p, "abxabc")) == [((0, 2), "ab", None), ((3, 5), "ab", None), ((5, 6), "c", None)]


def test_the_line_s_searches_share_the_timeout() -> None:
    """One timeout for the line, as `finditer` has (each search given its own would let a rule
    that times out run many times as long, and be applied)."""
    p = compiled(r"x(?=[^y]*z)|q")  # every x looks ahead to the line's end: quadratic
    line = "x" * 50_000 + "z"
    with pytest.raises(TimeoutError):
        list(p.finditer(line, timeout=0.05))
    with pytest.raises(TimeoutError):
        matches_apart(p, rules._compiled_branches(p), line, 0.05)
    # ... and so does the pattern's own search, when an empty match hands the line over to it
    p_empty = compiled(r"x(?=[^y]*z)|b*")
    with pytest.raises(TimeoutError):
        matches_apart(p_empty, rules._compiled_branches(p_empty), "a" + line, 0.05)
    # a negative timeout is none, for `regex` and here
    assert seen(p, matches_apart(p, rules._compiled_branches(p), "xxz q", -1.0)) == seen(p, by_pattern(p, "xxz q"))
    found = matches_apart(p, rules._compiled_branches(p), "xxz q", 5.0)
    assert len(found) == 3 and seen(p, found) == seen(p, by_pattern(p, "xxz q"))


def test_the_timeout_counts_cpu_time_as_regex_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker waiting for a core (wall time passing, no CPU time) must not time a rule out
    where the pattern's own search would not: a busy machine must not change the output."""
    wall = itertools.count(step=100.0)
    monkeypatch.setattr(rules, "time", SimpleNamespace(process_time=time.process_time, monotonic=lambda: next(wall), time=lambda: next(wall)))
    p = compiled(r"ab|c")
    assert seen(p, matches_apart(p, rules._compiled_branches(p), "abcabc" * 50, 5.0)) == seen(p, by_pattern(p, "abcabc" * 50))


@pytest.fixture(scope="module")
def split_rules() -> list:
    ruleset = load_rules([ROOT / "rules"])
    split = [r for r in ruleset.rules if r.branches is not None]
    assert all(r.scope == "inline" for r in split)
    # The rules the packs split (the path must be exercised by them, not only by the above).
    assert "credit.photo.reporter" in {r.id for r in split}
    return split


def _lines_to_try(split: list) -> list[str]:
    """The rules' own examples, every line of the sample files, and lines made of pieces of
    both (several matches a line, matches next to each other)."""
    examples = [e.text for r in split for e in (*r.must_match, *r.must_not_match)]
    samples = []
    for path in sorted((ROOT / "corpus" / "incoming").iterdir()):
        samples += path.read_text(encoding="utf-8", errors="replace").splitlines()
    rng = random.Random(9)
    pieces = examples + [s[i : i + 40] for s in samples for i in range(0, len(s), 40)]
    mixed = ["".join(rng.choice(pieces) + rng.choice(["", " ", "。", "　"]) for _ in range(rng.randint(2, 6))) for _ in range(3000)]
    return examples + samples + mixed


def test_the_packs_split_rules_find_what_their_patterns_find(split_rules: list) -> None:
    lines = _lines_to_try(split_rules)
    assert_rules_find_what_their_patterns_find(split_rules, lines)


def assert_rules_find_what_their_patterns_find(rule_list: list, lines: list[str]) -> None:
    for rule in rule_list:
        hits = 0
        for line in lines:
            got = [(m.span(), m.group(0), rule.value(m)) for m in rule.iter_inline(line, skip=False)]
            want = [(m.span(), m.group(0), rule.value(m)) for m in by_pattern(rule.pattern, line)]
            assert got == want, (rule.id, line)
            hits += bool(want)
        assert hits > 10, rule.id  # (the comparison covered matches, not only misses)


def test_the_packs_rules_that_start_lines_find_what_their_patterns_find() -> None:
    """Matched at 0 where the line is one line, searched where it holds a newline: the matches
    the pattern's own search finds, for every inline rule of the packs that (or an alternative
    of which) starts lines."""
    ruleset = load_rules([ROOT / "rules"])
    starting = [r for r in ruleset.rules if r.scope == "inline" and any(r.line_starts)]
    assert {"credit.photo.reporter", "credit.author.dateline"} <= {r.id for r in starting}
    assert all(len(r.line_starts) == len(r.branches or (r.pattern,)) for r in ruleset.rules if r.scope == "inline")
    lines = _lines_to_try(starting)
    rng = random.Random(3)
    examples = [e.text for r in starting for e in r.must_match]
    # where `^` starts other lines too: the rules' own examples after another line
    lines += [rng.choice(lines) + "\n" + rng.choice(examples) for _ in range(500)]
    assert_rules_find_what_their_patterns_find(starting, lines)


def inline_rule(pattern: regex.Pattern) -> rules.Rule:
    return rules.Rule(
        id="test", description="", scope="inline", action="remove", source=pattern.pattern,
        pattern=pattern, pack="test", file="test.toml", kind="test", reason="",
        line_starts=(starts_lines(pattern),),
    )


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([r"^(?:|ab)", r"^a*?", r"^\p{Han}*?", r"^a+b?", r"^(?=a)", r"^\s*中+", r"^(?#c)*a", r"^(?#c)?a"]),
    st.text(alphabet="ab中 \n", max_size=12),
)
def test_a_whole_pattern_that_starts_lines_finds_what_it_finds_searched(pattern: str, line: str) -> None:
    """`Rule.iter_inline` matching at 0 a pattern that starts lines: an empty match there
    leaves the line to `finditer` (which tries again at 0 for a longer one)."""
    p = compiled(pattern)
    assert seen(p, inline_rule(p).iter_inline(line)) == seen(p, by_pattern(p, line))
