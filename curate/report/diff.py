"""Differences between two corpus versions, and what explains them.

A maintainer edits a rule or a setting, runs again, and wants to see the effect on the whole
corpus before accepting it: which documents were added, removed or changed, the text diff of
each changed document, and for each one the rules whose edits differ between the two edit logs
and the settings (from the two manifests) of the stages those rules belong to.
"""

from __future__ import annotations

import difflib
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from curate.report.html import page
from curate.report.model import (
    Limits,
    VersionData,
    char_opcodes,
    collapse,
    input_text,
    load_version,
)
from curate.report.terminal import STYLE_DROP, STYLE_INS, STYLE_NOTE, visible


def flatten_config(config: dict[str, Any]) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, values in config.items() for key, value in (values or {}).items()}


def settings_changes(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Settings that differ between two manifests' configs ("run" paths excluded: not output)."""
    fa, fb = flatten_config(a.get("config", {})), flatten_config(b.get("config", {}))
    missing = object()
    changes = []
    for key in sorted(set(fa) | set(fb)):
        if key.startswith("run."):
            continue
        va, vb = fa.get(key, missing), fb.get(key, missing)
        if va != vb:
            changes.append({"key": key, "a": None if va is missing else va, "b": None if vb is missing else vb})
    return changes


def _signature(edit: dict[str, Any]) -> tuple[Any, ...]:
    return (edit.get("action"), edit.get("src_start"), edit.get("src_end"), edit.get("before"), edit.get("after"))


def text_segments(a: str, b: str) -> list[dict[str, Any]]:
    """Character-level diff of two texts as keep/del/ins segments (lines first, for speed)."""
    lines_a, lines_b = a.splitlines(keepends=True), b.splitlines(keepends=True)
    segments: list[dict[str, Any]] = []

    def add(kind: str, text: str) -> None:
        if not text:
            return
        if segments and segments[-1]["k"] == kind:
            segments[-1]["t"] += text
        else:
            segments.append({"k": kind, "t": text})

    def add_pair(old: str, new: str) -> None:
        for tag, c1, c2, d1, d2 in char_opcodes(old, new, max_product=50_000_000):
            if tag == "equal":
                add("keep", old[c1:c2])
            else:
                add("del", old[c1:c2])
                add("ins", new[d1:d2])

    matcher = difflib.SequenceMatcher(None, lines_a, lines_b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("keep", "".join(lines_a[i1:i2]))
        elif tag == "replace" and i2 - i1 == j2 - j1:
            for old, new in zip(lines_a[i1:i2], lines_b[j1:j2], strict=True):
                add_pair(old, new)
        else:
            add_pair("".join(lines_a[i1:i2]), "".join(lines_b[j1:j2]))
    return segments


def explain(
    doc_id: str, a: VersionData, b: VersionData, settings: list[dict[str, Any]], rules_changed: bool
) -> dict[str, Any]:
    """Which rules' edits differ for this document, and which settings may explain them."""
    edits_a, edits_b = a.edits.get(doc_id, []), b.edits.get(doc_id, [])
    by_rule_a: dict[tuple[str, str], Counter[tuple[Any, ...]]] = {}
    by_rule_b: dict[tuple[str, str], Counter[tuple[Any, ...]]] = {}
    for edits, table in ((edits_a, by_rule_a), (edits_b, by_rule_b)):
        for e in edits:
            table.setdefault((e.get("stage", ""), e.get("rule", "")), Counter())[_signature(e)] += 1
    rules = []
    for key in sorted(set(by_rule_a) | set(by_rule_b)):
        ca, cb = by_rule_a.get(key, Counter()), by_rule_b.get(key, Counter())
        if ca != cb:
            rules.append({"stage": key[0], "rule": key[1], "edits_a": sum(ca.values()), "edits_b": sum(cb.values())})
    stages = {r["stage"] for r in rules}
    doc_a, doc_b = a.documents[doc_id], b.documents[doc_id]
    flags_a = Counter(f.get("kind") for f in doc_a.get("flags", []))
    flags_b = Counter(f.get("kind") for f in doc_b.get("flags", []))
    flag_kinds = sorted(k for k in set(flags_a) | set(flags_b) if flags_a[k] != flags_b[k])
    explained_settings = [s for s in settings if s["key"].split(".", 1)[0] in stages]
    if doc_a["status"] != doc_b["status"] or flag_kinds:
        explained_settings += [s for s in settings if s["key"].startswith(("policy.", "corruption."))
                               and s not in explained_settings]
    input_changed = input_text(doc_a, edits_a) != input_text(doc_b, edits_b)
    notes = []
    if input_changed:
        notes.append("the input text changed")
    if rules and rules_changed:
        notes.append("the rules changed (rules_digest differs)")
    if not rules and not input_changed and not flag_kinds and doc_a["status"] == doc_b["status"]:
        notes.append("no edit differs: metadata or status only")
    return {
        "rules": rules,
        "settings": explained_settings,
        "flag_kinds": flag_kinds,
        "input_changed": input_changed,
        "notes": notes,
    }


def _brief(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["id"], "source": doc.get("source", ""), "status": doc["status"]}


def diff_versions(a_dir: Path | str, b_dir: Path | str, limits: Limits | None = None) -> dict[str, Any]:
    """Everything `curate diff` shows, as one JSON-ready dictionary."""
    limits = limits or Limits()
    a, b = load_version(a_dir), load_version(b_dir)
    settings = settings_changes(a.manifest, b.manifest)
    rules_changed = a.manifest.get("rules_digest") != b.manifest.get("rules_digest")
    ids_a, ids_b = set(a.documents), set(b.documents)
    changed = []
    unchanged = 0
    for doc_id in sorted(ids_a & ids_b):
        da, db = a.documents[doc_id], b.documents[doc_id]
        same = all(da.get(k) == db.get(k) for k in ("text", "status", "meta", "flags", "reason", "duplicate_of"))
        if same:
            unchanged += 1
            continue
        segments, cut = collapse(text_segments(da["text"], db["text"]), limits)
        meta_keys = sorted(k for k in set(da.get("meta", {})) | set(db.get("meta", {}))
                           if da.get("meta", {}).get(k) != db.get("meta", {}).get(k))
        changed.append({
            "id": doc_id,
            "source": db.get("source", ""),
            "status_a": da["status"],
            "status_b": db["status"],
            "text_changed": da["text"] != db["text"],
            "meta_changed": {k: {"a": da.get("meta", {}).get(k), "b": db.get("meta", {}).get(k)} for k in meta_keys},
            "explained_by": explain(doc_id, a, b, settings, rules_changed),
            "diff": segments,
            "diff_cut": cut,
        })
    inputs_a = {i.get("path"): i.get("sha256") for i in a.manifest.get("inputs", [])}
    inputs_b = {i.get("path"): i.get("sha256") for i in b.manifest.get("inputs", [])}
    return {
        "a": a.version,
        "b": b.version,
        "settings": settings,
        "rules_digest": {"a": a.manifest.get("rules_digest"), "b": b.manifest.get("rules_digest"),
                         "changed": rules_changed},
        "tool_version": {"a": a.manifest.get("tool_version"), "b": b.manifest.get("tool_version")},
        "inputs": {
            "added": sorted(p for p in inputs_b if p not in inputs_a),
            "removed": sorted(p for p in inputs_a if p not in inputs_b),
            "changed": sorted(p for p in inputs_a if p in inputs_b and inputs_a[p] != inputs_b[p]),
        },
        "documents": {
            "added": [_brief(b.documents[i]) for i in sorted(ids_b - ids_a)],
            "removed": [_brief(a.documents[i]) for i in sorted(ids_a - ids_b)],
            "changed": changed,
            "unchanged": unchanged,
        },
    }


# --------------------------------------------------------------------------- terminal
def _diff_line(segments: list[dict[str, Any]]) -> Text:
    text = Text()
    for seg in segments:
        if seg["k"] == "gap":
            text.append(f" ⋯ {seg['n']} unchanged characters ⋯ ", style=STYLE_NOTE)
        elif seg["k"] == "cut":
            text.append(f"\n⋯ cut: {seg['n']} more characters ⋯", style=STYLE_NOTE)
        elif seg["k"] == "del":
            text.append("[-" + visible(seg["t"], removed=True) + "-]", style=STYLE_DROP)
        elif seg["k"] == "ins":
            text.append("{+" + visible(seg["t"]) + "+}", style=STYLE_INS)
        else:
            text.append(visible(seg["t"]))
    return text


def render_diff(result: dict[str, Any], console: Console) -> None:
    docs = result["documents"]
    console.print(Rule(f"curate diff · {result['a']} → {result['b']}"))
    summary = Table(show_header=False, title="Summary", title_justify="left")
    summary.add_column("")
    summary.add_column("", justify="right")
    for label, value in (("documents added", len(docs["added"])), ("documents removed", len(docs["removed"])),
                         ("documents changed", len(docs["changed"])), ("documents unchanged", docs["unchanged"])):
        summary.add_row(label, f"{value:,}")
    console.print(summary)
    if result["settings"]:
        table = Table(title="Settings that differ", title_justify="left", header_style="bold")
        for name in ("setting", result["a"], result["b"]):
            table.add_column(name, overflow="fold")
        for s in result["settings"]:
            table.add_row(s["key"], repr(s["a"]), repr(s["b"]))
        console.print(table)
    if result["rules_digest"]["changed"]:
        console.print(f"rules changed: {result['rules_digest']['a']} → {result['rules_digest']['b']}")
    for label in ("added", "removed", "changed"):
        if result["inputs"][label]:
            console.print(f"inputs {label}: " + ", ".join(result["inputs"][label]))
    for label in ("added", "removed"):
        for doc in docs[label]:
            console.print(Text(f"{label}: {visible(doc['source'])}  {doc['id']}  {doc['status']}",
                               style="green" if label == "added" else "red"))
    for doc in docs["changed"]:
        head = Text(f"changed: {visible(doc['source'])}  {doc['id']}", style="bold")
        if doc["status_a"] != doc["status_b"]:
            head.append(f"  status {doc['status_a']} → {doc['status_b']}", style="yellow")
        console.print(Rule(head, align="left"))
        why = doc["explained_by"]
        for r in why["rules"]:
            console.print(f"  rule {r['stage']}/{r['rule']}: {r['edits_a']} → {r['edits_b']} edits")
        for s in why["settings"]:
            console.print(f"  setting {s['key']}: {s['a']!r} → {s['b']!r}")
        for kind in why["flag_kinds"]:
            console.print(f"  flags of kind {kind} differ")
        for note in why["notes"]:
            console.print(f"  {note}", style=STYLE_NOTE)
        for key, values in doc["meta_changed"].items():
            console.print(f"  meta {key}: {values['a']!r} → {values['b']!r}")
        if doc["text_changed"]:
            console.print(_diff_line(doc["diff"]))


# --------------------------------------------------------------------------- HTML
def _html_segments(segments: list[dict[str, Any]]) -> str:
    from html import escape

    parts = []
    for seg in segments:
        if seg["k"] == "gap":
            parts.append(f'<span class="gap">⋯ {seg["n"]:,} unchanged characters ⋯</span>')
        elif seg["k"] == "cut":
            parts.append(f'<span class="gap">⋯ cut: {seg["n"]:,} more characters ⋯</span>')
        elif seg["k"] == "del":
            parts.append(f'<del class="drop">{escape(visible(seg["t"], removed=True))}</del>')
        elif seg["k"] == "ins":
            parts.append(f"<ins>{escape(visible(seg['t']))}</ins>")
        else:
            parts.append(escape(visible(seg["t"])))
    return "".join(parts)


def render_diff_html(result: dict[str, Any]) -> str:
    """A static, self-contained page (no script at all): everything escaped with html.escape."""
    from html import escape

    docs = result["documents"]
    a, b = escape(result["a"]), escape(result["b"])
    rows = [f"<h1>curate diff · {a} → {b}</h1>", '<div class="cards">']
    for label, value in (("added", len(docs["added"])), ("removed", len(docs["removed"])),
                         ("changed", len(docs["changed"])), ("unchanged", docs["unchanged"])):
        rows.append(f'<div class="card"><div class="v" id="count-{label}">{value:,}</div>'
                    f'<div class="k">documents {label}</div></div>')
    rows.append("</div>")
    if result["settings"]:
        rows.append(f"<h2>Settings that differ</h2><table><tr><th>setting</th><th>{a}</th><th>{b}</th></tr>")
        rows += [f"<tr><td>{escape(s['key'])}</td><td>{escape(repr(s['a']))}</td><td>{escape(repr(s['b']))}</td></tr>"
                 for s in result["settings"]]
        rows.append("</table>")
    if result["rules_digest"]["changed"]:
        rows.append(f"<p>Rules changed: {escape(str(result['rules_digest']['a']))} → "
                    f"{escape(str(result['rules_digest']['b']))}</p>")
    for label in ("added", "removed"):
        if docs[label]:
            rows.append(f"<h2>Documents {label}</h2><ul>")
            rows += [f"<li>{escape(d['source'])} <span class=id>{escape(d['id'])}</span> {escape(d['status'])}</li>"
                     for d in docs[label]]
            rows.append("</ul>")
    if docs["changed"]:
        rows.append("<h2>Documents changed</h2>")
    for doc in docs["changed"]:
        why = doc["explained_by"]
        rows.append(f'<article class="doc" id="doc-{escape(doc["id"])}"><h3>{escape(doc["source"])} '
                    f'<span class="id">{escape(doc["id"])}</span></h3><ul>')
        if doc["status_a"] != doc["status_b"]:
            rows.append(f"<li>status {escape(doc['status_a'])} → {escape(doc['status_b'])}</li>")
        rows += [f"<li>rule {escape(r['stage'])}/{escape(r['rule'])}: {r['edits_a']} → {r['edits_b']} edits</li>"
                 for r in why["rules"]]
        rows += [f"<li>setting {escape(s['key'])}: {escape(repr(s['a']))} → {escape(repr(s['b']))}</li>"
                 for s in why["settings"]]
        rows += [f"<li>flags of kind {escape(k)} differ</li>" for k in why["flag_kinds"]]
        rows += [f"<li>{escape(n)}</li>" for n in why["notes"]]
        rows += [f"<li>meta {escape(k)}: {escape(repr(v['a']))} → {escape(repr(v['b']))}</li>"
                 for k, v in doc["meta_changed"].items()]
        rows.append("</ul>")
        if doc["text_changed"]:
            rows.append(f'<div class="diff">{_html_segments(doc["diff"])}</div>')
        rows.append("</article>")
    return page(f"curate diff {result['a']} → {result['b']}", "\n".join(rows))
