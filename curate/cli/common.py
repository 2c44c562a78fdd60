"""What every CLI module shares: one-line failures, and a pager that shows output as it comes."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from rich.console import Console


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, no traceback; exit 2 for usage or input errors unless told."""
    click.echo(f"curate: {message}", err=True)
    sys.exit(code)


def rich_console(**options: Any) -> Console:
    """A rich `Console`. rich is imported here, by the commands that show something: its
    modules take 20-30 ms to import, which a quiet `curate run` (one line of result) does
    without at every start."""
    from rich.console import Console

    return Console(**options)


def _pager_console(**options: Any) -> Console:
    """A console whose reader may quit: a broken pipe ends the `paged` block (rich's own
    handling points standard output at /dev/null and exits the program)."""
    from rich.console import Console

    class PagerConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return PagerConsole(**options)


@contextlib.contextmanager
def paged(console: Console, *, off: bool = False) -> Iterator[Console]:
    """A console like `console` whose output goes to a pager as it is printed (`console`
    itself when it is no terminal, or the pager is `off`).

    rich's `Console.pager` captures everything and hands it to the pager at the end: for the
    report of the benchmark's version (37 MB of text, 47 s of rendering) nothing showed for
    47 s. Here the pager ($PAGER, else `less`; with LESS unset, `less` gets git's FRX: colours,
    no pager for one screen, the screen left as it was) reads what is printed while the rest
    is rendered, and a reader who quits it stops the rendering (the broken pipe ends the
    block quietly). Without a pager program, output goes to `console` itself.
    """
    if off or not console.is_terminal:
        yield console
        return
    command = shlex.split(os.environ.get("PAGER") or "less")
    env = dict(os.environ)
    if os.path.basename(command[0]) == "less" and not env.get("LESS"):
        env["LESS"] = "FRX"
    try:
        pager = subprocess.Popen(command, stdin=subprocess.PIPE, env=env, text=True, encoding="utf-8",
                                 errors="replace", bufsize=1)
    except OSError:
        yield console
        return
    stream = pager.stdin
    assert stream is not None
    piped = _pager_console(file=stream, width=console.width, color_system=console.color_system,
                          force_terminal=True, highlight=False, emoji=False, markup=False)
    try:
        yield piped
    except BrokenPipeError:  # the reader quit the pager: nothing more to render
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            stream.close()
        while True:  # less keeps the terminal until it ends; Ctrl-C is its own to handle
            try:
                pager.wait()
                break
            except KeyboardInterrupt:
                pass
