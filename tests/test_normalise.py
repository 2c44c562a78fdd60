"""Normalise and repair: each stage on the sample files and on cases built here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from curate import t2s
from curate.stages.convert import Convert
from curate.stages.invisible import Invisible
from curate.stages.punctuation import Punctuation
from curate.stages.reflow import Reflow
from curate.stages.repair import Repair
from tests.test_normalise_support import normalise, rules, run, seed, stage

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = "民族团结进步是各族人民的生命线，“中华民族一家亲”（同心共筑中国梦）；"


# --------------------------------------------------------------------------- sample files
def test_000_passes_through_with_only_blank_lines_normalised():
    original = seed("000")
    doc = run(original)
    assert set(rules(doc)) == {"invisible.blank-lines"}
    assert doc.text == re.sub(r"\n{3,}", "\n\n", original.strip("\n"))
    for mark in "“”，；（）、。《》":
        assert doc.text.count(mark) == original.count(mark), mark


def test_000_headings_stay_on_their_own_lines():
    lines = normalise(seed("000")).split("\n")
    assert lines.count("始终贯穿创建全过程") == 4
    assert lines[lines.index("党的领导") + 2] == "始终贯穿创建全过程"
    assert "各民族交往交流交融" in lines and "日益深入" in lines


def test_001_becomes_simplified_in_one_edit_with_evidence():
    doc = run(seed("001"))
    assert "民族团结进步" in doc.text and "民族團結進步" not in doc.text
    assert t2s.script_evidence(doc.text).traditional == 0
    (edit,) = [e for e in doc.edits if e.stage == "convert"]
    assert edit.rule == "convert.t2s"
    assert edit.evidence["config"] == "t2s" and edit.evidence["scope"] == "document"
    assert edit.evidence["traditional_chars"] > 100 and edit.evidence["simplified_chars"] == 0


def test_001_punctuation_becomes_full_width_except_latin_text():
    text = normalise(seed("001"))
    assert "示范乡镇（街道）" in text
    assert "（来源：兰州日报）" in text
    assert "“12310”创建工程（即：紧紧围绕" in text
    assert "历史传承，也是" in text
    assert "十大提升行动），努力" in text
    assert "Notice: The content above (including the pictures and videos if any) is" in text
    assert not re.search(r"[\u4e00-\u9fff][,:;()][\u4e00-\u9fff]", text)


def test_002_url_and_latin_footer_keep_their_punctuation():
    text = normalise(seed("002"))
    assert "http://mzw.qinghai.gov.cn/index.php/mtxw/2930.html" in text
    assert "宗教法治网 zjifz.org.cn 版权所有." in text
    assert "近年来，海西蒙古族藏族自治州" in text


JOINS = ["丰富形|式", "推进各族|群众", "研究成|果", "群众教|育实践活动", "推|送铸牢", "4类分文化|品牌课程",
         "推进“两|个打造”", "组建宣讲队伍|1812支", "国民教育体|系", "中华民族共同|体意识"]


def test_004_ten_layout_breaks_joined_with_nothing_added():
    doc = run(seed("004"))
    for join in JOINS:
        assert join.replace("|", "") in doc.text, join
    joins = [e for e in doc.edits if e.stage == "reflow"]
    assert len(joins) == 10
    assert all(e.rule == "reflow.join" and e.after == "" and e.before.strip() == "" for e in joins)


def test_004_no_heading_is_joined():
    original = seed("004")
    lines = normalise(original).split("\n")
    headings = [line for line in original.split("\n")
                if line and len(line) <= 40 and not re.search("[，。、；：,;:()]", line)]
    assert len(headings) >= 20  # the title, subtitle and nine two-line section headings
    for heading in headings:
        assert heading in lines, heading
    assert lines[lines.index("兴安盟民族事务委员会") + 2] == "争创铸牢中华民族共同体意识示范盟"
    assert "（本版文字由自治区民委提供）" in lines


def test_sample_numbers_keep_their_punctuation():
    text = normalise(seed("004"))
    assert "6.29亿元" in text and "23.5万余人次" in text


# --------------------------------------------------------------------------- repair
def test_repair_leaves_clean_chinese_byte_identical():
    for prefix in ("000", "001", "002", "003", "004"):
        doc = run(seed(prefix), [stage(Repair)])
        assert doc.edits == [], prefix


def test_repair_utf8_read_as_latin1_with_ftfy():
    broken = SENTENCE.encode("utf-8").decode("latin-1")
    doc = run("标题\n" + broken + "\n尾", [stage(Repair)])
    assert doc.text == "标题\n" + SENTENCE + "\n尾"
    assert rules(doc) == ["repair.ftfy"]


def test_ftfy_is_imported_only_for_a_text_that_needs_it():
    """ftfy (and wcwidth, which it pulls in) is imported on first use, not with the repair
    stage: the sample files normalised leave both out (20-30 ms of every run's start, on one
    core). Its codecs are known all the same, as when the stage imported it (a page may declare
    one: the decoding must not depend on whether a text needed ftfy before in that process), and
    UTF-8 read as Latin-1 is fixed."""
    script = (
        "import sys\n"
        "from curate.stages.repair import Repair\n"
        "from tests.test_normalise_support import run, seed, stage\n"
        "for prefix in ('000', '001', '002', '003', '004'):\n"
        "    run(seed(prefix))\n"
        "print('ftfy' in sys.modules, 'wcwidth' in sys.modules)\n"
        "print(ascii(bytes.fromhex('eda0bdedb88d').decode('utf-8-variants')),"
        " ascii(b'\\x81\\x93'.decode('sloppy-windows-1252')))\n"
        f"doc = run({('标题' + chr(10) + SENTENCE.encode('utf-8').decode('latin-1'))!r}, [stage(Repair)])\n"
        f"print('ftfy' in sys.modules, [edit.rule for edit in doc.edits], doc.text.splitlines()[1] == {SENTENCE!r})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "False False",
        "'\\U0001f60d' '\\x81\\u201c'",
        "True ['repair.ftfy'] True",
    ]


def test_repair_utf8_read_as_cp1252_with_ftfy():
    import ftfy.bad_codecs  # noqa: F401 - registers "sloppy-windows-1252", what browsers do

    broken = SENTENCE.encode("utf-8").decode("sloppy-windows-1252")
    doc = run("前文：" + broken, [stage(Repair)])
    assert doc.text == "前文：" + SENTENCE


def test_repair_utf8_read_as_gbk():
    broken = SENTENCE.encode("utf-8").decode("gbk", errors="replace")
    assert broken.startswith("姘戞棌鍥㈢粨")
    doc = run("来源：" + broken, [stage(Repair)])
    # Bytes the wrong decoding replaced are lost for good: U+FFFD marks them.
    assert re.fullmatch("来源：民族团结进�+是各族人民的生命线，�+中华民族一家亲”（同心共筑�+国梦）；", doc.text)
    assert rules(doc) == ["repair.utf8-as-gbk"]
    assert doc.edits[0].evidence["lost_characters"] > 0


def test_repair_utf8_read_as_gbk_without_loss_is_exact():
    original = "民族团结，各族群众，习近平新时代"
    broken = original.encode("utf-8").decode("gbk")  # this one decodes without errors
    doc = run(broken + " OK", [stage(Repair)])
    assert doc.text == original + " OK"


def test_repair_gbk_read_as_latin1():
    original = "更多精校小说，尽在本站。民族团结进步是各族人民的生命线。"
    for codec in ("latin-1", "cp1252"):
        broken = original.encode("gbk").decode(codec, errors="replace")
        doc = run(broken + "\n", [stage(Repair)])
        assert doc.text == original + "\n", codec
        assert set(rules(doc)) == {"repair.gbk-as-latin1"}


def test_repair_kunjinkao_becomes_replacement_characters():
    doc = run("前文锟斤拷锟斤拷后文", [stage(Repair)])
    assert doc.text == "前文\ufffd\ufffd\ufffd\ufffd后文"
    assert rules(doc) == ["repair.fffd-as-gbk"]


@pytest.mark.parametrize(
    "text",
    [
        "café, naïve, Ångström, señor Müller — “quoted” 1°C ±2 ×3",
        "进度………………——————都在这里··· ×× ”“",
        "\xa0\xa0\xa0\xa0正文",
        "民族團結進步是西固區最悠久的歷史傳承",  # Traditional is not mojibake
        "瑷珲、犇、垚、珺、婧、旻：人名里的生僻字",
    ],
)
def test_repair_does_not_touch_real_text(text):
    assert run(text, [stage(Repair)]).edits == []


def test_repair_rules_can_be_switched_off():
    broken = "民族团结进步".encode().decode("latin-1")
    assert run(broken, [stage(Repair, ftfy=False)]).text == broken


# --------------------------------------------------------------------------- invisible
def test_invisible_characters_controls_and_layout():
    text = "\n\n\n\u3000\u3000金秋\u200b九月，\r\n走进\x07西宁。 \u3000\n\n\n\n\n守望\ue40c\u3000\u3000相助\ue600\n  \n\n尾\n\n"
    doc = run(text, [stage(Invisible)])
    assert doc.text == "金秋九月，\n走进西宁。\n\n守望\n相助\n\n尾"
    assert {"invisible.zero-width", "invisible.line-break", "invisible.control",
            "invisible.private-use", "invisible.indent", "invisible.trailing-space",
            "invisible.blank-lines"} == set(rules(doc))


def test_invisible_keeps_tabs_single_newlines_and_emoji_joiners():
    text = "一\t二\n三\n\n四 👨\u200d👩\u200d👧"
    assert run(text, [stage(Invisible)]).text == text


def test_invisible_private_use_is_configurable():
    text = "甲\ue40c乙\ue600丙"
    assert run(text, [stage(Invisible)]).text == "甲\n乙丙"
    kept = run(text, [stage(Invisible, private_use_other="keep", private_use_map={})]).text
    assert kept == text
    with pytest.raises(ValueError, match="private_use_other"):
        stage(Invisible, private_use_other="delete")


# --------------------------------------------------------------------------- convert
def test_convert_only_traditional_paragraphs_of_a_mixed_document():
    simplified = "这是一段简体中文，说的是国家和人民。"
    text = f"{simplified}\n這是一段繁體中文，說的是國家與人民。\n{simplified}"
    doc = run(text, [stage(Convert)])
    assert doc.text == f"{simplified}\n这是一段繁体中文，说的是国家与人民。\n{simplified}"
    (edit,) = doc.edits
    assert edit.evidence["scope"] == "paragraphs" and edit.evidence["traditional_chars"] >= 5


def test_convert_never_runs_on_simplified_text(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("converter called on Simplified text")

    monkeypatch.setattr(t2s, "convert", fail)
    for prefix in ("000", "002", "003", "004"):
        assert run(seed(prefix), [stage(Convert)]).edits == []


def test_convert_configurations():
    text = "這個軟體的滑鼠很好用。" * 3
    assert run(text, [stage(Convert, config="off")]).edits == []
    tw = run(text, [stage(Convert, config="tw2s")])
    assert tw.text == t2s.convert(text, "tw2s") and "这个软体" in tw.text
    assert tw.edits[0].rule == "convert.tw2s" and tw.edits[0].evidence["config"] == "tw2s"
    with pytest.raises(ValueError, match="convert.config"):
        stage(Convert, config="s2t")


# --------------------------------------------------------------------------- punctuation
@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("示范乡镇(街道),村(社区)", "示范乡镇（街道），村（社区）"),
        ("全文完。(來源:蘭州日報)", "全文完。（來源：蘭州日報）"),
        ("国内生产总值(GDP)增长", "国内生产总值（GDP）增长"),
        ("规划(2021—2025年)》", "规划（2021—2025年）》"),
        ("是否跳转到登录页?", "是否跳转到登录页？"),
        ("真的吗?!我不信", "真的吗？！我不信"),
        ("考核的15%,确保", "考核的15%，确保"),
        ("时间:10:30", "时间：10:30"),
        ("说明(其中(一)部分)完成", "说明（其中（一）部分）完成"),
        ("中(）:", "中（）："),  # the converted colon is the Chinese after the pair
        ("中,（)中", "中，（）中"),  # the converted comma is the Chinese before it
    ],
)
def test_punctuation_between_chinese_becomes_full_width(before, after):
    assert run(before, [stage(Punctuation)]).text == after


@pytest.mark.parametrize(
    "text",
    [
        "资金6.29亿元，比例1:1，共3,000人",
        "原文链接:http://mzw.qinghai.gov.cn/a,b?x=1;y=(2)",
        "见http://例子.cn/新闻,体育?页=1 全文",
        "联系邮箱:news(at)example.com 或 a,b@example.com",
        "Notice: The content (including pictures) is uploaded, see www.163.com.",
        "使用Python,提高效率",
        "![]()",
        "（已经是全角），：；？！",
    ],
)
def test_punctuation_leaves_numbers_urls_latin_and_full_width_alone(text):
    doc = run(text, [stage(Punctuation)])
    if text.startswith("原文链接") or text.startswith("见http"):
        assert re.search(r"https?://\S+", doc.text).group() == re.search(r"https?://\S+", text).group()
    else:
        assert doc.edits == [], text


def test_punctuation_rules_can_be_switched_off():
    text = "示范乡镇,村(社区)"
    assert run(text, [stage(Punctuation, parens=False)]).text == "示范乡镇，村(社区)"
    assert run(text, [stage(Punctuation, marks=False)]).text == "示范乡镇,村（社区）"


# --------------------------------------------------------------------------- reflow
BODY = "会议强调，要以打造内蒙古民族团结进步创建工作升级版为目标，进一步提高政治站位，要深化内涵、丰富形"


def test_reflow_joins_a_sentence_broken_by_a_blank_line():
    doc = run(f"{BODY}\n\n式、创新方法，提出更多办法举措。", [stage(Reflow)])
    assert doc.text == f"{BODY}式、创新方法，提出更多办法举措。"
    assert rules(doc) == ["reflow.join"]


@pytest.mark.parametrize(
    "text",
    [
        # headings: short lines without sentence punctuation, before or after body text
        "兴安盟民族事务委员会\n\n争创铸牢中华民族共同体意识示范盟\n\n兴安盟在两次成功创建全国示范盟的基础上，今年率先启动创建活动。",
        "强化系统推进，凝聚贯彻主线的全域合力\n\n我市将铸牢中华民族共同体意识作为各项工作的主线，推进经济建设。",
        f"{BODY}\n\n党的领导\n\n始终贯穿创建全过程",
        # paragraphs that end a sentence, list items, labels, bylines, numbers
        "西宁市始终坚持以习近平新时代中国特色社会主义思想为指导，全面启动示范市创建工作。\n\n各级工作领导小组不断完善。",
        f"{BODY}\n\n一是拓展“地企联合”服务平台，把驻区企事业单位纳入规划。",
        f"{BODY}\n\n责任编辑：张三，李四审核，王五校对，赵六终审，本文共计两千余字。",
        "海军昆仑山舰上搭载舰载直升机，正在进行训练。 图片来源：视觉中国\n\n2016年5月7日，海军舰载直升机从昆仑山舰起飞。",
        "截至目前，全市累计完成投资，比年初增加13328.75亿元\n\n在京沪之后，是深圳和广州两个城市，增长较快。",
        # a single line break in web text without evidence of a cut
        f"{BODY}\n在京沪之后，是深圳和广州两个弱一线城市，两个城市的增长都很快。",
    ],
)
def test_reflow_does_not_join(text):
    assert run(text, [stage(Reflow)]).edits == []


def test_reflow_joins_at_a_single_line_break_with_evidence_of_a_cut():
    text = "以树立和突出中华文化符号为目标，推进“两\n个打造”工程，建立项目库。"
    assert run(text, [stage(Reflow)]).text == text.replace("\n", "")
    text2 = "今日午间，一篇题为《\n》的文章被某知名媒体客户端推送，消息顿时刷屏。"
    assert run(text2, [stage(Reflow)]).text == text2.replace("\n", "")


def test_reflow_joins_hard_wrapped_text():
    sentence = "西宁市作为全国首个连续两次荣获全国民族团结进步示范市的省会城市，始终坚持以习近平新时代中国特色社会主义思想为指导。"
    flowing = sentence * 4
    wrapped = "\n".join(flowing[i : i + 20] for i in range(0, len(flowing), 20))
    assert run(wrapped, [stage(Reflow)]).text == flowing


def test_reflow_can_be_switched_off():
    assert run(f"{BODY}\n\n式、创新方法。", [stage(Reflow, join=False)]).edits == []


# --------------------------------------------------------------------------- all together
def test_every_stage_has_documented_switches():
    import dataclasses

    for cls in (Repair, Invisible, Convert, Punctuation, Reflow):
        fields = {f.name: f for f in dataclasses.fields(cls.Settings)}
        assert "enabled" in fields
        assert len(fields) >= 2, cls.name  # at least one per-rule switch
        assert all(f.metadata.get("doc") for f in fields.values()), cls.name


def test_stages_are_in_the_configuration():
    from curate import config

    cfg = config.build({"reflow": {"enabled": False}, "convert": {"config": "hk2s"}})
    assert cfg["reflow"].enabled is False and cfg["convert"].config == "hk2s"
    assert cfg["invisible"].private_use_map == {"U+E40C": "\n"}
