"""curate.allocator: a process whose allocator keeps freed memory reuses it rather than
taking new pages from the system for blocks like a run's (batches of pickles and arrays made
and freed again and again)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from curate import allocator

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not allocator._glibc(), reason="glibc's allocator only"
)

# Batches of blocks from 600 bytes to 400 KB, made and freed ten times; prints the page faults
# the batches took (after the first, which takes new memory either way).
BATCHES = """
import random, resource, sys
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


def _faults(mode: str, env: dict[str, str] | None = None) -> int:
    done = subprocess.run(
        [sys.executable, "-c", BATCHES, mode], capture_output=True, text=True, check=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return int(done.stdout)


def test_freed_memory_is_reused_not_faulted_in_again() -> None:
    default, kept = _faults("default"), _faults("keep")
    # (by glibc's defaults, each batch's large blocks are new pages: ~10,000 faults a round)
    assert default > 10_000
    assert kept < default / 5


def test_settings_the_user_gave_glibc_are_left_alone() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from curate import allocator; print(allocator.keep_freed_memory())"],
        capture_output=True, text=True, check=True, env={**os.environ, "MALLOC_TRIM_THRESHOLD_": "131072"},
    )  # fmt: skip
    assert done.stdout.strip() == "False"


def test_the_command_keeps_freed_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """`curate.cli.entry` sets it up before the command runs."""
    from curate import cli

    called = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: called.append("set") or True)
    monkeypatch.setattr(cli, "main", lambda: called.append("main"))
    monkeypatch.setattr(cli, "_end_now", lambda code: None)
    cli.entry()
    assert called == ["set", "main"]
