"""The diff report: model, terminal rendering, JSON and HTML (without a browser)."""

from __future__ import annotations

import dataclasses
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from curate.cli import main
from curate.document import Change, Document, Flag, stable_id
from curate.report import write_reports
from curate.report.model import (
    EntryMaker,
    IndexedVersion,
    Limits,
    ReportError,
    VersionData,
    WrittenIndex,
    build_report,
    char_opcodes,
    collapse,
    compact_substitutions,
    diff_segments,
    expand_substitutions,
    index_version,
    load_version,
    read_version,
    safe_json,
)
from curate.report.terminal import diff_text, render_report, summary_renderables
from tests.report_helpers import HOSTILE, ORIGINAL, sample_docs, write_version


@pytest.fixture()
def version(tmp_path: Path) -> Path:
    return write_version(tmp_path / "corpus", "v1", sample_docs())


@pytest.fixture()
def report(version: Path) -> dict:
    return build_report(load_version(version))


def by_source(report: dict, source: str) -> dict:
    return next(d for d in report["documents"] if d["source"] == source)


def plain(report: dict, width: int = 300, **filters: str) -> str:
    console = Console(record=True, width=width, no_color=True, file=open("/dev/null", "w"))  # noqa: SIM115
    render_report(report, console, **filters)
    return console.export_text()


# --------------------------------------------------------------------------- the model
def test_segments_rebuild_input_and_final_text(version: Path) -> None:
    data = load_version(version)
    for doc in sample_docs():
        record = data.documents[doc.id]
        segs = expand_substitutions(
            diff_segments(ORIGINAL[doc.id], data.edits.get(doc.id, []), record["flags"], doc.id)
        )
        assert "".join(s["t"] for s in segs if s["k"] in ("keep", "del")) == ORIGINAL[doc.id]
        assert "".join(s["t"] for s in segs if s["k"] in ("keep", "ins")) == doc.text


def test_whole_document_conversion_marks_only_changed_characters(report: dict) -> None:
    doc = by_source(report, "news/trad.txt")
    edits = doc["edits"]
    # In the report the conversion is "sub" segments: input and output text of the same length.
    subs = [s for s in doc["diff"] if s["k"] == "sub" and edits[s["e"]]["rule"] == "t2s"]
    assert subs and all(len(s["t"]) == len(s["a"]) for s in subs)
    segments = expand_substitutions(doc["diff"])
    pairs = [(s["t"], s.get("e")) for s in segments if s["k"] == "del" and edits[s["e"]]["rule"] == "t2s"]
    assert ("團結進", 0) in pairs and ("發", 0) in pairs
    assert all(len(text) <= 3 and "\n" not in text for text, _ in pairs)  # not the whole document


def test_converted_then_dropped_text_is_shown_as_dropped(report: dict) -> None:
    doc = by_source(report, "news/trad.txt")
    notice = next(s for s in doc["diff"] if s["k"] == "del" and "聲明" in s["t"])
    assert notice["t"] == "特別聲明:以上內容僅供參考\n"  # the input text, in one piece
    assert doc["edits"][notice["e"]]["rule"] == "netease-notice"
    assert doc["edits"][notice["via"][0]]["rule"] == "t2s"


def test_long_aligned_replacements_compare_code_points() -> None:
    # Past 64 characters the comparison is vectorised over UTF-32 code units: a character
    # outside the BMP and a lone surrogate (which a JSON record may hold) are one position.
    text = "𠀀" + "甲" * 70 + "\ud800" + "團"
    doc = Document.new("x", text)
    doc.apply("convert", [Change(0, len(text), "中" + "甲" * 70 + "\ud800" + "团", "t2s", "test")])
    edits = [{"seq": n, **e.to_json()} for n, e in enumerate(doc.edits)]
    segs = expand_substitutions(diff_segments(text, edits, []))
    assert [(s["k"], s["t"]) for s in segs if s["k"] != "keep"] == [
        ("del", "𠀀"), ("ins", "中"), ("del", "團"), ("ins", "团")
    ]
    assert "".join(s["t"] for s in segs if s["k"] in ("keep", "del")) == text


def test_converted_text_cut_by_a_later_edit_is_shown_removed_by_that_edit() -> None:
    # The conversion changes 導 -> 导 and 廣 -> 广, one run of changed characters; the credit
    # rule then removes the dateline up to 导. The removed 導 is the credit rule's removal
    # (via the conversion); the conversion's own change shown is 廣 -> 广 alone.
    text = "記者蔡紹堅／綜合報導廣西南寧一名老人"
    doc = Document.new("x", text)
    converted = text.translate(str.maketrans("記紹堅綜報導廣寧", "记绍坚综报导广宁"))
    doc.apply("convert", [Change(0, len(text), converted, "t2s", "test")])
    doc.apply("boilerplate", [Change(0, 10, "", "credit", "test")])
    edits = [{"seq": n, **e.to_json()} for n, e in enumerate(doc.edits)]
    segs = expand_substitutions(diff_segments(text, edits, []))
    removed = [s for s in segs if s["k"] == "del"]
    assert removed[0] == {"k": "del", "t": "記者蔡紹堅／綜合報導", "e": 1, "via": [0]}
    assert [(s["t"], s["e"]) for s in removed[1:]] == [("廣", 0), ("寧", 0)]
    assert [s["t"] for s in segs if s["k"] == "ins"] == ["广", "宁"]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="甲乙丙丁,。\n a", min_size=1, max_size=40), st.data())
def test_segments_rebuild_any_edit_log(text: str, data: st.DataObject) -> None:
    doc = Document.new("x", text)
    for stage in range(data.draw(st.integers(1, 4))):
        cuts = sorted(data.draw(st.lists(st.integers(0, len(doc.text)), max_size=6)))
        changes = []
        for start, end in zip(cuts[::2], cuts[1::2], strict=False):
            after = data.draw(st.sampled_from(["", "，", "乙乙乙", doc.text[start:end][::-1]]))
            changes.append(Change(start, end, after, f"r{stage}", "test"))
        doc.apply(f"s{stage}", changes)
    edits = [{"seq": n, **e.to_json()} for n, e in enumerate(doc.edits)]
    bounds = sorted(data.draw(st.lists(st.integers(0, len(doc.text)), min_size=2, max_size=2)))
    flags = [{"kind": "k", "start": bounds[0], "end": bounds[1]}]
    direct = diff_segments(text, edits, flags)
    segs = expand_substitutions(direct)
    assert "".join(s["t"] for s in segs if s["k"] in ("keep", "del")) == text
    assert "".join(s["t"] for s in segs if s["k"] in ("keep", "ins")) == doc.text
    flagged = "".join(s["t"] for s in segs if 0 in s.get("f", []) and s["k"] != "mark")
    assert flagged == doc.text[bounds[0] : bounds[1]]
    assert any(s["k"] == "mark" for s in segs) == (bounds[0] == bounds[1])
    # Compacted into "sub" segments and expanded again: the same segments, whatever the log;
    # and one compact form, whether made from the replay's substitutions or from del/ins pairs.
    assert expand_substitutions(compact_substitutions(segs)) == segs
    assert compact_substitutions(direct) == compact_substitutions(segs)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="甲乙丙團結,。\n a", max_size=30), st.data())
def test_a_run_on_text_in_one_piece_is_the_walk_over_that_piece(text: str, data: st.DataObject) -> None:
    # A run on a document still in one piece (its first run, or the first after an empty
    # input got text) takes a shortcut (`_apply_run_to_text`): every time it is taken, the walk
    # over pieces (`_apply_run_to_pieces`) must make the same pieces of it, or the same error.
    from curate.report import model

    doc = Document.new("x", text)
    table = str.maketrans("團結甲,", "团结乙，")
    for stage in range(data.draw(st.integers(1, 3))):
        cuts = sorted(data.draw(st.lists(st.integers(0, len(doc.text)), max_size=6)))
        changes = []
        for start, end in zip(cuts[::2], cuts[1::2], strict=False):
            old = doc.text[start:end]
            after = data.draw(st.sampled_from(["", "，", "乙乙乙", old[::-1], old.translate(table)]))
            action = data.draw(st.sampled_from(["", "replace", "meta:author"]))
            changes.append(Change(start, end, after, f"r{stage}", "test", action=action))
        doc.apply(f"s{stage}", changes)
    edits = [{"seq": n, **e.to_json()} for n, e in enumerate(doc.edits)]
    broken = bool(edits) and data.draw(st.booleans())
    if broken:  # an edit log that does not replay (from some edit on)
        wrong = edits[data.draw(st.integers(0, len(edits) - 1))]
        wrong[data.draw(st.sampled_from(["start", "end"]))] += data.draw(st.sampled_from([-1, 1]))

    def outcome(apply: Any, *args: Any) -> Any:
        try:
            return apply(*args)
        except ReportError as exc:
            return str(exc)

    shortcut = model._apply_run_to_text
    taken = []

    def both(piece: Any, spans: list[Any], doc_id: str) -> list[Any]:
        # (and as if the text were inserted by an edit: what an empty input's first run makes;
        # each path on its own copy of the piece: a range's pieces are marked removed in place)
        for one in (piece, model._Piece(piece.text, inserted_by=len(edits))):
            by_shortcut = outcome(shortcut, dataclasses.replace(one), spans, doc_id)
            assert by_shortcut == outcome(model._apply_run_to_pieces, [dataclasses.replace(one)], spans, doc_id)
        taken.append(piece)
        return shortcut(piece, spans, doc_id)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model, "_apply_run_to_text", both)
        patch.setattr(model, "_compiled_diff_segments", None)  # (the Python's shortcut is tested)
        try:
            diff_segments(text, edits, [])
        except ReportError:
            pass
    assert taken or broken or not edits or not text  # (a text's first run takes the shortcut)


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet="\n\n甲乙 a", max_size=12),
    st.text(alphabet="\n甲乙 a", max_size=12),
    st.sampled_from(["shortened", "lengthened", "other"]),
)
def test_char_opcodes_are_difflibs(start: str, rest: str, how: str) -> None:
    # The shortcut for one text the start of the other (blank lines collapsed) gives
    # difflib's opcodes; so does every other pair of different lengths.
    from difflib import SequenceMatcher

    before, after = {"shortened": (start + rest, start), "lengthened": (start, start + rest), "other": (start, rest)}[how]
    if before and after and len(before) != len(after):
        assert char_opcodes(before, after) == SequenceMatcher(None, before, after, autojunk=False).get_opcodes()
    assert char_opcodes("\n\n\n", "\n\n") == [("equal", 0, 2, 0, 2), ("delete", 2, 3, 2, 2)]


def test_broken_edit_log_is_a_clear_error(tmp_path: Path) -> None:
    folder = write_version(tmp_path / "c", "v1", sample_docs())
    lines = (folder / "edits.jsonl").read_text(encoding="utf-8").splitlines()
    bad = json.loads(lines[0])
    bad["end"] += 1  # a span that no longer matches the text it claims to have replaced
    (folder / "edits.jsonl").write_text("\n".join([json.dumps(bad, ensure_ascii=False), *lines[1:]]) + "\n")
    with pytest.raises(ReportError, match=bad["doc"]):
        build_report(load_version(folder))
    # A run still gets its report: the error is shown, the other documents are intact.
    paths = write_reports(folder, tmp_path / "reports", workers=2)  # the error met in a worker
    report = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert len(report["errors"]) == 1 and bad["doc"] in report["errors"][0]
    broken = next(d for d in report["documents"] if d["id"] == bad["doc"])
    assert broken["diff"] is None and "does not replay" in broken["error"]
    assert sum(d["diff"] is not None for d in report["documents"]) == len(report["documents"]) - 1


def test_summary_counts(report: dict) -> None:
    counts = report["summary"]["counts"]
    assert (counts["documents_in"], counts["documents_out"], counts["quarantined"], counts["duplicates"]) == (7, 5, 1, 1)
    rules = {r["rule"]: r for r in report["summary"]["rules"]}
    assert rules["netease-notice"]["chars_removed"] == len("特别声明:以上内容仅供参考\n")
    assert rules["credit"]["meta_fields"] == {"author": 1}
    assert rules["comma-between-han"]["chars_replaced"] == 1
    assert {f["kind"]: f["flags"] for f in report["summary"]["flags"]} == {"garbage": 1, "spam-injection": 1, "splice": 1}
    # Stages in pipeline order, not alphabetical.
    assert [s["stage"] for s in report["summary"]["stages"]] == ["convert", "punctuation", "boilerplate", "dedup"]
    # The unchanged document is counted, not listed.
    assert report["documents_unchanged"] == 1
    assert "news/clean.txt" not in {d["source"] for d in report["documents"]}


def test_collapse_and_cap() -> None:
    segs = [{"k": "keep", "t": "甲" * 1000}, {"k": "del", "e": 0, "t": "乙"}, {"k": "keep", "t": "丙" * 1000}]
    out, cut = collapse(segs, Limits(context=10))
    assert not cut
    assert [s["k"] for s in out] == ["gap", "keep", "del", "keep", "gap"]
    assert out[0]["n"] == 990 and out[1]["t"] == "甲" * 10
    out, cut = collapse(segs, Limits(context=10, max_doc_chars=15))
    assert cut and out[-1]["k"] == "cut"
    assert sum(len(s.get("t", "")) for s in out) == 15


# --------------------------------------------------------------------------- terminal
def test_terminal_shows_each_kind_of_edit(report: dict) -> None:
    text = plain(report)
    assert "[-團結進-]→{+团结进+}" in text  # replacement, old → new
    assert "[-,-]→{+，+}" in text
    assert "[-特別聲明:以上內容僅供參考↵-](drop: boilerplate/netease-notice)" in text
    assert "[-本报记者·王小明↵-](→ meta author, boilerplate/credit)" in text
    assert "(duplicate of 0-14, dedup/near-duplicate-span)" in text
    assert "«ld体育中国官方网站»(flag spam-injection: gambling keyword spliced in)" in text
    assert "«»(flag splice: text cut mid-sentence)" in text
    assert "quarantined  garbage: 100% of the text" in text
    assert "keep it: curate review --keep" in text


def test_terminal_styles(report: dict) -> None:
    doc = by_source(report, "news/trad.txt")
    rich_text = diff_text(doc, {"rule": None, "kind": None, "stage": None})
    styles = {rich_text.plain[s.start : s.end]: str(s.style) for s in rich_text.spans}
    assert "strike" in styles["[-特別聲明:以上內容僅供參考↵-]"] and "red" in styles["[-特別聲明:以上內容僅供參考↵-]"]
    assert "magenta" in styles["[-本报记者·王小明↵-]"]
    assert "green" in styles["{+团结进+}"]


def test_terminal_filters(report: dict) -> None:
    text = plain(report, rule="netease-notice")
    assert "news/trad.txt" in text and "news/spam.txt" not in text and "news/dup.txt" not in text
    # Other edits of the document are shown applied, unmarked.
    assert "团结进步，共同发展" in text and "{+团结进+}" not in text
    assert "(drop: boilerplate/netease-notice)" in text
    text = plain(report, kind="duplicate")
    assert "news/dup.txt" in text and "news/trad.txt" not in text
    text = plain(report, stage="convert")
    assert "news/trad.txt" in text and "news/hostile" not in text
    text = plain(report, kind="spam-injection")
    assert "news/spam.txt" in text and "news/garbage.txt" not in text
    doc_id = by_source(report, "news/spam.txt")["id"]
    text = plain(report, doc=doc_id[:6])
    assert "news/spam.txt" in text and "news/trad.txt" not in text


def test_wide_characters_stay_aligned(version: Path, tmp_path: Path) -> None:
    docs = sample_docs()
    docs[0].apply("boilerplate", [Change(0, 2, "", "网易号声明", "中文规则名")])
    report = build_report(load_version(write_version(tmp_path / "c2", "v2", docs)))
    console = Console(record=True, width=90, no_color=True, file=open("/dev/null", "w"))  # noqa: SIM115
    for item in summary_renderables(report):
        console.print(item)
    lines = [line for line in console.export_text().splitlines() if line.startswith(("│", "┃", "┏", "└"))]
    rule_lines = [line for line in lines if "网易号声明" in line]
    assert rule_lines
    table_widths = {cell_len(line) for line in lines if "boilerplate/" in line}
    assert len(table_widths) == 1  # borders of rows with Chinese text line up with the others


def test_terminal_never_passes_control_characters(tmp_path: Path) -> None:
    doc = Document.new("x.txt", "正文\x1b[31m红\x07字")
    folder = write_version(tmp_path / "c", "v1", [doc])
    doc.apply("s", [Change(0, 1, "", "r", "t")])
    folder = write_version(tmp_path / "c3", "v1", [doc])
    text = plain(build_report(load_version(folder)))
    assert "\x1b" not in text and "\x07" not in text
    assert "⟨U+001B⟩[31m红⟨U+0007⟩字" in text


def test_cli_report_plain_when_not_a_terminal(version: Path) -> None:
    corpus = version.parent.parent
    result = CliRunner().invoke(main, ["report", "--corpus", str(corpus)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "[-特別聲明:以上內容僅供參考↵-](drop: boilerplate/netease-notice)" in result.output
    result = CliRunner().invoke(main, ["report", "v1", "--corpus", str(corpus), "--no-color", "--kind", "garbage"])
    assert result.exit_code == 0 and "news/garbage.txt" in result.output and "news/trad.txt" not in result.output


def test_cli_unknown_version_exits_2_with_one_line(version: Path) -> None:
    result = CliRunner().invoke(main, ["report", "nosuch", "--corpus", str(version.parent.parent)])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "nosuch" in result.output


# --------------------------------------------------------------------------- JSON and HTML
class _Counts(HTMLParser):
    """Collects the summary counts (elements with id="count-…" and data-count) of report.html."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        data = dict(attrs)
        if (data.get("id") or "").startswith("count-"):
            self.counts[data["id"][6:]] = int(data["data-count"] or -1)
        if tag == "script":
            self.scripts.append(data)


def test_json_equals_what_the_html_summary_shows(version: Path, tmp_path: Path) -> None:
    paths = write_reports(version, tmp_path / "reports")
    assert paths["html"] == tmp_path / "reports" / "v1" / "report.html"
    report = json.loads(paths["json"].read_text(encoding="utf-8"))
    page = paths["html"].read_text(encoding="utf-8")
    parser = _Counts()
    parser.feed(page)
    assert parser.counts == report["summary"]["counts"]
    blob = re.search(r'<script type="application/json" id="curate-data">(.*?)</script>', page, re.S)
    assert blob and json.loads(blob.group(1)) == report
    for rule in report["summary"]["removals_by_rule"]:
        assert f"{rule['stage']}/{rule['rule']}" in page  # the chart has a bar per rule


def test_html_escapes_hostile_text(version: Path, tmp_path: Path) -> None:
    page = write_reports(version, tmp_path / "reports")["html"].read_text(encoding="utf-8")
    assert "window.__pwned" in page  # the text is there (escaped), for the page to show
    assert "<script>window" not in page and "<img" not in page and "</textarea>" not in page
    assert "\u2028" not in page and "\u2029" not in page
    parser = _Counts()
    parser.feed(page)
    # Exactly our two script elements: the inert data block and the page's own script.
    assert parser.scripts == [{"type": "application/json", "id": "curate-data"}, {}]
    assert page.count("</script>") == 2
    assert "innerHTML" not in page and "eval(" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    outside_data = re.sub(r'<script type="application/json".*?</script>', "", page, flags=re.S)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", outside_data)  # nothing fetched
    assert "<link" not in outside_data and "@import" not in outside_data and "url(" not in outside_data
    assert HOSTILE not in page


def test_reports_are_reproducible(version: Path, tmp_path: Path) -> None:
    first = {k: p.read_bytes() for k, p in write_reports(version, tmp_path / "a").items()}
    second = {k: p.read_bytes() for k, p in write_reports(version, tmp_path / "b").items()}
    assert first == second


def test_html_budget_omits_diffs_but_keeps_documents(version: Path) -> None:
    report = build_report(load_version(version), Limits(max_total_chars=10))
    assert report["diffs_omitted"] == len(report["documents"]) - 1
    assert report["documents"][0]["diff"] is not None
    report = build_report(load_version(version), Limits(max_docs=2))
    assert len(report["documents"]) == 2 and report["documents_not_listed"] == 4


def copies_of_sample_docs(copies: int) -> list[Document]:
    """The sample documents `copies` times over, each copy under its own sources and ids."""
    docs = []
    for n in range(copies):
        for doc in sample_docs():
            doc.source = f"copy{n}/{doc.source}"
            doc.id = stable_id(doc.source)
            docs.append(doc)
    return docs


@pytest.mark.parametrize("limits", [Limits(), Limits(max_total_chars=300), Limits(max_docs=20)])
def test_reports_do_not_depend_on_workers(tmp_path: Path, limits: Limits) -> None:
    # 56 documents: several batches in flight on two workers, and with a small budget the
    # diffs made while the last in-flight ones used it up are replaced by entries without one.
    version = write_version(tmp_path / "corpus", "v1", copies_of_sample_docs(8))
    one = {k: p.read_bytes() for k, p in write_reports(version, tmp_path / "one", limits, workers=1).items()}
    two = {k: p.read_bytes() for k, p in write_reports(version, tmp_path / "two", limits, workers=2).items()}
    assert one == two
    report = json.loads(one["json"])
    assert report == json.loads(json.dumps(build_report(load_version(version), limits, strict=False)))
    # The page embeds report.json byte for byte, and neither can end a <script> element.
    assert one["json"].rstrip(b"\n") in two["html"]
    assert b"<" not in one["json"] and b"&" not in one["json"]
    with_diff = [d for d in report["documents"] if d["diff"] is not None]
    assert report["diffs_omitted"] == len(report["documents"]) - len(with_diff)
    if limits.max_total_chars == 300:
        assert 0 < len(with_diff) < len(report["documents"])
        shown = [sum(len(s.get("t", "")) for s in d["diff"]) for d in with_diff]
        assert sum(shown[:-1]) < 300  # each diff was made while the budget was not yet used up
    if limits.max_docs == 20:
        listed = 8 * (len(sample_docs()) - 1)  # every copy but the clean one
        assert len(report["documents"]) == 20 and report["documents_not_listed"] == listed - 20


def assert_same_version(one: VersionData, other: VersionData) -> None:
    assert list(one.documents) == list(other.documents)  # id order
    assert {k: one.documents[k] for k in one.documents} == {k: other.documents[k] for k in other.documents}
    assert list(one.edits) == list(other.edits)  # order of first appearance
    assert {k: one.edits[k] for k in one.edits} == {k: other.edits[k] for k in other.edits}
    assert one.listable() == other.listable()
    assert one.summary() == other.summary()
    assert all(one.detectors_of(k) == other.detectors_of(k) for k in other.documents)


def test_the_index_reads_what_load_version_reads(tmp_path: Path) -> None:
    version = write_version(tmp_path / "corpus", "v1", copies_of_sample_docs(3))
    loaded, indexed = load_version(version), index_version(version)
    assert isinstance(indexed, IndexedVersion)
    try:
        assert_same_version(indexed, loaded)
    finally:
        indexed.close()


def test_the_writers_index_is_the_index_of_what_it_wrote(tmp_path: Path) -> None:
    # A run's report reads the version through the index its writer made while writing (not
    # by reading and parsing every record again): the same documents, edits and summary.
    from curate.version import RunRecord
    from curate.version import write_version as write_run_version

    docs = copies_of_sample_docs(3)
    assert {d.status for d in docs} == {"ok", "quarantined", "duplicate"}
    record = RunRecord("v1", {}, "rules-0", [], [], None, {}, [])
    written = WrittenIndex()
    folder = write_run_version(tmp_path / "corpus", docs, record, on_written=written)
    assert written.complete
    with read_version(folder, written) as handed, read_version(folder) as indexed:
        assert isinstance(handed, IndexedVersion) and handed.documents is not indexed.documents
        assert_same_version(handed, indexed)
        assert handed.summary()["counts"]["edits"] > 0 and any(handed.detectors_of(k) for k in handed.worth)
    assert write_reports(folder, tmp_path / "a", written=written)["json"].read_bytes() == (
        write_reports(folder, tmp_path / "b")["json"].read_bytes()
    )
    # An id written twice: the writer's index steps aside and the files are read.
    twice = WrittenIndex()
    write_run_version(tmp_path / "other", [docs[0], docs[0]], RunRecord("v2", {}, "r", [], [], None, {}, []),
                      on_written=twice)
    assert not twice.complete


def _encoded_quarantined() -> tuple[Any, ...]:
    """What the run hands `EntryMaker` for a quarantined document (see `_encode_with_entry`)."""
    from curate.version import encode, records

    doc = Document.new("x", "a")
    doc.status = "quarantined"
    made = records(doc)
    return encode(doc, made), *made, doc.edits


def test_an_entry_made_from_the_records_is_the_one_made_from_their_lines() -> None:
    # The run makes an entry from the records it encodes, not from the lines read back: values
    # JSON writes in another form (tuples, integer keys) must not make a different entry.
    from curate.report import model
    from curate.version import encode, records

    doc = Document.new("a/x.txt", "第一段。免责声明：本文仅供参考。\n第二段<b>。")
    doc.meta = {"pair": (1, 2), 7: "seven"}
    doc.apply("boilerplate", [Change(3, 16, "", "disclaimer", "免责声明", evidence={"hits": (3, 16), 1: 0.5})])
    doc.flags.append(Flag("garbage", 4, 6, doc.text[4:6], "test", evidence={"at": (4, 6)}))
    made = records(doc)
    encoded = encode(doc, made)
    from_records = EntryMaker()(encoded, *made, doc.edits)
    from_lines = model._entry_of(
        model._record_of(encoded.line, encoded.status), model._edit_run(encoded.edit_lines), True, Limits(), True
    )
    assert from_records is not None and from_records.entry == from_lines.entry
    assert json.loads(from_records.entry)["meta"] == {"pair": [1, 2], "7": "seven"}


@pytest.mark.parametrize(
    "limits", [Limits(), Limits(max_docs=3), Limits(max_total_chars=300)], ids=["within", "docs", "chars"]
)
def test_entries_made_with_the_run_are_the_reports_entries(
    tmp_path: Path, limits: Limits, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run makes each listed document's entry where it encodes it (EntryMaker); the report
    # puts them in order. Past the report's limits the maker stops, and the report makes what
    # it lacks after the run, from the files, using the run's entries where a diff is wanted.
    # Either way: the bytes a report of the folder has.
    from curate.report import model
    from curate.runner import _encode_with_entry
    from curate.version import RunRecord
    from curate.version import write_version as write_run_version

    docs = copies_of_sample_docs(3)
    maker = EntryMaker(limits)
    written = WrittenIndex(maker)
    encoded = (_encode_with_entry(maker, doc) for doc in docs)
    folder = write_run_version(tmp_path / "corpus", encoded, RunRecord("v1", {}, "r", [], [], None, {}, []),
                               on_written=written)
    listed = len(load_version(folder).listable())
    made_after: list[str] = []
    entry_of = model._entry_of

    def counted(doc: dict, *args: object) -> object:
        made_after.append(doc["id"])
        return entry_of(doc, *args)

    monkeypatch.setattr(model, "_entry_of", counted)
    report = write_reports(folder, tmp_path / "run", limits, written=written)["json"].read_bytes()
    reused = [doc_id for doc_id in written.entries if doc_id not in made_after]
    if limits == Limits():
        assert not written.stopped and len(written.entries) == listed and not made_after
        assert maker(*_encoded_quarantined()) is not None
    else:
        kept = written.entries.values()
        assert written.stopped and 0 < len(kept) < listed and len(kept) <= limits.max_docs
        assert sum(entry.diff_chars or 0 for entry in kept) < limits.max_total_chars
        assert maker(*_encoded_quarantined()) is None  # stopped
        assert reused and made_after  # some entries the run made, the others made now
    assert report == write_reports(folder, tmp_path / "folder", limits)["json"].read_bytes()
    # Entries made for other limits are not used.
    other = write_reports(folder, tmp_path / "other", Limits(context=5), written=written)["json"]
    assert other.read_bytes() == write_reports(folder, tmp_path / "other2", Limits(context=5))["json"].read_bytes()


def test_a_failure_making_an_entry_leaves_the_version_written(tmp_path: Path, monkeypatch) -> None:
    # An entry is made in the last pass now, but a problem there must not lose the version:
    # the report, made after the run, meets it where a report error has always surfaced.
    from curate import runner
    from curate.report import model
    from tests.conftest import SEEDS, make_config

    def broken(*args: object) -> None:
        raise RuntimeError("entry trouble")

    monkeypatch.setattr(model, "_entry_of", broken)
    settings = make_config(tmp_path, {"run": {"workers": 1}})
    with pytest.raises(RuntimeError, match="entry trouble"):
        runner.run(settings, inputs=[str(SEEDS)])
    versions = list((tmp_path / "corpus" / "versions").iterdir())
    assert len(versions) == 1 and (versions[0] / "manifest.json").is_file()


def test_flag_spans_outside_the_text_are_clamped_everywhere() -> None:
    # A record's flags are not trusted: an empty flag at -1 is shown where one at 0 is.
    doc = Document.new("x", "丁甲")
    doc.apply("convert", [Change(0, 2, "丙甲", "t2s", "test")])
    edits = [{"seq": n, **e.to_json()} for n, e in enumerate(doc.edits)]
    at_zero = diff_segments("丁甲", edits, [{"kind": "k", "start": 0, "end": 0}])
    for start, end in ((-1, -1), (0, -2), (-5, 0)):
        assert diff_segments("丁甲", edits, [{"kind": "k", "start": start, "end": end}]) == at_zero


def test_a_runs_report_is_the_report_of_its_version(tmp_path: Path) -> None:
    from curate import runner
    from tests.conftest import SEEDS, make_config

    for workers in (1, 2):
        settings = make_config(tmp_path / f"w{workers}", {"run": {"workers": workers}})
        result = runner.run(settings, inputs=[str(SEEDS)])
        again = write_reports(result.version_dir, tmp_path / f"again{workers}")
        assert result.reports["json"].read_bytes() == again["json"].read_bytes()
        assert result.reports["html"].read_bytes() == again["html"].read_bytes()


def test_a_version_the_index_cannot_describe_is_read_whole(tmp_path: Path) -> None:
    # Edits of one document in two runs of lines (a hand-edited log): read with load_version,
    # and the report is the same as from the log in order.
    docs = copies_of_sample_docs(2)
    version = write_version(tmp_path / "corpus", "v1", docs)
    expected = json.loads(write_reports(version, tmp_path / "a")["json"].read_bytes())
    log = version / "edits.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    owners = [json.loads(line)["doc"] for line in lines]
    n = next(n for n in range(len(lines) - 1) if owners[n] == owners[n + 1])  # a document with 2+ edits
    log.write_text("".join(lines[:n] + lines[n + 1 :] + lines[n : n + 1]), encoding="utf-8")
    assert type(index_version(version)) is VersionData
    report = json.loads(write_reports(version, tmp_path / "b")["json"].read_bytes())
    assert report["documents"] == expected["documents"]
    # Lines ended by a bare CR (which load_version reads as line ends): read whole as well.
    log.write_text("".join(lines).replace("\n", "\r"), encoding="utf-8", newline="")
    assert type(index_version(version)) is VersionData
    report = json.loads(write_reports(version, tmp_path / "c")["json"].read_bytes())
    assert report["documents"] == expected["documents"]


def test_the_index_names_a_broken_file(tmp_path: Path) -> None:
    version = write_version(tmp_path / "corpus", "v1", sample_docs())
    log = version / "edits.jsonl"
    log.write_text(log.read_text(encoding="utf-8") + '{"doc": "nosuchdoc", "seq": 0}\n', encoding="utf-8")
    with pytest.raises(ReportError, match="edits.jsonl: edits for unknown document nosuchdoc"):
        write_reports(version, tmp_path / "reports")
    (version / "documents.jsonl").write_text("{not json\n", encoding="utf-8")
    with pytest.raises(ReportError, match=r"documents.jsonl:1: not valid JSON"):
        write_reports(version, tmp_path / "reports")


def test_a_process_connected_to_ray_makes_the_report_without_forking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gRPC threads do not survive a fork (Ray issue #59661): after a Ray run the driver may
    # still be connected, and its report is then made in the driver itself.
    import sys
    from types import SimpleNamespace

    from curate import engine

    version = write_version(tmp_path / "corpus", "v1", copies_of_sample_docs(3))
    expected = write_reports(version, tmp_path / "forked", workers=2)["json"].read_bytes()

    def no_fork(*args: object, **kwargs: object) -> None:
        raise AssertionError("forked in a process connected to Ray")

    monkeypatch.setitem(sys.modules, "ray", SimpleNamespace(is_initialized=lambda: True))
    monkeypatch.setattr(engine, "_forked_pool", no_fork)
    assert write_reports(version, tmp_path / "here", workers=2)["json"].read_bytes() == expected



@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="團結進步發展台灣,。 a\n", min_size=1, max_size=80), st.data())
def test_substitutions_compact_and_expand_to_the_same_segments(text: str, data: st.DataObject) -> None:
    # Character-for-character conversions (what t2s and punctuation do), then drops: the
    # compact form expands to exactly the segments it was made from.
    doc = Document.new("x", text)
    table = str.maketrans("團結進發灣,", "团结进发湾，")
    doc.apply("convert", [Change(0, len(doc.text), doc.text.translate(table), "t2s", "test")])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(doc.text)), max_size=4)))
    doc.apply("drop", [Change(a, b, "", "d", "test") for a, b in zip(cuts[::2], cuts[1::2], strict=False)])
    edits = [{"seq": n, **e.to_json()} for n, e in enumerate(doc.edits)]
    direct = diff_segments(text, edits, [])
    segs = expand_substitutions(direct)
    compact = compact_substitutions(segs)
    assert compact == compact_substitutions(direct)
    assert expand_substitutions(compact) == segs
    assert len(compact) <= len(segs)
    for segment in compact:
        if segment["k"] == "sub":
            assert len(segment["t"]) == len(segment["a"]) and segment["t"] != segment["a"]



def test_a_replacement_that_keeps_a_character_is_not_a_substitution() -> None:
    # difflib aligns "乙\n" -> "\n乙" as one replacement of equal length in which "\n" is the
    # same on both sides: as a "sub" segment it would come back as kept text, the edit lost.
    doc = Document.new("x", "\n")
    doc.apply("s0", [Change(0, 0, "乙", "insert", "test")])
    doc.apply("s1", [Change(0, 2, "\n乙", "move", "test")])
    doc.apply("s2", [Change(1, 2, "", "drop", "test")])
    edits = [{"seq": n, **e.to_json()} for n, e in enumerate(doc.edits)]
    segs = diff_segments("\n", edits, [])
    assert not any(s["k"] == "sub" for s in compact_substitutions(segs))
    assert expand_substitutions(compact_substitutions(segs)) == segs


def test_a_diff_past_the_budget_is_never_replayed_for_an_error(tmp_path: Path) -> None:
    # Entries are handed out in batches before the budget is known to run out; a document past
    # it whose edit log does not replay is listed without a diff and without an error, as a
    # sequential report would list it, on any number of workers.
    version = write_version(tmp_path / "corpus", "v1", copies_of_sample_docs(8))
    log = version / "edits.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines()
    last = max(range(len(lines)), key=lambda n: json.loads(lines[n])["doc"])  # listed last (id order)
    bad = json.loads(lines[last])
    bad["end"] += 1  # an edit of that document no longer replays
    lines[last] = json.dumps(bad, ensure_ascii=False)
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    limits = Limits(max_total_chars=300)
    report = build_report(load_version(version), limits)  # strict: no error, its diff is never made
    broken = next(d for d in report["documents"] if d["id"] == bad["doc"])
    assert broken["diff"] is None and "error" not in broken and report["errors"] == []
    one = write_reports(version, tmp_path / "one", limits, workers=1)["json"].read_bytes()
    two = write_reports(version, tmp_path / "two", limits, workers=2)["json"].read_bytes()
    assert one == two and json.loads(one)["errors"] == []
    with pytest.raises(ReportError, match=bad["doc"]):  # within the budget it is an error
        build_report(load_version(version))


# Characters safe_json escapes, and neighbours that share their UTF-8 bytes (“”…— and U+2028's
# neighbours begin with the same byte, as do the separators' look-alikes U+2027 and U+202A).
SCRIPT_HAZARDS = ["<", ">", "&", "\u2028", "\u2029", "\u2027", "\u202a", "“", "”", "…", "—", "a", "中"]


@given(st.lists(st.sampled_from(SCRIPT_HAZARDS)).map("".join))
def test_safe_json_escapes_exactly_what_could_end_a_script(text: str) -> None:
    encoded = safe_json({"t": text, "k": [text]})
    assert json.loads(encoded) == {"t": text, "k": [text]}  # the same data
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw.encode() not in encoded
    for kept in ("\u2027", "\u202a", "“", "”", "…", "—", "中"):  # written as themselves
        assert encoded.count(kept.encode()) == 2 * text.count(kept)


def test_report_files_written_side_by_side_and_an_error_of_either_is_raised(
    version: Path, tmp_path: Path
) -> None:
    """report.json is written in a thread beside report.html: the two files as one after the
    other wrote them, and the thread's error raised here, with nothing half-written left."""
    paths = write_reports(version, tmp_path / "a")
    assert paths["html"].read_bytes().count(paths["json"].read_bytes().rstrip(b"\n")) == 1
    blocked = tmp_path / "b" / version.name / "report.json"
    blocked.mkdir(parents=True)  # report.json cannot replace a folder
    with pytest.raises(OSError):
        write_reports(version, tmp_path / "b")
    assert sorted(p.name for p in blocked.parent.iterdir()) == ["report.html", "report.json"]
    assert (blocked.parent / "report.html").read_bytes() == paths["html"].read_bytes()
