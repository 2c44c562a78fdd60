"""Throughput of the normalise-and-repair stages, and of the fast t2s converter.

    python bench/bench_normalise.py [--corpora ../shared/corpora] [--repeat 3]

Part 1 runs each stage (repair, invisible, convert, punctuation, reflow) and the five together
over the `content` of every article in `<corpora>/lzjqsdd-NewsSpider/testdata/data/orinews/`
(JSON lines) and reports MB/s of UTF-8 text. Each stage is timed on the output of the stages
before it, as in the pipeline. Part 2 converts the TaiwanStat Traditional news files (read as
text: the files are not valid JSON) with `curate.t2s.convert` and with
`opencc.OpenCC(config).convert`, asserts identical output and reports both speeds.
Best of `--repeat` runs; prints markdown tables. Exits 0 with "skipped: ..." without corpora.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curate import config, t2s  # noqa: E402
from curate.document import Document  # noqa: E402
from curate.stages.base import RunContext  # noqa: E402
from curate.stages.convert import Convert  # noqa: E402
from curate.stages.invisible import Invisible  # noqa: E402
from curate.stages.punctuation import Punctuation  # noqa: E402
from curate.stages.reflow import Reflow  # noqa: E402
from curate.stages.repair import Repair  # noqa: E402

STAGES = (Repair, Invisible, Convert, Punctuation, Reflow)


def load_newsspider(folder: Path) -> list[str]:
    texts = []
    for path in sorted(folder.glob("*.txt"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line:
                texts.append(json.loads(line).get("content", ""))
    return texts


def bench_stages(texts: list[str], repeat: int) -> list[tuple[str, float, float, int]]:
    cfg = config.build({})
    ctx = RunContext(cfg)
    stages = [cls(cfg[cls.name], ctx) for cls in STAGES]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    best = {st.name: float("inf") for st in stages}
    edits = {st.name: 0 for st in stages}
    for _ in range(repeat):
        docs = [Document.new(f"newsspider#{i}", t) for i, t in enumerate(texts)]
        for stage in stages:
            # Warm caches (tables are built once per process) outside the timing.
            stage.process(copy.deepcopy(docs[0]))
            start = time.perf_counter()
            for doc in docs:
                stage.process(doc)
            best[stage.name] = min(best[stage.name], time.perf_counter() - start)
        for doc, text in zip(docs, texts, strict=True):
            assert doc.reconstruct_input() == text
        edits = {st.name: sum(1 for d in docs for e in d.edits if e.stage == st.name) for st in stages}
    rows = [(name, megabytes, megabytes / best[name], edits[name]) for name in best]
    total = sum(best.values())
    rows.append(("all five", megabytes, megabytes / total, sum(edits.values())))
    return rows


def bench_t2s(text: str, repeat: int) -> list[tuple[str, float, float, float]]:
    import opencc

    rows = []
    for conf in t2s.CONFIGS:
        t2s.convert("預熱", conf)
        fast_s = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            fast = t2s.convert(text, conf)
            fast_s = min(fast_s, time.perf_counter() - start)
        start = time.perf_counter()
        reference = opencc.OpenCC(conf).convert(text)
        ref_s = time.perf_counter() - start
        if fast != reference:
            raise SystemExit(f"t2s {conf}: output differs from opencc-python-reimplemented")
        rows.append((conf, len(text) / fast_s / 1e6, len(text) / ref_s / 1e6, ref_s / fast_s))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    corpora = Path(args.corpora)
    news = corpora / "lzjqsdd-NewsSpider" / "testdata" / "data" / "orinews"
    taiwan = corpora / "TaiwanStat-Taiwan-news-crawlers"
    if not news.is_dir() and not taiwan.is_dir():
        print(f"skipped: {news} and {taiwan} not found")
        return 0
    if news.is_dir():
        texts = load_newsspider(news)
        print(f"## Normalise and repair on NewsSpider ({len(texts)} articles)\n")
        print("| stage | MB | MB/s | edits |")
        print("|---|---:|---:|---:|")
        for name, mb, speed, n in bench_stages(texts, args.repeat):
            print(f"| {name} | {mb:.2f} | {speed:.1f} | {n} |")
        print()
    else:
        print(f"skipped: {news} not found\n")
    if taiwan.is_dir():
        files = sorted(taiwan.rglob("*.json"))
        text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in files)
        print(f"## Traditional -> Simplified on TaiwanStat ({len(text) / 1e6:.2f} M characters)\n")
        print("| config | curate.t2s M chars/s | opencc-python-reimplemented M chars/s | speed-up | output |")
        print("|---|---:|---:|---:|---|")
        for conf, fast, ref, ratio in bench_t2s(text, args.repeat):
            print(f"| {conf} | {fast:.1f} | {ref:.2f} | {ratio:.0f}x | identical |")
    else:
        print(f"skipped: {taiwan} not found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
