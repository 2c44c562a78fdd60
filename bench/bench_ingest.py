"""HTML pages end to end: what reading them costs, on 1 and on 2 workers.

    .venv/bin/python bench/bench_ingest.py [--corpora ../shared/corpora] [--workers 1,2]
        [--rounds 3] [--other CHECKOUT]

A page's text is its article, taken out of the page at ingest (decoding, parsing, chrome): on
the corpora's pages nearly all of a run's work, where the stages after it see a few kilobytes
per page. The input: every HTML page of GeneralNewsExtractor (71 pages of 30+ sites) and of
magic-html's article benchmark (52 pages), 23 MB, linked one by one into a temporary folder.
Each run is a fresh `curate run` (report included, as a user runs it) timed from outside,
with the peak memory of its process tree (PSS, sampled); rounds alternate the checkouts
(`--other`: a git worktree of another commit, run on the same input), and each checkout's
median wall time is printed, with the highest peak of its runs and the version id every run of
it wrote.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import compile_checkout, corpora_parser, timed_run  # noqa: E402

PAGES = [Path("GeneralNewsExtractor"), Path("opendatalab-magic-html/benchmark/data/article")]


def link_pages(corpora: Path, folder: Path) -> tuple[int, int]:
    """Link every page under `PAGES` into `folder` (one subfolder per source); returns (pages, bytes)."""
    count = size = 0
    for source in PAGES:
        for path in sorted((corpora / source).rglob("*.html")):
            target = folder / source.parts[0] / path.relative_to(corpora / source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
            count += 1
            size += path.stat().st_size
    return count, size


def version_of(out: Path) -> str:
    return (out / "corpus" / "LATEST").read_text(encoding="utf-8").strip()


def main() -> int:
    parser = corpora_parser(__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--other", help="another checkout (a git worktree of another commit)")
    args = parser.parse_args()
    corpora = Path(args.corpora)
    missing = [source for source in PAGES if not (corpora / source).is_dir()]
    if missing:
        print(f"skipped: {corpora / missing[0]} not found")
        return 0
    checkouts = {"this": ROOT} if args.other is None else {"other": Path(args.other).resolve(), "this": ROOT}
    for checkout in checkouts.values():
        compile_checkout(checkout)
    with tempfile.TemporaryDirectory(prefix="curate-ingest-") as folder:
        inputs = Path(folder) / "pages"
        pages, size = link_pages(corpora, inputs)
        print(f"input: {pages} HTML pages, {size / 1e6:.1f} MB ({corpora}); {args.rounds} rounds")
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
                    f"{workers} worker(s), {name}: median {seconds:.2f} s ({size / 1e6 / seconds:.1f} MB/s; "
                    f"runs {walls}), peak {peak:.0f} MB, version {', '.join(sorted(versions[name]))}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
