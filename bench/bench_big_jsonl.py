"""JSON-lines files past `ingest.max_file_mb` (read block by block): what a run reads of them
before the first pass, hashed and checked for UTF-8 in one read, then read for their documents
(`runner.hash_inputs` with the run's ingest settings), against hashed, then checked, then read
(the check as a read of its own, as `ingest._stream_jsonl` does when no check was made).

    .venv/bin/python bench/bench_big_jsonl.py [--files 4] [--mb 96] [--rounds 3] [--cold]

Writes `--files` JSON-lines files of about `--mb` MiB into a temporary folder, each line a
record of the five sample articles' text (`corpus/incoming`, read by curate; no corpora
needed), then times, in alternating rounds, the two ways over all of them: the inputs hashed
(on `engine.default_workers()` threads, as a run does), then every file's documents made
(`ingest.read_file_lazily` of each file, as the driver of a run makes them), and prints the
fastest round of each, with the bytes read. `--cold`: the page cache is dropped before each
round (`/proc/sys/vm/drop_caches`; root only), so the files come from storage, as a corpus
read for the first time does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curate import ingest  # noqa: E402
from curate.config import IngestSettings  # noqa: E402
from curate.engine import default_workers  # noqa: E402
from curate.runner import hash_inputs  # noqa: E402


def write_files(folder: Path, files: int, mib: int) -> None:
    """`files` JSON-lines files of about `mib` MiB, of the sample articles' text."""
    settings = IngestSettings()
    samples, _ = ingest.scan([ROOT / "corpus" / "incoming"], settings)
    texts = [doc.text for file in samples for doc in ingest.read_file(file, settings).documents]
    lines = "".join(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in texts).encode("utf-8")
    for n in range(files):
        with (folder / f"{n}.jsonl").open("wb") as out:
            for _ in range(-(-(mib << 20) // len(lines))):
                out.write(lines)


def drop_page_cache() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as handle:
        handle.write("1\n")


def one_round(folder: Path, checked_when_hashed: bool, cold: bool) -> tuple[float, int]:
    """Seconds to hash the folder's files and make all their documents, and the documents."""
    settings = IngestSettings()
    files, _ = ingest.scan([folder], settings)
    if cold:
        drop_page_cache()
    started = time.perf_counter()
    hash_inputs(files, default_workers(), settings if checked_when_hashed else None)
    documents = 0
    for file in files:
        result = ingest.read_file_lazily(dataclasses.replace(file), settings)
        documents += sum(1 for _ in result.documents)
        assert not result.skipped and result.file.sha256 == file.sha256, file.source
    return time.perf_counter() - started, documents


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--mb", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each round (root)")
    args = parser.parse_args()
    if args.cold and not os.access("/proc/sys/vm/drop_caches", os.W_OK):
        print("skipped: --cold needs to write /proc/sys/vm/drop_caches (root)")
        return 0
    ways = {"hashed, checked, read (3 reads)": False, "hashed and checked, read (2 reads)": True}
    with tempfile.TemporaryDirectory(prefix="curate-big-jsonl-") as name:
        folder = Path(name)
        write_files(folder, args.files, args.mb)
        total = sum(path.stat().st_size for path in folder.iterdir())
        if total <= IngestSettings().max_file_mb * 1024 * 1024 * args.files:
            print(f"--mb {args.mb}: the files must be past max_file_mb ({IngestSettings().max_file_mb:g} MB)")
            return 2
        best: dict[str, float] = {}
        made: dict[str, int] = {}
        for _ in range(args.rounds):
            for way, checked in ways.items():
                seconds, made[way] = one_round(folder, checked, args.cold)
                best[way] = min(best.get(way, float("inf")), seconds)
    mib = total / (1 << 20)
    where = "from storage (page cache dropped)" if args.cold else "from the page cache"
    print(f"{args.files} JSON-lines files, {mib:,.0f} MiB, {where}, {default_workers()} hashing threads; "
          f"the fastest of {args.rounds} rounds:")
    for way, seconds in best.items():
        reads = 3 if "3 reads" in way else 2
        print(f"  {way}: {seconds:.2f} s, {mib / seconds:,.0f} MiB/s of input, "
              f"{reads * mib:,.0f} MiB read, {made[way]:,} documents")
    print(f"  the same documents: {'yes' if len(set(made.values())) == 1 else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
