"""The C allocator's settings for a process that runs curate (glibc's `mallopt`).

A run makes and frees blocks of a few hundred bytes to a few megabytes all the time: a batch's
documents pickled, the pools' messages, a batch's numpy arrays, texts. glibc's defaults return
them to the system soon: a free block over 128 KB at the top of the heap is given back
(`M_TRIM_THRESHOLD`), and a block over `M_MMAP_THRESHOLD` (128 KB at first, raised as such
blocks are freed, up to 32 MB) gets a mapping of its own, unmapped when freed. Either way the
next block of that size is new memory again: the system hands it out zeroed, a page fault per
page touched. Kept by the process instead, it is reused as it is. On the whole-pipeline
benchmark (`bench/bench_pipeline.py`'s input, 2 workers) this took a run from about 128,000 page
faults to 101,000, and 0.04-0.09 CPU-s less (of 3.4) in paired rounds, most of it the system's.

What it costs: memory freed inside a process is kept, up to `TRIM_THRESHOLD` at the heap's
top, rather than given back at once; the runs' peak (PSS, all processes) stayed at 270-300 MB.
A setting the user gave glibc (`MALLOC_TRIM_THRESHOLD_` and the others) is left as it is.
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


def keep_freed_memory() -> bool:
    """Have this process's C allocator keep freed memory for reuse (see the module), from now
    on and in the processes it forks. True if set; False on another C library, or where the
    user set glibc's allocator through its environment variables."""
    if not sys.platform.startswith("linux") or not _glibc():
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return all(
        mallopt(parameter, value) == 1
        for parameter, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (M_TOP_PAD, TOP_PAD),
        )
    )


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # (a C library that does not know the name)
        return False
