"""curate: clean, versioned corpora from scraped Chinese text, with a diff report."""

import os
from pathlib import Path

# One BLAS thread in a curate process, unless the user set their own: curate runs in parallel
# by processes and does no linear algebra, but numpy's OpenBLAS starts a thread per core when
# numpy is imported, and numpy's import-time check (a dot product) leaves them spinning for a
# quarter of a second: CPU taken from the run's own workers (0.1 CPU-s of every run on 2 cores,
# `perf`). Set before curate imports numpy; forked workers and a local Ray inherit it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# numpy asks Linux for transparent huge pages for its large arrays (2 MB pages, fewer TLB
# misses). On a virtual machine such as the one curate is measured on, a huge page is often
# fresh memory the host backs on first touch, slowly: a day's run on a parent index of 163,000
# paragraphs took 2.6-3.0 s without them, 2.8-6.7 s with (`bench/bench_incremental.py
# --synthetic 60000 --days 4`, and the same with NUMPY_MADVISE_HUGEPAGE=1); the benchmark's
# runs are no slower without. Off unless the user set their own (`NUMPY_MADVISE_HUGEPAGE=1`).
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

# Python's collector collects its first generation every this many allocations, not 700,
# from the command's first import (`curate.cli`) and during a run (`runner.fewer_collections`):
# a run's objects live long and form almost no cycles.
COLLECT_EVERY = 100_000

from curate import _compiled  # noqa: E402

__version__ = "0.1.0"

# Before any other module of curate is imported: a compiled module only where it was compiled
# from the source beside it (see curate._compiled).
_compiled.install(__name__, Path(__file__).resolve().parent)
