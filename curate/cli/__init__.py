"""The `curate` command line. Subcommands live in modules listed in COMMAND_MODULES."""

from __future__ import annotations

import gc
import importlib
import os
import sys
from typing import Any

from curate import COLLECT_EVERY, __version__

# The command's imports (click, numpy, regex, the stages and their tables) make hundreds of
# thousands of objects that live as long as the process: Python's collector, run every 700
# allocations, walked them about 80 times, ~12 ms of every command's start on one core. Its
# first generation is collected every `COLLECT_EVERY` allocations from here on, as during a run
# (`curate.runner.fewer_collections`, which this leaves as it is); a forked worker inherits it.
# Where collections are off (a threshold of 0) or already rarer, they are left so.
if 0 < gc.get_threshold()[0] < COLLECT_EVERY:
    gc.set_threshold(COLLECT_EVERY, *gc.get_threshold()[1:])

import click  # noqa: E402 - after the threshold, as every import below

# Each module defines a `register(group)` function that adds its commands.
COMMAND_MODULES = [
    "curate.cli.corpus",  # run, log, show, verify, export, config
    "curate.cli.rules",  # rules list, rules test, review
    "curate.cli.report",  # report, diff
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="curate")
def main() -> None:
    """curate: turn scraped Chinese text into a clean, versioned corpus with a diff report."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(main)


def entry() -> None:
    """The `curate` command as a process runs it (the console script, `python -m curate`):
    `main`, then the process ends at once (`os._exit`, its output flushed), leaving what the
    command made unfreed (`curate.stages.base.keep_until_exit`): freeing a run's state object
    by object, and Python's teardown, were about 60 ms at the end of a run of the benchmark and
    about a second on the copies shape, every core idle. A process that called Ray ends as
    Python ends (Ray's shutdown runs at exit); so does an error that escapes `main`. Its C
    allocator keeps the memory it frees for reuse (`curate.allocator`)."""
    from curate import allocator
    from curate.stages import base

    allocator.keep_freed_memory()
    base.keep_until_exit()
    try:
        try:
            main()
        except SystemExit as exc:
            _end_now(exc.code)
            raise
        _end_now(0)
    finally:  # (ending as Python ends: what was kept is freed as usual from here)
        base.keep_until_exit(False)


def _end_now(code: Any) -> None:
    """`os._exit(code)` once the output is flushed, as Python would end with `code`; returns
    in a process connected to Ray (its own shutdown, at exit, ends the processes it started)."""
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        return
    if code is None:
        code = 0
    elif not isinstance(code, int):  # (as Python prints a SystemExit's message)
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # (a closed pipe: Python exits with 120 then)
            if stream is sys.stdout and code == 0:
                code = 120
    os._exit(code)
