"""The boilerplate and repeated-lines stages: EXPECTED.md items for 000-004, tail logic, time
limits, the allowlist, corpus-level repeated lines."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opencc import OpenCC

from curate import config as config_module
from curate.document import Document
from curate.rules import RuleSet, SearchWatch, load_rules, nonblank_lines
from curate.stages.base import RunContext
from curate.stages.boilerplate import Boilerplate
from curate.stages.repeated_lines import RepeatedLines, normalise_line

ROOT = Path(__file__).resolve().parent.parent
SEEDS = Path(__file__).resolve().parent / "fixtures" / "seeds"
RULES = load_rules([ROOT / "rules"])
CFG = config_module.build({})


def run_stage(text: str, rules=RULES, source: str = "doc.txt", **settings) -> tuple[Document, RunContext]:
    cfg = config_module.build({"boilerplate": settings}) if settings else CFG
    context = RunContext(config=cfg, rules=rules)
    doc = Document.new(source, text)
    list(Boilerplate(cfg["boilerplate"], context).run([doc]))
    assert doc.reconstruct_input() == text
    return doc, context


def seed(prefix: str) -> str:
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return path.read_text(encoding="utf-8")


def normalised(text: str) -> str:
    """Roughly what arrives after conversion (t2s) and punctuation normalisation."""
    out = []
    for line in OpenCC("t2s").convert(text).split("\n"):
        if not line.startswith(("Notice", "![", "原文链接")):
            line = line.translate(str.maketrans({",": "，", ":": "：", "(": "（", ")": "）", ";": "；"}))
        out.append(line)
    return "\n".join(out)


def rules_of(doc: Document) -> list[str]:
    return [e.rule for e in doc.edits]


# --------------------------------------------------------------------------- EXPECTED.md items
def test_000_author_and_photo_credit_to_meta_headings_kept() -> None:
    text = seed("000")
    doc, _ = run_stage(text)
    assert doc.meta["author"] == "徐顺凯"
    assert doc.meta["photo_credit"] == "黎晓刚"
    assert "本报记者" not in doc.text and "本版图片" not in doc.text
    assert {e.action for e in doc.edits} == {"meta:author", "meta:photo_credit"}
    assert all(e.kind == "credit" for e in doc.edits)
    # keep: headline, section headings (incl. the 4x repeated one), full-width punctuation.
    assert "守望相助 和谐发展" in doc.text
    assert doc.text.count("始终贯穿创建全过程") == text.count("始终贯穿创建全过程") == 4
    assert "党的领导\n\n始终贯穿创建全过程" in doc.text
    for mark in "，；（）“”":
        assert doc.text.count(mark) == text.count(mark)
    # Nothing but the two credit lines was touched.
    assert len(doc.edits) == 2


@pytest.mark.parametrize("variant", ["raw", "normalised"])
def test_001_placeholders_notices_and_source(variant: str) -> None:
    text = seed("001") if variant == "raw" else normalised(seed("001"))
    doc, _ = run_stage(text)
    assert "![]()" not in doc.text
    assert rules_of(doc).count("ui.image_placeholder") == 3
    assert doc.meta["source"] == ("蘭州日報" if variant == "raw" else "兰州日报")
    assert "来源" not in doc.text and "來源" not in doc.text
    # The paragraph the source note ended stays.
    last = doc.text.rstrip().split("\n")[-1]
    assert last.endswith("讓各族干部群眾在潛移默化中鑄牢中華民族共同體意識。") or last.endswith(
        "让各族干部群众在潜移默化中铸牢中华民族共同体意识。"
    )
    assert "网易号" not in doc.text and "網易號" not in doc.text
    assert "Notice:" not in doc.text and "NetEase" not in doc.text
    assert {"notice.selfmedia.zh", "notice.selfmedia.en"} <= set(rules_of(doc))
    assert not doc.text.endswith("\n\n")


@pytest.mark.parametrize("variant", ["raw", "normalised"])
def test_002_url_meta_whole_footer_dropped_five_points_kept(variant: str) -> None:
    text = seed("002") if variant == "raw" else normalised(seed("002"))
    doc, _ = run_stage(text)
    assert doc.meta["url"] == "http://mzw.qinghai.gov.cn/index.php/mtxw/2930.html"
    assert doc.meta["site"] == "宗教法治网"
    for gone in ("免责声明", "本站部分信息", "本网部分转载文章", "版权所有", "办公区", "原文链接"):
        assert gone not in doc.text, gone
    for point in ("一是“融”工作", "二是“融”", "三是“融”", "四是“融”", "五是“融”心理"):
        assert point in doc.text, point
    # The five points are untouched: every kept line is a line of the input.
    input_lines = set(text.split("\n"))
    assert all(line in input_lines for line in doc.text.split("\n"))
    assert doc.text.rstrip().endswith("共同繁荣发展。")


def test_003_page_ui_dropped_spam_sentence_kept() -> None:
    doc, _ = run_stage(seed("003"))
    assert "扫一扫在手机上查看当前页面" not in doc.text
    assert "跳转到登录页" not in doc.text
    assert set(rules_of(doc)) == {"ui.scan_qr", "ui.login_jump"}
    # The spam-injected sentence is for the corruption stage to flag, not for us to drop.
    assert doc.text.count("ld体育中国官方网站") == 2
    assert doc.text.rstrip().endswith("推动矛盾纠纷就地化解。")


@pytest.mark.parametrize("variant", ["raw", "normalised"])
def test_004_provider_credit_to_source_meta_rest_kept(variant: str) -> None:
    text = seed("004") if variant == "raw" else normalised(seed("004"))
    doc, _ = run_stage(text)
    assert doc.meta == {"source": "自治区民委"}
    assert rules_of(doc) == ["credit.source.provided"]
    assert "本版文字" not in doc.text
    assert "兴安盟民族事务委员会" in doc.text and "争创铸牢中华民族共同体意识示范盟" in doc.text


def test_every_sample_reconstructs_and_keeps_body_sentences() -> None:
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        doc, _ = run_stage(text)
        removed = "".join(e.before for e in doc.edits)
        assert len(removed) < 800, path.name  # only boilerplate, never body paragraphs


# --------------------------------------------------------------------------- tail logic
BODY = "示例市今年举办了多场民族团结进步宣传活动，参与群众超过一万人次，取得了良好效果。"


def test_footer_block_goes_with_its_context_lines() -> None:
    text = "\n".join([BODY, BODY, "示例新闻网 example.com.cn 版权所有", "地址：示例市示例路100号", "电话：0971-1234567"])
    doc, _ = run_stage(text)
    assert doc.text == BODY + "\n" + BODY
    assert doc.meta["site"] == "示例新闻网"
    address = next(e for e in doc.edits if e.rule == "footer.address")
    assert address.evidence["footer_anchor"] == "footer.site_copyright"


def test_body_paragraph_after_footer_stays() -> None:
    later = "会后，与会代表参观了示例社区的活动中心，并就下一步工作进行了交流。"
    text = "\n".join([BODY, "京ICP备12345678号", later])
    doc, _ = run_stage(text)
    assert doc.text == BODY + "\n" + later


def test_context_lines_without_an_anchor_stay() -> None:
    text = "\n".join([BODY, "地址：示例市示例路100号", "电话：0971-1234567"])
    doc, _ = run_stage(text)
    assert doc.text == text and not doc.edits


def test_anchor_far_from_the_end_is_not_a_footer() -> None:
    lines = ["京ICP备12345678号"] + [BODY] * 20
    doc, _ = run_stage("\n".join(lines))
    assert not doc.edits


def test_inline_notice_glued_to_body_keeps_the_body() -> None:
    notice = "特别声明：以上内容为自媒体平台“网易号”用户上传并发布，本平台仅提供信息存储服务。"
    doc, _ = run_stage(BODY + notice)
    assert doc.text == BODY


def test_removing_lines_leaves_no_blank_runs() -> None:
    text = f"{BODY}\n\n扫一扫在手机上查看当前页面\n\n{BODY}\n\n我要评论"
    doc, _ = run_stage(text)
    assert doc.text == f"{BODY}\n\n{BODY}"


def test_disabled_rules_and_packs_are_not_applied() -> None:
    text = f"{BODY}\n扫一扫在手机上查看当前页面"
    assert not run_stage(text, disable=["ui.scan_qr"])[0].edits
    assert not run_stage(text, disable=["50_page_ui"])[0].edits


# --------------------------------------------------------------------------- time limit, allowlist
def write_pack(folder: Path, body: str, name: str = "p.toml") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(body, encoding="utf-8")


SLOW_PACK = """
[[rule]]
id = "slow"
description = "catastrophic backtracking"
scope = "paragraph"
action = "drop"
variants = false
pattern = '(a|aa)+$'
must_match = ["aaaa"]
must_not_match = ["b"]
"""


def test_rule_that_times_out_is_reported_not_skipped_silently(tmp_path: Path) -> None:
    write_pack(tmp_path, SLOW_PACK)
    rules = load_rules([tmp_path])
    doc, context = run_stage("a" * 40 + "b", rules=rules, timeout_seconds=0.05)
    assert doc.text == "a" * 40 + "b"
    (warning,) = doc.warnings  # the writer lists document warnings in the manifest
    assert "slow" in warning and "timed out" in warning and "\n" not in warning
    (flag,) = doc.flags
    assert flag.kind == "rule-timeout" and flag.evidence["rule"] == "slow"


class _RecordedPattern:
    """A rule's pattern that records the `timeout` each search is given (and searches)."""

    def __init__(self, pattern) -> None:
        self.compiled, self.given = pattern, []

    def __getattr__(self, name: str):
        found = getattr(self.compiled, name)
        if name not in ("search", "match", "fullmatch", "finditer"):
            return found

        def recorded(*args, timeout=None, **kwargs):
            self.given.append(timeout)
            return found(*args, timeout=timeout, **kwargs)

        return recorded


def slow_rules(folder: Path) -> tuple[RuleSet, _RecordedPattern]:
    write_pack(folder, SLOW_PACK)
    rules = load_rules([folder])
    (rule,) = rules.rules
    rule.pattern = recorded = _RecordedPattern(rule.pattern)
    return rules, recorded


def assert_timed_out(doc: Document) -> None:
    assert doc.text == "a" * 40 + "b" and len(doc.warnings) == 1
    assert "timed out after 0.05s" in doc.warnings[0]
    assert [flag.kind for flag in doc.flags] == ["rule-timeout"]


def test_the_time_limit_is_kept_by_the_watch_without_regex_s_clock(tmp_path: Path) -> None:
    # In the main thread the stage's CPU-time timer stops the search: `regex` is given no
    # timeout (with one, it reads the CPU clock, a system call, at least twice a search).
    rules, pattern = slow_rules(tmp_path)
    started = time.process_time()
    doc, _ = run_stage("a" * 40 + "b", rules=rules, timeout_seconds=0.05)
    assert_timed_out(doc)
    assert 0.05 <= time.process_time() - started < 2
    assert pattern.given and set(pattern.given) == {None}
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)  # disarmed after the batch


def test_without_the_watch_regex_keeps_the_time_limit(tmp_path: Path) -> None:
    # Outside the main thread (Python runs signal handlers only there), and where another
    # handler of SIGPROF is installed (a profiler's), each search is given the limit itself.
    rules, pattern = slow_rules(tmp_path)
    done: list[Document] = []

    def stage_in_a_thread() -> None:
        done.append(run_stage("a" * 40 + "b", rules=rules, timeout_seconds=0.05)[0])

    thread = threading.Thread(target=stage_in_a_thread)
    thread.start()
    thread.join()
    assert_timed_out(done[0])
    assert pattern.given and set(pattern.given) == {0.05}

    pattern.given.clear()
    ticks: list[int] = []

    def theirs(signum: int, frame: object) -> None:
        ticks.append(signum)

    before = signal.signal(signal.SIGPROF, theirs)
    try:
        doc, _ = run_stage("a" * 40 + "b", rules=rules, timeout_seconds=0.05)
        assert signal.getsignal(signal.SIGPROF) is theirs  # left alone
    finally:
        signal.signal(signal.SIGPROF, before)
    assert_timed_out(doc)
    assert pattern.given and set(pattern.given) == {0.05} and not ticks


def test_the_watch_stops_only_a_search_its_ticks_found_running() -> None:
    watch = SearchWatch()
    watch.tick()  # outside a search: nothing to stop
    watch.enter()
    for _ in range(SearchWatch.TICKS):  # the first tick finds it; it has run one limit by the last
        watch.tick()
    with pytest.raises(TimeoutError):
        watch.tick()
    watch.leave()
    for _ in range(3 * SearchWatch.TICKS):  # between searches, never
        watch.tick()
    for _ in range(3):  # searches that each end before the limit: each one counted anew
        watch.enter()
        for _ in range(SearchWatch.TICKS):
            watch.tick()
        watch.leave()
        watch.enter()
        watch.leave()


def test_allowlist_keeps_text_the_rule_would_remove(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    for pack in (ROOT / "rules").glob("*.toml"):
        if pack.name != "allowlist.toml":
            write_pack(folder, pack.read_text(encoding="utf-8"), pack.name)
    text = f"{BODY}\n转载请注明出处"
    assert run_stage(text, rules=load_rules([folder]))[0].edits
    (folder / "allowlist.toml").write_text(
        '[[keep]]\ntext = "转载请注明出处"\nrule = "disclaimer.reprint_line"\n', encoding="utf-8"
    )
    rules = load_rules([folder])
    doc, _ = run_stage(text, rules=rules)
    assert doc.text == text and not doc.edits
    # Another rule's removals are not affected by an entry naming a rule.
    doc, _ = run_stage(f"{BODY}\n扫一扫在手机上查看当前页面", rules=rules)
    assert doc.edits
    # rules test now reports the entry as a failing must-not-match example.
    (failure,) = rules.test()
    assert failure.check == "allowlist" and failure.rule == "disclaimer.reprint_line"


# --------------------------------------------------------------------------- repeated lines
def repeated(docs: list[Document], **settings) -> list[Document]:
    cfg = config_module.build({"repeated_lines": settings}) if settings else CFG
    inputs = {id(doc): doc.reconstruct_input() for doc in docs}
    out = list(RepeatedLines(cfg["repeated_lines"], RunContext(config=cfg, rules=RULES)).run(docs))
    for doc in out:
        assert doc.reconstruct_input() == inputs[id(doc)]
    return out


TOPICS = "春夏秋冬东南西北"


def site_docs(n: int, footer: str = "本站由示例科技提供技术支持 联系我们") -> list[Document]:
    return [
        Document.new(f"site/{i}.txt", f"{TOPICS[i]}季报道的正文内容，讲述了{TOPICS[i]}边的事情。\n{footer}")
        for i in range(n)
    ]


def test_line_seen_in_many_documents_of_a_site_is_removed_with_its_count() -> None:
    docs = repeated(site_docs(6), min_docs=5)
    for doc in docs:
        assert "技术支持" not in doc.text and "正文内容" in doc.text
        (edit,) = doc.edits
        assert edit.rule == "repeated_lines" and edit.evidence["documents"] == 6


def test_below_threshold_or_other_folder_is_kept() -> None:
    docs = repeated(site_docs(4), min_docs=5)
    assert all(not d.edits for d in docs)
    mixed = site_docs(3) + [
        Document.new(f"other/{i}.txt", f"另一处的{TOPICS[i]}篇。\n本站由示例科技提供技术支持 联系我们")
        for i in range(3)
    ]
    assert all(not d.edits for d in repeated(mixed, min_docs=5, group_by="folder"))
    assert all(d.edits for d in repeated(mixed, min_docs=5, group_by="all"))


def test_heading_repeated_inside_one_document_is_not_boilerplate() -> None:
    text = seed("000")
    docs = repeated([Document.new("000.txt", text)] + site_docs(3), min_docs=2)
    assert docs[0].text == text


def test_identical_documents_count_once() -> None:
    docs = [Document.new(f"site/{i}.txt", "同一篇文章的正文。\n本站由示例科技提供技术支持") for i in range(6)]
    assert all(not d.edits for d in repeated(docs, min_docs=5))


def test_repeated_lines_is_deterministic_under_reordering() -> None:
    first = [d.text for d in repeated(site_docs(6), min_docs=5)]
    second = [d.text for d in reversed(repeated(list(reversed(site_docs(6))), min_docs=5))]
    assert first == second


def test_normalise_line_ignores_width_digits_and_spaces() -> None:
    assert normalise_line("版权所有 2019，示例网") == normalise_line("版权所有2020,示例网")


# Characters around which NFKC, lower() or the removals are not one character at a time:
# combining marks (they compose), a capital sigma (its lower case depends on what follows),
# Hangul jamo, compatibility characters that expand (ﬁ ℃ ㈱ ½), and characters off the fast path.
TRICKY = [
    "e", "\u0301", "\u0308", "A", "\u030a", "Σ", "ΑΣ", "σ", "İ", "I", "\u0307", "ᄀ", "ᅡ", "ᆨ", "가",
    "ﬁ", "℃", "㈱", "½", "²", "①", "Ⅻ", "ｶ", "ﾞ", "\u3099", "が", "Ａ", "０", "１", "％", "，", "：",
    "\u3000", "\u00a0", "\r", "\t", "\u200b", "\u2028", "\U00020000", "😀", "\ufffd", "ß", "K", "ſ",
]
PLAIN = ["中", "文", "网", "a", "Z", "9", " ", "，", "。", "“", "”", "（", "）", "《", "》", "——", "…", "、",
         "：", "！", "!", "-", "/", "·", "【", "】", "©", "®", "°", "\u3001"]


def _key_test_lines() -> list[str]:
    """The sample files' lines, in both scripts; random lines of plain and tricky characters;
    every character of the BMP's plain blocks alone; known traps."""
    import random

    lines = [line for path in sorted(SEEDS.glob("*.txt")) for line in path.read_text(encoding="utf-8").split("\n")]
    lines += [OpenCC("s2t").convert(line) for line in lines]
    rng = random.Random(1)
    for _ in range(20000):
        alphabet = PLAIN if rng.random() < 0.5 else PLAIN + TRICKY
        lines.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(12))))
    lines += [chr(c) for c in range(0x20, 0x3100)] + [chr(c) for c in range(0xFE00, 0x10000)]
    lines += ["A\u030a", "e\u0301", "，\u0301", "ΑΣ，", "ΑΣ!", "Σ", "ᄀ\u1161", "가\u11a8", "ｶﾞ", "I\u0307"]
    return lines


def test_line_key_text_equals_normalise_line() -> None:
    from curate.stages.repeated_lines import line_key_text

    for line in _key_test_lines():
        assert line_key_text(line) == normalise_line(line), line


@pytest.mark.parametrize("compiled", [True, False])
def test_plain_key_texts_are_the_keys_of_the_plain_lines(compiled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """`plain_key_texts` over batches of texts made of those lines: a line's key where it is
    plain (`line_key_text`'s fast path), None where it is not; by the compiled loop where
    built, and by numpy (its specification)."""
    import random

    from curate.stages import repeated_lines
    from curate.stages.repeated_lines import _plain_characters, plain_key_texts

    if compiled and repeated_lines._compiled_plain_keys is None:
        pytest.skip("curate._kernels was not built")
    if not compiled:
        monkeypatch.setattr(repeated_lines, "_compiled_plain_keys", None)

    not_plain = _plain_characters()[0]
    lines = [line for line in _key_test_lines() if line.strip() and "\n" not in line]
    lines += ["中\ud800文", "\udfff", "ab\U0001f600"]  # (a lone surrogate, beyond the BMP: not plain)
    rng = random.Random(3)
    texts, at = [], 0
    while at < len(lines):
        size = rng.choice([1, 2, 5, 30])
        texts.append("\n".join(lines[at : at + size]))
        at += size
    for first in range(0, len(texts), 97):
        batch = texts[first : first + 97]
        spans = [nonblank_lines(text) for text in batch]
        for text, found, keys in zip(batch, spans, plain_key_texts(batch, spans), strict=True):
            assert len(keys) == len(found)
            for (s, e), key in zip(found, keys, strict=True):
                line = text[s:e]
                if not_plain.search(line):
                    assert key is None, line
                else:
                    assert key == normalise_line(line), line
    assert plain_key_texts([], []) == [] and plain_key_texts([""], [[]]) == [[]]


def test_plain_codes_are_what_line_key_text_makes_of_each_character() -> None:
    """The table `plain_key_texts` maps characters through, against each BMP character alone."""
    from curate.stages.repeated_lines import (
        _DROPPED_CODE,
        _NOT_PLAIN_CODE,
        _built_plain_codes,
        _plain_characters,
        line_key_text,
    )

    not_plain = _plain_characters()[0]
    table = _built_plain_codes().tolist()
    assert len(table) == 0x10001 and table[0x10000] == _NOT_PLAIN_CODE  # (all past the BMP)
    for point in range(0x10000):
        char = chr(point)
        want = (
            _NOT_PLAIN_CODE if not_plain.search(char)
            else _DROPPED_CODE if line_key_text(char) == ""
            else ord(line_key_text(char))
        )
        assert table[point] == want, hex(point)


@pytest.mark.parametrize("chunk", [1 << 20, 37])
def test_repeated_lines_summaries_of_a_batch_are_those_of_each_line_alone(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`summarise_many` (the plain lines' keys made for the batch at once, or a few documents
    at a time) gives what every line's own `line_key_text` gives, on the sample files and the
    key test's lines."""
    from curate.stages import repeated_lines
    from curate.textutil import text_hash

    monkeypatch.setattr(repeated_lines, "_KEY_CHUNK", chunk)

    stage = RepeatedLines(RepeatedLines.Settings(min_chars=1), RunContext(config=None))
    texts = [path.read_text(encoding="utf-8") for path in sorted(SEEDS.glob("*.txt"))]
    lines = _key_test_lines()
    texts += ["\n".join(lines[i : i + 40]) for i in range(0, len(lines), 40)]
    texts.append("这一行太长了，" * 40)  # (no line that counts: its text is not hashed)
    docs = [Document.new(f"site/{i}.txt", text) for i, text in enumerate(texts)]
    summaries = stage.summarise_many(docs)
    for doc, summary in zip(docs, summaries, strict=True):
        spans = nonblank_lines(doc.text)
        keys = stage._line_keys(doc.text, spans)  # (no key texts given: each line's own)
        counted = dict.fromkeys((k, e - s) for k, (s, e) in zip(keys, spans, strict=True) if k is not None)
        whole = text_hash(doc.text) if counted else 0
        want = (stage.group_of(doc), whole, [k for k, _ in counted], [n for _, n in counted])
        assert summary == want
    assert sum(bool(summary[2]) for summary in summaries) > 0.9 * len(summaries)  # (lines that count)
    assert summaries[-1][1:] == (0, [], [])


def test_composition_seconds_are_all_in_planes_0_and_1() -> None:
    """`_composition_seconds` reads the two-character canonical decompositions below U+20000."""
    import unicodedata

    for point in range(0x20000, 0x110000):
        decomposition = unicodedata.decomposition(chr(point))
        assert not decomposition or decomposition.startswith("<") or " " not in decomposition, hex(point)


def test_a_line_written_in_several_lengths_counts_once_per_document_and_goes_everywhere() -> None:
    footers = ["版权所有 2019，示例网", "版权所有2020,示例网", "版权所有　2021　，示例网", "版权所有2022示例网"]
    docs = [
        Document.new(f"site/{i}.txt", f"{TOPICS[i]}季报道的正文内容，讲述了{TOPICS[i]}边的事情。\n{footers[i % 4]}")
        for i in range(6)
    ]
    for doc in repeated(docs, min_docs=5):
        (edit,) = doc.edits
        assert edit.before.startswith("\n版权所有") and edit.evidence["documents"] == 6
        assert "版权" not in doc.text


def test_repeated_lines_apply_normalises_only_lines_of_a_frequent_length(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skipping the lines whose length no frequent line had changes nothing."""
    import random

    from curate.stages import repeated_lines as module

    rng = random.Random(2)
    footers = ["本站由示例科技提供技术支持", "本站由示例科技提供技术支持 ", "责任编辑：王五", "扫一扫，分享到朋友圈"]
    docs = []
    for i in range(60):
        body = [f"第{i}篇正文，" + "".join(rng.choice(PLAIN[:3]) for _ in range(rng.randrange(5, 40)))]
        body += [rng.choice(footers) for _ in range(rng.randrange(3))]
        rng.shuffle(body)
        docs.append(Document.new(f"site{i % 3}/{i}.txt", "\n".join(body)))
    fast = [(d.text, d.edits) for d in repeated([Document.new(d.source, d.text) for d in docs], min_docs=4)]
    every_line = module.RepeatedLines._line_keys
    monkeypatch.setattr(module.RepeatedLines, "_line_keys",
                        lambda self, text, lines, lengths=None, plain=None: every_line(self, text, lines, plain=plain))
    slow = [(d.text, d.edits) for d in repeated([Document.new(d.source, d.text) for d in docs], min_docs=4)]
    assert fast == slow
    assert sum(len(edits) for _, edits in fast) > 20


# --------------------------------------------------------------------------- credit lines
@pytest.mark.parametrize(
    ("line", "meta"),
    [
        ("编辑：张甲 责任编辑：李乙", {"editor": ["张甲", "李乙"]}),
        ("来源：示例通讯社 作者：韩庚", {"source": "示例通讯社", "author": "韩庚"}),
        ("(记者 赵一 通讯员 钱二)", {"author": ["赵一", "钱二"]}),
        ("本文來源：示例週刊責任編輯：林某_NB123", {"source": "示例週刊", "editor": "林某"}),
        ("（责任编辑：王五_NN2587）", {"editor": "王五"}),
        ("责任编辑：examplefeng", {"editor": "examplefeng"}),
        ("作者 孙甲 李乙", {"author": "孙甲 李乙"}),
        ("文 | 周某", {"author": "周某"}),
        ("示例晚报记者 吴某 实习生 郑某", {"author": ["吴某", "郑某"]}),
    ],
)
def test_credit_lines_move_every_credit_to_meta(line: str, meta: dict) -> None:
    doc, _ = run_stage(f"第一段正文。\n{line}\n第二段正文。")
    assert doc.text == "第一段正文。\n第二段正文。"
    for key, value in meta.items():
        got = doc.meta[key]
        assert sorted(got) == sorted(value) if isinstance(value, list) else got == value
    assert all(e.kind == "credit" for e in doc.edits)


@pytest.mark.parametrize(
    "line",
    [
        "记者：你怎么看这件事？",
        "记者手记",
        "他说：来源：示例社 作者：张三",
        "来源：示例通讯社 作者：张三，今天发布了报告。",
        "小说的作者王某某在书中写道：",
    ],
)
def test_credit_inside_a_sentence_stays(line: str) -> None:
    doc, _ = run_stage(f"第一段正文。\n{line}\n第二段正文。")
    assert line in doc.text
    assert not doc.edits


def test_group_of_a_url_is_the_host_urlsplit_gives() -> None:
    """The plain-URL shortcut of `group_of` agrees with urlsplit on URLs of every shape."""
    import itertools
    from urllib.parse import urlsplit

    stage = RepeatedLines(CFG["repeated_lines"], RunContext(config=CFG, rules=RULES))

    def reference(url: str) -> str:
        host = urlsplit(url).hostname or ""
        return host.removeprefix("www.") if host else "site"

    parts = itertools.product(
        ["", " ", "\x00"],
        ["http", "HTTPS", "ftp", "a+b.c-d", "1http", ""],
        ["://", ":/", "//", ":"],
        ["Example.COM", "www.News.qq.com", "a-b.c", "", "user@host", "host:8080", "[::1]", "ex ample.com",
         "ex\tample.com", "例子.cn", "%41.com", "WWW.x.cn"],
        ["", "/", "/a/b?c#d", "?q=1", "#f", "/x y", "\n", "/@:", "\t/"],
    )
    for lead, scheme, sep, host, tail in parts:
        url = lead + scheme + sep + host + tail
        doc = Document.new("site/1.txt", "正文", meta={"url": url})
        try:
            want = reference(url)
        except ValueError:
            with pytest.raises(ValueError):
                stage.group_of(doc)
            continue
        assert stage.group_of(doc) == want, url


@given(
    st.text(alphabet=st.sampled_from(list("字a ，\u3000\t")), max_size=30),
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 8)), max_size=4),
)
@settings(max_examples=300, deadline=None)
def test_a_line_is_blank_without_its_inline_removals_as_if_they_were_spaces(line: str, cuts: list[tuple[int, int]]) -> None:
    # A line that inline removals leave empty goes as a whole line: whether it is empty is read
    # between the removals (`_blank_without`), the same as with them replaced by spaces.
    from curate.stages.boilerplate import _blank_without

    taken: list[tuple[int, int, None]] = []
    for start, length in cuts:  # (not overlapping, as the stage takes them)
        start, end = min(start, len(line)), min(start + length, len(line))
        if not any(start < e and s < end for s, e, _ in taken):
            taken.append((start, end, None))
    spaced = list(line)
    for start, end, _ in taken:
        spaced[start:end] = [" "] * (end - start)
    assert _blank_without(line, taken) is (not "".join(spaced).strip())


def test_a_stopped_search_is_not_stopped_again_while_it_is_reported(tmp_path: Path, monkeypatch) -> None:
    # The tick that stops a search leaves the watch inside it until `_searched` leaves; a tick
    # delivered meanwhile (while the timeout is reported, here simulated by the flag being
    # added) must not raise again: that TimeoutError would escape the stage and end the run.
    from curate import rules as rules_module

    rules, _ = slow_rules(tmp_path)
    added = Document.add_flag

    def flagged_as_a_tick_arrives(self, *args, **kwargs):
        rules_module._WATCH.tick()
        return added(self, *args, **kwargs)

    monkeypatch.setattr(Document, "add_flag", flagged_as_a_tick_arrives)
    doc, _ = run_stage("a" * 40 + "b", rules=rules, timeout_seconds=0.05)
    assert_timed_out(doc)


def test_the_watch_stops_a_search_once() -> None:
    watch = SearchWatch()
    watch.enter()
    for _ in range(SearchWatch.TICKS):
        watch.tick()
    with pytest.raises(TimeoutError):
        watch.tick()
    for _ in range(SearchWatch.TICKS - 1):  # the stopped search's handler still runs: no second stop
        watch.tick()
    watch.leave()
