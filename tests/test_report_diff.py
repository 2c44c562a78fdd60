"""`curate diff`: what changed between two versions, and which rules or settings explain it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from curate.cli import main
from curate.document import Document
from curate.report.diff import diff_versions, text_segments
from tests.report_helpers import drop, replace_all, write_version

TEXTS = {
    "a.txt": "甲方,乙方共同签署协议。\n",
    "b.txt": "丙地,丁地开展活动。\n版权所有\n",
    "c.txt": "没有半角标点的句子。\n版权所有\n",
    "d.txt": "Hello, world 与 <script>alert(1)</script> 文字。\n",
}


def run(corpus: Path, version: str, punctuation: bool, texts: dict[str, str] = TEXTS) -> Path:
    """A tiny stand-in pipeline: comma between Han -> full width (if enabled), footer dropped."""
    docs = []
    for source, text in texts.items():
        doc = Document.new(source, text)
        if punctuation:
            for left in "甲丙":
                replace_all(doc, f"{left}方," if left == "甲" else f"{left}地,",
                            f"{left}方，" if left == "甲" else f"{left}地，", "comma-between-han")
        drop(doc, "版权所有\n")
        docs.append(doc)
    config = {"run": {"corpus": str(corpus)}, "punctuation": {"enabled": punctuation}, "boilerplate": {"enabled": True}}
    return write_version(corpus, version, docs, config=config)


def ids(result: dict, label: str) -> set[str]:
    return {d["source"] for d in result["documents"][label]}


def test_one_setting_changed_shows_exactly_the_changed_documents(tmp_path: Path) -> None:
    a = run(tmp_path / "corpus", "v1", punctuation=True)
    b = run(tmp_path / "corpus", "v2", punctuation=False)
    result = diff_versions(a, b)
    assert ids(result, "changed") == {"a.txt", "b.txt"}
    assert ids(result, "added") == ids(result, "removed") == set()
    assert result["documents"]["unchanged"] == 2
    assert result["settings"] == [{"key": "punctuation.enabled", "a": True, "b": False}]
    for doc in result["documents"]["changed"]:
        why = doc["explained_by"]
        assert why["rules"] == [{"stage": "punctuation", "rule": "comma-between-han", "edits_a": 1, "edits_b": 0}]
        assert why["settings"] == [{"key": "punctuation.enabled", "a": True, "b": False}]
        assert not why["input_changed"]
        assert [(s["k"], s["t"]) for s in doc["diff"] if s["k"] != "keep"] == [("del", "，"), ("ins", ",")]


def test_added_removed_and_input_changes(tmp_path: Path) -> None:
    a = run(tmp_path / "corpus", "v1", punctuation=True)
    texts = dict(TEXTS)
    del texts["c.txt"]
    texts["e.txt"] = "新增的文章。\n"
    texts["d.txt"] = TEXTS["d.txt"].replace("文字", "新文字")
    b = run(tmp_path / "corpus", "v2", punctuation=True, texts=texts)
    result = diff_versions(a, b)
    assert ids(result, "added") == {"e.txt"} and ids(result, "removed") == {"c.txt"}
    assert ids(result, "changed") == {"d.txt"}
    (changed,) = result["documents"]["changed"]
    assert changed["explained_by"]["input_changed"] and changed["explained_by"]["rules"] == []
    assert [s["t"] for s in changed["diff"] if s["k"] == "ins"] == ["新"]


def test_text_segments_rebuild_both_texts() -> None:
    old, new = "第一行。\n第二行，有变化。\n第三行。\n", "第一行。\n第二行,有变化!\n第三行。\n第四行。\n"
    segs = text_segments(old, new)
    assert "".join(s["t"] for s in segs if s["k"] != "ins") == old
    assert "".join(s["t"] for s in segs if s["k"] != "del") == new


def test_cli_diff_terminal_html_and_json(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    run(corpus, "v1", punctuation=True)
    run(corpus, "v2", punctuation=False)
    html_file, json_file = tmp_path / "diff.html", tmp_path / "diff.json"
    result = CliRunner().invoke(main, ["diff", "v1", "v2", "--corpus", str(corpus), "--html", str(html_file),
                                       "--json", str(json_file)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "changed: a.txt" in out and "changed: b.txt" in out and "c.txt" not in out and "d.txt" not in out
    assert "setting punctuation.enabled: True → False" in out
    assert "rule punctuation/comma-between-han: 1 → 0 edits" in out
    assert "[-，-]{+,+}" in out
    data = json.loads(json_file.read_text(encoding="utf-8"))
    assert {d["source"] for d in data["documents"]["changed"]} == {"a.txt", "b.txt"}
    page = html_file.read_text(encoding="utf-8")
    assert 'id="count-changed">2<' in page and "default-src 'none'" in page and "<script" not in page


def test_cli_diff_escapes_document_text(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    run(corpus, "v1", punctuation=True)
    texts = dict(TEXTS)
    texts["d.txt"] = TEXTS["d.txt"].replace("文字", "<img src=x onerror=alert(2)>")
    run(corpus, "v2", punctuation=True, texts=texts)
    html_file = tmp_path / "diff.html"
    result = CliRunner().invoke(main, ["diff", "v1", "v2", "--corpus", str(corpus), "--html", str(html_file)])
    assert result.exit_code == 0, result.output
    page = html_file.read_text(encoding="utf-8")
    assert "<img" not in page and "<script" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page


def test_cli_diff_unknown_version(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    run(corpus, "v1", punctuation=True)
    result = CliRunner().invoke(main, ["diff", "v1", "v9", "--corpus", str(corpus)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1 and "v9" in result.output
