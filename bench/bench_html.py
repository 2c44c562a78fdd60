"""HTML article extraction: curate.html vs trafilatura against the magic-html gold main text.

    .venv/bin/python bench/bench_html.py [--corpora ../shared/corpora] [--peers bench/.venv-peers]

Data: `<corpora>/opendatalab-magic-html/benchmark/data/article/` — 52 Chinese article pages and
`base.json` with the gold main text written by the magic-html authors. Their policy: the gold is
the main-content *region* of the page as they annotated it, without the headline, but often with
what sits inside that region: editor and source credit lines (`责任编辑：…`, `(责编：…)`,
`返回搜狐，查看更多`, `【纠错】`, `阅读下一篇：`), image captions, video player labels. We
remove credit lines and page-UI lines from the article body on purpose (they go to metadata), so
the table reports both raw scores and scores with credit lines ignored (removed from gold and
from every prediction alike, by the `CREDIT_LINE` pattern below).

Score: character-level precision, recall and F1 over the **multiset of non-whitespace
characters** (overlap = sum over characters of min(count in prediction, count in gold)). Line
breaks are ignored because the gold breaks lines at every inline tag. Overall = mean of the
per-page values (macro), as magic-html's own evaluation reports, plus the pooled (micro) F1.

trafilatura runs in its own environment (never a dependency of curate): the script looks for
`--peers` (default `bench/.venv-peers`, made with `python3 -m venv bench/.venv-peers &&
bench/.venv-peers/bin/pip install trafilatura`) and runs `trafilatura.extract(html)` with its
defaults on the same decoded text. Throughput: pages/s over the whole set, median of `--repeat`
runs, for curate including byte decoding.

`--gne` also runs both on `<corpora>/GeneralNewsExtractor/` (no gold there): it prints how much
each tool keeps and their agreement (raw and with credit lines ignored on both sides), a second
sample to check the extractor was not tuned to the magic-html pages.

curate keeps short credit lines next to the article (the boilerplate stage moves them into
metadata later), so its raw output holds lines that gold sometimes has and sometimes not; the
"credit lines kept" column counts the lines of each output that the credits-ignored scoring
removes (and how many the gold has).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curate.html import decode_html, extract_article, extracted_text  # noqa: E402

ARTICLE_DIR = Path("opendatalab-magic-html/benchmark/data/article")
GNE_DIR = Path("GeneralNewsExtractor")

# A credit or page-UI line: editor/source/author credits, photo credits, "back to Sohu" links.
# Written independently of curate's own credit-line pattern (so that ignoring credits cannot
# hide junk curate keeps), in Simplified and Traditional, full- and half-width.
CREDIT_LINE = re.compile(
    r"责任编辑|責任編輯|责编|責編|[编編][辑輯]\s*[:：/／丨|｜]|^\s*[(（【\[]?\s*[编編][辑輯]|"
    r"审核\s*[:：]|審核\s*[:：]|审\s*读|监\s*制|校对|校對|排版|"
    r"[来來]源\s*[:：|｜]|稿源|作者\s*[:：/／]|^\s*作者\s*$|^\s*[(（【\[]?\s*作者\s+[\u4e00-\u9fff]|"
    r"^\s*[编編][辑輯]\s*$|^\s*[(（【\[]?\s*文\s*[/／]|记者|記者|[摄攝]影\s*[:：/／]|[摄攝]\s*[)）]?\s*$|"
    r"(?:原文|本文|文章)(?:链接|鏈接|地址)\s*[:：]|"
    r"返回搜狐|查看更多|纠错|阅读下一篇|关键字\s*[:：]|原[标標]题\s*[:：]|未经授权不得转载"
)
WORDLESS_LINE = re.compile(r"^[\W_]*$")

TRAFILATURA_RUNNER = r"""
import json, sys, time
import trafilatura
pages = json.load(sys.stdin)
repeat = int(sys.argv[1])
out = {"version": trafilatura.__version__, "texts": {}, "runs": []}
for run in range(repeat):
    start = time.perf_counter()
    for name, html in pages.items():
        text = trafilatura.extract(html) or ""
        if run == 0:
            out["texts"][name] = text
    out["runs"].append(time.perf_counter() - start)
json.dump(out, sys.stdout, ensure_ascii=False)
"""


def strip_credit_lines(text: str) -> str:
    return "\n".join(
        line
        for line in text.splitlines()
        if not (len(line) <= 80 and CREDIT_LINE.search(line)) and not WORDLESS_LINE.match(line)
    )


def credit_lines(text: str) -> int:
    """How many lines of `text` the credits-ignored scoring removes as credit lines."""
    return sum(1 for line in text.splitlines() if len(line) <= 80 and CREDIT_LINE.search(line))


def char_counts(text: str) -> Counter[str]:
    return Counter(c for c in text if not c.isspace())


def score(prediction: str, gold: str) -> tuple[float, float, float, int, int, int]:
    """(precision, recall, F1, overlap, predicted, gold) over non-whitespace character multisets."""
    pred, ref = char_counts(prediction), char_counts(gold)
    overlap = sum((pred & ref).values())
    n_pred, n_gold = sum(pred.values()), sum(ref.values())
    p = overlap / n_pred if n_pred else 0.0
    r = overlap / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f, overlap, n_pred, n_gold


def run_curate(pages: dict[str, bytes], repeat: int) -> tuple[dict[str, str], list[float]]:
    texts: dict[str, str] = {}
    runs = []
    for run in range(repeat):
        start = time.perf_counter()
        for name, data in pages.items():
            html, _ = decode_html(data)
            text = extracted_text(extract_article(html, source=name))
            if run == 0:
                texts[name] = text
        runs.append(time.perf_counter() - start)
    return texts, runs


def run_trafilatura(
    peers: Path, pages: dict[str, bytes], repeat: int
) -> tuple[dict[str, str], list[float], str] | None:
    python = peers / "bin" / "python"
    if not python.exists():
        print(f"trafilatura: skipped: {python} not found (see the module docstring)")
        return None
    decoded = {name: decode_html(data)[0] for name, data in pages.items()}
    done = subprocess.run(
        [str(python), "-c", TRAFILATURA_RUNNER, str(repeat)],
        input=json.dumps(decoded, ensure_ascii=False),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"trafilatura: failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    out = json.loads(done.stdout)
    return out["texts"], out["runs"], out["version"]


def pages_per_second(runs: list[float], count: int) -> float:
    return count / statistics.median(runs)


def table(
    names: list[str], gold: dict[str, str], tools: dict[str, dict[str, str]], ignore_credits: bool
) -> dict[str, dict[str, float]]:
    """Print per-page F1 for each tool and return overall figures."""

    def prep(text: str) -> str:
        return strip_credit_lines(text) if ignore_credits else text

    per_tool: dict[str, list[tuple[float, float, float, int, int, int]]] = {t: [] for t in tools}
    header = "page      " + "".join(f"{t:>26}" for t in tools)
    print(header)
    print("          " + "".join(f"{'P':>8} {'R':>8} {'F1':>8}" for _ in tools))
    for name in names:
        row = f"{name[:8]}  "
        for tool, texts in tools.items():
            s = score(prep(texts.get(name, "")), prep(gold[name]))
            per_tool[tool].append(s)
            row += f"{s[0]:8.3f} {s[1]:8.3f} {s[2]:8.3f}"
        print(row)
    overall: dict[str, dict[str, float]] = {}
    for tool, scores in per_tool.items():
        overlap = sum(s[3] for s in scores)
        n_pred = sum(s[4] for s in scores)
        n_gold = sum(s[5] for s in scores)
        micro_p = overlap / n_pred if n_pred else 0.0
        micro_r = overlap / n_gold if n_gold else 0.0
        overall[tool] = {
            "P": statistics.fmean(s[0] for s in scores),
            "R": statistics.fmean(s[1] for s in scores),
            "F1": statistics.fmean(s[2] for s in scores),
            "min_F1": min(s[2] for s in scores),
            "pages_below_0.8": sum(1 for s in scores if s[2] < 0.8),
            "micro_F1": 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r else 0.0,
            "credit_lines": sum(credit_lines(tools[tool].get(name, "")) for name in names),
        }
    row = "mean      "
    for tool in tools:
        o = overall[tool]
        row += f"{o['P']:8.3f} {o['R']:8.3f} {o['F1']:8.3f}"
    print(row)
    return overall


def load_pages(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*.html"))
    }


def gne_check(corpora: Path, peers: Path) -> None:
    folder = corpora / GNE_DIR
    if not folder.is_dir():
        print(f"GNE check: skipped: {folder} not found")
        return
    pages = load_pages(folder)
    ours, runs = run_curate(pages, 1)
    theirs = run_trafilatura(peers, pages, 1)
    print(
        f"\nGeneralNewsExtractor pages: {len(pages)} (no gold; agreement = F1 of curate vs trafilatura)"
    )
    print(f"{'page':<32}{'curate chars':>14}{'trafilatura':>14}{'agreement':>11}{'no credits':>11}")
    agreements = []
    agreements_nc = []
    for name in pages:
        mine = ours[name]
        other = theirs[0].get(name, "") if theirs else ""
        agree = score(mine, other)[2] if theirs else float("nan")
        agree_nc = (
            score(strip_credit_lines(mine), strip_credit_lines(other))[2]
            if theirs
            else float("nan")
        )
        agreements.append(agree)
        agreements_nc.append(agree_nc)
        print(
            f"{name:<32}{sum(char_counts(mine).values()):>14}"
            f"{sum(char_counts(other).values()):>14}{agree:>11.3f}{agree_nc:>11.3f}"
        )
    if theirs:
        print(
            f"median agreement {statistics.median(agreements):.3f} "
            f"(credit lines ignored {statistics.median(agreements_nc):.3f}), "
            f"mean {statistics.fmean(agreements):.3f} ({statistics.fmean(agreements_nc):.3f}); "
            f"curate {pages_per_second(runs, len(pages)):.1f} pages/s"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    parser.add_argument("--peers", type=Path, default=ROOT / "bench" / ".venv-peers")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs over the whole set")
    parser.add_argument("--gne", action="store_true", help="also run the GNE agreement check")
    parser.add_argument("--json", type=Path, help="write the overall figures here")
    args = parser.parse_args()

    folder = args.corpora / ARTICLE_DIR
    if not (folder / "base.json").is_file():
        print(f"skipped: {folder / 'base.json'} not found")
        return 0
    base = json.loads((folder / "base.json").read_text(encoding="utf-8"))
    pages = {
        path.stem: path.read_bytes()
        for path in sorted((folder / "htmls").glob("*.html"))
        if path.stem in base
    }
    names = sorted(pages)
    gold = {name: base[name]["content"] for name in names}
    megabytes = sum(len(b) for b in pages.values()) / 1e6

    ours, our_runs = run_curate(pages, args.repeat)
    tools: dict[str, dict[str, str]] = {"curate": ours}
    speeds = {"curate": pages_per_second(our_runs, len(pages))}
    peer = run_trafilatura(args.peers, pages, args.repeat)
    if peer is not None:
        texts, runs, version = peer
        tools[f"trafilatura {version}"] = texts
        speeds[f"trafilatura {version}"] = pages_per_second(runs, len(pages))

    print(f"{len(names)} pages, {megabytes:.1f} MB of HTML; multiset-of-characters P/R/F1\n")
    print("== raw (gold as published) ==")
    raw = table(names, gold, tools, ignore_credits=False)
    print("\n== credit lines ignored (in gold and predictions) ==")
    credits = table(names, gold, tools, ignore_credits=True)

    gold_credits = sum(credit_lines(gold[name]) for name in names)
    print(
        "\n| tool | F1 raw | F1 credits ignored | P / R (credits ignored) | min page F1 | pages < 0.8 | micro F1 | credit lines kept | pages/s (median of runs) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for tool in tools:
        r, c = raw[tool], credits[tool]
        print(
            f"| {tool} | {r['F1']:.3f} | {c['F1']:.3f} | {c['P']:.3f} / {c['R']:.3f} | "
            f"{r['min_F1']:.3f} / {c['min_F1']:.3f} | {r['pages_below_0.8']} / {c['pages_below_0.8']} | "
            f"{r['micro_F1']:.3f} / {c['micro_F1']:.3f} | {r['credit_lines']} (gold {gold_credits}) | "
            f"{speeds[tool]:.1f} |"
        )
        summary[tool] = {"raw": r, "credits_ignored": c, "pages_per_s": speeds[tool]}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if args.gne:
        gne_check(args.corpora, args.peers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
