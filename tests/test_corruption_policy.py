"""Per-kind policy for flags: flag, drop-span, drop-sentence, quarantine, and the share threshold."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate import config
from curate.document import OK, QUARANTINED, Document, Flag
from curate.stages.base import RunContext
from curate.stages.corruption import CorruptedSpans
from curate.stages.policy import Policy

SPAM_SAMPLE = Path(__file__).parent / "fixtures" / "seeds" / "003_ab88bb197f24876c.txt"
PHRASE = "ld体育中国官方网站"


def run(overrides: dict, text: str) -> Document:
    cfg = config.build(overrides)
    context = RunContext(cfg)
    doc = Document.new("003.txt", text)
    CorruptedSpans(cfg["corruption"], context).process(doc)
    Policy(cfg["policy"], context).process(doc)
    return doc


@pytest.fixture(scope="module")
def sample() -> str:
    return SPAM_SAMPLE.read_text(encoding="utf-8")


def test_default_policy_keeps_the_text_and_reports_the_flags(sample):
    doc = run({}, sample)
    assert doc.status == OK
    assert doc.text == sample
    assert [f.text for f in doc.flags if f.kind == "spam-injection"] == [PHRASE, PHRASE]
    assert [e for e in doc.edits if e.stage == "policy"] == []


def test_drop_span_removes_exactly_the_flagged_text_and_keeps_the_flags(sample):
    doc = run({"policy": {"actions": {"spam-injection": "drop-span"}}}, sample)
    assert doc.status == OK
    assert PHRASE not in doc.text
    assert "开展“民族宣传月”" in doc.text.replace(",", "，")  # the rest of the sentence stays
    assert len(doc.text) == len(sample) - 2 * len(PHRASE)
    edits = [e for e in doc.edits if e.stage == "policy"]
    assert [(e.rule, e.kind, e.before, e.action) for e in edits] == [
        ("policy.spam-injection", "spam-injection", PHRASE, "drop")
    ] * 2
    assert edits[0].evidence["flags"][0]["text"] == PHRASE
    spam = [f for f in doc.flags if f.kind == "spam-injection"]
    # The flags stay, collapsed to where the text was, with their original text and the action.
    assert [(f.end - f.start, f.text, f.evidence["policy"]) for f in spam] == [
        (0, PHRASE, "drop-span")
    ] * 2
    assert doc.reconstruct_input() == sample


def test_drop_sentence_removes_the_whole_sentence(sample):
    doc = run({"policy": {"actions": {"spam-injection": "drop-sentence"}}}, sample)
    first = sample.index(PHRASE)
    sentence_start = sample.rindex("。", 0, first) + 1
    sentence_end = sample.index("。", first) + 1
    sentence = sample[sentence_start:sentence_end]
    assert sentence.startswith("开展“民族") and sentence.endswith("融入群众生活。")
    assert sentence not in doc.text
    assert doc.text == sample[:sentence_start] + sample[sentence_end:]
    assert doc.reconstruct_input() == sample


def test_quarantine_policy_moves_the_document_untouched(sample):
    doc = run({"policy": {"actions": {"spam-injection": "quarantine"}}}, sample)
    assert doc.status == QUARANTINED
    assert "spam-injection" in doc.status_reason and "\n" not in doc.status_reason
    assert doc.text == sample
    assert len([f for f in doc.flags if f.kind == "spam-injection"]) == 2
    assert doc.to_json()["status"] == QUARANTINED


def test_document_mostly_flagged_is_quarantined():
    text = "\ufffd" * 40 + "这是一段正常的文字。"
    doc = run({}, text)
    assert doc.status == QUARANTINED
    assert "cover" in doc.status_reason
    assert doc.text == text


def test_share_threshold_is_configurable():
    text = "\ufffd" * 40 + "这是一段正常的文字。"
    doc = run({"policy": {"quarantine_share": 0.9}}, text)
    assert doc.status == OK


def test_overlapping_drops_are_merged_into_one_edit():
    actions = {"mojibake": "drop-span", "garbage": "drop-span"}
    cfg = config.build({"policy": {"actions": actions, "quarantine_share": 0.9}})
    text = "第一句话没有问题。第二句话里有坏字符在这里。第三句。"
    doc = Document.new("x", text)
    doc.add_flag(Flag("mojibake", 9, 14, doc.text[9:14], "test"))
    doc.add_flag(Flag("garbage", 12, 18, doc.text[12:18], "test"))
    Policy(cfg["policy"], RunContext(cfg)).process(doc)
    assert doc.text == "第一句话没有问题。在这里。第三句。"
    assert len([e for e in doc.edits if e.stage == "policy"]) == 1
    assert doc.reconstruct_input() == text


def test_unknown_action_is_a_clear_error():
    cfg = config.build({"policy": {"actions": {"spam-injection": "delete"}}})
    with pytest.raises(ValueError, match="actions.spam-injection: unknown action 'delete'"):
        Policy(cfg["policy"], RunContext(cfg))
