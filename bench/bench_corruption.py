"""Run the corrupted-span detectors over real scraped corpora and report what they flag.

Corpora (under --corpora, default ../shared/corpora beside the repository):
- CASIA-LM-ChineseWebText/2021-43/cleared1.jsonl: 100 raw CommonCrawl documents (field
  `raw_content`); some carry gambling spam spliced into their body text. SPAM_DOCS below is the
  hand-labelled list (line numbers, 0-based) of documents whose *body* carries an injected
  gambling brand or code (`本文关键词` keyword lines and titles alone do not count), made by
  reading every document that mentions any gambling word; the report says how many of them the
  spam detector found, and which other documents it flagged.
- YeKc1M-InformationRetrieval/news_tensite_xml.smarty.dat: 200 SogouCA records, GBK, `<doc>`
  records with `<content>`; real byte-shift mojibake.
- qianshuang-dl-exp/data/cnews/cnews.val.txt: 1,000 THUCNews (Sina) articles, `label<TAB>text`;
  clean edited news, plus `?` where GBK could not hold a character.

Per corpus and kind it prints how many documents were flagged and how many flags, the
throughput of the detectors, and --samples flags per kind (with context) for hand checking.
Texts are run through the detectors only (no other stage), as the stage would see them if
repair could do nothing.

    .venv/bin/python bench/bench_corruption.py --corpora ../shared/corpora --samples 10
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curate.detectors import (  # noqa: E402
    KINDS,
    DetectorContext,
    SpamLexicon,
    default_lexicon_path,
    run_detectors,
)
from curate.document import Document  # noqa: E402
from curate.stages.corruption import BATCH_DOCUMENTS  # noqa: E402

CWT = "CASIA-LM-ChineseWebText/2021-43/cleared1.jsonl"
SOGOU = "YeKc1M-InformationRetrieval/news_tensite_xml.smarty.dat"
THUC = "qianshuang-dl-exp/data/cnews/cnews.val.txt"

# Hand-labelled: ChineseWebText documents (0-based line numbers) whose body text carries an
# injected gambling brand/code: 威尼斯人现金网, yabo, 澳洲幸运8/秒速赛车, 欧宝体育app, a brand
# name replacing a company's or school's name (x狮贵宾会, x氏贵宾会), 华体会, bt365, 爱游戏体育,
# js333金沙线路, ope体育app.
SPAM_DOCS = frozenset({0, 16, 19, 23, 33, 35, 48, 72, 89, 93, 99})


def load_cwt(corpora: Path) -> list[tuple[str, str]]:
    path = corpora / CWT
    docs = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if line.strip():
            docs.append((f"cwt#{i}", json.loads(line).get("raw_content", "")))
    return docs


def load_sogou(corpora: Path) -> list[tuple[str, str]]:
    raw = (corpora / SOGOU).read_bytes().decode("gbk", errors="replace")
    contents = re.findall(r"<content>(.*?)</content>", raw, flags=re.S)
    return [(f"sogou#{i}", text) for i, text in enumerate(contents)]


def load_thuc(corpora: Path) -> list[tuple[str, str]]:
    docs = []
    for i, line in enumerate((corpora / THUC).read_text(encoding="utf-8").splitlines()):
        _, _, text = line.partition("\t")
        docs.append((f"thuc#{i}", text))
    return docs


def context_of(text: str, start: int, end: int, width: int = 12) -> str:
    left = text[max(0, start - width) : start].replace("\n", "/")
    right = text[end : end + width].replace("\n", "/")
    return f"{left}[{text[start:end]}]{right}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--samples", type=int, default=8, help="flags shown per corpus and kind")
    parser.add_argument("--json", help="also write every flag to this JSON-lines file")
    args = parser.parse_args(argv)
    corpora = Path(args.corpora)
    loaders = {
        "ChineseWebText": (CWT, load_cwt),
        "Sogou GBK": (SOGOU, load_sogou),
        "THUCNews": (THUC, load_thuc),
    }
    if not corpora.is_dir():
        print(f"skipped: {corpora} not found")
        return 0
    ctx = DetectorContext(lexicon=SpamLexicon.load(default_lexicon_path()))
    out = open(args.json, "w", encoding="utf-8") if args.json else None  # noqa: SIM115
    for name, (relative, load) in loaders.items():
        if not (corpora / relative).is_file():
            print(f"skipped: {corpora / relative} not found")
            continue
        docs = load(corpora)
        flagged_docs: dict[str, set[str]] = defaultdict(set)
        flag_counts: Counter[str] = Counter()
        samples: dict[str, list[str]] = defaultdict(list)
        size = sum(len(text.encode("utf-8")) for _, text in docs)
        started = time.perf_counter()
        results = []
        for first in range(0, len(docs), BATCH_DOCUMENTS):  # in batches, as the stage runs them
            batch = docs[first : first + BATCH_DOCUMENTS]
            made = [Document.new(source, text) for source, text in batch]
            ctx.prepare([doc.text for doc in made])
            for (source, text), doc in zip(batch, made, strict=True):
                results.append((source, text, run_detectors(doc, ctx)))
        elapsed = time.perf_counter() - started
        for source, text, flags in results:
            for flag in flags:
                flagged_docs[flag.kind].add(source)
                flag_counts[flag.kind] += 1
                if len(samples[flag.kind]) < args.samples:
                    samples[flag.kind].append(f"{source}: {context_of(text, flag.start, flag.end)}")
                if out:
                    record = {
                        "source": source,
                        **flag.to_json(),
                        "context": context_of(text, flag.start, flag.end),
                    }
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
        print(
            f"\n== {name}: {len(docs)} documents, {size / 1e6:.2f} MB, detectors {size / 1e6 / elapsed:.1f} MB/s"
        )
        for kind in KINDS:
            print(
                f"  {kind:15s} {len(flagged_docs[kind]):4d} documents  {flag_counts[kind]:5d} flags"
            )
        if name == "ChineseWebText":
            found = {int(s.split("#")[1]) for s in flagged_docs["spam-injection"]}
            print(
                f"  spam documents found: {len(found & SPAM_DOCS)} of {len(SPAM_DOCS)} hand-labelled "
                f"(missed: {sorted(SPAM_DOCS - found)}; flagged outside the list: {sorted(found - SPAM_DOCS)})"
            )
        for kind in KINDS:
            for line in samples[kind]:
                print(f"    {kind}: {line}")
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
