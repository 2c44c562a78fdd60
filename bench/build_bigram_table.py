"""Build the character bigram table used by the garbage and spam detectors.

Source: the NewsSpider crawl in the shared corpora,
`lzjqsdd-NewsSpider/testdata/data/orinews/*.txt` (1,464 news articles from 163, toutiao and QQ,
2016; JSON lines, field `content`). It is mostly clean, edited news prose, which is what
"reads as Chinese" should mean here. The other corpora (THUCNews, Sogou, ChineseWebText) are
kept out of the table so that `bench/bench_corruption.py` measures the detectors on text the
model has not seen.

What is stored is derived statistics only, never text: counts of the most frequent symbols and
of the symbol pairs seen at least `--min-pair` times (see curate.detectors.bigram for how
characters become symbols). Output is deterministic (sorted, gzip without a timestamp).

Command (from the repository root):

    .venv/bin/python bench/build_bigram_table.py --corpora ../shared/corpora

writes `curate/data/bigram_zh.tsv.gz` and the model compiled from it, `curate/data/bigram_zh.npz`
(what the detectors load; see curate.detectors.bigram). `--compile-only` recompiles the `.npz`
from an existing `.tsv.gz` without reading the corpora.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curate.detectors.bigram import (  # noqa: E402
    CLASS_SYMBOLS,
    BigramModel,
    symbol_of_char,
    write_table,
)

SOURCE = "lzjqsdd-NewsSpider/testdata/data/orinews"


def iter_texts(folder: Path):
    """The `content` field of every JSON line in the NewsSpider files, in file-name order."""
    for file in sorted(folder.glob("*.txt")):
        for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            text = record.get("content") or ""
            if text:
                yield text.replace("\r", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--out", default=str(ROOT / "curate" / "data" / "bigram_zh.tsv.gz"))
    parser.add_argument("--max-symbols", type=int, default=6000, help="most frequent symbols kept")
    parser.add_argument(
        "--min-pair", type=int, default=2, help="pairs seen fewer times are dropped"
    )
    parser.add_argument(
        "--compile-only",
        action="store_true",
        help="only compile the existing --out table into the model (.npz beside it)",
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.compile_only:
        return compile_model(out)

    folder = Path(args.corpora) / SOURCE
    if not folder.is_dir():
        print(f"skipped: {folder} not found")
        return 0

    sequences = [[symbol_of_char(ch) for ch in text] for text in iter_texts(folder)]
    counts: Counter[str] = Counter()
    for seq in sequences:
        counts.update(seq)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = {s for s, _ in ranked[: args.max_symbols]} | set(CLASS_SYMBOLS)
    unknown_han, other = CLASS_SYMBOLS[0], CLASS_SYMBOLS[4]

    def fold(symbol: str) -> str:
        if symbol in kept:
            return symbol
        return unknown_han if "\u3400" <= symbol <= "\U0003ffff" and symbol.isalpha() else other

    unigrams: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for seq in sequences:
        folded = ["<bos>"] + [fold(s) for s in seq]
        unigrams.update(folded[1:])
        pairs.update(zip(folded, folded[1:], strict=False))
    bigrams = {pair: c for pair, c in pairs.items() if c >= args.min_pair}
    header = (
        f"character bigram counts from {SOURCE} ({len(sequences)} articles, "
        f"{sum(unigrams.values())} characters); built by bench/build_bigram_table.py "
        f"--max-symbols {args.max_symbols} --min-pair {args.min_pair}"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table(out, dict(unigrams), bigrams, header)
    print(f"{out}: {len(unigrams)} symbols, {len(bigrams)} pairs, {out.stat().st_size} bytes")
    return compile_model(out)


def compile_model(table: Path) -> int:
    """Compile the counts in `table` into the model file the detectors load (same stem, .npz)."""
    model_path = table.with_name(table.name.removesuffix(".tsv.gz") + ".npz")
    BigramModel.load(table).save(model_path)
    print(f"{model_path}: compiled, {model_path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
