"""The document model: edits keep everything needed to undo them and to locate them in the input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from curate.document import Change, Document, Edit, Flag, stable_id, undo_edits


def test_id_depends_on_source_only():
    assert Document.new("a/b.txt", "x").id == Document.new("a/b.txt", "different").id
    assert Document.new("a/b.txt", "x").id != Document.new("a/c.txt", "x").id
    assert stable_id("a/b.txt") == Document.new("a/b.txt", "").id


def test_new_gives_each_field_its_value_and_fresh_containers():
    """`new` passes the fields in order: a field out of place, or a list shared between
    documents, shows here."""
    from array import array
    from dataclasses import fields

    from curate.document import OK, SRC_TYPE

    meta = {"title": "标题"}
    doc = Document.new("a/b.jsonl#L3", "甲乙\n丙", raw_sha256="ab12", encoding="gbk", meta=meta)
    expected = Document(
        id=stable_id("a/b.jsonl#L3"), source="a/b.jsonl#L3", text="甲乙\n丙", raw_sha256="ab12",
        encoding="gbk", meta={"title": "标题"}, _src=array(SRC_TYPE, range(5)),
    )  # fmt: skip
    assert doc == expected
    assert [getattr(doc, f.name) for f in fields(Document)] == [getattr(expected, f.name) for f in fields(Document)]
    assert (doc.status, doc.status_reason, doc.duplicate_of) == (OK, "", None)
    assert doc.meta is not meta  # (a copy: the caller's dict is not the document's)
    other = Document.new("a/c.txt", "x")
    assert other.meta == {} and (other.raw_sha256, other.encoding) == ("", "utf-8")
    for name in ("meta", "flags", "edits", "warnings"):
        assert getattr(doc, name) is not getattr(other, name), name


def test_apply_records_spans_before_after_and_source_offsets():
    doc = Document.new("d.txt", "甲乙丙丁戊己")
    edits = doc.apply(
        "s",
        [
            Change(1, 2, "", rule="r.drop", reason="drop 乙"),
            Change(3, 5, "XY Z", rule="r.rep", reason="replace 丁戊"),
        ],
    )
    assert doc.text == "甲丙XY Z己"
    first, second = edits
    assert (first.action, first.start, first.end, first.before, first.after) == ("drop", 1, 2, "乙", "")
    # The second edit's span is in the text as it was after the first edit.
    assert (second.action, second.start, second.end, second.before) == ("replace", 2, 4, "丁戊")
    assert (first.src_start, first.src_end) == (1, 2)
    assert (second.src_start, second.src_end) == (3, 5)
    assert "甲乙丙丁戊己"[second.src_start : second.src_end] == "丁戊"
    assert doc.reconstruct_input() == "甲乙丙丁戊己"


def test_source_offsets_survive_several_stages():
    original = "AAA<x>BBB<y>CCC"
    doc = Document.new("d.txt", original)
    doc.apply("one", [Change(3, 6, "", rule="tag", reason="")])  # AAABBB<y>CCC
    doc.apply("two", [Change(6, 9, "", rule="tag", reason="")])  # AAABBBCCC
    edit = doc.edits[-1]
    assert original[edit.src_start : edit.src_end] == "<y>"
    start, end = doc.source_span(6, 9)
    assert original[start:end] == "CCC"


def test_overlapping_changes_are_refused():
    doc = Document.new("d.txt", "abcdef")
    try:
        doc.apply("s", [Change(0, 3, "", rule="a", reason=""), Change(2, 4, "", rule="b", reason="")])
    except ValueError as exc:
        assert "overlapping" in str(exc)
    else:
        raise AssertionError("overlapping changes were accepted")
    assert doc.text == "abcdef" and not doc.edits


def test_no_op_change_is_not_logged():
    doc = Document.new("d.txt", "abc")
    assert doc.apply("s", [Change(0, 1, "a", rule="same", reason="")]) == []
    assert doc.edits == []


def test_flags_follow_the_text():
    doc = Document.new("d.txt", "0123456789")
    doc.add_flag(Flag("spam-injection", 6, 8, "67", "test"))
    doc.apply("s", [Change(1, 3, "", rule="drop", reason="")])
    flag = doc.flags[0]
    assert (flag.start, flag.end, flag.text) == (4, 6, "67")
    doc.apply("s", [Change(0, 0, "++", rule="insert", reason="")])
    assert doc.text[flag.start : flag.end] == "67"


def test_meta_keeps_every_value():
    doc = Document.new("d.txt", "")
    doc.set_meta("author", "甲")
    doc.set_meta("author", "甲")
    doc.set_meta("author", "乙")
    assert doc.meta["author"] == ["甲", "乙"]


@given(
    st.text(alphabet="甲乙丙丁 ,。\nab", min_size=1, max_size=40),
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 5), st.text(alphabet="xy，", max_size=3)), max_size=6),
)
def test_undo_always_gives_back_the_input(text, raw_changes):
    doc = Document.new("d.txt", text)
    for start, length, after in raw_changes:
        start = min(start, len(doc.text))
        end = min(start + length, len(doc.text))
        doc.apply("s", [Change(start, end, after, rule="r", reason="")])
    assert doc.reconstruct_input() == text
    assert undo_edits(doc.text, doc.edits) == text
    for edit in doc.edits:
        assert 0 <= edit.src_start <= edit.src_end <= len(text)


def undone_one_by_one(text: str, edits) -> str:
    for edit in reversed(edits):
        if not edit.action.startswith("flag"):
            text = text[: edit.start] + edit.before + text[edit.start + len(edit.after) :]
    return text


# Texts, and batches of changes for them (start, length, text put in), one `apply` a batch.
TEXTS = st.text(alphabet="甲乙丙丁 ,。\nab", min_size=1, max_size=60)
BATCHES = st.lists(
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 4), st.text(alphabet="xy，", max_size=4)), max_size=5),
    max_size=5,
)


def non_overlapping(text: str, batch: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """A batch's changes that fit `text`, left to right, each after the one before it."""
    changes, taken = [], -1
    for start, length, after in sorted(batch):
        start = min(start, len(text))
        if start <= taken:
            continue
        end = min(start + length, len(text))
        changes.append((start, end, after))
        taken = end if end > start else start
    return changes


@settings(max_examples=300)
@given(TEXTS, BATCHES)
def test_undo_of_many_edits_per_batch_is_the_undo_edit_by_edit(text, batches):
    # Each `apply` makes several edits left to right; runs of such edits are undone in one pass.
    doc = Document.new("d.txt", text)
    for batch in batches:
        doc.apply("s", [Change(s, e, a, rule="r", reason="") for s, e, a in non_overlapping(doc.text, batch)])
        doc.add_flag(Flag("spam-injection", 0, min(1, len(doc.text)), doc.text[:1], "test"))
    edits = doc.edits + [Edit("s", "f", "flag", 0, 0, "", "", "")]
    assert undo_edits(doc.text, edits) == undone_one_by_one(doc.text, edits) == text


def mapped_one_change_at_a_time(src: list[int], changes: list[tuple[int, int, str]]) -> list[int]:
    """The text -> input map after `changes` (left to right, old coordinates), boundary by
    boundary: a boundary outside every change keeps its place; inside a change of the same
    length, its character's; inside one of another length, a proportional place in the
    replaced span."""
    out, cursor = [], 0
    for start, end, after in changes:
        out += src[cursor:start]
        k = len(after)
        if k == end - start:
            out += src[start:end]
        else:
            out += [src[start] + (j * (src[end] - src[start])) // k for j in range(k)]
        cursor = end
    return out + src[cursor:]


@settings(max_examples=300)
@given(TEXTS, BATCHES)
def test_the_map_follows_every_change_and_an_earlier_map_is_never_changed(text, batches):
    # Same-length changes leave the map as it is (the same object), so no apply may change a
    # map in place: a map read before a batch must read the same after it.
    doc = Document.new("d.txt", text)
    for batch in batches:
        changes = non_overlapping(doc.text, batch)
        before_map = doc._src
        before_values = list(before_map)
        doc.apply("s", [Change(s, e, a, rule="r", reason="") for s, e, a in reversed(changes)])
        assert list(before_map) == before_values
        assert list(doc._src) == mapped_one_change_at_a_time(before_values, changes)
        assert len(doc._src) == len(doc.text) + 1
    assert doc.reconstruct_input() == text


def test_pickling_keeps_every_field_of_document_edits_and_flags():
    """Documents cross process boundaries pickled (as field values, see `pickled_as_fields`)."""
    import pickle

    doc = Document.new("news/a.jsonl#3", "第一段，广告。\n第二段", raw_sha256="ab", encoding="gbk", meta={"k": [1]})
    doc.apply("boilerplate", [Change(3, 7, "", "ad", "an advert", kind="boilerplate", evidence={"x": 1})])
    doc.add_flag(Flag("garbage", 0, 2, doc.text[:2], "odd", severity="info", detector="g", evidence={"z": 2}))
    doc.status, doc.status_reason, doc.duplicate_of = "duplicate", "copy", "0123"
    doc.warnings.append("a rule timed out")
    copy = pickle.loads(pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy == doc
    for name in Document.__slots__:
        assert getattr(copy, name) == getattr(doc, name), name
    assert copy.edits[0].evidence == {"x": 1} and copy.flags[0].evidence == {"z": 2}
    assert copy.reconstruct_input() == "第一段，广告。\n第二段"
    # Edits travel as their values inside the document's own: each document pickled alone
    # (between passes) names its rebuilder, not also the edits' class (a lookup each on loading).
    import pickletools

    no_flags = pickle.dumps(Document.new("b.txt", "x"), protocol=pickle.HIGHEST_PROTOCOL)
    doc.flags.clear()
    for blob in (no_flags, pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL)):
        assert [op.name for op, _, _ in pickletools.genops(blob)].count("STACK_GLOBAL") == 1


def test_a_pickled_document_carries_its_wide_texts_as_stored_not_as_utf8():
    """Pickle writes a str as UTF-8 and reads it back a character at a time; a document's text,
    and an edit's long texts, travel as Python stores them (`packed_text`: a copy each way)."""
    import pickle

    import pytest

    from curate import document

    if document._compiled_packed_text is None:
        pytest.skip("curate._kernels was not built: texts travel as UTF-8")
    text = "體驗這個時間。" * 50 + "\n第二段,文字 Zoë"
    doc = Document.new("a.txt", text)
    doc.apply("convert", [Change(0, 350, "体验这个时间。" * 50, rule="convert.t2s", reason="t2s")])
    doc.apply("punctuation", [Change(354, 355, "，", rule="p", reason="full width")])
    doc.apply("credits", [Change(357, 361, "", rule="m", reason="a name", action="meta:author")])
    blob = pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL)
    copy = pickle.loads(blob)
    assert copy == doc and copy.reconstruct_input() == text
    long_edit, short_edit, named = doc.edits
    assert len(long_edit.before) + len(long_edit.after) >= document.PACK_EDITS_FROM
    for packed in (doc.text, long_edit.before, long_edit.after):
        assert document.packed_text(packed) in blob and packed.encode() not in blob
    assert "第二段，文字".encode() not in blob  # (in the text: packed with it)
    assert short_edit.after.encode() in blob and named.before.encode() in blob  # short: as pickle writes them


def test_a_new_document_maps_every_position_to_itself_whatever_its_length():
    from curate.document import identity_map

    for length in [0, 1, 5, (1 << 16) - 1, 1 << 16, (1 << 17) + 3, 5]:
        doc = Document.new("a", "字" * length)
        assert doc._src.tolist() == list(range(length + 1))
        assert identity_map(length).tolist() == list(range(length + 1))


def _edited() -> Document:
    doc = Document.new("edited.txt", "第一段：旧的文字被替换。\n\n第二段的文字\u200b保留下来。\n")
    doc.apply(
        "test",
        [
            Change(start=4, end=9, after="新的", rule="r", reason="", action="replace"),
            Change(start=16, end=16, after="插入", rule="r", reason="", action="replace"),
            Change(start=20, end=21, after="", rule="r", reason="", action="drop"),
        ],
    )
    return doc


def test_source_breaks_give_the_documents_source_positions() -> None:
    import numpy as np

    from curate.document import source_breaks, source_from_breaks

    for case in (_edited(), Document.new("plain.txt", "没有改动的文字。"), Document.new("empty.txt", "")):
        src_pos, src_off = source_breaks(case._src)
        assert src_pos.dtype == src_off.dtype == np.int64 and src_pos[0] == 0
        boundaries = np.arange(len(case._src))  # len(text) + 1 of them
        at = np.searchsorted(src_pos, boundaries, side="right") - 1
        assert (boundaries + src_off[at]).tolist() == list(case._src)
        assert source_from_breaks(len(case._src), src_pos, src_off) == case._src


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 6), st.text("改动字", max_size=4)), max_size=8))
def test_a_pickled_document_keeps_its_map_in_a_few_bytes(steps: list[tuple[int, int, str]]) -> None:
    """The text -> input map travels as its breaks (4 bytes per character before)."""
    import pickle

    original = "字" * 30 + "\n" + "文" * 4000
    doc = Document.new("a.txt", original)
    for start, length, after in steps:
        start = min(start, len(doc.text))
        doc.apply("s", [Change(start, min(start + length, len(doc.text)), after, rule="r", reason="")])
    copy = pickle.loads(pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy == doc and copy._src == doc._src and copy._src.typecode == doc._src.typecode
    assert copy.source_span(0, len(copy.text)) == doc.source_span(0, len(doc.text))
    size = len(pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL))
    edits = sum(len(e.before.encode()) + len(e.after.encode()) + 200 for e in doc.edits)
    assert size < len(doc.text.encode()) + edits + 400  # no second copy of the input, either


@given(
    st.builds(
        Edit,
        stage=st.text(max_size=5), rule=st.text(max_size=5), action=st.sampled_from(["drop", "replace", "meta:author"]),
        start=st.integers(0, 99), end=st.integers(0, 99), before=st.text(max_size=5), after=st.text(max_size=5),
        reason=st.text(max_size=5), kind=st.text(max_size=5), src_start=st.integers(-1, 99), src_end=st.integers(-1, 99),
        evidence=st.none() | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        link=st.none() | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),  # fmt: skip
    st.text(max_size=16),
    st.integers(0, 10**6),
)
@settings(max_examples=200)
def test_an_edits_record_is_its_json_after_its_document_and_number(edit: Edit, doc: str, seq: int) -> None:
    """`Edit.to_record` (each line of edits.jsonl) has the keys and values of `to_json`, every
    field in declaration order but an empty evidence or link, after "doc" and "seq"."""
    record = edit.to_record(doc, seq)
    want = {"doc": doc, "seq": seq, **edit.to_json()}
    assert record == want and list(record) == list(want)
    assert list(edit.to_json()) == [n for n in Edit.__slots__ if getattr(edit, n) is not None or n not in ("evidence", "link")]
