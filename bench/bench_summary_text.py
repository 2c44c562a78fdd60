"""What keeping a document's text in its near-duplicate summary costs, per codec: every
document's text is encoded (and was once compressed) in the workers
(`curate.stages.dedup._summary_text`) and read back when the index is saved. Over the texts of
the whole-pipeline benchmark's input (see bench_pipeline.py), one call per document, as the
stage does it: zlib at level 1 (the codec before 2026-12-03), LZ4's block format (python-lz4,
the codec until 2026-12-06) and none (the UTF-8 bytes as they are, since).

    .venv/bin/python bench/bench_summary_text.py [--corpora ../shared/corpora] [--rounds 5]

Prints, per codec, the medians of `--rounds` rounds: seconds to make what a summary keeps of
the texts, seconds to read it back, and its size. Exits 0 with a "skipped" line when the corpora are absent.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> int:
    from bench_pipeline import corpora_parser, found_corpora, prepare_inputs

    parser = corpora_parser(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    corpora = found_corpora(args.corpora)
    if corpora is None:
        return 0
    import lz4.block

    from curate import config, ingest

    settings = config.build({})
    with tempfile.TemporaryDirectory(prefix="curate-summary-text-") as folder:
        prepare_inputs(corpora, Path(folder) / "input")
        files, _ = ingest.scan([str(Path(folder) / "input")], settings.ingest)
        texts = [doc.text.encode("utf-8") for f in files for doc in ingest.read_file(f, settings.ingest).documents]
    codecs: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
        "zlib, level 1": (lambda data: zlib.compress(data, 1), zlib.decompress),
        "LZ4 block": (lz4.block.compress, lz4.block.decompress),
        "none (the UTF-8 as it is)": (bytes, bytes),
    }
    print(f"{len(texts)} documents, {sum(map(len, texts)) / 1e6:.1f} MB of UTF-8 text; medians of {args.rounds} rounds")
    print("| codec | to keep s | to read back s | MB kept |\n|---|---:|---:|---:|")
    for name, (compress, decompress) in codecs.items():
        packing, unpacking = [], []
        for _ in range(args.rounds):
            began = time.perf_counter()
            packed = [compress(text) for text in texts]
            packing.append(time.perf_counter() - began)
            began = time.perf_counter()
            for data in packed:
                decompress(data)
            unpacking.append(time.perf_counter() - began)
        size = sum(map(len, packed)) / 1e6
        print(f"| {name} | {statistics.median(packing):.3f} | {statistics.median(unpacking):.3f} | {size:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
