"""Incremental runs: a corpus curated once from the benchmark input, then day after day from a
small batch of new articles, each run on top of the version before (what `curate run` does on
a corpus that has a LATEST).

    .venv/bin/python bench/bench_incremental.py [--corpora ../shared/corpora] [--days 8]
        [--per-day 100] [--workers 2] [--checkout PATH] [--synthetic N]

The input is bench_pipeline's (NewsSpider, TaiwanStat, THUCNews), but for the last
`--days` x `--per-day` THUCNews records: those are the days' batches, one JSON lines file each
(named by its day, so that no two days share a document id). Each day's run is a fresh
`curate run` process, default settings, report included. Printed per run: wall seconds, the
documents curated, the size of the near-duplicate index file the version wrote, and how many
index files the next run reads (the version's own and those it refers to); then the last
version's id and a digest of every version's documents, and what day 1 takes into an empty
corpus (what a run costs without a corpus behind it). `--synthetic N` adds N generated
articles to the first run (`tests/scale_helpers.write_corpus`: 60,000 make a parent index of
about 163,000 paragraphs), for a corpus larger than the benchmark's.

A version's index refers to its parent's instead of copying it (`dedup._Engine._write_index`):
what a day costs should follow the day's batch, not the corpus. `--checkout PATH` runs the
curate of another checkout (a `git worktree` of an earlier commit, say) to compare. Exits 0
with a "skipped" line when the corpora are absent.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import (  # noqa: E402
    compile_checkout,
    corpora_parser,
    found_corpora,
    prepare_inputs,
    start_curate_run,
)

INDEX = Path("index") / "dedup-index.npz"
sys.path.insert(0, str(ROOT))


def split_days(inputs: Path, days: int, per_day: int, folder: Path) -> list[Path]:
    """Move the last `days * per_day` THUCNews records out of `inputs` into one folder per day."""
    thuc = inputs / "thucnews" / "cnews.val.jsonl"
    lines = thuc.read_text(encoding="utf-8").splitlines(keepends=True)
    held = days * per_day
    if held >= len(lines):
        raise SystemExit(f"--days x --per-day ({held}) should be below the {len(lines)} THUCNews records")
    thuc.write_text("".join(lines[:-held]), encoding="utf-8")
    batches = []
    for day in range(days):
        batch = folder / f"day{day + 1:02}"
        batch.mkdir(parents=True)
        start = len(lines) - held + day * per_day
        (batch / f"day{day + 1:02}.jsonl").write_text("".join(lines[start : start + per_day]), encoding="utf-8")
        batches.append(batch)
    return batches


def index_files(version: Path) -> int:
    """The index files a run on `version` reads: its own and those it names (`base`)."""
    import numpy as np

    with np.load(version / INDEX) as data:
        return 1 + (len(json.loads(str(data["base"][0]))) if "base" in data.files else 0)


def curate_once(checkout: Path, inputs: Path, out: Path, workers: int) -> tuple[float, Path]:
    started = time.perf_counter()
    code = start_curate_run(checkout, inputs, out, workers).wait()
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"bench_incremental: the run of {inputs} failed (exit {code})")
    from curate.version import read_latest, versions_dir

    corpus = out / "corpus"
    return seconds, versions_dir(corpus) / str(read_latest(corpus))


def main() -> int:
    parser = corpora_parser(__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--per-day", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--checkout", help="run the curate of this checkout")
    parser.add_argument("--synthetic", type=int, default=0, help="generated articles added to the first run")
    args = parser.parse_args()
    corpora = found_corpora(args.corpora)
    if corpora is None:
        return 0
    checkout = Path(args.checkout).resolve() if args.checkout else ROOT
    compile_checkout(checkout)
    scratch = Path(tempfile.mkdtemp(prefix="curate-incremental-"))
    try:
        inputs = scratch / "inputs"
        prepare_inputs(corpora, inputs)
        batches = split_days(inputs, args.days, args.per_day, scratch / "days")
        if args.synthetic:
            from tests.scale_helpers import write_corpus

            write_corpus(inputs / "synthetic", args.synthetic, per_file=2000)
        out = scratch / "out"
        print(
            f"checkout {checkout}; {args.workers} workers; {args.days} days of {args.per_day} THUCNews records"
            + (f"; {args.synthetic:,} generated articles in the first run" if args.synthetic else "")
        )
        print("| run | wall s | documents | index file written | index files read next |")
        print("|---|---:|---:|---:|---:|")
        total_index = 0
        documents_digest = hashlib.sha256()
        for name, folder in [("first (the benchmark input but the days)", inputs)] + [
            (f"day {n}", batch) for n, batch in enumerate(batches, 1)
        ]:
            seconds, version = curate_once(checkout, folder, out, args.workers)
            manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
            documents = manifest["counts"]["documents_in"]
            size = (version / INDEX).stat().st_size
            documents_digest.update(manifest["files"]["documents.jsonl"].encode())
            if name.startswith("day"):
                total_index += size
            print(f"| {name} | {seconds:.2f} | {documents:,} | {size / 1e6:.2f} MB | {index_files(version)} |")
        print(f"index written by the {args.days} days: {total_index / 1e6:.2f} MB")
        alone, _ = curate_once(checkout, batches[0], scratch / "alone", args.workers)
        print(f"day 1 into an empty corpus instead: {alone:.2f} s")
        # (to compare checkouts: the same inputs give the same versions and documents)
        print(f"last version {version.name}; sha256 of every version's documents.jsonl digest: {documents_digest.hexdigest()[:16]}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
