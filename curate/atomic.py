"""Files replaced whole: a reader sees the old file or the new one, never part of either.

One helper for every file curate rewrites in place: the report's two files, the corpus's
`LATEST` pointer, the pattern cache's entries. (Folders, a version's or a cached table's, are
built under a temporary name and renamed by their writers.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path


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
