"""The report as one self-contained HTML file.

Safety: scraped pages contain `<script>`, `onerror=` and `</textarea>`. Every piece of document
text reaches the page in one of two ways, both inert:
- the summary is rendered here with `html.escape`;
- documents travel in a `<script type="application/json">` block (never executed) in which `<`,
  `>`, `&`, U+2028 and U+2029 are written as `\\uXXXX`, so no text can close the element; the
  page's script builds the document views with `textContent` and `setAttribute` only (no
  `innerHTML`, no `eval`).
On top of that a Content-Security-Policy allows only this page's own script and style (by
hash) and no network at all: even a mistake in escaping could not run injected code or load
anything from outside.

Size: the summary comes first and is static; documents are rendered 20 per page from the
embedded data, filtered and searched in the page. How much text is embedded is bounded by
`curate.report.model.Limits` (documented there and in the page footer).
"""

from __future__ import annotations

import base64
import hashlib
import json
from html import escape
from typing import Any

from curate.report.model import COUNT_LABELS, EncodedReport

CSS = """
:root { --red:#b3261e; --green:#1b6e20; --mag:#8e24aa; --yel:#8a6d00; --mute:#666; --line:#ddd; }
* { box-sizing: border-box; }
body { font-family: system-ui, "Noto Sans CJK SC", "Noto Sans SC", "PingFang SC", "Microsoft YaHei",
  sans-serif; margin: 0 auto; max-width: 1200px; padding: 1rem 1.5rem 4rem; color: #222; line-height: 1.5; }
h1 { font-size: 1.4rem; margin: .2rem 0; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.sub { color: var(--mute); font-size: .9rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border-bottom: 1px solid var(--line); padding: .2rem .6rem; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: .5rem; margin: .5rem 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .4rem .8rem; min-width: 7.5rem; }
.card .v { font-size: 1.4rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .k { color: var(--mute); font-size: .8rem; }
svg.chart text { font-size: 12px; font-family: inherit; }
.controls { position: sticky; top: 0; background: #fff; padding: .5rem 0; border-bottom: 1px solid var(--line);
  display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; z-index: 1; }
.controls input[type=search] { min-width: 16rem; }
article.doc { border: 1px solid var(--line); border-radius: 6px; padding: .6rem .9rem; margin: 1rem 0; }
article.doc h3 { font-size: 1rem; margin: 0 0 .3rem; word-break: break-all; }
.id { color: var(--mute); font-weight: normal; font-size: .8rem; }
.status { font-size: .75rem; padding: 0 .4rem; border-radius: 3px; background: #e8f5e9; color: var(--green); }
.status.quarantined, .status.duplicate { background: #fdecea; color: var(--red); }
.diff { white-space: pre-wrap; word-break: break-word; font-size: .95rem; border-left: 3px solid var(--line);
  padding-left: .7rem; margin: .5rem 0; }
del { text-decoration: line-through; }
del.drop { color: var(--red); background: #fdecea; }
del.meta { color: var(--mag); background: #f6e8fa; }
del.dup { color: var(--yel); background: #fff6d6; }
del.rep { color: var(--red); background: #fdecea; }
ins { color: var(--green); background: #e8f5e9; text-decoration: none; }
mark.flag { background: #ffe08a; outline: 1px solid #e0a800; }
.note { color: var(--mute); font-size: .78rem; font-style: italic; margin: 0 .15rem; }
.gap { color: var(--mute); font-size: .8rem; background: #f3f3f3; border-radius: 3px; padding: 0 .3rem; }
code { font-size: .8rem; background: #f3f3f3; padding: 0 .2rem; border-radius: 3px; word-break: break-all; }
details { margin: .4rem 0; } summary { cursor: pointer; color: #333; }
footer { margin-top: 3rem; color: var(--mute); font-size: .85rem; border-top: 1px solid var(--line); }
.legend span { margin-right: 1rem; }
.errors { color: var(--red); }
"""

JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("curate-data").textContent);
  var docs = data.documents;
  var PAGE = 20;
  var state = { rule: "", kind: "", stage: "", status: "", q: "", page: 0 };
  var list = document.getElementById("doc-list");

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function visible(text, removed) {
    var out = "";
    for (var i = 0; i < text.length; i++) {
      var ch = text[i], c = text.charCodeAt(i);
      if (ch === "\n") out += removed ? "\u21b5\n" : ch;
      else if (ch === "\t") out += removed ? "\u21e5" : ch;
      else if (c < 32 || (c >= 0x7f && c < 0xa0) || c === 0xad || (c >= 0x200b && c <= 0x200f) ||
               (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x206f) || c === 0xfeff ||
               (c >= 0xe000 && c <= 0xf8ff) || (c >= 0xd800 && c <= 0xdfff))
        out += "\u27e8U+" + c.toString(16).toUpperCase().padStart(4, "0") + "\u27e9";
      else if (removed && ch === " ") out += "\u00b7";
      else if (removed && ch === "\u3000") out += "\u25a1";
      else out += ch;
    }
    return out;
  }
  function filtering() { return !!(state.rule || state.kind || state.stage); }
  function editMatches(e) {
    return (!state.rule || e.rule === state.rule) &&
      (!state.kind || e.kind === state.kind || e.action === state.kind) &&
      (!state.stage || e.stage === state.stage);
  }
  function flagMatches(f) {
    var det = String(f.detector || "");
    return (!state.kind || f.kind === state.kind) && (!state.rule || det === state.rule) &&
      (!state.stage || det.indexOf(state.stage) === 0);
  }
  function searchText(d) {
    if (d._search === undefined) {
      var parts = [d.id, d.source, d.reason || "", JSON.stringify(d.meta)];
      (d.diff || []).forEach(function (s) { if (s.t) parts.push(s.t); if (s.a) parts.push(s.a); });
      d.edits.forEach(function (e) { parts.push(e.rule, e.reason, e.before, e.after); });
      d.flags.forEach(function (f) { parts.push(f.kind, f.reason, f.text); });
      d._search = parts.join("\n").toLowerCase();
    }
    return d._search;
  }
  function matches(d) {
    if (state.status && d.status !== state.status) return false;
    if (filtering() && !(d.edits.some(editMatches) || d.flags.some(flagMatches))) return false;
    if (state.q && searchText(d).indexOf(state.q.toLowerCase()) < 0) return false;
    return true;
  }
  function docLink(id, label) {
    var a = el("a", "", label);
    a.setAttribute("href", "#doc-" + id);
    a.addEventListener("click", function (ev) { ev.preventDefault(); showDoc(id); });
    return a;
  }
  function showDoc(id) {
    state = { rule: "", kind: "", stage: "", status: "", q: id, page: 0 };
    syncControls();
    render();
    var node = document.getElementById("doc-" + id);
    if (node) node.scrollIntoView();
  }
  function removalNote(e, d) {
    var rule = e.stage + "/" + e.rule;
    if (e.link || e.kind === "duplicate") {
      var span = el("span", "note", "(duplicate" + (e.link ? " of " : "") );
      if (e.link) {
        var label = (e.link.doc === d.id ? "" : String(e.link.doc).slice(0, 12) + ":") + e.link.start + "\u2013" + e.link.end;
        span.appendChild(docLink(e.link.doc, label));
      }
      span.appendChild(document.createTextNode(", " + rule + ")"));
      return ["dup", span];
    }
    if (String(e.action).indexOf("meta:") === 0)
      return ["meta", el("span", "note", "(\u2192 meta " + e.action.slice(5) + ", " + rule + ")")];
    return ["drop", el("span", "note", "(drop: " + rule + ")")];
  }
  // A "sub" segment (aligned substitutions by one edit): the characters that differ become
  // removed/inserted pairs, the others kept text (curate.report.model.expand_substitutions).
  // Array.from splits by code point, as Python indexes strings.
  function expand(segs) {
    var out = [];
    segs.forEach(function (s) {
      if (s.k !== "sub") { out.push(s); return; }
      var before = Array.from(s.t), after = Array.from(s.a), start = 0;
      while (start < before.length) {
        var same = before[start] === after[start], end = start + 1;
        while (end < before.length && (before[end] === after[end]) === same) end++;
        var was = before.slice(start, end).join("");
        if (same) out.push({k: "keep", t: was});
        else out.push({k: "del", t: was, e: s.e}, {k: "ins", t: after.slice(start, end).join(""), e: s.e});
        start = end;
      }
    });
    return out;
  }
  function renderDiff(d) {
    var box = el("div", "diff");
    var segs = expand(d.diff || []);
    for (var n = 0; n < segs.length; n++) {
      var s = segs[n];
      if (s.k === "gap") { box.appendChild(el("span", "gap", "\u22ef " + s.n + " unchanged characters \u22ef")); continue; }
      if (s.k === "cut") { box.appendChild(el("span", "gap", "\u22ef diff cut: " + s.n + " more characters (curate report --doc " + d.id + " --full) \u22ef")); continue; }
      var flags = (s.f || []).map(function (i) { return d.flags[i]; })
        .filter(function (f) { return !filtering() || flagMatches(f); });
      if (s.k === "mark") {
        flags.forEach(function (f) {
          var m = el("mark", "flag", "\u00ab\u00bb");
          m.setAttribute("title", f.kind + ": " + f.reason);
          box.appendChild(m);
          box.appendChild(el("span", "note", "(flag " + f.kind + ": " + f.reason + ")"));
        });
        continue;
      }
      var e = ("e" in s) ? d.edits[s.e] : null;
      var matched = !e || !filtering() || editMatches(e);
      if (s.k === "del") {
        if (!matched) continue;
        var next = segs[n + 1];
        var node;
        if (next && next.k === "ins" && next.e === s.e) {
          node = el("del", "rep", visible(s.t, true));
          node.setAttribute("title", e.stage + "/" + e.rule + ": " + e.reason);
          box.appendChild(node);
          box.appendChild(document.createTextNode("\u2192"));
          continue;
        }
        var how = removalNote(e, d);
        var body = s.t.replace(/\n+$/, "");
        node = el("del", how[0], visible(body, true) + (body.length < s.t.length ? "\u21b5" : ""));
        node.setAttribute("title", e.stage + "/" + e.rule + ": " + e.reason);
        box.appendChild(node);
        box.appendChild(how[1]);
        if (body.length < s.t.length) box.appendChild(document.createTextNode("\n"));
        continue;
      }
      var part;
      if (s.k === "ins" && matched) {
        part = el("ins", "", visible(s.t, false));
        part.setAttribute("title", e.stage + "/" + e.rule + ": " + e.reason);
      } else {
        part = document.createTextNode(visible(s.t, false));
      }
      if (flags.length) {
        var mark = el("mark", "flag");
        mark.setAttribute("title", flags.map(function (f) { return f.kind + ": " + f.reason; }).join("; "));
        mark.appendChild(part);
        box.appendChild(mark);
        flags.forEach(function (f) { box.appendChild(el("span", "note", "(flag " + f.kind + ": " + f.reason + ")")); });
      } else {
        box.appendChild(part);
      }
    }
    return box;
  }
  function table(headers, rows) {
    var t = el("table"), tr = el("tr");
    headers.forEach(function (h) { tr.appendChild(el("th", "", h)); });
    t.appendChild(tr);
    rows.forEach(function (row) {
      var r = el("tr");
      row.forEach(function (cell) {
        var td = el("td");
        if (cell instanceof Node) td.appendChild(cell); else td.textContent = String(cell);
        r.appendChild(td);
      });
      t.appendChild(r);
    });
    return t;
  }
  function renderDoc(d) {
    var art = el("article", "doc");
    art.id = "doc-" + d.id;
    art.setAttribute("data-id", d.id);
    var h = el("h3", "", visible(d.source, false) + " ");
    h.appendChild(el("span", "id", d.id + " "));
    h.appendChild(el("span", "status " + d.status, d.status));
    art.appendChild(h);
    if (d.reason) art.appendChild(el("div", "sub", "reason: " + d.reason));
    if (d.duplicate_of) {
      var dup = el("div", "sub", "duplicate of ");
      dup.appendChild(docLink(d.duplicate_of, d.duplicate_of));
      art.appendChild(dup);
    }
    var metaKeys = Object.keys(d.meta).sort();
    if (metaKeys.length) {
      art.appendChild(table(["meta", "value"], metaKeys.map(function (k) {
        var v = d.meta[k];
        return [k, typeof v === "string" ? v : JSON.stringify(v)];
      })));
    }
    var sub = el("div", "sub", d.chars_in + " characters in, " + d.chars_out + " out, " +
      d.edits.length + " edits, " + d.flags.length + " flags");
    art.appendChild(sub);
    if (d.error) art.appendChild(el("div", "errors", "error: " + d.error));
    else if (d.diff === null) art.appendChild(el("div", "gap", "diff omitted: report size budget reached (curate report --doc " + d.id + ")"));
    else art.appendChild(renderDiff(d));
    var edits = d.edits.filter(function (e) { return !filtering() || editMatches(e); });
    if (edits.length) {
      var det = el("details");
      det.appendChild(el("summary", "", edits.length + " edit(s)"));
      det.appendChild(table(["#", "stage/rule", "action", "before \u2192 after", "reason", "to keep it"],
        edits.map(function (e) {
          return [e.seq, e.stage + "/" + e.rule, (e.action + " " + e.kind).trim(),
            visible(e.before, true) + " \u2192 " + visible(e.after, false), e.reason,
            e.review ? el("code", "", e.review) : ""];
        })));
      art.appendChild(det);
    }
    var flags = d.flags.filter(function (f) { return !filtering() || flagMatches(f); });
    if (flags.length) {
      art.appendChild(table(["flag", "span", "text", "reason", "severity", "detector"], flags.map(function (f) {
        return [f.kind, f.start + "\u2013" + f.end, visible(f.text || "", false), f.reason, f.severity, f.detector || ""];
      })));
    }
    return art;
  }
  function render() {
    var chosen = docs.filter(matches);
    var pages = Math.max(1, Math.ceil(chosen.length / PAGE));
    if (state.page >= pages) state.page = pages - 1;
    var frag = document.createDocumentFragment();
    chosen.slice(state.page * PAGE, (state.page + 1) * PAGE).forEach(function (d) { frag.appendChild(renderDoc(d)); });
    list.replaceChildren(frag);
    document.getElementById("match-count").textContent = chosen.length + " of " + docs.length + " documents";
    document.getElementById("page-info").textContent = "page " + (state.page + 1) + " of " + pages;
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
  }
  var controls = { rule: "f-rule", kind: "f-kind", stage: "f-stage", status: "f-status", q: "f-search" };
  function syncControls() {
    Object.keys(controls).forEach(function (k) { document.getElementById(controls[k]).value = state[k]; });
  }
  Object.keys(controls).forEach(function (k) {
    function update(ev) {
      if (state[k] === ev.target.value) return;
      state[k] = ev.target.value; state.page = 0; render();
    }
    document.getElementById(controls[k]).addEventListener("input", update);
    document.getElementById(controls[k]).addEventListener("change", update);
  });
  document.getElementById("prev").addEventListener("click", function () { state.page--; render(); });
  document.getElementById("next").addEventListener("click", function () { state.page++; render(); });
  if (location.hash.indexOf("#doc-") === 0) showDoc(decodeURIComponent(location.hash.slice(5)));
  else render();
})();
"""


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode() + "'"


def csp(scripts: list[str], styles: list[str]) -> str:
    """No network, no plugins, no forms; only our own inline script and style (by hash)."""
    script_src = " ".join(_hash(s) for s in scripts) or "'none'"
    style_src = " ".join(_hash(s) for s in styles)
    return (
        f"default-src 'none'; script-src {script_src}; style-src {style_src}; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )


def page(title: str, body: str, *, script: str = "") -> str:
    """A complete page: our CSS, the body and our script."""
    return "".join(page_parts(title, body, script=script, with_data=False))


def page_parts(title: str, body: str, *, script: str = "", with_data: bool = True) -> tuple[str, str]:
    """A page in two halves: what comes before the data block's content, and what comes after
    (the data, `safe_json` text, is written between them as it is)."""
    scripts = [script] if script else []
    parts = [
        "<!DOCTYPE html>\n<html lang=\"zh\">\n<head>\n<meta charset=\"utf-8\">\n",
        f'<meta http-equiv="Content-Security-Policy" content="{escape(csp(scripts, [CSS]), quote=False)}">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        body,
    ]
    if with_data:
        parts.append('\n<script type="application/json" id="curate-data">')
    tail = ["</script>\n"] if with_data else []
    if script:
        tail.append(f"<script>{script}</script>\n")
    tail.append("</body>\n</html>\n")
    return "".join(parts), "".join(tail)


def _n(value: int) -> str:
    return f"{value:,}"


def _table(headers: list[tuple[str, bool]], rows: list[list[Any]], table_id: str = "") -> str:
    """A static table; every cell escaped. headers: (title, numeric)."""
    id_attr = f' id="{escape(table_id)}"' if table_id else ""
    head = "".join(f'<th{" class=n" if num else ""}>{escape(h)}</th>' for h, num in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{_n(v)}</td>' if num and isinstance(v, int) else f"<td>{escape(str(v))}</td>"
            for v, (_, num) in zip(row, headers, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table{id_attr}><tr>{head}</tr>{''.join(body)}</table>"


def removal_chart(rows: list[dict[str, Any]], limit: int = 30) -> str:
    """Horizontal bars of characters removed per rule, as inline SVG (no script needed)."""
    if not rows:
        return '<p class="sub">No text was removed.</p>'
    shown = rows[:limit]
    rest = rows[limit:]
    if rest:
        shown = shown + [{"stage": "", "rule": f"{len(rest)} other rules",
                          "chars_removed": sum(r["chars_removed"] for r in rest),
                          "edits": sum(r["edits"] for r in rest)}]
    top = max(r["chars_removed"] for r in shown) or 1
    bar_x, bar_w, row_h = 260, 460, 22
    parts = [f'<svg class="chart" id="removal-chart" width="{bar_x + bar_w + 150}" height="{row_h * len(shown) + 6}" '
             f'role="img" aria-label="characters removed per rule" xmlns="http://www.w3.org/2000/svg">']
    for n, row in enumerate(shown):
        y = n * row_h + 3
        width = max(1, round(bar_w * row["chars_removed"] / top))
        label = f"{row['stage']}/{row['rule']}" if row["stage"] else row["rule"]
        if len(label) > 34:
            label = label[:33] + "…"
        parts.append(
            f'<g><title>{escape(label)}: {_n(row["chars_removed"])} characters in {_n(row["edits"])} edits</title>'
            f'<text x="{bar_x - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{bar_x}" y="{y + 3}" width="{width}" height="{row_h - 6}" fill="#c62828"></rect>'
            f'<text x="{bar_x + width + 6}" y="{y + 15}">{_n(row["chars_removed"])}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)




def _options(element_id: str, label: str, values: list[str]) -> str:
    opts = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
    return f'<label>{escape(label)} <select id="{element_id}"><option value="">all</option>{opts}</select></label>'


def render_report_html(encoded: EncodedReport) -> list[bytes]:
    """The page of a report, in UTF-8, as parts to write one after the other: the summary
    rendered here, then report.json's content as the data block, then the page's script."""
    report = encoded.head
    summary = report["summary"]
    counts = summary["counts"]
    version = report["version"]
    cards = "".join(
        f'<div class="card"><div class="v" id="count-{key}" data-count="{counts[key]}">{_n(counts[key])}</div>'
        f'<div class="k">{escape(label)}</div></div>'
        for key, label in COUNT_LABELS
    )
    stage_table = _table(
        [("stage", False), ("documents", True), ("edits", True), ("characters removed", True),
         ("characters replaced", True), ("metadata fields", False)],
        [[r["stage"], r["documents"], r["edits"], r["chars_removed"], r["chars_replaced"],
          ", ".join(f"{k}×{v}" for k, v in r["meta_fields"].items())] for r in summary["stages"]],
        "stages",
    )
    rule_table = _table(
        [("stage", False), ("rule", False), ("kind", False), ("documents", True), ("edits", True),
         ("characters removed", True), ("characters replaced", True), ("metadata fields", False)],
        [[r["stage"], r["rule"], ", ".join(r.get("kinds", {})), r["documents"], r["edits"], r["chars_removed"],
          r["chars_replaced"], ", ".join(f"{k}×{v}" for k, v in r["meta_fields"].items())] for r in summary["rules"]],
        "rules",
    )
    flag_table = _table(
        [("kind", False), ("flags", True), ("documents", True), ("characters", True)],
        [[r["kind"], r["flags"], r["documents"], r["chars"]] for r in summary["flags"]],
        "flags",
    ) if summary["flags"] else '<p class="sub">No flags.</p>'
    skipped = ""
    if report.get("errors"):
        skipped += '<h2 id="errors">Errors</h2><ul class="errors">' + "".join(
            f"<li>{escape(e)}</li>" for e in report["errors"]) + "</ul>"
    if report.get("skipped"):
        skipped += "<h2>Skipped inputs</h2>" + _table(
            [("path", False), ("reason", False)], [[s.get("path", ""), s.get("reason", "")] for s in report["skipped"]]
        )
    rules = sorted({r["rule"] for r in summary["rules"]} | set(encoded.detectors))
    kinds = sorted({k for r in summary["rules"] for k in r.get("kinds", {})} | {r["kind"] for r in summary["flags"]})
    stages = [r["stage"] for r in summary["stages"]]
    limits = report["limits"]
    parent = f" · parent {escape(str(report['parent']))}" if report.get("parent") else ""
    body = f"""<header>
<h1>curate report · version <span id="version">{escape(version)}</span></h1>
<div class="sub">tool {escape(str(report.get('tool_version', '')))}{parent} · rules {escape(str(report.get('rules_digest', ''))[:16])}</div>
</header>
<section id="summary">
<h2>Summary</h2>
<div class="cards">{cards}</div>
<h2>Characters removed per rule</h2>
{removal_chart(summary["removals_by_rule"])}
<h2>Per stage</h2>
{stage_table}
<h2>Per rule</h2>
{rule_table}
<h2>Flags by kind</h2>
{flag_table}
{skipped}
<details><summary>Configuration and inputs</summary>
<pre>{escape(json.dumps({"config": report.get("config", {}), "inputs": report.get("inputs", [])}, ensure_ascii=False, indent=1))}</pre>
</details>
</section>
<section id="documents">
<h2>Documents</h2>
<div class="legend sub"><span><del class="drop">removed</del></span><span><del class="rep">old</del>→<ins>new</ins></span>
<span><del class="meta">moved to metadata</del></span><span><del class="dup">duplicate</del></span>
<span><mark class="flag">flagged</mark></span></div>
<div class="controls">
{_options("f-rule", "rule", rules)}
{_options("f-kind", "kind", kinds)}
{_options("f-stage", "stage", stages)}
{_options("f-status", "status", ["ok", "quarantined", "duplicate"])}
<label>search <input type="search" id="f-search" placeholder="text, id, source…"></label>
<button id="prev" type="button">‹ prev</button><span id="page-info"></span><button id="next" type="button">next ›</button>
<span id="match-count" class="sub"></span>
</div>
<noscript><p>The document views need JavaScript; the summary above and report.json do not.</p></noscript>
<div id="doc-list"></div>
</section>
<footer>
<p>{_n(report["documents_listed"])} documents listed (with edits, flags or a status other than ok);
{_n(report["documents_unchanged"])} unchanged documents are counted but not listed{
    f"; {_n(report['documents_not_listed'])} more not listed (limit {_n(limits['max_docs'])})" if report["documents_not_listed"] else ""}{
    f"; {_n(report['diffs_omitted'])} diffs omitted (size budget)" if report["diffs_omitted"] else ""}.</p>
<p>Size limits: unchanged text longer than {_n(2 * limits["context"])} characters is collapsed to {_n(limits["context"])}
characters around each change; a document's diff shows at most {_n(limits["max_doc_chars"])} characters; after
{_n(limits["max_total_chars"])} characters of diff, documents are listed without their diff. Any document in full:
<code>curate report {escape(version)} --doc ID --full</code>. The same data: report.json.</p>
</footer>"""
    before, after = page_parts(f"curate report {version}", body, script=JS)
    return [before.encode("utf-8"), *encoded.data, after.encode("utf-8")]
