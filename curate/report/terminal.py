"""The report in a terminal (rich).

The inline diff carries textual markers as well as colours, so that it reads the same in plain
output (a pipe, a file, `--no-color`): removed `[-text-]`, inserted `{+text+}`, replaced
`[-old-]→{+new+}`, flagged `«text»`, each removal followed by why in parentheses. Control and
invisible characters in document text are shown as `⟨U+XXXX⟩` (an escape sequence in a scraped
page must not drive the reader's terminal, and a removed zero-width space must be visible).
rich measures East Asian wide characters, so tables stay aligned with Chinese text.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from curate.report.model import COUNT_LABELS, edit_matches, expand_substitutions, flag_matches

STYLE_DROP = "bold red strike"
STYLE_META = "bold magenta strike"
STYLE_DUP = "bold yellow strike"
STYLE_INS = "bold green"
STYLE_FLAG = "black on yellow"
STYLE_NOTE = "dim italic"


def visible(text: str, removed: bool = False) -> str:
    """Document text made safe and visible for a terminal."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append("↵\n" if removed else ch)
        elif ch == "\t":
            out.append("⇥" if removed else ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp", "Cn"):
            out.append(f"⟨U+{ord(ch):04X}⟩")
        elif removed and ch in " \u3000":
            out.append("·" if ch == " " else "□")
        else:
            out.append(ch)
    return "".join(out)


def _short(doc_id: str) -> str:
    return doc_id[:12]


def removal_note(edit: dict[str, Any], doc_id: str) -> tuple[str, str]:
    """(style, note) for a removed span: what happened to it and which rule did it."""
    action = str(edit.get("action", ""))
    rule = f"{edit.get('stage', '')}/{edit.get('rule', '')}"
    link = edit.get("link")
    if link or edit.get("kind") == "duplicate":
        where = ""
        if link:
            target = "" if link.get("doc") == doc_id else f"{_short(str(link.get('doc')))}:"
            where = f" of {target}{link.get('start')}-{link.get('end')}"
        return STYLE_DUP, f"(duplicate{where}, {rule})"
    if action.startswith("meta:"):
        return STYLE_META, f"(→ meta {action.split(':', 1)[1]}, {rule})"
    return STYLE_DROP, f"(drop: {rule})"


def diff_text(entry: dict[str, Any], filters: dict[str, str | None]) -> Text:
    """The inline diff of one report document as rich Text.

    With filters, edits that do not match are shown as already applied and unmarked, so the
    matching ones stand out.
    """
    edits = entry["edits"]
    flags = entry["flags"]
    active = any(filters.values())
    text = Text()
    segments = expand_substitutions(entry.get("diff") or [])
    for n, seg in enumerate(segments):
        kind = seg["k"]
        if kind == "gap":
            text.append(f" ⋯ {seg['n']} unchanged characters ⋯ ", style=STYLE_NOTE)
            continue
        if kind == "cut":
            text.append(f"\n⋯ diff cut here: {seg['n']} more characters (use --full) ⋯", style=STYLE_NOTE)
            continue
        shown_flags = [flags[i] for i in seg.get("f", []) if not active or flag_matches(flags[i], **filters)]
        if kind == "mark":
            for flag in shown_flags:
                text.append("«»", style=STYLE_FLAG)
                text.append(f"(flag {flag.get('kind')}: {flag.get('reason')})", style=STYLE_NOTE)
            continue
        edit = edits[seg["e"]] if "e" in seg else None
        matched = edit is None or not active or edit_matches(edit, **filters)
        if kind == "del":
            if not matched:
                continue
            nxt = segments[n + 1] if n + 1 < len(segments) else None
            replaced = nxt is not None and nxt["k"] == "ins" and nxt.get("e") == seg["e"]
            if replaced:
                text.append("[-" + visible(seg["t"], removed=True) + "-]", style=STYLE_DROP)
                text.append("→")
                continue
            style, note = removal_note(edit or {}, entry["id"])
            body = seg["t"].rstrip("\n")
            ends_line = len(body) < len(seg["t"])
            text.append("[-" + visible(body, removed=True) + ("↵" if ends_line else "") + "-]", style=style)
            text.append(note, style=STYLE_NOTE)
            if ends_line:
                text.append("\n")
            continue
        body = visible(seg["t"])
        if kind == "ins" and matched:
            body = "{+" + body + "+}"
            style = STYLE_INS
        else:
            style = ""
        if shown_flags:
            text.append("«" + body + "»", style=STYLE_FLAG)
            for flag in shown_flags:
                text.append(f"(flag {flag.get('kind')}: {flag.get('reason')})", style=STYLE_NOTE)
        else:
            text.append(body, style=style)
    return text


def _num(value: int) -> str:
    return f"{value:,}"


def _table(title: str, columns: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    return table




def summary_renderables(report: dict[str, Any]) -> list[RenderableType]:
    summary = report["summary"]
    counts = summary["counts"]
    title = f"curate report · version {report['version']}"
    if report.get("parent"):
        title += f" · parent {report['parent']}"
    out: list[RenderableType] = [Rule(title)]
    table = _table("Summary", [("", "left"), ("", "right")])
    table.show_header = False
    for key, label in COUNT_LABELS:
        table.add_row(label, _num(counts[key]))
    out.append(table)
    if summary["stages"]:
        stages = _table("Per stage", [("stage", "left"), ("docs", "right"), ("edits", "right"),
                                      ("removed", "right"), ("replaced", "right"), ("meta", "left")])
        for row in summary["stages"]:
            stages.add_row(row["stage"], _num(row["documents"]), _num(row["edits"]),
                           _num(row["chars_removed"]), _num(row["chars_replaced"]), _fields(row["meta_fields"]))
        out.append(stages)
    if summary["rules"]:
        rules = _table("Per rule (removed/replaced in characters)",
                       [("stage/rule", "left"), ("kind", "left"), ("docs", "right"), ("edits", "right"),
                        ("removed", "right"), ("replaced", "right"), ("meta", "left")])
        for row in summary["rules"]:
            rules.add_row(f"{row['stage']}/{row['rule']}", ", ".join(row.get("kinds", {})), _num(row["documents"]),
                          _num(row["edits"]), _num(row["chars_removed"]), _num(row["chars_replaced"]),
                          _fields(row["meta_fields"]))
        out.append(rules)
    if summary["flags"]:
        flags = _table("Flags by kind", [("kind", "left"), ("flags", "right"), ("docs", "right"), ("chars", "right")])
        for row in summary["flags"]:
            flags.add_row(row["kind"], _num(row["flags"]), _num(row["documents"]), _num(row["chars"]))
        out.append(flags)
    for error in report.get("errors", []):
        out.append(Text(f"error: {error}", style="bold red"))
    for item in report.get("skipped", []):
        out.append(Text(f"skipped input {item.get('path')}: {item.get('reason')}", style="yellow"))
    return out


def _fields(fields: dict[str, int]) -> str:
    return ", ".join(f"{k}×{v}" for k, v in fields.items())


def select_documents(
    report: dict[str, Any], doc: str | None, filters: dict[str, str | None]
) -> list[dict[str, Any]]:
    """Documents passing --doc (id, id prefix, source or source prefix) and the rule/kind/stage filters."""
    chosen = []
    for entry in report["documents"]:
        if doc and not (entry["id"].startswith(doc) or entry["source"].startswith(doc)):
            continue
        if any(filters.values()) and not (
            any(edit_matches(e, **filters) for e in entry["edits"])
            or any(flag_matches(f, **filters) for f in entry["flags"])
        ):
            continue
        chosen.append(entry)
    return chosen


def document_renderables(entry: dict[str, Any], filters: dict[str, str | None]) -> list[RenderableType]:
    status = entry["status"]
    head = Text()
    head.append(visible(entry["source"]), style="bold")
    head.append(f"  {entry['id']}  ", style="dim")
    head.append(status, style="green" if status == "ok" else "bold red")
    if entry.get("reason"):
        head.append(f"  {visible(entry['reason'])}")
    if entry.get("duplicate_of"):
        head.append(f"  duplicate of {entry['duplicate_of']}", style="yellow")
    out: list[RenderableType] = [Rule(head, align="left")]
    if entry["meta"]:
        meta = Text("meta: ", style="bold")
        meta.append("; ".join(f"{k}={visible(str(v))}" for k, v in sorted(entry["meta"].items())))
        out.append(meta)
    if entry.get("error"):
        out.append(Text(f"error: {entry['error']}", style="bold red"))
    elif entry.get("diff") is None:
        out.append(Text("diff omitted: report size budget reached (use --doc ID)", style=STYLE_NOTE))
    else:
        out.append(diff_text(entry, filters))
    edits = [e for e in entry["edits"] if not any(filters.values()) or edit_matches(e, **filters)]
    if edits:
        out.append(_edit_table(edits))
    flags = [f for f in entry["flags"] if not any(filters.values()) or flag_matches(f, **filters)]
    if flags:
        table = Table(header_style="bold", expand=True)
        for name, ratio, least in (("flag", 3, 14), ("span", 2, 5), ("text", 6, 8), ("reason", 6, 8),
                                   ("severity", 2, 8)):
            table.add_column(name, ratio=ratio, overflow="fold", min_width=least)
        for f in flags:
            table.add_row(f.get("kind", ""), f"{f.get('start')}-{f.get('end')}", visible(f.get("text", "")),
                          visible(f.get("reason", "")), f.get("severity", ""))
        out.append(table)
    return out


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _edit_table(edits: list[dict[str, Any]]) -> Table:
    """Removals one per row (each can be reviewed); replacements grouped by rule and change."""
    table = Table(header_style="bold", expand=True)
    for name, ratio in (("#", 1), ("stage/rule", 4), ("action", 3), ("change", 8), ("reason", 6)):
        table.add_column(name, ratio=ratio, overflow="fold")
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for e in edits:
        if e["action"] == "replace":
            groups.setdefault((e["stage"], e["rule"], e["kind"], e["before"], e["after"]), []).append(e)
        else:
            groups[(str(e["seq"]),)] = [e]
    for members in groups.values():
        e = members[0]
        seqs = str(e["seq"]) if len(members) == 1 else f"{e['seq']}…{members[-1]['seq']}"
        if e["action"] == "replace":
            change = visible(_clip(e["before"]), removed=True) + " → " + visible(_clip(e["after"]))
            action = f"replace ×{len(members)}" if len(members) > 1 else "replace"
        else:
            change = visible(_clip(e["before"], 160), removed=True)
            action = e["action"]
        reason = Text(visible(e["reason"]))
        if e.get("link"):
            link = e["link"]
            reason.append(f"\nrepeats {link.get('doc')}:{link.get('start')}-{link.get('end')}", style="yellow")
        if e.get("review"):
            reason.append(f"\nkeep it: {e['review']}", style=STYLE_NOTE)
        table.add_row(seqs, f"{e['stage']}/{e['rule']}", f"{action} {e['kind']}".strip(), change, reason)
    return table


def render_report(
    report: dict[str, Any],
    console: Console,
    *,
    doc: str | None = None,
    rule: str | None = None,
    kind: str | None = None,
    stage: str | None = None,
) -> int:
    """Print the summary and the selected documents; return how many documents were shown."""
    filters = {"rule": rule, "kind": kind, "stage": stage}
    for item in summary_renderables(report):
        console.print(item)
    chosen = select_documents(report, doc, filters)
    wanted = ", ".join(f"--{k} {v}" for k, v in [("doc", doc), *filters.items()] if v)
    note = f"{len(chosen)} document(s)" + (f" matching {wanted}" if wanted else " with changes, flags or a status")
    if report.get("documents_unchanged"):
        note += f"; {report['documents_unchanged']} unchanged document(s) not shown"
    if report.get("documents_not_listed"):
        note += f"; {report['documents_not_listed']} more not listed (size limit)"
    console.print(Text(note, style=STYLE_NOTE))
    for entry in chosen:
        console.print(Group(*document_renderables(entry, filters)))
    return len(chosen)
