"""The C allocator's settings for a process that runs curate (glibc's `mallopt`).

A run makes and frees blocks of a few hundred bytes to a few megabytes all the time: a batch's
documents pickled, the pools' messages, a batch's numpy arrays, texts. glibc's defaults return
them to the system soon: a block over `M_MMAP_THRESHOLD` gets a mapping of its own, unmapped
when freed, and when the free memory at the top of the heap grows over `M_TRIM_THRESHOLD` the
heap is cut back to `M_TOP_PAD` (128 KB). Both thresholds start at 128 KB; freeing a mapped
block raises the mmap threshold to its size (up to 32 MB on 64-bit) and the trim threshold to
twice that, so a size seen before stops being mapped, but a heap that empties is still cut back.
The next block is then new memory again: the system hands it out zeroed, a page fault per page
touched. Kept by the process instead, it is reused as it is. On the whole-pipeline benchmark
(`bench/bench_pipeline.py`'s input, 2 workers) this took a run from about 128,000 page faults
to 101,000 (the driver's brk calls from about 470 to 60), and 0.04-0.09 CPU-s less (of 3.4) in
paired rounds, most of it the system's; on 213,864 short documents (`bench/bench_shapes.py
--shape copies`), where the driver makes and frees far more, a run 14-17% shorter.

What it costs: memory freed inside a process is kept, up to `TRIM_THRESHOLD` at the top of
each of its heaps, rather than given back at once; the runs' peak (PSS, all processes) stayed
at 270-300 MB on the benchmark, and rose by 15-24 MB to 1.19 GB on those short documents. The
settings are the process's and its forked workers' (the pools fork); a process started anew
(Ray's workers, a `spawn` pool) has glibc's defaults. A setting the user gave glibc for these
parameters (`MALLOC_TRIM_THRESHOLD_`, `MALLOC_TOP_PAD_`, `MALLOC_MMAP_THRESHOLD_`,
`MALLOC_MMAP_MAX_`, or the same as `glibc.malloc.*` tunables in `GLIBC_TUNABLES`) is left as it
is.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt's parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # (glibc's own dynamic threshold stops there)
TRIM_THRESHOLD = 64 << 20
TOP_PAD = 16 << 20  # grown in steps this large: fewer brk calls

_USER_SETTINGS = (
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_MMAP_MAX_",
)
# (the same parameters as glibc's tunables: GLIBC_TUNABLES=glibc.malloc.trim_threshold=...:...)
_USER_TUNABLES = (
    "glibc.malloc.trim_threshold",
    "glibc.malloc.top_pad",
    "glibc.malloc.mmap_threshold",
    "glibc.malloc.mmap_max",
)


def keep_freed_memory() -> bool:
    """Have this process's C allocator keep freed memory for reuse (see the module), from now
    on and in the processes it forks. True if set; False on another C library, where glibc
    refused a value, or where the user set these parameters through the environment
    (`MALLOC_*_`, `GLIBC_TUNABLES`)."""
    if not sys.platform.startswith("linux") or not _glibc():
        return False
    if any(name in os.environ for name in _USER_SETTINGS) or _user_tunables():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = [  # (each one tried: a value refused leaves the others set)
        mallopt(parameter, value)
        for parameter, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (M_TOP_PAD, TOP_PAD),
        )
    ]
    return all(result == 1 for result in done)


def _user_tunables() -> bool:
    """Whether GLIBC_TUNABLES sets one of the parameters (`name=value` items, `:` between)."""
    items = os.environ.get("GLIBC_TUNABLES", "").split(":")
    return any(item.partition("=")[0].strip() in _USER_TUNABLES for item in items)


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # (a C library that does not know the name)
        return False
