"""Files replaced whole: a reader sees the old file or the new one, never part of either.

One helper for every file curate rewrites in place: the report's two files, the corpus's
`LATEST` pointer, the pattern cache's entries. (Folders, a version's or a cached table's, are
built under a temporary name and renamed by their writers.) And `InBackground`: file work that
releases the GIL (a write, an fsync) done in a thread beside other work.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def replace_file(path: Path, parts: Iterable[bytes], buffering: int = -1) -> None:
    """Write `parts` to a temporary file beside `path`, then rename it over `path`.

    On any error, `path` is as it was, the temporary file is removed and the error raised. The
    temporary name holds the process and thread, so concurrent writers never share one; the
    file gets the permissions a plain `open` gives.
    """
    staging = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with staging.open("wb", buffering=buffering) as file:
            file.writelines(parts)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


class InBackground(threading.Thread):
    """`function(*args)` in a daemon thread started at once, for file work that releases the GIL
    (writing, `fsync`) beside other work; `result()` waits for it and gives its value, or raises
    in the caller's thread what it raised. As a context manager (`with InBackground(...):` the
    other work), leaving the block waits for the thread, and raises what it raised unless the
    block itself is raising."""

    def __init__(self, name: str, function: Callable[..., Any], *args: Any) -> None:
        super().__init__(name=name, daemon=True)
        self._call = (function, args)
        self._value: Any = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        function, args = self._call
        try:
            self._value = function(*args)
        except BaseException as exc:  # noqa: BLE001 - raised again by result()
            self._error = exc

    def result(self) -> Any:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value

    def __enter__(self) -> InBackground:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.join()
        if kind is None:
            self.result()
