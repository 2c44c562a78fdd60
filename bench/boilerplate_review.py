"""Review the boilerplate rules' precision on real scraped text: what each rule removed, with context.

    .venv/bin/python bench/boilerplate_review.py [--corpora ../shared/corpora] [--samples 8]
        [--rule ID] [--out bench/out/boilerplate_review.md] [--no-repeated]

Runs the `boilerplate` stage (and `repeated_lines`, unless --no-repeated) over:
- NewsSpider (`lzjqsdd-NewsSpider/testdata/data/orinews/*.txt`, JSON lines; meta url kept),
- THUCNews (`qianshuang-dl-exp/data/cnews/cnews.val.txt`, label<TAB>text, one line per article),
- TaiwanStat (`TaiwanStat-Taiwan-news-crawlers/**/*.json`, malformed JSON: records are pulled
  out with a crude "content" regex, which is enough for a review),
- GeneralNewsExtractor HTML pages, through the project's own extraction
  (`curate.html.decode_html` + `extract_article` + `extracted_text`, credit lines kept beside the
  body, as ingest does); `--raw-html` uses a crude BeautifulSoup get_text instead (one line per
  text node: full of page chrome, so it also shows what the rules do *not* catch).

`--rule` takes a rule id or an id prefix ending in `*` (`credit.*`), repeatable; `--all` shows
every removal of the selected rules instead of samples (for reviewing removals by hand).
`--unmatched` lists short lines that look like credits (作者, 记者, 编辑, 来源, 通讯员, 文/ …)
and that no rule removed, most frequent shapes first: where new credit rules are needed.

Prints, per rule: removals, documents touched, characters removed, then samples (evenly spread
over the corpus, deterministic) with 30 characters of context either side, so a person can
judge each removal. Also prints the stage throughput (documents/s, characters/s; one run).
The text is third-party: the report goes to stdout or --out (bench/out/ is git-ignored), never
into the repository.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curate import config as config_module  # noqa: E402
from curate.document import Document  # noqa: E402
from curate.rules import load_rules  # noqa: E402
from curate.stages.base import RunContext  # noqa: E402
from curate.stages.boilerplate import Boilerplate  # noqa: E402
from curate.stages.repeated_lines import RepeatedLines  # noqa: E402

CONTENT_FIELD = re.compile(r'"content":\s*"((?:[^"\\]|\\.)*)"')


def newsspider(root: Path) -> list[Document]:
    docs = []
    for file in sorted((root / "lzjqsdd-NewsSpider/testdata/data/orinews").glob("*.txt")):
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines()):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            text = str(record.get("content", "")).replace("\r", "")
            meta = {"url": record["url"]} if record.get("url") else {}
            docs.append(Document.new(f"NewsSpider/{file.name}#{number}", text, meta=meta))
    return docs


def thucnews(root: Path) -> list[Document]:
    file = root / "qianshuang-dl-exp/data/cnews/cnews.val.txt"
    if not file.is_file():
        return []
    docs = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines()):
        _, _, text = line.partition("\t")
        docs.append(Document.new(f"THUCNews/cnews.val.txt#{number}", text))
    return docs


def taiwanstat(root: Path) -> list[Document]:
    docs = []
    for file in sorted((root / "TaiwanStat-Taiwan-news-crawlers").rglob("*.json")):
        raw = file.read_text(encoding="utf-8", errors="replace")
        for number, m in enumerate(CONTENT_FIELD.finditer(raw)):
            try:
                text = json.loads(f'"{m.group(1)}"')
            except json.JSONDecodeError:
                text = m.group(1)
            rel = file.relative_to(root).as_posix()
            docs.append(Document.new(f"{rel}#{number}", text))
    return docs


def gne(root: Path) -> list[Document]:
    from curate.html import decode_html, extract_article, extracted_text

    docs = []
    base = root / "GeneralNewsExtractor"
    for file in sorted(base.rglob("*.html")):
        html, _ = decode_html(file.read_bytes())
        text = extracted_text(extract_article(html, source=str(file)))
        docs.append(Document.new(f"GNE/{file.relative_to(base).as_posix()}", text))
    return docs


def gne_raw(root: Path) -> list[Document]:
    from bs4 import BeautifulSoup

    docs = []
    base = root / "GeneralNewsExtractor"
    for file in sorted(base.rglob("*.html")):
        soup = BeautifulSoup(file.read_text(encoding="utf-8", errors="replace"), "lxml")
        for tag in soup(["script", "style", "noscript"]):
            tag.decompose()
        lines = [s.strip() for s in soup.get_text("\n").split("\n")]
        docs.append(Document.new(f"GNE/{file.relative_to(base).as_posix()}", "\n".join(s for s in lines if s)))
    return docs


def context_of(edit, doc: Document, width: int = 30) -> str:
    """The removed text in [[...]] with `width` characters of the input either side."""
    src = doc.reconstruct_input()
    before = src[max(0, edit.src_start - width) : edit.src_start]
    after = src[edit.src_end : edit.src_end + width]
    removed = edit.before.strip("\n")
    return (before + "[[" + removed + "]]" + after).replace("\n", "⏎")


CREDIT_WORD = re.compile(
    r"作者|記者|记者|編輯|编辑|責編|责编|來源|来源|通訊員|通讯员|撰文|攝影|摄影|稿源|^\\s*[（(]?文\\s*[/／|｜:：]"
)


def unmatched_credits(processed: list[Document], limit: int = 60) -> list[str]:
    """Short credit-looking lines left in the output, grouped by shape (names masked)."""
    shapes: dict[str, list[str]] = defaultdict(list)
    for doc in processed:
        for line in doc.text.split("\n"):
            line = line.strip()
            if not line or len(line) > 60 or not CREDIT_WORD.search(line):
                continue
            shape = re.sub(r"[A-Za-z0-9]+", "9", line)
            shape = re.sub(r"(?<=[：:/／|｜ 　])[^\s：:/／|｜]{2,12}", "X", shape)
            shapes[shape[:40]].append(f"{doc.source}: {line}")
    out = ["", "## credit-looking lines no rule removed (shape: count, examples)"]
    for shape, lines in sorted(shapes.items(), key=lambda kv: -len(kv[1]))[:limit]:
        out.append(f"- {shape!r}: {len(lines)}")
        out.extend(f"    {x}" for x in lines[:3])
    return out


def selected(rule_id: str, patterns: list[str] | None) -> bool:
    if not patterns:
        return True
    return any(rule_id.startswith(p[:-1]) if p.endswith("*") else rule_id == p for p in patterns)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    parser.add_argument("--rules", type=Path, action="append", default=None)
    parser.add_argument("--samples", type=int, default=8, help="Samples shown per rule.")
    parser.add_argument("--rule", action="append", default=None,
                        help="Only show this rule's samples (an id, or a prefix ending in *); repeatable.")
    parser.add_argument("--all", action="store_true", help="Show every removal of the selected rules.")
    parser.add_argument("--unmatched", action="store_true",
                        help="List credit-looking short lines that no rule removed.")
    parser.add_argument("--raw-html", action="store_true",
                        help="GNE pages as crude get_text lines instead of curate.html extraction.")
    parser.add_argument("--only", action="append", default=None,
                        help="Only these corpora (NewsSpider, THUCNews, TaiwanStat, GNE); repeatable.")
    parser.add_argument("--no-repeated", action="store_true", help="Skip the repeated_lines stage.")
    parser.add_argument("--out", type=Path, default=None, help="Write the report here too.")
    args = parser.parse_args()
    if not args.corpora.is_dir():
        print(f"skipped: corpora folder {args.corpora} not found")
        return 0

    loaders = {"NewsSpider": newsspider, "THUCNews": thucnews, "TaiwanStat": taiwanstat,
               "GNE": gne_raw if args.raw_html else gne}
    if args.only:
        loaders = {k: v for k, v in loaders.items() if k in args.only}
    corpus: dict[str, list[Document]] = {name: load(args.corpora) for name, load in loaders.items()}
    cfg = config_module.build({})
    rules = load_rules(args.rules or [ROOT / "rules"])
    out: list[str] = []
    per_rule: dict[str, list[tuple[Document, object]]] = defaultdict(list)
    total_docs = total_chars = 0
    all_processed: list[Document] = []
    elapsed = 0.0
    for name, docs in corpus.items():
        if not docs:
            out.append(f"{name}: skipped (not found)")
            continue
        context = RunContext(config=cfg, rules=rules)
        stages = [Boilerplate(cfg["boilerplate"], context)]
        if not args.no_repeated:
            stages.append(RepeatedLines(cfg["repeated_lines"], context))
        chars = sum(len(d.text) for d in docs)
        originals = {id(d): d.text for d in docs}
        start = time.perf_counter()
        stream = iter(docs)
        for stage in stages:
            stream = stage.run(stream)
        processed = list(stream)
        spent = time.perf_counter() - start
        elapsed += spent
        total_docs += len(processed)
        total_chars += chars
        edits = 0
        all_processed.extend(processed)
        for doc in processed:
            assert doc.reconstruct_input() == originals[id(doc)], doc.source
            for edit in doc.edits:
                per_rule[edit.rule].append((doc, edit))
                edits += 1
        warnings = context.state.get("warnings", [])
        out.append(
            f"{name}: {len(processed)} documents, {chars:,} chars, {edits} removals, "
            f"{len(warnings)} timeouts, {spent:.2f}s ({len(processed) / spent:,.0f} docs/s, "
            f"{chars / spent / 1e6:.2f} M chars/s)"
        )
        out.extend(f"  warning: {w}" for w in warnings[:5])
    out.append(f"all: {total_docs} documents in {elapsed:.2f}s ({total_docs / elapsed:,.0f} docs/s)")
    out.append("")
    out.append(f"{'rule':36} {'removals':>8} {'docs':>6} {'chars':>8}")
    for rule_id, hits in sorted(per_rule.items(), key=lambda kv: -len(kv[1])):
        docs_touched = len({d.id for d, _ in hits})
        chars = sum(len(e.before) for _, e in hits)
        out.append(f"{rule_id:36} {len(hits):8} {docs_touched:6} {chars:8}")
    for rule_id, hits in sorted(per_rule.items()):
        if not selected(rule_id, args.rule):
            continue
        out.append("")
        out.append(f"## {rule_id} ({len(hits)} removals)")
        step = max(1, len(hits) // max(1, args.samples))
        shown = hits if args.all else hits[::step][: args.samples]
        for doc, edit in shown:
            value = f" -> {edit.action}={edit.evidence.get('value')!r}" if edit.action.startswith("meta:") else ""
            out.append(f"- {doc.source}: {context_of(edit, doc)}{value}")
    if args.unmatched:
        out.extend(unmatched_credits(all_processed))
    report = "\n".join(out)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
