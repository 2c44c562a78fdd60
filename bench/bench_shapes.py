"""Inputs of other shapes than the news benchmark's, end to end, on 1 and on 2 workers.

    .venv/bin/python bench/bench_shapes.py [--corpora ../shared/corpora] [--shape pages,short,copies]
        [--workers 1,2] [--rounds 3] [--other CHECKOUT]

- pages: every HTML page of GeneralNewsExtractor (71 pages of 30+ sites) and of magic-html's
  article benchmark (52 pages), 23 MB, linked one by one into a temporary folder. A page's text
  is its article, taken out of the page at ingest (decoding, parsing, chrome): nearly all of a
  run's work, where the stages after it see a few kilobytes per page.
- short: THUCNews's 1,000 articles (the benchmark's third source) cut into their sentences, one
  JSON-lines document per sentence of at least 15 characters (17,822 documents, 3.3 MB): the
  work per document (documents made, pickled, summarised, indexed, encoded) outweighs the work
  per character, as in corpora of posts, titles or comments.
- copies: those sentences 12 times over, each copy under its own ids (213,864 documents, 40 MB):
  every document a near-duplicate of 11 others, what the near-duplicate decision's memory and
  serial work grow with (a corpus scraped again and again).

Each run is a fresh `curate run` (report included, as a user runs it) timed from outside, with
the peak memory of its process tree (PSS, sampled); rounds alternate the checkouts (`--other`:
a git worktree of another commit, run on the same input), and each checkout's median wall time
is printed, with the highest peak of its runs and the version id every run of it wrote.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import (  # noqa: E402
    SOURCES,
    THUCNEWS,
    compile_checkout,
    corpora_parser,
    first_missing,
    found_corpora,
    prepare_inputs,
    timed_run,
)

PAGES = [Path("GeneralNewsExtractor"), Path("opendatalab-magic-html/benchmark/data/article")]
SENTENCE = re.compile(r"[^。！？]+[。！？]")


def link_pages(corpora: Path, folder: Path) -> int:
    """Link every page under `PAGES` into `folder` (one subfolder per source); returns the bytes."""
    size = 0
    for source in PAGES:
        for path in sorted((corpora / source).rglob("*.html")):
            target = folder / source.parts[0] / path.relative_to(corpora / source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
            size += path.stat().st_size
    return size


def write_sentences(corpora: Path, folder: Path, copies: int = 1) -> int:
    """THUCNews's articles as one document per sentence (JSON lines), `copies` times over (each
    copy's ids its own: "copy-n"); returns the bytes."""
    folder.mkdir(parents=True)
    out = folder / "sentences.jsonl"
    with out.open("w", encoding="utf-8") as sink:
        for copy in range(copies):
            count = 0
            with (corpora / THUCNEWS).open(encoding="utf-8") as source:
                for line in source:
                    text = line.rstrip("\n").partition("\t")[2]
                    for sentence in SENTENCE.findall(text):
                        sentence = sentence.strip()
                        if len(sentence) >= 15:
                            doc_id = count if copies == 1 else f"{copy}-{count}"
                            sink.write(json.dumps({"id": doc_id, "text": sentence}, ensure_ascii=False) + "\n")
                            count += 1
    return out.stat().st_size


COPIES = 12  # (the "copies" shape: 40 MB, past no limit)


SHAPES = {
    "pages": (PAGES, link_pages),
    "short": ([THUCNEWS], write_sentences),
    "copies": ([THUCNEWS], partial(write_sentences, copies=COPIES)),
}


def shape_list(text: str) -> list[str]:
    """`--shape`'s comma-separated names, each one of SHAPES (else a usage message)."""
    names = text.split(",")
    unknown = [name for name in names if name not in SHAPES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown shape {unknown[0]!r} (one of {', '.join(SHAPES)})")
    return names


def shape_input(shape: str | None, path: str) -> tuple[Path, Callable[[Path, Path], int]] | None:
    """The corpora folder and what writes `shape`'s input from it into a folder, returning its
    bytes (None: the whole-pipeline benchmark's, `bench_pipeline.prepare_inputs`); None, after
    the "skipped" line every benchmark prints, when a source is missing."""
    if shape is None:
        sources, prepare = SOURCES, lambda corpora, folder: prepare_inputs(corpora, folder)[1]
    else:
        sources, prepare = SHAPES[shape]
    corpora = found_corpora(path, sources)
    return None if corpora is None else (corpora, prepare)


def version_of(out: Path) -> str:
    return (out / "corpus" / "LATEST").read_text(encoding="utf-8").strip()


def main() -> int:
    parser = corpora_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--shape", default="pages,short", type=shape_list, help="comma-separated: " + ", ".join(SHAPES)
    )
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--other", help="another checkout (a git worktree of another commit)")
    args = parser.parse_args()
    corpora = Path(args.corpora)
    checkouts = {"this": ROOT} if args.other is None else {"other": Path(args.other).resolve(), "this": ROOT}
    for checkout in checkouts.values():
        compile_checkout(checkout)
    for shape in args.shape:
        missing = first_missing(corpora, SHAPES[shape][0])
        if missing is not None:
            print(f"skipped {shape}: {missing} not found")
            continue
        prepare = SHAPES[shape][1]
        with tempfile.TemporaryDirectory(prefix=f"curate-{shape}-") as folder:
            inputs = Path(folder) / "input"
            size = prepare(corpora, inputs)
            print(f"{shape}: {size / 1e6:.1f} MB ({corpora}); {args.rounds} rounds")
            for workers in (int(w) for w in args.workers.split(",")):
                runs: dict[str, list[tuple[float, int]]] = {name: [] for name in checkouts}
                versions: dict[str, set[str]] = {name: set() for name in checkouts}
                for _ in range(args.rounds):
                    for name, checkout in checkouts.items():
                        out = Path(tempfile.mkdtemp(dir=folder))
                        runs[name].append(timed_run(checkout, inputs, out, workers))
                        versions[name].add(version_of(out))
                for name, timings in runs.items():
                    seconds = statistics.median(s for s, _ in timings)
                    peak = max(kb for _, kb in timings) / 1024
                    walls = ", ".join(f"{s:.2f}" for s, _ in timings)
                    print(
                        f"  {workers} worker(s), {name}: median {seconds:.2f} s ({size / 1e6 / seconds:.1f} MB/s; "
                        f"runs {walls}), peak {peak:.0f} MB, version {', '.join(sorted(versions[name]))}",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
