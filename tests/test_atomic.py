"""Files replaced whole (`curate.atomic.replace_file`): old or new, never part, nothing left;
and file work in the background (`InBackground`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from curate.atomic import replace_file


def test_the_new_content_replaces_the_old_and_no_temporary_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "LATEST"
    target.write_bytes(b"old\n")
    replace_file(target, [b"ne", b"w\n"])
    assert target.read_bytes() == b"new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["LATEST"]


def test_a_failure_while_writing_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_bytes(b"old")

    def parts() -> Iterator[bytes]:
        yield b"half of the new"
        raise RuntimeError("the writer failed")

    with pytest.raises(RuntimeError, match="the writer failed"):
        replace_file(target, parts())
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failed_rename_raises_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()  # a folder where the file should go: the rename fails
    with pytest.raises(OSError):
        replace_file(tmp_path / "taken", [b"data"])
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_in_background_gives_the_value_or_raises_the_error_in_the_caller():
    import threading

    from curate.atomic import InBackground

    caller = threading.get_ident()
    ran_in = InBackground("test", threading.get_ident).result()
    assert ran_in != caller
    assert InBackground("test", pow, 2, 10).result() == 1024

    def fails() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        InBackground("test", fails).result()


def test_in_background_as_a_block_waits_and_raises_its_error_unless_the_block_raises():
    import time

    from curate.atomic import InBackground

    done: list[str] = []
    with InBackground("test", lambda: (time.sleep(0.05), done.append("thread"))):
        done.append("block")
    assert done == ["block", "thread"]  # waited for at the end of the block

    def fails() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), InBackground("test", fails):
        pass
    with pytest.raises(ValueError, match="the block's"), InBackground("test", fails):  # the block's wins
        raise ValueError("the block's")
