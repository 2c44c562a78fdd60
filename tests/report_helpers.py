"""Build corpus version folders from Document objects, for the report tests.

Writes the layout the version writer produces (manifest.json, documents.jsonl, quarantine.jsonl,
duplicates.jsonl, edits.jsonl, LATEST) without running the pipeline, so that report tests can
describe exactly the edits and flags they need. The real writer (curate.version) may replace it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from curate.document import DUPLICATE, OK, QUARANTINED, Change, Document, Flag

# Section order of a real manifest's config: run, ingest, then the stages in pipeline order.
SECTIONS = ["run", "ingest", "repair", "invisible", "convert", "punctuation", "reflow", "boilerplate",
            "repeated_lines", "dedup", "corruption", "policy"]


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def write_version(
    corpus: Path,
    version_id: str,
    docs: list[Document],
    *,
    config: dict[str, Any] | None = None,
    rules_digest: str = "rules-0",
    parent: str | None = None,
) -> Path:
    """Write `docs` as version `version_id` of the corpus folder and point LATEST at it."""
    folder = corpus / "versions" / version_id
    folder.mkdir(parents=True)
    ordered = sorted(docs, key=lambda d: d.id)
    files = {
        OK: "documents.jsonl",
        QUARANTINED: "quarantine.jsonl",
        DUPLICATE: "duplicates.jsonl",
    }
    lines: dict[str, list[str]] = {name: [] for name in [*files.values(), "edits.jsonl"]}
    outputs = {}
    for doc in ordered:
        line = _line(doc.to_json())
        lines[files[doc.status]].append(line)
        if doc.status == OK:
            outputs[doc.id] = hashlib.sha256(line.encode()).hexdigest()
        for seq, edit in enumerate(doc.edits):
            lines["edits.jsonl"].append(_line({"doc": doc.id, "seq": seq, **edit.to_json()}))
    for name, content in lines.items():
        (folder / name).write_text("".join(x + "\n" for x in content), encoding="utf-8")
    edits = [e for d in ordered for e in d.edits]
    manifest = {
        "version": version_id,
        "tool_version": "0.1.0",
        "created": "2026-01-01T00:00:00+00:00",
        "parent": parent,
        "config": {name: {} for name in SECTIONS} | (config or {}),
        "rules_digest": rules_digest,
        "inputs": [{"path": d.source, "sha256": "0" * 64, "bytes": 0, "encoding": "utf-8", "documents": 1} for d in ordered],
        "skipped": [],
        "outputs": outputs,
        "counts": {
            "documents_in": len(ordered),
            "documents_out": sum(d.status == OK for d in ordered),
            "quarantined": sum(d.status == QUARANTINED for d in ordered),
            "duplicates": sum(d.status == DUPLICATE for d in ordered),
            "edits_by_stage": dict(Counter(e.stage for e in edits)),
            "edits_by_rule": dict(Counter(e.rule for e in edits)),
            "flags_by_kind": dict(Counter(f.kind for d in ordered for f in d.flags)),
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    (corpus / "LATEST").write_text(version_id + "\n", encoding="utf-8")
    return folder


def drop(doc: Document, needle: str, rule: str = "footer", stage: str = "boilerplate", kind: str = "boilerplate") -> None:
    """Remove every occurrence of `needle` (one batch, like a stage would)."""
    changes = []
    start = doc.text.find(needle)
    while start >= 0:
        changes.append(Change(start, start + len(needle), "", rule, f"{rule} text", kind=kind))
        start = doc.text.find(needle, start + len(needle))
    doc.apply(stage, changes)


def replace_all(doc: Document, old: str, new: str, rule: str, stage: str = "punctuation", kind: str = "normalise") -> None:
    changes = []
    start = doc.text.find(old)
    while start >= 0:
        changes.append(Change(start, start + len(old), new, rule, f"{old} -> {new}", kind=kind))
        start = doc.text.find(old, start + len(old))
    doc.apply(stage, changes)


def to_meta(doc: Document, needle: str, field: str, value: str, rule: str = "credit") -> None:
    start = doc.text.index(needle)
    doc.apply("boilerplate", [Change(start, start + len(needle), "", rule, "credit line", action=f"meta:{field}", kind="credit")])
    doc.set_meta(field, value)


def flag(doc: Document, needle: str, kind: str = "spam-injection", reason: str = "gambling keyword spliced in") -> None:
    start = doc.text.index(needle)
    doc.add_flag(Flag(kind, start, start + len(needle), needle, reason, "warning", "corruption"))


HOSTILE = (
    "正文开始。<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">"
    "</textarea></script>&amp;\u2028结束。广告行"
)


ORIGINAL: dict[str, str] = {}  # the text each of `sample_docs` was made from, by id


def _new(source: str, text: str) -> Document:
    doc = Document.new(source, text)
    ORIGINAL[doc.id] = text
    return doc


def sample_docs() -> list[Document]:
    """One document per kind of thing the report must show (all text invented for the tests)."""
    trad = _new("news/trad.txt", "團結進步,共同發展。\n特別聲明:以上內容僅供參考\n本报记者 王小明\n")
    converted = trad.text.translate(str.maketrans("團結進發別聲內僅參", "团结进发别声内仅参"))
    trad.apply("convert", [Change(0, len(trad.text), converted, "t2s", "Traditional to Simplified", kind="convert")])
    replace_all(trad, ",", "，", "comma-between-han")
    drop(trad, "特别声明:以上内容仅供参考\n", rule="netease-notice")
    to_meta(trad, "本报记者 王小明\n", "author", "王小明")

    dup = _new("news/dup.txt", "第一段讲述了社区活动的经过。\n第二段。第一段讲述了社区活动的经过。\n")
    second = dup.text.rindex("第一段")
    dup.apply("dedup", [Change(second, second + 14, "", "near-duplicate-span", "repeats an earlier passage",
                               kind="duplicate", link={"doc": dup.id, "start": 0, "end": 14})])
    dup.add_flag(Flag("splice", 19, 19, "", "text cut mid-sentence", "info", "corruption"))

    spam = _new("news/spam.txt", "开展民族ld体育中国官方网站宣传月活动。\n")
    flag(spam, "ld体育中国官方网站")

    quarantined = _new("news/garbage.txt", "锟斤拷锟斤拷烫烫烫\n")
    quarantined.add_flag(Flag("garbage", 0, 9, "锟斤拷锟斤拷烫烫烫", "mojibake", "error", "corruption"))
    quarantined.status, quarantined.status_reason = QUARANTINED, "garbage: 100% of the text"

    copy = _new("news/copy.txt", "开展民族团结宣传月活动。\n")
    copy.status, copy.status_reason, copy.duplicate_of = DUPLICATE, "near-duplicate (0.95)", spam.id

    hostile = _new("web/hostile.html", HOSTILE)
    drop(hostile, "广告行", rule="ad-line")

    clean = _new("news/clean.txt", "这是一篇没有任何问题的文章。\n")
    return [trad, dup, spam, quarantined, copy, hostile, clean]
