"""curate.allocator: a process whose allocator keeps freed memory reuses it rather than
taking new pages from the system for blocks like a run's (batches of pickles and arrays made
and freed again and again)."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from curate import allocator

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not allocator._glibc(), reason="glibc's allocator only"
)

# Batches of blocks from 600 bytes to 400 KB, made and freed ten times; prints the page faults
# the batches took (after the first, which takes new memory either way). By glibc's defaults the
# next batches still fault (16,000-37,000 in all here, with how the heap lies) while its
# dynamic thresholds rise and the heap is cut back, a few batches until they settle; kept, ~100.
# Transparent huge pages are off for the process: with them (a system's "always") a fault
# brings 2 MB, and the defaults' faults are a few dozen.
BATCHES = """
import ctypes, random, resource, sys
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE (on a kernel without it: as is)
from curate import allocator
if sys.argv[1] == "keep":
    assert allocator.keep_freed_memory()
rng = random.Random(1)
sizes = [rng.choice([600, 3000, 20000, 150000, 400000]) for _ in range(400)]
batch = [bytes(size) for size in sizes]
del batch
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    batch = [bytes(size) for size in sizes]
    del batch
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the user's allocator settings, plus `extra`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"
    }
    return {**env, **extra}


def _faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", BATCHES, mode], capture_output=True, text=True, check=True,
        env=_clean_env(),
    )  # fmt: skip
    return int(done.stdout)


def test_freed_memory_is_reused_not_faulted_in_again() -> None:
    default, kept = _faults("default"), _faults("keep")
    assert default > 5_000
    assert kept < default / 5


@pytest.mark.parametrize(
    "name, value",
    [
        ("MALLOC_TRIM_THRESHOLD_", "131072"),
        ("MALLOC_MMAP_MAX_", "0"),
        ("GLIBC_TUNABLES", "glibc.malloc.check=0:glibc.malloc.trim_threshold=131072"),
    ],
)
def test_settings_the_user_gave_glibc_are_left_alone(name: str, value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from curate import allocator; print(allocator.keep_freed_memory())"],
        capture_output=True, text=True, check=True, env=_clean_env(**{name: value}),
    )  # fmt: skip
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("result, expected", [(1, True), (0, False)])
def test_the_three_parameters_are_set(
    monkeypatch: pytest.MonkeyPatch, result: int, expected: bool
) -> None:
    """The mmap threshold (-3) 32 MB, the trim threshold (-1) 64 MB, the top pad (-2) 16 MB;
    each tried even where glibc refuses one (mallopt's 0), and then False."""
    calls = []

    def mallopt(parameter: int, value: int) -> int:  # (a function: argtypes can be set on it)
        calls.append((parameter, value))
        return result

    monkeypatch.setattr(
        allocator.ctypes, "CDLL", lambda name: types.SimpleNamespace(mallopt=mallopt)
    )
    for name in list(os.environ):
        if name.startswith("MALLOC_") or name == "GLIBC_TUNABLES":
            monkeypatch.delenv(name)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")  # (not one of them)
    assert allocator.keep_freed_memory() is expected
    assert calls == [(-3, 32 << 20), (-1, 64 << 20), (-2, 16 << 20)]


def test_the_command_keeps_freed_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """`curate.cli.entry` sets it up before the command runs."""
    from curate import cli

    called = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: called.append("set") or True)
    monkeypatch.setattr(cli, "main", lambda: called.append("main"))
    monkeypatch.setattr(cli, "_end_now", lambda code: None)
    cli.entry()
    assert called == ["set", "main"]
