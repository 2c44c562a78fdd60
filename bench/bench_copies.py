"""Near-copies by the thousand: time and peak memory as their number doubles.

    .venv/bin/python bench/bench_copies.py [--kind documents,sentences,paragraphs]
        [--sizes 1000,2000,4000,8000] [--workers 1] [--other CHECKOUT]

Scraped corpora repeat paragraphs with small changes (a self-media account's sign-off with
today's date, a portal's notice with a number changed): every copy then shares its LSH bands
with every other. Inputs (generated, seeded: no corpora needed), N copies each:
- documents: N documents of three paragraphs of their own and one 300-character paragraph
  shared by all, one character changed in each;
- sentences: one document whose one paragraph is N copies of a 40-character sentence, one
  character changed in each (keyword stuffing);
- paragraphs: one document of N paragraphs of 120 characters, every fourth a copy of an
  earlier one (a scraped page that repeats its blocks: thousands of edits in one document).
A run should take time and memory in proportion to N; a decision that pairs every copy with
every other grows with N squared. Each size is a fresh `curate run` process (report included,
as a user runs it) timed from outside, with the peak memory of its process tree (PSS,
sampled); with `--other` (a git worktree of another commit) that checkout is run on the same
inputs first. Keep the sizes small for code before 2026-12-04's limits: it needed 12 GB for
4,000 documents, and 227 s for 4,000 sentences.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import compile_checkout, timed_run  # noqa: E402

CHARACTERS = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产"
    "种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从"
    "业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又"
)


def write_copies(count: int, path: Path) -> int:
    """`count` documents sharing a near-copied paragraph, as JSON lines; returns the bytes."""
    rng = random.Random(count)
    shared = "".join(rng.choice(CHARACTERS) for _ in range(300))
    with path.open("w", encoding="utf-8") as out:
        for number in range(count):
            own = ["".join(rng.choice(CHARACTERS) for _ in range(120)) + "。" for _ in range(3)]
            at = rng.randrange(len(shared))
            copy = shared[:at] + rng.choice(CHARACTERS) + shared[at + 1 :] + "。"
            record = {"id": number, "text": "\n".join([*own, copy])}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path.stat().st_size


def write_sentences(count: int, path: Path) -> int:
    """One paragraph of `count` near-copies of a sentence, as a text file; returns the bytes."""
    rng = random.Random(count)
    sentence = "".join(rng.choice(CHARACTERS) for _ in range(40))
    copies = []
    for _ in range(count):
        at = rng.randrange(len(sentence))
        copies.append(sentence[:at] + rng.choice(CHARACTERS) + sentence[at + 1 :] + "。")
    path.write_text("".join(copies) + "\n", encoding="utf-8")
    return path.stat().st_size


def write_paragraphs(count: int, path: Path) -> int:
    """One document of `count` paragraphs, every fourth a copy of an earlier one."""
    rng = random.Random(count)
    paragraphs: list[str] = []
    for number in range(count):
        if number % 4 == 3:
            paragraphs.append(rng.choice(paragraphs))
        else:
            paragraphs.append("".join(rng.choice(CHARACTERS) for _ in range(120)) + "。")
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path.stat().st_size


WRITERS = {
    "documents": (write_copies, "copies.jsonl"),
    "sentences": (write_sentences, "copies.txt"),
    "paragraphs": (write_paragraphs, "copies.txt"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="documents,sentences,paragraphs", help="comma-separated: " + ", ".join(WRITERS))
    parser.add_argument("--sizes", default="1000,2000,4000,8000")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--other", help="another checkout (a git worktree of another commit)")
    args = parser.parse_args()
    checkouts = {"this": ROOT} if args.other is None else {"other": Path(args.other).resolve(), "this": ROOT}
    for checkout in checkouts.values():
        compile_checkout(checkout)
    print(f"{args.workers} worker(s); per size: input MB, then per checkout: wall s, peak MB (PSS, all processes)")
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="curate-copies-") as folder:
        for kind, size in itertools.product(args.kind.split(","), sizes):
            write, file_name = WRITERS[kind]
            inputs = Path(folder) / f"in-{kind}-{size}"
            inputs.mkdir()
            megabytes = write(size, inputs / file_name) / 1e6
            row = [f"{size} {kind} ({megabytes:.2f} MB)"]
            for name, checkout in checkouts.items():
                out = Path(tempfile.mkdtemp(dir=folder))
                seconds, peak_kb = timed_run(checkout, inputs, out, args.workers)
                row.append(f"{name} {seconds:.1f} s, {peak_kb / 1024:.0f} MB")
            print("; ".join(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
