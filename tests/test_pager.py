"""The terminal pager of `curate report` and `curate diff`: output reaches it as it is printed."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from curate.cli.common import paged

pytestmark = pytest.mark.skipif(os.name != "posix", reason="pipes to a pager program: POSIX")


def _terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=60, color_system=None)


def _pager(folder: Path, body: str, name: str = "less") -> str:
    """A pager program named `name` running `body` (Python, with `folder` as `out`)."""
    script = folder / name
    script.write_text(f"#!{sys.executable}\nimport os, sys\nfrom pathlib import Path\nout = Path({str(folder)!r})\n{body}\n")
    script.chmod(0o755)
    return str(script)


def _wait_for(path: Path, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_pager_reads_each_line_as_it_is_printed(tmp_path, monkeypatch):
    monkeypatch.setenv("PAGER", _pager(tmp_path, (
        "first = sys.stdin.readline()\n"
        "(out / 'first').write_text(first + os.environ.get('LESS', ''))\n"
        "(out / 'rest').write_text(sys.stdin.read())"
    )))
    monkeypatch.delenv("LESS", raising=False)
    console = _terminal()
    with paged(console) as out:
        assert out is not console
        out.print("summary")
        # the pager has the first line while the rest is still to be rendered
        assert _wait_for(tmp_path / "first")
        for n in range(3):
            out.print(f"document {n}")
    assert (tmp_path / "first").read_text() == "summary\nFRX"  # `less` gets git's default
    assert (tmp_path / "rest").read_text() == "document 0\ndocument 1\ndocument 2\n"
    assert console.file.getvalue() == ""  # nothing went around the pager


def test_quitting_the_pager_stops_the_rendering_quietly(tmp_path, monkeypatch):
    monkeypatch.setenv("PAGER", _pager(tmp_path, "sys.stdin.readline()", name="more"))
    printed = 0
    with paged(_terminal()) as out:
        for n in range(200_000):
            out.print(f"line {n} " + "字" * 20)
            printed += 1
    assert 0 < printed < 200_000


def test_the_users_less_settings_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("PAGER", _pager(tmp_path, "sys.stdin.read(); (out / 'less').write_text(os.environ['LESS'])",
                                       name="less"))
    monkeypatch.setenv("LESS", "-S")
    with paged(_terminal()) as out:
        out.print("x")
    assert (tmp_path / "less").read_text() == "-S"


def test_without_a_pager_or_a_terminal_output_goes_to_the_console(tmp_path, monkeypatch):
    monkeypatch.setenv("PAGER", str(tmp_path / "no-such-pager"))
    console = _terminal()
    with paged(console) as out:
        out.print("straight")
    assert out is console and console.file.getvalue() == "straight\n"
    plain = Console(file=io.StringIO(), width=60)  # not a terminal
    with paged(plain) as out, paged(console, off=True) as also:
        assert out is plain and also is console


def test_curate_report_in_a_terminal_goes_through_the_pager(tmp_path, curate_run):
    """The command, in a pseudo-terminal: its output reaches $PAGER, the terminal gets none."""
    import pty
    import subprocess

    result = curate_run(write_report=False)
    env = dict(os.environ, PAGER=_pager(tmp_path, "(out / 'paged').write_text(sys.stdin.read())"),
               COLUMNS="100")
    env.pop("LESS", None)
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "curate", "report", "--corpus", str(result.version_dir.parents[1])],
            stdin=secondary, stdout=secondary, stderr=subprocess.PIPE, env=env, timeout=300,
        )
        os.close(secondary)
        on_terminal = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal's other end is closed: everything was read
                break
            if not chunk:
                break
            on_terminal += chunk
    finally:
        os.close(primary)
    assert done.returncode == 0, done.stderr
    paged_text = (tmp_path / "paged").read_text()
    assert f"curate report · version {result.version_id}" in paged_text
    assert "Summary" in paged_text and "documents in" in paged_text
    assert b"Summary" not in on_terminal
