"""tests/fixtures/seeds/EXPECTED.md, item by item, on one full run of the pipeline over the samples."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from opencc import OpenCC

from .conftest import SEED_FILES, make_config

NAMES = {p.name[:3]: p.name for p in SEED_FILES}
HALF_TO_FULL = str.maketrans({",": "，", ":": "：", ";": "；", "(": "（", ")": "）", "?": "？", "!": "！"})
FULL_TO_HALF = str.maketrans({v: k for k, v in zip(",:;()?!", "，：；（）？！", strict=True)})


@pytest.fixture(scope="module")
def run_result(tmp_path_factory) -> dict[str, Any]:
    from curate.runner import run

    tmp = tmp_path_factory.mktemp("expected")
    result = run(make_config(tmp), inputs=[str(p) for p in SEED_FILES], write_report=False)
    folder = result.version_dir
    docs: dict[str, dict[str, Any]] = {}
    for name in ["documents.jsonl", "quarantine.jsonl", "duplicates.jsonl"]:
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            docs[record["source"][:3]] = record
    edits: dict[str, list[dict[str, Any]]] = {}
    by_id = {d["id"]: key for key, d in docs.items()}
    for line in (folder / "edits.jsonl").read_text(encoding="utf-8").splitlines():
        edit = json.loads(line)
        edits.setdefault(by_id[edit["doc"]], []).append(edit)
    return {"docs": docs, "edits": edits, "folder": folder}


def text_of(run_result: dict[str, Any], key: str) -> str:
    return run_result["docs"][key]["text"]


def lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def source(key: str) -> str:
    return (Path(SEED_FILES[0]).parent / NAMES[key]).read_text(encoding="utf-8")


def comparable(text: str) -> str:
    """Compare modulo Traditional→Simplified, punctuation width, white space and line breaks."""
    text = OpenCC("t2s").convert(text)
    return re.sub(r"\s+", "", text.translate(FULL_TO_HALF))


# --------------------------------------------------------------------------- all documents
def test_every_sample_is_kept_in_the_corpus(run_result):
    for key in NAMES:
        assert run_result["docs"][key].get("status", "ok") == "ok", key


# --------------------------------------------------------------------------- 000
def test_000_blank_lines_are_normalised(run_result):
    text = text_of(run_result, "000")
    assert not text.startswith("\n")
    assert "\n\n\n" not in text


def test_000_credit_lines_become_meta(run_result):
    doc = run_result["docs"]["000"]
    assert doc["meta"]["author"] == "徐顺凯"
    assert "黎晓刚" in str(doc["meta"]["photo_credit"])
    assert "本报记者" not in doc["text"]
    assert "本版图片均由" not in doc["text"]


def test_000_headline_and_two_line_headings_are_kept(run_result):
    lines = lines_of(text_of(run_result, "000"))
    assert "守望相助 和谐发展" in lines
    assert lines.count("始终贯穿创建全过程") == 4
    for heading in ["党的领导", "宣传教育", "典型引领", "学习教育", "各民族交往交流交融", "日益深入"]:
        assert heading in lines, heading
    assert lines[lines.index("党的领导") + 1] == "始终贯穿创建全过程"


def test_000_full_width_punctuation_and_curly_quotes_are_untouched(run_result):
    text, original = text_of(run_result, "000"), source("000")
    for mark in "“”，；（）、。《》":
        assert text.count(mark) == original.count(mark), mark


# --------------------------------------------------------------------------- 001
def test_001_is_simplified_in_one_edit(run_result):
    text = text_of(run_result, "001")
    assert "民族团结进步" in text
    assert "團" not in text and "進" not in text
    conversions = [e for e in run_result["edits"]["001"] if e["stage"] == "convert"]
    assert len(conversions) == 1
    assert conversions[0]["evidence"]


def test_001_image_placeholders_and_netease_notice_are_dropped(run_result):
    text = text_of(run_result, "001")
    assert "![]()" not in text
    assert "特别声明" not in text and "網易號" not in text and "网易号" not in text
    assert "Notice:" not in text and "NetEase" not in text


def test_001_source_parenthesis_becomes_meta_and_the_paragraph_stays(run_result):
    doc = run_result["docs"]["001"]
    assert doc["meta"]["source"] == "兰州日报"
    assert "来源" not in doc["text"]
    assert lines_of(doc["text"])[-1].endswith("让各族干部群众在潜移默化中铸牢中华民族共同体意识。")


def test_001_half_width_punctuation_between_han_is_full_width(run_result):
    text = text_of(run_result, "001")
    assert not re.search(r"\p{Han}[,:;()]\p{Han}".replace(r"\p{Han}", "[\u4e00-\u9fff]"), text)
    assert "“12310”创建工程（即：紧紧围绕" in text
    assert "示范乡镇（街道）" in text


# --------------------------------------------------------------------------- 002
def test_002_original_link_becomes_url_meta(run_result):
    doc = run_result["docs"]["002"]
    assert doc["meta"]["url"] == "http://mzw.qinghai.gov.cn/index.php/mtxw/2930.html"
    assert "原文链接" not in doc["text"] and "mzw.qinghai.gov.cn" not in doc["text"]


def test_002_footer_block_is_dropped(run_result):
    doc = run_result["docs"]["002"]
    for marker in ["免责声明", "本站部分信息", "本网部分转载", "zjifz.org.cn", "版权所有", "第一办公区", "第二办公区"]:
        assert marker not in doc["text"], marker
    assert doc["meta"].get("site") == "宗教法治网"


def test_002_five_paragraphs_are_kept_apart_from_punctuation_width(run_result):
    out = {comparable(line) for line in lines_of(text_of(run_result, "002"))}
    for line in lines_of(source("002")):
        if line[:2] in ("一是", "二是", "三是", "四是", "五是"):
            assert comparable(line) in out, line[:10]


# --------------------------------------------------------------------------- 003
def test_003_spam_injection_is_flagged_exactly_twice(run_result):
    doc = run_result["docs"]["003"]
    text = doc["text"]
    spam = "ld体育中国官方网站"
    expected = [m.start() for m in re.finditer(spam, text)]
    assert len(expected) == 2  # default policy: flag, keep the text
    flags = [f for f in doc["flags"] if f["kind"] == "spam-injection"]
    assert sorted((f["start"], f["end"]) for f in flags) == [(s, s + len(spam)) for s in expected]
    for flag in flags:
        assert text[flag["start"] : flag["end"]] == flag["text"] == spam
        assert flag["reason"]


def test_003_page_ui_text_is_dropped(run_result):
    text = text_of(run_result, "003")
    assert "扫一扫" not in text and "跳转到登录页" not in text


# --------------------------------------------------------------------------- 004
JOINS = ["丰富形|式", "推进各族|群众", "研究成|果", "群众教|育实践活动", "推|送铸牢", "4类分文化|品牌课程",
         "推进“两|个打造”", "组建宣讲队伍|1812支", "国民教育体|系", "中华民族共同|体意识"]
SECTION_HEADINGS = [
    ("呼和浩特市民族事务委员会", "用四项工程铸牢中华民族共同体意识"),
    ("兴安盟民族事务委员会", "争创铸牢中华民族共同体意识示范盟"),
    ("乌兰察布市集宁区民族事务委员会", "积极创建全国民族团结进步示范区"),
    ("包头市民族事务委员会", "全力创建全国民族团结进步示范市"),
    ("赤峰市民族事务委员会", "打造新时代民族团结进步创建升级版"),
    ("呼伦贝尔市民族事务委员会", "创建升级版民族团结进步示范市"),
    ("鄂尔多斯市民族事务委员会", "争做铸牢中华民族共同体意识市域示范"),
    ("锡林郭勒盟苏尼特右旗民族事务委员会", "夯实民族团结进步创建基础"),
    ("巴彦淖尔市乌拉特后旗民族事务委员会", "呵护全国民族团结进步示范旗荣誉"),
]


def test_004_ten_layout_breaks_are_joined_without_adding_characters(run_result):
    text = text_of(run_result, "004")
    for join in JOINS:
        left, right = join.split("|")
        assert left + right in text, join
    joins = [e for e in run_result["edits"]["004"] if e["stage"] == "reflow"]
    assert len(joins) == len(JOINS)
    for edit in joins:
        assert edit["after"] == "" and edit["before"].strip() == ""


def test_004_headings_are_not_joined(run_result):
    lines = lines_of(text_of(run_result, "004"))
    for organisation, title in SECTION_HEADINGS:
        assert organisation in lines, organisation
        assert lines[lines.index(organisation) + 1] == title


def test_004_repeated_jining_passage_is_removed_and_linked(run_result):
    text = text_of(run_result, "004")
    original = source("004")
    copy_start = original.index("创新推出邮政") + len("创新推出邮政")
    copy_end = original.index("确保各项创建高效开展。", copy_start) + len("确保各项创建高效开展。")
    first_start = original.index("内蒙古自治区民族团结进步示范区示范单位测评指标体系") + len("内蒙")
    duplicates = [e for e in run_result["edits"]["004"] if e["kind"] == "duplicate" and "古自治区" in e["before"]]
    assert len(duplicates) == 1
    edit = duplicates[0]
    assert (edit["src_start"], edit["src_end"]) == (copy_start, copy_end)
    assert edit["link"]["start"] <= first_start < edit["link"]["end"]
    assert text.count("细化完善方案") == 1
    seam = text.index("创新推出邮政") + len("创新推出邮政")
    splices = [f for f in run_result["docs"]["004"]["flags"] if f["kind"] == "splice"]
    assert any(f["start"] <= seam <= f["end"] for f in splices)


def test_004_repeated_sunite_sentences_are_removed_once(run_result):
    text = text_of(run_result, "004")
    repeated = comparable("全旗各中小学开展足球比赛、阅读分享等各类共建活动,促进各族青少年广泛交流学习。")
    assert comparable(text).count(repeated) == 1
    assert comparable("面向各族青少年交流计划") in comparable(text)
    assert comparable("认真落实各族群众互嵌式发展计划,各社区为各族群众提供就业指导、法律援助等各类服务。") in comparable(text)
    duplicates = [e for e in run_result["edits"]["004"] if e["kind"] == "duplicate" and "落实各族青少年交流计划" in e["before"]]
    assert len(duplicates) == 1 and duplicates[0]["link"]


def test_004_text_credit_becomes_source_meta(run_result):
    doc = run_result["docs"]["004"]
    assert "自治区民委" in str(doc["meta"]["source"])
    assert "本版文字由" not in doc["text"]


# --------------------------------------------------------------------------- across the five
def test_stock_formula_is_not_a_duplicate(run_result):
    formula = comparable("党委统一领导、政府依法管理、统战部门牵头协调、民族工作部门履职尽责、各部门通力合作、全社会共同参与的")
    assert formula in comparable(text_of(run_result, "000"))
    assert formula in comparable(text_of(run_result, "004"))


# Sentences EXPECTED.md names for removal (credit lines, notices, footers, UI text, placeholders).
NAMED_REMOVALS = ["本报记者", "本版图片均由", "![]()", "特別聲明", "Notice:", "原文链接", "[免责声明]", "本站部分信息",
                  "本网部分转载", "版权所有", "第一办公区", "扫一扫", "跳转到登录页", "本版文字由"]
# Sentences named for removal inside body lines: the later copy of the 苏尼特右旗 sentence.
NAMED_SENTENCES = ["落实各族青少年交流计划"]


def test_no_body_sentence_is_lost(run_result):
    for key in NAMES:
        out = comparable(text_of(run_result, key))
        for line in lines_of(source(key)):
            line = line.replace("(來源:蘭州日報)", "").replace("![]()", "")
            if any(marker in line for marker in NAMED_REMOVALS):
                continue
            for sentence in re.split(r"(?<=[。！？!?])", line):
                if any(marker in sentence for marker in NAMED_SENTENCES):
                    continue
                if "创新推出邮政" in sentence:  # the splice: what follows the seam is the removed copy
                    sentence = sentence[: sentence.index("创新推出邮政") + len("创新推出邮政")]
                if sentence.strip():
                    assert comparable(sentence) in out, (key, sentence[:30])
