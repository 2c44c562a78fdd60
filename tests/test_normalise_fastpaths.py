"""The fast paths of the normalise stages give exactly what the plain code gave.

Each stage's cheap tests (a scan that proves there is nothing to do, patterns rewritten so that
`re` can skip ahead, a bound that rules a run out before decoding it) must never change an edit.
The plain implementations they replaced are kept here as references, and both run on the seed
fixtures in several spellings and on generated text full of the cases the fast paths single out:
mojibake of every kind next to clean text, characters the invisible stage drops inside it,
U+FFFD, CRLF, every kind of white space at line edges, blank-line runs, non-BMP characters,
half-width marks, nested and unbalanced brackets, URLs and e-mail addresses.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import opencc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate import t2s
from curate.document import Change, Document
from curate.stages import invisible as invisible_module
from curate.stages import punctuation as punctuation_module
from curate.stages import reflow as reflow_module
from curate.stages import repair as repair_module
from curate.stages.base import RunContext
from curate.stages.invisible import SPACE, SPACE_CHARS, Invisible
from curate.stages.punctuation import FULL_WIDTH, IS_HAN, PROTECTED, Punctuation, _is_cjk
from curate.stages.reflow import Block, Reflow
from curate.stages.repair import (
    HAN,
    KUNJINKAO,
    LATIN_HIGH_RUN,
    LATIN_LETTER,
    NON_ASCII_RUN,
    UTF8_AS_LATIN,
    Repair,
    _gbk_suspect_re,
    _utf8_change,
    _utf8_spans,
    clearly_chinese,
    ftfy_changes,
    ftfy_changes_nel,
    gbk_as_latin1_changes,
    kunjinkao_changes,
)
from tests.test_normalise_support import SEEDS

CONTEXT = RunContext(config=None)


# --------------------------------------------------------------------------- reference code
OLD_STRAY = re.compile("[\u0080-\u009f\u00ad]|[\u00a1-\u00ff]\u00a0|\u00a0[\u00a1-\u00ff]")


def old_gbk_bytes(text: str) -> bytes:
    return b"\xff".join(part.encode("gb18030") for part in text.split("\ufffd"))


def old_utf8_as_gbk_changes(text: str) -> list[Change]:
    suspect = _gbk_suspect_re()
    changes: list[Change] = []
    for match in NON_ASCII_RUN.finditer(text):
        run = match.group()
        if len(suspect.findall(run)) < 2:
            continue
        lenient = old_gbk_bytes(run).decode("utf-8", errors="replace")
        han = len(HAN.findall(lenient))
        if han < 2 or han < 0.3 * len(lenient):
            continue
        whole = False
        for start in dict.fromkeys((0, suspect.search(run).start())):
            lenient = old_gbk_bytes(run[start:]).decode("utf-8", errors="replace")
            lost = lenient.count("\ufffd")
            if lost <= 0.25 * len(lenient) and clearly_chinese(lenient.replace("\ufffd", ""), min_han=3):
                changes.append(_utf8_change(match.start() + start, match.end(), lenient, lost))
                whole = True
                break
        if whole:
            continue
        for i, j, decoded in _utf8_spans(run):
            if not clearly_chinese(decoded, min_han=3) or len(suspect.findall(run[i:j])) < 2:
                continue
            changes.append(_utf8_change(match.start() + i, match.start() + j, decoded, 0))
    return changes


class OldRepair(Repair):
    """The repair stage as it was: every step scans, the plain run loop, the plain STRAY."""

    def process(self, doc: Document) -> None:
        s = self.settings
        latin = (s.gbk_as_latin1 or s.ftfy) and LATIN_LETTER.search(doc.text) is not None
        if latin and s.gbk_as_latin1:
            self._apply(doc, LATIN_HIGH_RUN, gbk_as_latin1_changes)
        if latin and s.ftfy:
            self._apply(doc, UTF8_AS_LATIN, ftfy_changes)
        if s.utf8_as_gbk:
            self._apply(doc, _gbk_suspect_re(), old_utf8_as_gbk_changes)
        if s.fffd_as_gbk and "锟斤拷" in doc.text:
            self._apply(doc, KUNJINKAO, kunjinkao_changes)
        if self._deleted is not None and OLD_STRAY.search(doc.text):
            if latin and s.gbk_as_latin1:
                self._apply(doc, LATIN_HIGH_RUN, gbk_as_latin1_changes, self._deleted)
            if latin and s.ftfy:
                self._apply(doc, UTF8_AS_LATIN, ftfy_changes_nel, self._deleted)
            if s.utf8_as_gbk:
                self._apply(doc, _gbk_suspect_re(), old_utf8_as_gbk_changes, self._deleted)

    def _gaps(self, text: str, skip: re.Pattern[str]) -> list[re.Match[str]]:
        return [m for m in skip.finditer(text) if m.end() > m.start()]


OLD_LINE_END_SPACE = re.compile(f"[{SPACE}]+(?=\n)")
OLD_BLANK_RUN = re.compile(r"\n{3,}")


class OldInvisible(Invisible):
    """The invisible stage with the scans it had (a repeat first: no fast skipping)."""

    def process(self, doc: Document) -> None:
        assert self._any_char is not None
        if self._any_char.search(doc.text):
            doc.apply(self.name, self._char_changes(doc.text))
        doc.apply(self.name, self._line_edge_changes(doc.text))
        doc.apply(self.name, self._blank_line_changes(doc.text))

    def _line_edge_changes(self, text: str) -> list[Change]:
        n = len(text)
        starts = [m.span(1) for m in invisible_module.LINE_START_SPACE.finditer(text)]
        lead = invisible_module.LEADING_SPACE.match(text)
        if lead:
            starts.insert(0, lead.span())
        ends = {m.span() for m in OLD_LINE_END_SPACE.finditer(text)}
        tail = n - len(text.rstrip(SPACE_CHARS))
        if tail:
            ends.add((n - tail, n))
        changes: list[Change] = []
        for span in starts:
            if span in ends:
                changes.append(Change(*span, "", "invisible.trailing-space",
                                      "white space on an otherwise empty line", kind="normalise"))
                ends.discard(span)
            else:
                changes.append(Change(*span, "", "invisible.indent", "indent at the start of a line",
                                      kind="normalise"))
        for span in ends:
            changes.append(Change(*span, "", "invisible.trailing-space", "white space at the end of a line",
                                  kind="normalise"))
        return changes

    def _blank_line_changes(self, text: str) -> list[Change]:
        changes: list[Change] = []
        head = len(text) - len(text.lstrip("\n"))
        if head == len(text):
            return [Change(0, head, "", "invisible.blank-lines", "empty document", kind="normalise")] if head else []
        tail = len(text) - len(text.rstrip("\n"))
        if head:
            changes.append(Change(0, head, "", "invisible.blank-lines",
                                  "blank lines at the start of the document", kind="normalise"))
        for m in OLD_BLANK_RUN.finditer(text, head, len(text) - tail):
            changes.append(Change(m.start(), m.end(), "\n\n", "invisible.blank-lines",
                                  f"{m.end() - m.start() - 1} blank lines between paragraphs collapsed to one",
                                  kind="normalise"))
        if tail:
            changes.append(Change(len(text) - tail, len(text), "", "invisible.blank-lines",
                                  "blank lines at the end of the document", kind="normalise"))
        return changes


OLD_CANDIDATE = re.compile(f"[{punctuation_module.CJK}][,:;?!()]|[,:;?!()][{punctuation_module.CJK}]")
OLD_MARKS = re.compile(r"[?!]+|[,:;]")


class OldPunctuation(Punctuation):
    """The punctuation stage as it was: a list of characters, joined again for each pass (its
    passes over pairs and marks repeated until neither converts more, as the stage's are)."""

    def process(self, doc: Document) -> None:
        text = doc.text
        if not OLD_CANDIDATE.search(text):
            return
        cjk = (len(text.encode("utf-8", "surrogatepass")) - len(text)) // 2
        if cjk < self.settings.min_han_share * (cjk + len(punctuation_module.ASCII_LETTERS.pattern.findall(text))):
            return
        doc.apply(self.name, self.old_changes(text))

    def old_changes(self, text: str) -> list[Change]:
        protected = [m.span() for m in PROTECTED.finditer(text)]

        def is_protected(pos: int) -> bool:
            return any(a <= pos < b for a, b in protected)

        chars = list(text)
        rule_at: dict[int, str] = {}
        rounds = punctuation_module.MAX_ROUNDS
        for _ in range(punctuation_module.MAX_ROUNDS):
            converted = set(rule_at)
            rounds -= self.old_pairs(chars, rule_at, is_protected, rounds)
            self.old_marks(text, chars, rule_at, is_protected)
            new = rule_at.keys() - converted
            if rounds <= 0 or not any(text[q] in ",:;?!()（）" for p in new for q in (p - 1, p + 1) if 0 <= q < len(text)):
                break
        changes: list[Change] = []
        for pos in sorted(rule_at):
            rule = rule_at[pos]
            last = changes[-1] if changes else None
            if last is not None and last.end == pos and last.rule == rule:
                last.end = pos + 1
                last.after += chars[pos]
                continue
            changes.append(Change(pos, pos + 1, chars[pos], rule=rule, kind="normalise",
                                  reason="half-width punctuation in Chinese text made full-width"))
        return changes

    def old_pairs(self, chars: list[str], rule_at: dict[int, str], is_protected: Callable[[int], bool], rounds: int) -> int:
        for done in range(1, rounds + 1):
            current = "".join(chars)
            changed = False
            for m in punctuation_module.PAIR.finditer(current):
                start, end = m.start(), m.end() - 1
                if current[start] == "（" and current[end] == "）":
                    continue
                if is_protected(start) or is_protected(end):
                    continue
                content = current[start + 1 : end]
                before = current[start - 1] if start else ""
                after = current[end + 1] if end + 1 < len(current) else ""
                if IS_HAN.search(content) or (_is_cjk(before) and _is_cjk(after)):
                    for pos in (start, end):
                        if chars[pos] in FULL_WIDTH:
                            chars[pos] = FULL_WIDTH[chars[pos]]
                            rule_at[pos] = "punctuation.parens"
                            changed = True
            if not changed:
                return done
        return rounds

    def old_marks(self, text: str, chars: list[str], rule_at: dict[int, str], is_protected: Callable[[int], bool]) -> None:
        current = "".join(chars)
        for m in OLD_MARKS.finditer(text):
            start, end = m.span()
            if is_protected(start):
                continue
            before = current[start - 1] if start else ""
            after = current[end] if end < len(current) else ""
            if _is_cjk(before):
                ok = _is_cjk(after) or after in ("", "\n") or (bool(after) and after in "0123456789")
            elif before and before in "0123456789%":
                ok = bool(after) and IS_HAN.match(after) is not None
            else:
                ok = False
            if ok:
                for pos in range(start, end):
                    chars[pos] = FULL_WIDTH[text[pos]]
                    rule_at[pos] = "punctuation.width"


# --------------------------------------------------------------------------- test texts
def _seeds() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))]


def _mojibake(sentence: str, rng: random.Random) -> str:
    """One of the encoding accidents the repair stage knows, applied to `sentence`."""
    kind = rng.randrange(5)
    if kind == 0:
        return sentence.encode("utf-8").decode("gbk", errors="replace")
    if kind == 1:
        return sentence.encode("gbk", errors="replace").decode("latin-1")
    if kind == 2:
        return sentence.encode("utf-8").decode("cp1252", errors="replace")
    if kind == 3:
        return "锟斤拷" * rng.randrange(1, 4)
    return sentence.encode("utf-8").decode("gbk", errors="replace")[: rng.randrange(1, 12)]


NOISE = [
    "\u200b", "\u200d", "\ufeff", "\x00", "\x07", "\x85", "\x9c", "\u00ad", "\u00a0", "\ufffd",
    "\u3000", "\t", " ", "\r\n", "\r", "\n", "\n\n\n", "\n \n\u3000\n", "\ue40c", "\ue123",
    "\U000f0001", "\U00020000", "😀", "\u2028", "\u202e", "a", "Z", "1", "é", "ÿ", "Ã©", "Ã¤",
]


def _noisy(text: str, rng: random.Random, amount: int) -> str:
    """`text` with mojibake, invisible characters and white space put in at random places."""
    pieces = list(text)
    sentences = [s for s in re.split("[。\n]", text) if s]
    for _ in range(amount):
        pos = rng.randrange(len(pieces) + 1)
        if sentences and rng.random() < 0.3:
            pieces.insert(pos, _mojibake(rng.choice(sentences), rng))
        else:
            pieces.insert(pos, rng.choice(NOISE))
    return "".join(pieces)


S2T = opencc.OpenCC("s2t")


def sample_texts() -> list[str]:
    rng = random.Random(9)
    texts = ["", " ", "\n", "\n\n\n", "\u3000\n", "a", "锟斤拷", "\ufffd\ufffd", "中\u00a0文", "𠀀𠀁"]
    for text in _seeds():
        texts += [text, S2T.convert(text), text.replace("\n", "\r\n")]
        for amount in (3, 30, 200):
            texts.append(_noisy(text, rng, amount))
        for paragraph in text.split("\n"):
            if paragraph.strip():
                texts.append(_noisy(paragraph, rng, 4))
                texts.append(_mojibake(paragraph, rng))
    return texts


def _outcome(doc: Document) -> tuple:
    return (doc.text, [e.to_json() for e in doc.edits], list(doc._src), doc.warnings)


def _same_as(old_stage, new_stage, text: str) -> Document:
    old, new = Document.new("t.txt", text), Document.new("t.txt", text)
    old_stage.process(old)
    new_stage.process(new)
    assert _outcome(new) == _outcome(old), text[:200]
    return new


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return sample_texts()


# --------------------------------------------------------------------------- repair
def test_repair_fast_paths_change_no_edit(texts: list[str]) -> None:
    old, new = OldRepair(Repair.Settings(), CONTEXT), Repair(Repair.Settings(), CONTEXT)
    repaired = 0
    for text in texts:
        _same_as(old, new, text)
        doc = Document.new("t.txt", text)
        new.process(doc)
        repaired += any(e.rule == "repair.utf8-as-gbk" for e in doc.edits)
    assert repaired > 20  # the texts do hold mojibake the run filter must let through


def test_utf8_as_gbk_changes_equal_the_plain_loop(texts: list[str]) -> None:
    for text in texts:
        assert repair_module.utf8_as_gbk_changes(text) == old_utf8_as_gbk_changes(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["民族团结", "更多精校", "。", "，", " ", "来源：", "a", "\ufffd", "\u3000",
                                 "姘戞棌鍥㈢粨", "鍥", "㈢", "鏇村", "涓", "€", "锟斤拷", "\u200b", "\n"]),
                max_size=30))
def test_utf8_as_gbk_changes_equal_the_plain_loop_on_fragments(parts: list[str]) -> None:
    text = "".join(parts)
    assert repair_module.utf8_as_gbk_changes(text) == old_utf8_as_gbk_changes(text)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60))
def test_wide_start_bound_holds_for_any_bytes(raw: bytes) -> None:
    """The run bound: Han characters read leniently are at most the wide starts, and each
    character read takes at most 4 bytes."""
    lenient = raw.decode("utf-8", errors="replace")
    han = len(HAN.findall(lenient))
    assert han <= len(repair_module.WIDE_UTF8_START.findall(raw))
    assert 4 * len(lenient) >= len(raw)
    if han >= 2 and han >= 0.3 * len(lenient):
        assert repair_module._may_decode_to_han(len(repair_module.WIDE_UTF8_START.findall(raw)), len(raw))


def bytes_searched(run: str) -> tuple[int, int]:
    """`wide_starts_and_size` as it was: the run encoded, its bytes searched."""
    raw = repair_module._gbk_bytes(run)
    return len(repair_module.WIDE_UTF8_START.findall(raw)), len(raw)


# Characters of one, two and four GB18030 bytes (ASCII, GB2312, GBK's extension rows, Hangul,
# U+FFFD as 0xFF, past the BMP), mojibake of UTF-8 read as GBK, and its bytes' edges.
WIDE_PARTS = ["a", "民族团结", "臺灣", "姘戞棌鍥㈢粨", "鍥", "㈢", "涓", "锟斤拷", "\ufffd", "한국", "€",
              "\U00020000", "\U0001f600", "\u3000", "。", "\x80", "\xff", "\ue5e5", "\uffff"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(WIDE_PARTS), max_size=30).map("".join))
def test_wide_starts_and_size_equal_the_bytes_searched(run: str) -> None:
    assert repair_module.wide_starts_and_size(run) == bytes_searched(run)


def test_wide_starts_and_size_over_the_whole_bmp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every character of the BMP, in runs of random lengths (so every pair of neighbours across
    the table's rows meets somewhere), compiled and not."""
    plane = [chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000]
    rng = random.Random(18030)
    rng.shuffle(plane)
    runs, i = [], 0
    while i < len(plane):
        size = rng.randint(1, 40)
        runs.append("".join(plane[i : i + size]))
        i += size
    want = [bytes_searched(run) for run in runs]
    assert sum(starts for starts, _ in want) > 1000  # (places to find, not only misses)
    if repair_module._compiled_wide_utf8_starts is not None:
        assert [repair_module.wide_starts_and_size(run) for run in runs] == want
    monkeypatch.setattr(repair_module, "_compiled_wide_utf8_starts", None)
    assert [repair_module.wide_starts_and_size(run) for run in runs[:200]] == want[:200]


RUN_PARTS = [*WIDE_PARTS, " ", "\x7f", "\x80", "\n", "\u3000", "\x85", "\x1c", "\u2028", "\xa0", "ab", "锟", "\u200b"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(RUN_PARTS), max_size=40).map("".join))
def test_the_compiled_runs_are_the_suspect_runs(text: str) -> None:
    """Every run the regex finds, with its bytes' count (thresholds 0: every run kept), and the
    runs that may decode, compiled and not."""
    kernel = repair_module._compiled_runs_that_may_decode
    if kernel is None:
        pytest.skip("the compiled loops were not built")
    tables = (repair_module._gbk_suspect_chars().table(), *repair_module._gb18030_tables())
    every = kernel(text, *tables, 0, 0)
    assert [(s, e) for s, e, _ in every] == repair_module._suspect_runs(text)
    for s, e, counted in every:
        assert counted == all(ord(c) < 0x10000 for c in text[s:e])
    may = repair_module._may_decode_to_han
    kept = [(s, e, c) for s, e, c in every if not c or may(*bytes_searched(text[s:e]))]
    assert kernel(text, *tables, *repair_module.MAY_DECODE) == kept
    # (compiled and not: the same runs, `monkeypatch` being function-scoped)
    compiled = repair_module._runs_that_may_decode(text)
    repair_module._compiled_runs_that_may_decode = None
    try:
        assert compiled == repair_module._runs_that_may_decode(text)
    finally:
        repair_module._compiled_runs_that_may_decode = kernel


def test_the_runs_that_may_decode_compiled_and_not(texts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = [repair_module._runs_that_may_decode(text) for text in texts]
    assert sum(map(len, compiled)) > 20  # (runs to let through, not only runs ruled out)
    monkeypatch.setattr(repair_module, "_compiled_runs_that_may_decode", None)
    assert [repair_module._runs_that_may_decode(text) for text in texts] == compiled


def test_wide_starts_and_size_of_a_lone_surrogate_fails_as_the_encoding_does() -> None:
    with pytest.raises(UnicodeEncodeError):
        repair_module._gbk_bytes("民\ud800族")
    with pytest.raises(UnicodeEncodeError):
        repair_module.wide_starts_and_size("民\ud800族")


def test_the_compiled_count_refuses_tables_that_do_not_match() -> None:
    kernel = repair_module._compiled_wide_utf8_starts
    if kernel is None:
        pytest.skip("the compiled loops were not built")
    encoded, lengths = repair_module._gb18030_tables()
    with pytest.raises(ValueError):
        kernel("民族", encoded[:100], lengths)
    assert kernel("民\U00020000", encoded, lengths) == (-1, -1)  # (past the tables)


def test_suspect_characters_are_run_characters_never_dropped() -> None:
    """What the fast paths assume of the suspect characters: each is inside a run (so two of
    them in one run are found by one pattern), and the invisible stage never drops one (so a
    text without any has none once the dropped characters are looked through)."""
    suspects = [chr(c) for c in range(0x80, 0x110000) if _gbk_suspect_re().fullmatch(chr(c))]
    assert len(suspects) > 5000
    assert all(ord(c) < 0x10000 for c in suspects)  # (the compiled scan's table is the BMP's)
    assert all(NON_ASCII_RUN.fullmatch(c) for c in suspects)
    dropped = Repair(Repair.Settings(), CONTEXT)._dropped
    assert dropped is not None and not any(dropped.match(c) for c in suspects)


def test_stray_pattern_finds_what_it_found() -> None:
    rng = random.Random(3)
    alphabet = ["\u0080", "\u009f", "\u00a0", "\u00a1", "\u00ad", "\u00ff", "a", "中", "\u00c3"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(8)))
        assert [m.span() for m in repair_module.STRAY.finditer(text)] == [m.span() for m in OLD_STRAY.finditer(text)]


# --------------------------------------------------------------------------- invisible
def test_invisible_fast_paths_change_no_edit(texts: list[str]) -> None:
    old, new = OldInvisible(Invisible.Settings(), CONTEXT), Invisible(Invisible.Settings(), CONTEXT)
    for text in texts:
        _same_as(old, new, text)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([*SPACE_CHARS, "\n", "\n\n\n", "中", "a", "\u200b", "\r"]), max_size=30).map("".join))
def test_line_ends_and_blank_runs_are_found_as_before(text: str) -> None:
    ends = set()
    for m in invisible_module.SPACE_THEN_NEWLINE.finditer(text):
        start = m.start()
        while start and text[start - 1] in SPACE_CHARS:
            start -= 1
        ends.add((start, m.start()))
    assert ends == {m.span() for m in OLD_LINE_END_SPACE.finditer(text)}
    assert [m.span() for m in invisible_module.BLANK_RUN.finditer(text)] == [
        m.span() for m in OLD_BLANK_RUN.finditer(text)
    ]


# --------------------------------------------------------------------------- punctuation
PUNCTUATION_PARTS = ["中", "文", "a", "B", "1", "%", "，", "（", "）", "(", ")", ",", ":", ";", "?", "!",
                     "?!", "\n", " ", "http://例子.cn/a(b)", "www.x.com", "a@b.cn", "“", "…", "3,000"]


def test_punctuation_fast_paths_change_no_edit(texts: list[str]) -> None:
    old, new = OldPunctuation(Punctuation.Settings(), CONTEXT), Punctuation(Punctuation.Settings(), CONTEXT)
    rng = random.Random(5)
    extra = ["".join(rng.choice(PUNCTUATION_PARTS) for _ in range(rng.randrange(60))) for _ in range(2000)]
    extra += ["((((中))))", "(((（中）)))", "国内生产总值(GDP)增长", "见http://a.cn/(中)。", "邮件a@b.cn,谢谢"]
    for text in texts + extra:
        _same_as(old, new, text)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PUNCTUATION_PARTS), max_size=40).map("".join))
def test_punctuation_patterns_find_what_they_found(text: str) -> None:
    assert bool(punctuation_module.CANDIDATE.search(text)) == bool(OLD_CANDIDATE.search(text))
    assert [m.span() for m in punctuation_module.MARKS.finditer(text)] == [m.span() for m in OLD_MARKS.finditer(text)]
    stage = Punctuation(Punctuation.Settings(), CONTEXT)
    assert stage.changes(text) == OldPunctuation(Punctuation.Settings(), CONTEXT).old_changes(text)


# --------------------------------------------------------------------------- t2s
def _brute_longest_leftmost(text: str, max_len: int, min_len: int, mapping: dict[str, str]):
    """opencc's __findMatch as written: every length, longest first, every position."""
    n = len(text)
    for length in range(min(n, max_len), min_len - 1, -1):
        for i in range(n - length + 1):
            value = mapping.get(text[i : i + length])
            if value is not None:
                return i, length, value.split(" ")[0]
    return None


@pytest.mark.parametrize("config", t2s.CONFIGS)
def test_longest_leftmost_equals_the_plain_search(config: str) -> None:
    rng = random.Random(11)
    for group in t2s._converter(config).groups:
        for (max_len, min_len, mapping), keys in zip(group.phrase_dicts, group.phrase_patterns, strict=True):
            words = list(mapping)
            chars = sorted({c for w in words for c in w})
            for _ in range(400):
                parts = [rng.choice(words) if rng.random() < 0.4 else rng.choice(chars) for _ in range(rng.randrange(12))]
                text = "".join(parts)
                assert t2s._longest_leftmost(text, keys, mapping) == _brute_longest_leftmost(
                    text, max_len, min_len, mapping
                ), text


def test_script_evidence_of_many_texts_equals_one_at_a_time(texts: list[str]) -> None:
    sample = texts + ["", "國", "们", "\ud800", "𠀀"]
    assert t2s.script_evidence_many(sample) == [t2s.script_evidence(t) for t in sample]
    assert t2s.script_evidence_many([]) == []


def test_batched_convert_equals_one_document_at_a_time(texts: list[str]) -> None:
    from curate.stages.convert import Convert

    stage = Convert(Convert.Settings(), CONTEXT)
    sample = texts + [S2T.convert(t) + "\n简体的段落。" for t in texts[:40]]
    batched = [Document.new(f"d{i}.txt", t) for i, t in enumerate(sample)]
    batched[5].status = "duplicate"
    assert len(list(stage.run(batched))) == len(sample)
    converted = 0
    for i, text in enumerate(sample):
        doc = Document.new(f"d{i}.txt", text)
        if i != 5:
            stage.process(doc)
        assert _outcome(doc) == _outcome(batched[i]), text[:100]
        converted += bool(doc.edits)
    assert converted > 40


# --------------------------------------------------------------------------- reflow
class OldReflow(Reflow):
    """The reflow stage as it was: every break found by BREAK, the wrap test for every text."""

    def changes(self, text: str) -> list[Change]:
        breaks = list(reflow_module.BREAK.finditer(text))
        if not breaks:
            return []
        wrapped = self._hard_wrapped(text)
        length_ok_single = self.settings.single_newline_on_length or wrapped
        changes: list[Change] = []
        block_start = 0
        joined_in_block = False
        for i, brk in enumerate(breaks):
            end = brk.start()
            if end == 0 or not reflow_module.OPEN_END_CHAR.match(text, end - 1):
                block_start, joined_in_block = brk.end(), False
                continue
            next_end = breaks[i + 1].start() if i + 1 < len(breaks) else len(text)
            nxt = text[brk.end() : next_end].strip()
            window = text[max(block_start, end - Block.KEEP) : end]
            if joined_in_block:
                window = reflow_module.BREAK.sub("", window)
            block = Block(window.strip(), end - block_start,
                          reflow_module.CLAUSE_PUNCT.search(text, block_start, end) is not None)
            blank_line = brk.group().count("\n") > 1
            if self._joins(block, nxt, blank_line or length_ok_single, wrapped):
                changes.append(Change(brk.start(), brk.end(), "", rule="reflow.join",
                                      reason="paragraph broken in the middle of a sentence by the layout",
                                      kind="normalise", evidence={"before": block.end[-6:], "after": nxt[:6]}))
                joined_in_block = True
            else:
                block_start, joined_in_block = brk.end(), False
        return changes


def test_reflow_fast_paths_change_no_edit(texts: list[str]) -> None:
    rng = random.Random(4)
    wrapped = ["这是一段被固定宽度折行的文字内容，每一行都在句子中间" * 2 + "\n" + "继续写下去的句子" * 3 for _ in range(3)]
    extra = ["".join(rng.choice(["中文", "，", "。", "\n", " \n", "\u3000\n\n", "\t", "“", "（", "1", "记者 张三", "\n\n \n"])
                     for _ in range(rng.randrange(40))) for _ in range(2000)]
    for settings_ in ({}, {"single_newline_on_length": True}):
        old, new = OldReflow(Reflow.Settings(**settings_), CONTEXT), Reflow(Reflow.Settings(**settings_), CONTEXT)
        joined = sum(bool(_same_as(old, new, text).edits) for text in texts + wrapped + extra)
        assert joined > 100


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["\n", " ", "\t", "\u3000", "中", "a", "\r", "\n\n"]), max_size=30).map("".join))
def test_breaks_are_the_matches_of_break(text: str) -> None:
    assert reflow_module._breaks(text) == [m.span() for m in reflow_module.BREAK.finditer(text)]
