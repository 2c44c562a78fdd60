"""Corrupted-span detectors: every kind, on the sample files and on cases built here."""

from __future__ import annotations

import re
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from curate import config
from curate.detectors import (
    DetectorContext,
    SpamLexicon,
    TextBatch,
    default_lexicon_path,
    garbage,
    mojibake,
    obfuscation,
    run_detectors,
    spam,
)
from curate.detectors.bigram import (
    BOS,
    COMPILED_ARRAYS,
    DEFAULT_TABLE,
    EMPTY_SLOT,
    SPACE,
    BigramModel,
    PairTable,
    _pair_slots,
    default_model,
)
from curate.document import Change, Document, Flag
from curate.stages.base import RunContext
from curate.stages.corruption import CorruptedSpans

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
SPAM_SAMPLE = "003_ab88bb197f24876c.txt"
SPLICE_SAMPLE = "004_5125428be5d646b6.txt"
CLEAN_SAMPLES = [
    "000_d8f9418d4d2c02c0.txt",
    "001_111c6d80ae2118eb.txt",
    "002_dbff6237658d6289.txt",
    "004_5125428be5d646b6.txt",
]
PROSE = (
    "今天上午，全市志愿服务工作推进会在市民中心召开。会议总结了过去一年的工作，"
    "部署了下一阶段的重点任务。与会代表一致认为，要进一步完善服务体系，"
    "让更多群众参与到志愿服务中来。\n"
)


@pytest.fixture(scope="module")
def stage() -> CorruptedSpans:
    cfg = config.build({})
    return CorruptedSpans(cfg["corruption"], RunContext(cfg))


def flags_of(stage: CorruptedSpans, text: str, kind: str | None = None) -> list[Flag]:
    doc = Document.new("case.txt", text)
    stage.process(doc)
    return [f for f in doc.flags if kind is None or f.kind == kind]


def read_seed(name: str) -> str:
    return (SEEDS / name).read_text(encoding="utf-8")


# ---------------------------------------------------------------- spam-injection
def test_spam_sample_003_flags_exactly_the_two_injected_spans(stage):
    text = read_seed(SPAM_SAMPLE)
    phrase = "ld体育中国官方网站"
    first = text.find(phrase)
    second = text.find(phrase, first + 1)
    assert first != -1 and second != -1 and text.find(phrase, second + 1) == -1
    flags = flags_of(stage, text, "spam-injection")
    assert [(f.start, f.end) for f in flags] == [
        (first, first + len(phrase)),
        (second, second + len(phrase)),
    ]
    for flag in flags:
        assert flag.text == phrase
        assert flag.detector == "spam"
        assert "glued" in flag.evidence["signals"]  # not the lexicon alone


@pytest.mark.parametrize("name", CLEAN_SAMPLES)
def test_clean_samples_have_no_spam_or_garbage_flags(stage, name):
    flags = flags_of(stage, read_seed(name))
    assert [f for f in flags if f.kind in ("spam-injection", "garbage")] == []


def test_spam_needs_a_signal_beyond_the_lexicon(stage):
    # Sports-lottery news is full of lexicon words, but nothing is glued or broken.
    text = "中国体育彩票管理中心今天公布了本期体育彩票的开奖结果，体育彩票销量同比增长。"
    assert flags_of(stage, text, "spam-injection") == []


def test_spam_brand_code_glued_inside_a_sentence(stage):
    text = "会议指出，作为xk888金沙线路国落实工作的顶层设计，方案已经印发。"
    flags = flags_of(stage, text, "spam-injection")
    assert [f.text for f in flags] == ["xk888金沙线路"]


def test_spam_brand_repeated_in_place_of_a_name(stage):
    text = "星辰贵宾会组织开展返校检测工作。此次是星辰贵宾会第二次开展全员检测。"
    flags = flags_of(stage, text, "spam-injection")
    assert [f.text for f in flags] == ["星辰贵宾会", "星辰贵宾会"]
    assert all("repeated" in f.evidence["signals"] for f in flags)


def test_spam_acronym_is_not_a_site_code(stage):
    assert flags_of(stage, "观众可以在CCTV5体育频道收看比赛直播。", "spam-injection") == []


# ---------------------------------------------------------------- mojibake
def test_mojibake_replacement_character_run(stage):
    text = PROSE + "记者从现场了解到\ufffd\ufffd\ufffd目前交通已经恢复正常。\n"
    flags = flags_of(stage, text, "mojibake")
    assert [f.text for f in flags] == ["\ufffd\ufffd\ufffd"]


def test_mojibake_kun_jin_kao_run(stage):
    garbled = "\ufffd\ufffd".encode().decode("gbk")  # U+FFFD's UTF-8 bytes read as GBK
    assert garbled == "锟斤拷"
    text = PROSE + f"本次活动共吸引{garbled}{garbled}名群众参加。\n"
    flags = flags_of(stage, text, "mojibake")
    assert [f.text for f in flags] == [garbled * 2]


def test_mojibake_byte_shifted_gbk_between_question_marks(stage):
    sentence = "各地群众踊跃参加志愿服务活动"
    shifted = sentence.encode("gbk")[1:].decode("gbk", errors="replace").split("\ufffd")[0]
    assert len(shifted) >= 8 and shifted != sentence[1:]
    text = PROSE + f"活动在市中心广场举行。?{shifted}?务活动，气氛热烈。\n"
    flags = flags_of(stage, text, "mojibake")
    assert [f.text for f in flags] == [f"?{shifted}?"]
    assert flags[0].detector == "mojibake.shifted"


def test_mojibake_question_marks_for_lost_characters(stage):
    text = PROSE + "会议于二??八年召开，歌手徐小?出席了活动。\n"
    flags = flags_of(stage, text, "mojibake")
    assert [f.text for f in flags] == ["??", "?"]


def test_mojibake_real_question_marks_are_not_flagged(stage):
    text = (
        PROSE
        + "你明天来吗?我们一起去。为什么要这样做?大家都很关心。这会不会影响工作?答案是不会。\n"
    )
    assert flags_of(stage, text, "mojibake") == []


def test_mojibake_utf8_read_as_gbk(stage):
    garbled = "我们的城市发展很快".encode().decode("gbk", errors="replace")
    text = PROSE + f"原文如下：{garbled}\n"
    flags = flags_of(stage, text, "mojibake")
    assert len(flags) == 1 and flags[0].detector == "mojibake.utf8-as-gbk"
    assert flags[0].text in garbled and len(flags[0].text) >= len(garbled) // 2


# ---------------------------------------------------------------- obfuscation
def test_obfuscation_bracketed_pinyin(stage):
    text = PROSE + "本店位于青(qing)岛市(shi)市南区，欢迎来电。\n"
    flags = flags_of(stage, text, "obfuscation")
    assert [f.text for f in flags] == ["青(qing)岛市(shi)"]


def test_obfuscation_bracketed_english_is_not_pinyin(stage):
    text = PROSE + "国际奥委会(IOC)和世界卫生组织(WHO)发表联合声明，首届论坛(forum)将于明年举行。\n"
    assert flags_of(stage, text, "obfuscation") == []


def test_obfuscation_filler_symbols_and_control_characters(stage):
    text = PROSE + "详情请加*微*信*号咨询。\n相关\x07规定\x1b已经公布。\n"
    flags = flags_of(stage, text, "obfuscation")
    assert [f.text for f in flags] == ["加*微*信*号", "\x07", "\x1b"]


def test_obfuscation_filler_run_of_han_outside_the_basic_block(stage):
    """Han of other planes and blocks (extension B, radicals, 〇) count as FILLER's \\p{Han}
    does: the pre-check read U+3400-U+9FFF only, and never ran the pattern on these."""
    for run in ("加*𠀀*𠀁*𠀂", "加#⺀#〇#⻀", "加|𠀀|微|信"):
        flags = flags_of(stage, PROSE + f"详情请{run}咨询。\n", "obfuscation")
        assert [f.text for f in flags] == [run], run


# ---------------------------------------------------------------- truncated
def test_truncated_paragraph_at_the_end_of_the_document(stage):
    text = PROSE + "今年以来，全市新建各类学校十二所，其中普通高中三所，另有一批项目正在加紧"
    flags = flags_of(stage, text, "truncated")
    assert [f.text for f in flags] == ["另有一批项目正在加紧"]
    assert flags[0].end == len(text)


def test_truncated_paragraph_at_the_end_of_a_section(stage):
    cut = "今年以来，全市新建各类学校十二所，改扩建幼儿园二十所，预计明年秋季"
    text = PROSE + cut + "\n加强队伍建设\n" + PROSE
    flags = flags_of(stage, text, "truncated")
    assert [f.text for f in flags] == ["预计明年秋季"]


def test_truncated_ignores_headings_bylines_and_complete_paragraphs(stage):
    text = "守望相助 和谐发展\n" + PROSE + "加强队伍建设\n" + PROSE + "本报记者 张三\n"
    assert flags_of(stage, text, "truncated") == []


# ---------------------------------------------------------------- garbage
def test_garbage_window_of_misdecoded_text(stage):
    noise = "各地群众踊跃参加志愿服务活动，现场气氛十分热烈".encode("gbk").decode(
        "big5", errors="replace"
    )
    text = PROSE * 3 + f"附件内容：{noise}\n" + PROSE * 3
    flags = flags_of(stage, text, "garbage")
    start = text.index(noise)
    assert len(flags) == 1
    assert start - 4 <= flags[0].start and flags[0].end <= start + len(noise) + 4
    assert flags[0].evidence["peak_bits"] >= flags[0].evidence["threshold_bits"]


def test_garbage_not_flagged_on_clean_prose_with_rare_words(stage):
    text = (
        PROSE * 2
        + "展会上，蕾丝长裙、阔腿裤、帆布鞋和镂空手袋一一亮相，设计师们介绍了今年的流行色。\n"
    )
    assert flags_of(stage, text, "garbage") == []


# ---------------------------------------------------------------- splice
def _remove_as_duplicate(doc: Document, start: int, end: int) -> None:
    doc.apply(
        "dedup",
        [Change(start, end, "", rule="dedup.passage", reason="repeated passage", kind="duplicate")],
    )


def test_splice_seam_in_sample_004_after_the_duplicate_is_removed(stage):
    text = read_seed(SPLICE_SAMPLE)
    seam_words = "创新推出邮政"
    seam = text.index(seam_words) + len(seam_words)
    line_end = text.index("\n", seam)
    doc = Document.new(SPLICE_SAMPLE, text)
    _remove_as_duplicate(doc, seam, line_end)
    stage.process(doc)
    splices = [f for f in doc.flags if f.kind == "splice"]
    assert [(f.text, f.end) for f in splices] == [(seam_words, seam)]
    # The cut paragraph is explained by the splice: it is not also "truncated".
    assert not [f for f in doc.flags if f.kind == "truncated" and f.end == seam]
    assert doc.reconstruct_input() == text


def test_splice_not_double_flagged_when_dedup_already_flagged_it(stage):
    text = PROSE + "会议要求，创新推出邮政古自治区示范单位测评办法，确保工作高效开展。\n"
    seam = text.index("古自治区")
    doc = Document.new("case.txt", text)
    _remove_as_duplicate(doc, seam, text.index("，确保"))
    doc.add_flag(Flag("splice", seam - 6, seam, "创新推出邮政", "seam", detector="dedup"))
    stage.process(doc)
    assert [f.detector for f in doc.flags if f.kind == "splice"] == ["dedup"]


def test_splice_not_flagged_when_the_removed_passage_began_a_sentence(stage):
    text = PROSE + "会议要求确保工作高效开展。重复的一段文字在这里。\n"
    start = text.index("重复")
    doc = Document.new("case.txt", text)
    _remove_as_duplicate(doc, start, text.index("\n", start))
    stage.process(doc)
    assert [f for f in doc.flags if f.kind == "splice"] == []


# ---------------------------------------------------------------- the stage
def test_stage_reads_the_lexicon_from_the_configured_rule_folder(tmp_path):
    (tmp_path / "lexicons").mkdir()
    (tmp_path / "lexicons" / "spam.toml").write_text(
        '[strong]\nterms = ["好运来"]\n[gambling]\nterms = []\n[web]\nterms = []\n'
        "[connectors]\nterms = []\n[brand_patterns]\npatterns = []\n",
        encoding="utf-8",
    )
    cfg = config.build({"run": {"rules": [str(tmp_path)]}})
    stage = CorruptedSpans(cfg["corruption"], RunContext(cfg))
    text = "市民好运来中心开业。好运来中心位于城东。"
    assert [f.text for f in flags_of(stage, text, "spam-injection")] == ["好运来", "好运来"]
    assert stage.detector_context().lexicon.origin.startswith(str(tmp_path))


def test_stage_runs_only_the_configured_kinds():
    cfg = config.build({"corruption": {"kinds": ["mojibake"]}})
    stage = CorruptedSpans(cfg["corruption"], RunContext(cfg))
    flags = flags_of(stage, read_seed(SPAM_SAMPLE) + "\ufffd")
    assert {f.kind for f in flags} == {"mojibake"}


def test_stage_rejects_an_unknown_kind():
    cfg = config.build({"corruption": {"kinds": ["spam"]}})
    with pytest.raises(ValueError, match="unknown kind"):
        CorruptedSpans(cfg["corruption"], RunContext(cfg))


def test_detectors_are_deterministic_and_do_not_change_the_text():
    ctx = DetectorContext(lexicon=SpamLexicon.load(default_lexicon_path()))
    text = read_seed(SPAM_SAMPLE)
    doc_a, doc_b = Document.new("a", text), Document.new("a", text)
    flags_a, flags_b = run_detectors(doc_a, ctx), run_detectors(doc_b, ctx)
    assert [f.to_json() for f in flags_a] == [f.to_json() for f in flags_b]
    assert doc_a.text == text and doc_a.edits == []


# ---------------------------------------------------------------- fast paths: same results
# The model loads compiled arrays, looks pairs up in a perfect hash table, and the stage works
# on batches of texts joined end to end; none of it may change a value. Each is checked here
# against a plain computation on texts of every kind the pipeline meets.
TRADITIONAL = "這是繁體中文的新聞報導，記者從現場了解到，目前交通已經恢復正常。\r\n"
NOISE = "各地群众踊跃参加志愿服务活动，现场气氛十分热烈".encode("gbk").decode(
    "big5", errors="replace"
)


def varied_texts() -> list[str]:
    """Empty, short, CRLF, Traditional, non-BMP, control and replacement characters, noise that
    the garbage detector flags, line breaks at the edges, the samples, and random mixtures."""
    texts = [
        "",
        "a",
        "\n",
        "\n\n \n",
        "短文。",
        PROSE,
        PROSE.replace("\n", "\r\n") * 2,
        TRADITIONAL * 3,
        "𠀀𠀁𪚥中文\U0001f600，生僻字\U000e0001测试。" * 4,
        "相关\x07规定\x1b已经公布\ufffd\ufffd，锟斤拷烫烫。" * 3,
        PROSE * 3 + f"附件内容：{NOISE}\n" + PROSE * 3,
        f"{NOISE}\n{NOISE}",
        "\n" + PROSE + " ",
        "NBA CCTV5 2023-10-01 http://example.com/a?b=1 " * 5,
        "观众可以在CCTV5体育频道收看比赛直播。作为xk888金沙线路国落实工作的顶层设计。" * 2,
    ]
    texts += [read_seed(name) for name in sorted(p.name for p in SEEDS.glob("*.txt"))]
    pieces = [PROSE[:20], NOISE[:15], "\n", "\r\n", " ", "abc", "123", TRADITIONAL[:10], "𠀀𠀁"]
    rng = np.random.default_rng(9)
    for _ in range(30):
        texts.append("".join(rng.choice(pieces, size=int(rng.integers(0, 40))).tolist()))
    return texts


@cache
def stored_pairs() -> dict[int, float]:
    """Pair key -> bits, of the shipped model's table, as a plain dict."""
    model = default_model()
    return {
        key: bits
        for key, bits in zip(model.slot_keys.tolist(), model.slot_bits.tolist(), strict=True)
        if key != EMPTY_SLOT
    }


def plain_surprise(text: str) -> np.ndarray:
    """Character by character: the stored pair's bits, else backoff + unigram (in float32)."""
    model = default_model()
    pairs, n, prev, out = stored_pairs(), len(model.symbols), BOS, []
    for symbol in model.ids(text).tolist():
        key = prev * n + symbol
        fallback = np.float32(model.backoff_bits[prev]) + np.float32(model.unigram_bits[symbol])
        out.append(pairs.get(key, fallback))
        prev = symbol
    return np.array(out, dtype=np.float32)


def test_shipped_model_is_the_shipped_counts_compiled():
    shipped, compiled = default_model(), BigramModel.load(DEFAULT_TABLE)
    assert shipped.symbols == compiled.symbols
    for name in COMPILED_ARRAYS:
        ours, theirs = getattr(shipped, name), getattr(compiled, name)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), name


def test_compiled_model_file_is_deterministic_and_loads_back(tmp_path):
    model = default_model()
    model.save(tmp_path / "a.npz")
    model.save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = BigramModel.load(tmp_path / "a.npz")
    assert loaded.symbols == model.symbols
    for name in COMPILED_ARRAYS:
        assert np.array_equal(getattr(loaded, name), getattr(model, name)), name


@pytest.mark.parametrize("size", [0, 1, 2, 3, 50, 4000])
def test_pair_table_holds_every_key_in_its_slot_and_no_other(size):
    rng = np.random.default_rng(size)
    keys = np.unique(rng.integers(0, int(EMPTY_SLOT), size=size * 2, dtype=np.uint32))[:size]
    keys = rng.permutation(keys)
    bits = rng.random(keys.size, dtype=np.float32)
    table = PairTable.build(keys, bits)
    slots = _pair_slots(keys, table.bucket_salts, table.slot_keys.size)
    assert np.array_equal(table.slot_keys[slots], keys)
    assert np.array_equal(table.slot_bits[slots], bits)
    assert int((table.slot_keys != EMPTY_SLOT).sum()) == keys.size
    others = np.setdiff1d(rng.integers(0, int(EMPTY_SLOT), size=1000, dtype=np.uint32), keys)
    others_slots = _pair_slots(others, table.bucket_salts, table.slot_keys.size)
    assert not (table.slot_keys[others_slots] == others).any()


def test_surprise_is_the_plain_lookup_alone_and_in_a_batch():
    model, texts = default_model(), varied_texts()
    batch = TextBatch.of(texts, model)
    for i, text in enumerate(texts):
        expected = plain_surprise(text)
        alone = model.surprise(text)
        assert alone.dtype == np.float32 and np.array_equal(alone, expected), repr(text[:30])
        assert np.array_equal(batch.surprise[batch.span(i)], expected), repr(text[:30])
        assert np.array_equal(batch.ids[batch.span(i)], model.ids(text))


def test_a_text_is_located_in_the_batch_prepared_last():
    """`DetectorContext.locate` keeps its last answer: a new batch (or a text of its own) must
    not be answered from it."""
    ctx = DetectorContext(lexicon=SpamLexicon.load(default_lexicon_path()))
    first, second = "第一段正文。", "第二段正文，"
    ctx.prepare([first, second])
    assert ctx.locate(second) == (ctx._batch, 1) and ctx.locate(second) == (ctx._batch, 1)
    ctx.prepare([second, first])
    batch, i = ctx.locate(second)
    assert (batch, i) == (ctx._batch, 0) and batch.texts[i] is second
    alone = "不在批中的正文"
    batch, i = ctx.locate(alone)
    assert batch is not ctx._batch and batch.texts == [alone] and i == 0
    assert ctx.locate(first) == (ctx._batch, 1) and ctx.locate(alone) == (batch, 0)
    ctx.prepare([alone])
    assert ctx.locate(alone) == (ctx._batch, 0) and ctx._batch is not batch


def reference_garbage(text: str, ctx: DetectorContext) -> list[dict]:
    """The garbage detector computed plainly, one text at a time, baseline always (the spec)."""
    width = ctx.garbage_window
    if len(text) < 2 * width:
        return []
    ids = ctx.model.ids(text).astype(np.int64)
    bits = plain_surprise(text).astype(np.float64)
    skipped = (ids == SPACE) | np.concatenate(([False], ids[:-1] == SPACE))
    bits[skipped] = np.nan
    valid = ~np.isnan(bits)
    sums = np.convolve(np.where(valid, bits, 0.0), np.ones(width), "valid")
    counts = np.array([valid[i : i + width].sum() for i in range(len(text) - width + 1)], float)
    is_han = ctx.model.han_symbols[ids]
    han = np.array([is_han[i : i + width].sum() for i in range(len(text) - width + 1)], float)
    usable = (counts >= width * 0.75) & (han >= width * garbage.MIN_HAN_SHARE)
    if not usable.any():
        return []
    means = np.where(usable, sums / np.maximum(counts, 1), 0.0)
    baseline = float(np.median(means[usable]))
    threshold = max(ctx.garbage_min_bits, baseline + ctx.garbage_margin_bits)
    flags, spans = [], []
    for i in np.flatnonzero(usable & (means >= threshold)).tolist():
        if spans and i <= spans[-1][1]:
            spans[-1][1] = i + width
        else:
            spans.append([i, i + width])
    for start, end in spans:
        peak = float(means[start : end - width + 1].max())
        flags.append(
            {"span": (start, end), "peak": round(peak, 2), "doc": round(baseline, 2),
             "threshold": round(threshold, 2)}
        )  # fmt: skip
    return flags


@pytest.mark.parametrize(
    "settings",
    [{}, {"garbage_min_bits": 9.0, "garbage_margin_bits": 1.0}, {"garbage_window": 8}],
)
def test_garbage_alone_and_in_batches_is_the_plain_computation(settings):
    ctx = DetectorContext(lexicon=SpamLexicon.load(default_lexicon_path()), **settings)
    texts = varied_texts()
    expected = [reference_garbage(text, ctx) for text in texts]
    assert any(expected)  # the comparison covers flagged texts too

    def seen(flags: list[Flag]) -> list[dict]:
        return [
            {"span": (f.start, f.end), "peak": f.evidence["peak_bits"],
             "doc": f.evidence["document_bits"], "threshold": f.evidence["threshold_bits"]}
            for f in flags
        ]  # fmt: skip

    alone = [seen(garbage.detect(Document.new("x", text), ctx)) for text in texts]
    assert alone == expected
    docs = [Document.new("x", text) for text in texts]
    ctx.prepare([doc.text for doc in docs])
    assert [seen(garbage.detect(doc, ctx)) for doc in docs] == expected


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1.0, 4000.0), st.integers(0, 64), st.booleans()),
        min_size=1,
        max_size=40,
    ),
    st.integers(0, 39),
    st.sampled_from([-1, 0, 1]),
    st.floats(-5.0, 300.0),
)
@example([(272.0, 16, True), (271.99999999999997, 16, True)], 0, 0, 17.0)  # a mean of exactly 17
@example([(2.2250738585e-313, 12, True)], 0, 0, 0.0)  # a subnormal mean (found by hypothesis)
def test_garbage_reaching_windows_are_those_whose_mean_reaches(
    windows: list[tuple[float, int, bool]], pick: int, step: int, other: float
) -> None:
    """The multiplication that rules windows out never rules out one whose mean (the general
    computation) reaches the floor, down to a floor equal to a mean or one ulp either side."""
    sums = np.array([w[0] for w in windows])
    counts = np.array([float(w[1]) for w in windows])
    usable = np.array([w[2] for w in windows])
    means = garbage._means(sums, counts, usable)
    at = float(means[pick % len(means)])
    for floor in (float(np.nextafter(at, at + step)) if step else at, other, 17.0):
        expected = np.flatnonzero(usable & (means >= floor))
        assert np.array_equal(garbage._reaching(sums, counts, usable, floor), expected), floor


def test_stage_in_batches_flags_as_document_by_document(monkeypatch):
    texts = varied_texts() * 2
    cfg = config.build({})

    def documents() -> list[Document]:
        docs = [Document.new(f"{i}.txt", text) for i, text in enumerate(texts)]
        docs[3].status = "quarantined"  # not processed, in a batch or not
        return docs

    one_by_one = documents()
    stage = CorruptedSpans(cfg["corruption"], RunContext(cfg))
    for doc in one_by_one:
        if doc.status == "ok":
            stage.process(doc)
    assert any(doc.flags for doc in one_by_one)
    monkeypatch.setattr(CorruptedSpans, "batch_documents", 7)
    monkeypatch.setattr(CorruptedSpans, "batch_characters", 3000)
    batched = list(CorruptedSpans(cfg["corruption"], RunContext(cfg)).run(iter(documents())))
    assert [doc.source for doc in batched] == [doc.source for doc in one_by_one]
    assert [[f.to_json() for f in doc.flags] for doc in batched] == [
        [f.to_json() for f in doc.flags] for doc in one_by_one
    ]
    assert batched[3].flags == []


def full_scan_spans(text: str, lexicon: SpamLexicon) -> list[tuple[int, int]]:
    """Candidate chains found the plain way: every anchor (no pre-check), every chain in reach."""
    _, chain_re, _, _ = spam._compiled(lexicon)
    terms = sorted(set(lexicon.strong) | set(lexicon.gambling), key=lambda t: (-len(t), t))
    han = "|".join(re.escape(t) for t in terms if not t.isascii())
    latin = "|".join(re.escape(t) for t in terms if t.isascii())
    anchors = list(re.finditer(han, text)) + list(
        re.finditer(f"(?<![A-Za-z0-9])(?:{latin})(?![A-Za-z0-9])", text)
    )
    spans = set()
    for anchor in anchors:
        lo, hi = max(0, anchor.start() - 40), min(len(text), anchor.end() + 40)
        for match in chain_re.finditer(text, lo, hi):
            if match.start() <= anchor.start() < match.end():
                spans.add(match.span())
    return sorted(spans)


def test_spam_candidates_are_the_chains_a_full_scan_finds():
    lexicon = SpamLexicon.load(default_lexicon_path())
    texts = list(lexicon.spam_examples) + list(lexicon.clean_examples) + varied_texts()
    texts += [
        "xbet365体育 bet365x bet365 体育bet365官网 pk10彩票 PK10yabo leyu娱乐城",
        "体育" * 30 + "中国体育彩票管理中心" + "娱乐" * 25 + "ld体育中国官方网站" * 3,
        "开展民族ld体育中国官方网站宣传月活动，" * 5 + "星辰贵宾会体育app下载手机版",
    ]
    for text in texts:
        found = [(start, end) for start, end, _ in spam.candidates(text, lexicon)]
        assert found == full_scan_spans(text, lexicon), text[:40]


def spam_pieces() -> list[str]:
    """Gambling words, their first and second characters alone, Latin/Han filler around them."""
    lexicon = SpamLexicon.load(default_lexicon_path())
    anchors = sorted(set(lexicon.strong) | set(lexicon.gambling))
    pieces = anchors + [t[0] for t in anchors] + [t[1:2] for t in anchors]
    return pieces + ["ld", "中国", "，", "官方网站", "x", "9", " ", "\n", "。", "赌", "钱"]



@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*spam_pieces(), "官", "网", "app", "APP", "棋牌", "游戏"]), max_size=30).map("".join))
def test_the_chain_regexs_look_ahead_changes_no_chain(text: str) -> None:
    # The look-ahead for the terms' first characters (`spam._first_of`) only skips positions
    # where no term starts: every chain the regex finds, from every start, is as without it.
    from curate import patterncache

    lexicon = SpamLexicon.load(default_lexicon_path())
    _, guarded, _, weights = spam._compiled(lexicon)
    assert spam._first_of(weights) in guarded.pattern
    plain = patterncache.compile(guarded.pattern.replace(spam._first_of(weights), "", 1))
    for start in range(0, len(text) + 1, 3):
        assert [m.span() for m in guarded.finditer(text, start)] == [m.span() for m in plain.finditer(text, start)]

def opens(word: str, text: str) -> bool:
    """Whether the first two characters of `word` (all of a one-character one) are in `text`,
    those of a Latin word after no letter or digit, as its anchor pattern wants."""
    before = "(?<![A-Za-z0-9])" if word.isascii() and len(word) > 1 else ""
    return re.search(before + re.escape(word[:2]), text) is not None


# A lexicon with one-character gambling words, which the pre-check looks for alone.
ONE_CHARACTER_WORDS = SpamLexicon(
    strong=("赌", "bet365", "be体"), gambling=("彩", "体育", "le"), web=("官网",), connectors=(), brand_patterns=()
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([*spam_pieces(), *"Z@[`{/:\x10"]), max_size=12).map("".join),
        max_size=6,
    )
)
@example(["民族ld体", "育中国", "", "体育"])  # an opening split across two texts is not one
# A Latin word's opening after a letter or digit is not one (after a control character it is)...
@example(["xbet365", "9bet365", "中bet365", "bet365", "x", "bet365", "Xle", "\x10be"])
@example(["abe体", "赌"])  # ...an opening shared with a non-Latin word needs no word start
def test_spam_precheck_is_the_search_for_a_gambling_word_opening(texts: list[str]) -> None:
    """Texts the pre-check lets `spam.detect` skip have no candidate (the general path)."""
    for lexicon in (SpamLexicon.load(default_lexicon_path()), ONE_CHARACTER_WORDS):
        batched = DetectorContext(lexicon=lexicon)
        batched.prepare(texts)
        alone = DetectorContext(lexicon=lexicon, model=batched.model)
        anchors = set(lexicon.strong) | set(lexicon.gambling)
        for ctx in (batched, alone):
            for text in texts:
                may_have = ctx.derived("spam", text, spam._prechecks)
                assert may_have == any(opens(word, text) for word in anchors), repr(text)
                assert may_have or not spam.candidates(text, lexicon), repr(text)


# The searches the detectors' batch pre-checks stand for (their specification): one text at a
# time, with the stdlib.
OBFUSCATION_PRECHECKS = [r"[(（][a-zü]", r"[*#|~^_+/\\][\u3400-\u9fff]", r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]"]
FILLER_REPEATS = r"([*#|~^_+/\\])[^\x00-\x7f]\1"  # (with the filler's pre-check, above)
MOJIBAKE_PRECHECKS = ["\ufffd", "[锟烫屯]", r"\?", "[\u00c0-\u00ff]"]
SIGNATURE_SET = mojibake.utf8_as_gbk_signature() | {"\ufffd"}
SIGNATURE_CHARS = sorted(SIGNATURE_SET)
# Characters in, at the edges of, and just outside every class above.
PRECHECK_ALPHABET = (
    "(（)（a`{züÜA*#|~^_+/\\-\u3400\u33ff中\u9fff\ua000\x00\x08\t\n\x0b\x0c\r\x0e\x1f\x20\x7e"
    "\x7f\x9f\xa0\ufffd锟烫屯斤?？\xbf\xc0\xff\u0100😀 \ud800"
) + "".join(SIGNATURE_CHARS[:4] + SIGNATURE_CHARS[-2:])


def expected_prechecks(text: str) -> tuple[tuple[bool, ...], int, list[int] | None]:
    pinyin, filler, control = (re.search(p, text) is not None for p in OBFUSCATION_PRECHECKS)
    obfuscation_found = (pinyin, filler and re.search(FILLER_REPEATS, text) is not None, control)
    bits = sum(1 << k for k, p in enumerate(MOJIBAKE_PRECHECKS) if re.search(p, text))
    positions = [i for i, c in enumerate(text) if c in SIGNATURE_SET]
    dense = len(positions) >= mojibake.SIGNATURE_WINDOW * mojibake.SIGNATURE_SHARE
    return obfuscation_found, bits, positions if dense else None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=PRECHECK_ALPHABET, max_size=16), max_size=8))
@example(["中(", "a中", "*", "中", "(", "ü"])  # pairs across two texts are not pairs
@example(["", "鍙鐨涓妗", "鏄", "", "鍙鐨涓\ufffd鏄浠"])  # enough signature characters, and not
@example(["中*中*", "*中", "*", "*\x7f*中", "/中/", "中|\u33ff|", "|中*", "*中", "*"])  # filler repeats
def test_batch_prechecks_are_the_searches_they_stand_for(texts: list[str]) -> None:
    batched = DetectorContext(lexicon=SpamLexicon.load(default_lexicon_path()))
    batched.prepare(texts)
    alone = DetectorContext(lexicon=batched.lexicon, model=batched.model)
    for ctx in (batched, alone):
        for text in texts:
            found = ctx.derived("obfuscation", text, obfuscation._prechecks)
            bits, signature = ctx.derived("mojibake", text, mojibake._prechecks)
            assert (found, bits, signature) == expected_prechecks(text), repr(text)


def test_a_lone_surrogate_is_a_character_like_any_other():
    """A JSON record may hold one (repair keeps them): the detectors look through it."""
    stage = CorruptedSpans(config.build({})["corruption"], RunContext(config.build({})))
    docs = [Document.new("x", "正文\ud800加*微*信*号，烫烫烫烫。"), Document.new("y", "\ud800")]
    stage.process_batch(docs)
    assert {f.kind for f in docs[0].flags} >= {"obfuscation", "mojibake"}
    assert docs[1].flags == []


@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([0.0, -0.0]), max_size=40),
    st.sampled_from([np.float64, np.float32]),
)
@settings(max_examples=300, deadline=None)
def test_garbage_baseline_median_is_numpys(values: list[float], dtype: type) -> None:
    """The garbage detector's baseline (`garbage._median`, which spares the run numpy.ma's
    import) is `np.median`'s value, sign included: the middle one, the mean of the two middle
    ones, or NaN."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (np.median of nothing warns; float32 may overflow)
        array = np.array(values).astype(dtype)
        want = float(np.median(array))
        got = garbage._median(array)
    assert (got == want and np.signbit(got) == np.signbit(want)) or (np.isnan(got) and np.isnan(want))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(["新", "闻", "报道", "\n", "a", "1", "𠀀", "\U00030001", "锟斤拷"]), max_size=12).map("".join), min_size=1, max_size=4),
    st.integers(0, 3),
    st.one_of(st.none(), st.integers(-15, 15)),
    st.one_of(st.none(), st.integers(-15, 15)),
    st.booleans(),
)
def test_a_texts_surprise_alone_is_the_batchs(
    texts: list[str], pick: int, start: int | None, stop: int | None, with_ids: bool
) -> None:
    # Any range of a text (as a slice takes it: negative, past the end, empty), computed alone
    # (from the character before it), is the batch's surprise there, bit for bit.
    model = DetectorContext(lexicon=SpamLexicon.load(default_lexicon_path())).model
    batch = TextBatch.of(texts, model)
    if with_ids:
        batch.ids  # noqa: B018  (computed first: the range's ids are then read from them)
    i = pick % len(texts)
    alone = batch.surprise_of(i, start, stop)
    assert batch._surprise is None
    whole = batch.surprise[batch.span(i)][start:stop]
    assert alone.dtype == whole.dtype and alone.tobytes() == whole.tobytes()
    assert batch.surprise_of(i, start, stop).tobytes() == whole.tobytes()  # (from the batch's now)
