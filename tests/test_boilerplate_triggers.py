"""Per-line trigger candidates: `TriggerIndex.locate` / `TriggerHits.lines` and the boilerplate
stage's `candidates` / `could` give exactly the lines the per-line check `may_match` accepts (so
never fewer: the pre-filter only skips lines no match can lie in), on the seed fixtures in several
spellings and on lines built for the edge cases (trigger at a line's start or end, S/T and
full/half-width variants, overlapping and nested triggers, a trigger across a line break or
holding a newline, one-character triggers, blank and whitespace-only lines, CRLF, a rule
without triggers)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hypothesis import example as hypothesis_example
from hypothesis import given, settings
from hypothesis import strategies as st
from opencc import OpenCC

from curate import config as config_module
from curate.document import Document
from curate.rules import PUNCT_TWINS, RuleSet, _fold_table, fold, load_rules, nonblank_lines
from curate.stages import boilerplate as boilerplate_module
from curate.stages.base import RunContext
from curate.stages.boilerplate import Boilerplate, _Present

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((Path(__file__).resolve().parent / "fixtures" / "seeds").glob("*.txt"))
RULES = load_rules([ROOT / "rules"])
CFG = config_module.build({})
T2S, S2T = OpenCC("t2s"), OpenCC("s2t")


def spellings(text: str) -> dict[str, str]:
    """The text as it may reach the stage: as is, Simplified, Traditional, half- and full-width
    punctuation, CRLF line ends."""
    half = text.translate(str.maketrans(PUNCT_TWINS))
    full = text.translate(str.maketrans({v: k for k, v in PUNCT_TWINS.items() if v != " "}))
    return {
        "raw": text,
        "t2s": T2S.convert(text),
        "s2t": S2T.convert(text),
        "half": half,
        "full": full,
        "crlf": text.replace("\n", "\r\n"),
    }


def reference_lines(rules: RuleSet, rule_id: str, text: str) -> set[int] | None:
    """What the per-line check accepts: the lines of `text` that `may_match` lets through."""
    index = rules.trigger_index()
    if index.forms.get(rule_id) is None:
        return None
    return {i for i, (s, e) in enumerate(nonblank_lines(text)) if index.may_match(rule_id, text[s:e])}


def reference_rules(rules: RuleSet, text: str) -> set[str]:
    """The rules some spelling of whose triggers occurs in `text`, plus those without triggers."""
    index = rules.trigger_index()
    found = set(index.always)
    found.update(rid for rid, forms in index.forms.items() if any(form in text for form in forms))
    return found


def check_hits(rules: RuleSet, text: str) -> None:
    index = rules.trigger_index()
    spans = nonblank_lines(text)
    assert index.maybe(text) == reference_rules(rules, text)
    for hits in (index.locate(text, spans), index.locate(text)):
        assert hits.rules == reference_rules(rules, text)
        for rule in rules.rules:
            want = reference_lines(rules, rule.id, text)
            got = hits.lines(rule.id)
            if want is None:
                assert got is None, rule.id
                continue
            assert got is not None, rule.id
            missing = want - got
            assert not missing, (rule.id, [text[slice(*spans[i])] for i in sorted(missing)])
            assert got == want, rule.id  # not even a superset: no extra regex call, no new timeout


def present_for(rules: RuleSet, text: str) -> tuple[_Present, list[str]]:
    stage = Boilerplate(CFG["boilerplate"], RunContext(config=CFG, rules=rules))
    spans = nonblank_lines(text)
    line_text = [text[s:e] for s, e in spans]
    return _Present(stage, Document.new("doc.txt", text), text, 5.0, spans, line_text), line_text


def check_stage_candidates(rules: RuleSet, text: str) -> None:
    """`candidates` / `could` / `anywhere` against the per-line test the stage used to make."""
    index = rules.trigger_index()
    present, line_text = present_for(rules, text)
    for rule in rules.rules:
        old = [
            i for i, line in enumerate(line_text)
            if not (rule.max_len is not None and len(line.strip()) > rule.max_len)
            and index.may_match(rule.id, line)
        ]
        assert present.candidates(rule) == old, rule.id
        assert [i for i in range(len(line_text)) if present.could(rule, i)] == old, rule.id
        assert present.anywhere(rule) == any(index.may_match(rule.id, line) for line in line_text), rule.id


# --------------------------------------------------------------------------- shipped rules, seeds
@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name[:3])
def test_seed_line_candidates_equal_may_match(path: Path) -> None:
    for text in spellings(path.read_text(encoding="utf-8")).values():
        check_hits(RULES, text)
        check_stage_candidates(RULES, text)


def test_all_seeds_in_one_document() -> None:
    joined = "\n\n".join(p.read_text(encoding="utf-8") for p in SEEDS)
    for text in spellings(joined).values():
        check_hits(RULES, text)
        check_stage_candidates(RULES, text)


def test_rule_examples_among_other_lines() -> None:
    """Every shipped example, alone and between body lines, in every spelling."""
    for rule in RULES.rules:
        for example in rule.must_match + rule.must_not_match:
            for text in (example.text, "正文第一段。\n" + example.text + "\n\n正文第二段。", example.text + "。"):
                for spelt in set(spellings(text).values()):
                    check_hits(RULES, spelt)
                    check_stage_candidates(RULES, spelt)


# --------------------------------------------------------------------------- edge cases
EDGE_PACK = r"""
[[rule]]
id = "e.copyright"
description = "multi-character trigger with S/T and width variants"
scope = "line"
action = "drop"
pattern = '版权所有[:：]?'
max_len = 12
must_match = ["版权所有"]
must_not_match = ["正文"]

[[rule]]
id = "e.editor"
description = "nested and overlapping triggers"
scope = "inline"
action = "drop"
pattern = '责任编辑|编辑部'
must_match = ["责任编辑"]
must_not_match = ["正文"]

[[rule]]
id = "e.edit"
description = "a trigger inside the other rule's"
scope = "paragraph"
action = "drop"
pattern = '编辑'
must_match = ["编辑"]
must_not_match = ["正文"]

[[rule]]
id = "e.haha"
description = "overlapping occurrences of one trigger"
scope = "line"
action = "drop"
pattern = '哈哈'
must_match = ["哈哈"]
must_not_match = ["哈"]

[[rule]]
id = "e.news"
description = "a trigger whose end starts another rule's (overlapping scan)"
scope = "paragraph"
action = "drop"
pattern = '新闻'
must_match = ["新闻"]
must_not_match = ["正文"]

[[rule]]
id = "e.release"
description = "a trigger that starts inside another rule's"
scope = "paragraph"
action = "drop"
pattern = '闻稿'
must_match = ["闻稿"]
must_not_match = ["正文"]

[[rule]]
id = "e.photo"
description = "one-character trigger with a Traditional variant"
scope = "line"
action = "drop"
pattern = '^\s*图\s*$'
max_len = 3
must_match = ["图"]
must_not_match = ["正文"]

[[rule]]
id = "e.dot"
description = "one-character punctuation trigger (full and half width)"
scope = "tail"
action = "drop"
pattern = '\S+\.\S+'
must_match = ["a.b"]
must_not_match = ["ab"]

[[rule]]
id = "e.space"
description = "whitespace trigger (ideographic space and space)"
scope = "inline"
action = "drop"
pattern = '版　权'
must_match = ["版　权"]
must_not_match = ["版权"]

[[rule]]
id = "e.newline"
description = "a trigger holding a newline: no line can hold it"
scope = "paragraph"
action = "drop"
pattern = '页脚\n结束'
must_match = ["页脚\n结束"]
must_not_match = ["页脚"]

[[rule]]
id = "e.any"
description = "no triggers: may match anywhere"
scope = "line"
action = "drop"
pattern = '\p{Han}{2,4}'
max_len = 4
must_match = ["正文"]
must_not_match = ["a"]

[[rule]]
id = "e.icp"
description = "a long trigger with many variant spellings (shortened to a prefix)"
scope = "tail"
action = "drop"
pattern = '互联网新闻信息服务许可证'
must_match = ["互联网新闻信息服务许可证"]
must_not_match = ["正文"]
"""

EDGE_TEXTS = [
    "",
    "   \n\n\t\n",
    "版权所有\n正文版权所有\n版權所有：某某公司\n版权所有:\n　版权所有　\n",
    "版权\n所有\n版\n权所有",  # across line breaks: no line holds it
    "页脚\n结束\n页脚结束\n页脚",  # a trigger with a newline never counts for a line
    "\n\n  \n图\n圖\n 图 \n\n图片\n正文图\n",  # leading blank lines, one character at start/end
    "哈哈哈\n哈\n哈哈\n哈 哈\n哈哈哈哈哈",
    "新闻稿\n新闻\n闻稿\n新聞稿件",  # 闻稿 only where it overlaps 新闻
    "责任编辑部\n编辑\n编\n辑\n責任編輯\n编辑部编辑",
    "　\n \n版　权\n版 权\na b\n 　 \n",  # whitespace-only lines are no lines
    "来源：新华社\r\n来源:新华社\r\n\r\n版权所有\r\n",
    "。\n.\n\n。。。\n正文。正文.正文\nwww.example.com",
    "正文" * 20 + "版权所有\n" + "互联网新闻信息服务许可证\n互聯網新聞信息服務許可證\n互联网新闻\n",
    "a.b",
    "哈哈",
    "图",
]


@pytest.fixture(scope="module")
def edge_rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    folder = tmp_path_factory.mktemp("rules")
    (folder / "edge.toml").write_text('[pack]\nname = "edge"\ndescription = "edge cases"\n' + EDGE_PACK, encoding="utf-8")
    return load_rules([folder])


def test_edge_rules_have_the_triggers_meant(edge_rules: RuleSet) -> None:
    index = edge_rules.trigger_index()
    assert index.always == ["e.any"]
    assert "e.photo" in index.rule_triggers and len(index.rule_triggers["e.photo"][0]) == 1
    assert len(index.rule_triggers["e.dot"][0]) == 1
    assert any("\n" in t for t in index.rule_triggers["e.newline"])
    assert set(index.forms["e.copyright"]) >= {"版权所有", "版權所有"}
    assert set(index.forms["e.space"]) >= {"版　权", "版 权"}


def test_every_spelling_has_its_triggers_length(edge_rules: RuleSet) -> None:
    """`TriggerHits` looks for triggers in the folded text and maps a hit to a line by the
    trigger's length: folding and spellings swap characters 1:1, and each spelling folds to its
    trigger."""
    assert all(len(char) == len(rep) == 1 for char, rep in _fold_table().items())
    for rules in (RULES, edge_rules):
        index = rules.trigger_index()
        for rule_id, forms in index.forms.items():
            triggers = index.rule_triggers[rule_id]
            assert all(fold(form) in triggers for form in forms), rule_id
            assert {fold(form) for form in forms} == set(triggers), rule_id


@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_edge_line_candidates_equal_may_match(edge_rules: RuleSet, text: str) -> None:
    for spelt in spellings(text).values():
        check_hits(edge_rules, spelt)
        check_stage_candidates(edge_rules, spelt)
        check_hits(RULES, spelt)
        check_stage_candidates(RULES, spelt)


def test_edge_cases_by_hand(edge_rules: RuleSet) -> None:
    index = edge_rules.trigger_index()
    text = "版权\n所有\n页脚\n结束\n哈哈哈\n　\n图\n编辑部\n正文。\n新闻稿"
    hits = index.locate(text, nonblank_lines(text))
    assert hits.lines("e.copyright") == set()  # across a line break
    assert "e.newline" in hits.rules and hits.lines("e.newline") == set()  # in the text, in no line
    assert hits.lines("e.haha") == {4}
    # "　" alone is a blank line, not a line: the next line is line 5.
    assert hits.lines("e.photo") == {5}
    assert hits.lines("e.editor") == hits.lines("e.edit") == {6}
    assert hits.lines("e.dot") == {7}
    assert hits.lines("e.news") == hits.lines("e.release") == {8}  # overlapping hits both count
    assert hits.lines("e.any") is None
    assert hits.lines("no.such.rule") is None  # unknown: may_match says yes too
    assert index.may_match("no.such.rule", "x")


# --------------------------------------------------------------------------- stage output
def _all_lines(self: _Present, rule):  # the stage without the trigger pre-filter (max_len only)
    return [i for i, w in enumerate(self.widths) if rule.max_len is None or w <= rule.max_len]


def _could_any(self: _Present, rule, i: int) -> bool:
    return rule.max_len is None or self.widths[i] <= rule.max_len


def _run(rules: RuleSet, text: str) -> bytes:
    doc = Document.new("doc.txt", text)
    list(Boilerplate(CFG["boilerplate"], RunContext(config=CFG, rules=rules)).run([doc]))
    return pickle.dumps((doc.text, doc.edits, doc.flags, doc.meta, doc.warnings))


def test_prefilter_changes_no_output(monkeypatch: pytest.MonkeyPatch, edge_rules: RuleSet) -> None:
    """Only a pre-filter: with every line a candidate the stage gives the same result."""
    texts = [p.read_text(encoding="utf-8") for p in SEEDS]
    cases = [(RULES, s) for t in texts for s in spellings(t).values()]
    cases += [(edge_rules, t) for t in EDGE_TEXTS] + [(RULES, t) for t in EDGE_TEXTS]
    filtered = [_run(rules, text) for rules, text in cases]
    monkeypatch.setattr(boilerplate_module._Present, "candidates", _all_lines)
    monkeypatch.setattr(boilerplate_module._Present, "could", _could_any)
    monkeypatch.setattr(boilerplate_module._Present, "anywhere", lambda self, rule: True)
    unfiltered = [_run(rules, text) for rules, text in cases]
    assert filtered == unfiltered
    assert any(b"ui." in out or b"credit." in out for out in filtered)  # the rules did something


# --------------------------------------------------------------------------- extra requirements
def test_extra_requirements_are_further_strings_every_match_holds() -> None:
    import regex

    from curate.rules import expand_variants, pattern_extra_requirements

    def extra(pattern: str) -> list[set[str]]:
        compiled = regex.compile(expand_variants(pattern), regex.MULTILINE)
        return [set(strings) for strings in pattern_extra_requirements(compiled)]

    assert extra(r"(?:记者|通讯员)\p{Han}{2}摄") == [{fold("摄")}]
    # a longer string holding a shorter one adds nothing: 摄影 holds 摄
    assert extra(r"记者\p{Han}{2,3}(?:摄|摄影|翻摄)") == [{fold("摄")}]
    assert extra("版权所有") == []  # one requirement only
    assert extra(r"(?<=摄)记者") == []  # what a lookaround needs is not in the match
    assert extra(r"记者\p{Han}{2}(?:摄|\p{Han})") == []  # a branch that needs nothing
    # the call gives the trigger (记者), the literal after it the extra
    assert extra(r"(?x)(?(DEFINE)(?P<w> 记者 ))(?&w)\p{Han}+编辑") == [{fold("编辑")}]


def test_every_line_a_shipped_rule_matches_passes_may_match() -> None:
    """Soundness of the triggers and extra requirements on the rules' own examples and on the
    seeds, in every spelling: a line a rule matches is never ruled out."""
    index = RULES.trigger_index()
    texts = [e.text for r in RULES.rules for e in r.must_match + r.must_not_match]
    texts += [p.read_text(encoding="utf-8") for p in SEEDS]
    checked = 0
    for text in texts:
        for spelt in set(spellings(text).values()):
            for line in spelt.split("\n"):
                for rule in RULES.rules:
                    found = rule.iter_inline(line) if rule.scope == "inline" else rule.match_line(line)
                    if found:
                        checked += 1
                        assert index.may_match(rule.id, line), (rule.id, line)
    assert checked > 500
    assert len(index.extra) > 20  # most rules have a second condition


# --------------------------------------------------------------------------- batched scan
def _texts_for_batches() -> list[str]:
    texts = [p.read_text(encoding="utf-8") for p in SEEDS]
    texts = [s for t in texts for s in spellings(t).values()]
    texts += EDGE_TEXTS + ["版权所有\uffff版权所有", "\uffff", "记者\uffff张三摄", "哈\uffff哈"]
    texts += [e.text for r in RULES.rules for e in r.must_match]
    return texts


def test_locate_many_finds_what_locate_finds(edge_rules: RuleSet) -> None:
    texts = _texts_for_batches()
    for rules in (RULES, edge_rules):
        index = rules.trigger_index()
        spans = [nonblank_lines(t) for t in texts]
        together = index.locate_many(texts, spans)
        for text, lines, hits in zip(texts, spans, together, strict=True):
            alone = index.locate(text, lines)
            assert hits.folded == alone.folded == fold(text)
            assert hits.rules == alone.rules
            assert hits._positions == alone._positions and sorted(hits._singles) == sorted(alone._singles)
            for rule in rules.rules:
                assert hits.lines(rule.id) == alone.lines(rule.id), (rule.id, text[:80])


def test_batched_stage_equals_one_document_at_a_time() -> None:
    texts = _texts_for_batches()
    stage = Boilerplate(CFG["boilerplate"], RunContext(config=CFG, rules=RULES))
    batched = [Document.new(f"d{i}.txt", t) for i, t in enumerate(texts)]
    batched[3].status = "duplicate"  # documents that are not OK pass through untouched
    assert len(list(stage.run(batched))) == len(texts)
    for i, text in enumerate(texts):
        doc = Document.new(f"d{i}.txt", text)
        if i != 3:
            stage.process(doc)
        assert pickle.dumps((doc.text, doc.edits, doc.flags, doc.meta, doc.warnings)) == pickle.dumps(
            (batched[i].text, batched[i].edits, batched[i].flags, batched[i].meta, batched[i].warnings)
        ), text[:80]
    assert sum(bool(d.edits) for d in batched) > 20


# `found_in_text`: the whole-text check searched from the start of the line a rule matched in,
# for patterns whose matches depend on what stands before them, and one with `\G`.
FOUND_PATTERNS = [r"^ab", r"\Aab", r"(?m)^ab", r"(?<=x)ab", r"(?<!x)ab", r"\bab", r"ab$", r"\Gab", r"(?r)b\s"]


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from("abx \n"), max_size=20), st.integers(-1, 22), st.sampled_from(FOUND_PATTERNS))
@hypothesis_example("xab", 1, r"\Gab")  # (matched from 1 only: the whole search finds none)
@hypothesis_example("xab", 1, r"^ab")
@hypothesis_example("x\nab", 2, r"(?m)^ab")
@hypothesis_example("xab", 1, r"(?<!x)ab")
def test_found_in_text_is_a_search_of_the_whole_text(text: str, start: int, source: str) -> None:
    import regex

    pattern = regex.compile(source)
    assert boilerplate_module.found_in_text(pattern, text, start, None) == (pattern.search(text) is not None)


class _TimedPattern:
    """A pattern whose searches record the timeout they are given; the one from a position
    other than 0 spends `spend` seconds of CPU first and then runs out of time or finds none."""

    pattern = "ab"

    def __init__(self, spend: float, runs_out: bool) -> None:
        self.spend, self.runs_out = spend, runs_out
        self.asked: list[tuple[int, float | None]] = []

    def search(self, text: str, pos: int = 0, timeout: float | None = None) -> object:
        import time

        self.asked.append((pos, timeout))
        if pos:
            end = time.process_time() + self.spend
            while time.process_time() < end:
                pass
            if self.runs_out:
                raise TimeoutError("regex timed out")
            return None
        return "found"


def test_found_in_text_s_searches_share_the_timeout() -> None:
    # The whole search after one from the line that found nothing gets what time is left.
    pattern = _TimedPattern(spend=0.05, runs_out=False)
    assert boilerplate_module.found_in_text(pattern, "xxab", 2, 1.0)
    (first, given_first), (second, given_second) = pattern.asked
    assert (first, second) == (2, 0) and given_first == pytest.approx(1.0, abs=0.01)
    assert given_second <= 1.0 - 0.05 + 0.01


def test_found_in_text_runs_out_of_time_with_the_search_from_the_line() -> None:
    # A search from the line that runs out of time is the check's timeout: no second search.
    pattern = _TimedPattern(spend=0.0, runs_out=True)
    with pytest.raises(TimeoutError):
        boilerplate_module.found_in_text(pattern, "xxab", 2, 0.1)
    assert [pos for pos, _ in pattern.asked] == [2]
