"""JSON-lines files past `ingest.max_file_mb`, read block by block: what the driver of a run
does to make their documents, once the run has hashed its inputs (`runner.hash_inputs`).

    .venv/bin/python bench/bench_big_jsonl.py [--files 4] [--mb 96] [--rounds 3]

Such a file is read once to check that it is UTF-8 throughout (before any of its documents goes
to work: a file that is not stays skipped), then once more for its documents, which hashes it to
catch a change. The check hashes it too when its hash is not known yet (`ingest.read_file` on its
own); in a run it is known (its documents carry the run's hash). Writes `--files` files of about
`--mb` MiB into a temporary folder (in the page cache), each line a record of the five sample
articles' text (`corpus/incoming`, read by curate; no corpora needed), hashes them as a run does,
then times, in alternating rounds, making every document of every file (`ingest.
read_file_lazily` of a copy of each input, as the run does) with the run's hashes and without
them (the check hashing too, as every run did before the twenty-sixth session), and prints the
fastest round of each.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def documents_made(files: list[ingest.InputFile], hash_known: bool, digest: Any = None) -> tuple[float, int]:
    """Seconds to make every document of `files` (copies: with their hash, or without), and how
    many; each document's id, text and hash fed to `digest` if given (a round not timed, to
    compare the two ways)."""
    settings = IngestSettings()
    started = time.perf_counter()
    made = 0
    for file in files:
        copy = dataclasses.replace(file, sha256=file.sha256 if hash_known else "")
        result = ingest.read_file_lazily(copy, settings)
        for doc in result.documents:
            made += 1
            if digest is not None:
                digest.update(f"{doc.id}\0{doc.raw_sha256}\0{doc.text}\0".encode())
        assert not result.skipped and result.file.sha256 == file.sha256, file.source
    return time.perf_counter() - started, made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--mb", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    limit = IngestSettings().max_file_mb
    if args.mb <= limit:
        print(f"--mb {args.mb}: the files must be past ingest.max_file_mb ({limit:g} MB)")
        return 2
    ways = {"without the run's hash (the check hashes too: before)": False, "with the run's hash (now)": True}
    best: dict[str, float] = {}
    made: dict[str, int] = {}
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="curate-big-jsonl-") as name:
        folder = Path(name)
        write_files(folder, args.files, args.mb)
        files, _ = ingest.scan([folder], IngestSettings())
        started = time.perf_counter()
        hash_inputs(files, default_workers())
        hashing = time.perf_counter() - started
        for _ in range(args.rounds):
            for way, known in ways.items():
                seconds, made[way] = documents_made(files, known)
                best[way] = min(best.get(way, float("inf")), seconds)
        for way, known in ways.items():
            digest = hashlib.sha256()
            documents_made(files, known, digest)
            digests[way] = digest.hexdigest()
        mib = sum(file.size for file in files) / (1 << 20)
    print(f"{args.files} JSON-lines files, {mib:,.0f} MiB, in the page cache; the run's hashing first: "
          f"{hashing:.2f} s on {default_workers()} threads; documents made, the fastest of {args.rounds} rounds:")
    for way, seconds in best.items():
        print(f"  {way}: {seconds:.2f} s, {mib / seconds:,.0f} MiB/s, {made[way]:,} documents")
    same = len(set(made.values())) == 1 and len(set(digests.values())) == 1
    print(f"  the same documents (ids, texts, hashes): {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
