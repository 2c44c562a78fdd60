"""Lookup tables derived from installed libraries, kept on disk between runs.

Why: before its first document, every run builds tables over the whole code point range — the
Traditional->Simplified fold and the letter/digit classes that near-duplicates compare by, the
Traditional-only/Simplified-only classes that decide conversion — from OpenCC's dictionaries
and `regex`'s Unicode classes. That is about half a second of serial work, while the other
cores wait. Each table is a pure function of the code that builds it and of the libraries it
reads, so it is stored under a key made of exactly those (the building modules' source, the
libraries' versions, Python's) and built again whenever one of them changes.

Where: `$CURATE_CACHE_DIR`, else `$XDG_CACHE_HOME/curate`, else `~/.cache/curate`;
`CURATE_CACHE_DIR=off` switches the cache off. A cache that cannot be read or written is no
error: the table is built in memory, as without a cache, and the run's output is the same.
Tables are plain `.npy` files (loaded without pickle), memory-mapped read-only, so every
process of a run shares one copy of their pages. Smaller derived values (a rule pattern's
expansion, a character class) are kept as JSON by `JsonMemo`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from curate import _compiled
from curate.atomic import replace_file

OFF = "off"


def cache_dir() -> Path | None:
    """The folder tables are kept in (None: switched off)."""
    chosen = os.environ.get("CURATE_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in (OFF, "") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "curate"


@cache
def source_digest(module: str) -> str:
    """sha256 of an imported module's source file: a table built by it changes with it. Of a
    compiled module, its source's too (the same source builds the same table, compiled or not;
    hashing the compiled files cost 5 ms a run)."""
    path = getattr(sys.modules[module], "__file__", None)
    return _compiled.file_sha256(_compiled.source_path(path)) if path else module


@cache
def package_version(distribution: str) -> str:
    """`distribution==version` (for keys), as `importlib.metadata.version` gives it: read from
    the METADATA of the distribution's first `.dist-info` folder on `sys.path`
    (`_dist_info_version`); `importlib.metadata` only where that cannot answer (importing it,
    with the email package it parses metadata with, took 10-15 ms of every run's start, on one
    core)."""
    version = _dist_info_version(distribution)
    if version is None:
        from importlib import metadata

        try:
            version = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return f"{distribution} (not installed)"
    return f"{distribution}=={version}"


def _normalised(name: str) -> str:
    """A distribution's name as its `.dist-info` folder spells it, and as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _dist_info_version(distribution: str) -> str | None:
    """The `Version` of the first `.dist-info` folder of `distribution` on `sys.path` (read from
    its METADATA's headers), found as `importlib.metadata` finds it: each folder's entries in
    the order the folder lists them. None, for `importlib.metadata` to answer, where there is
    none, or where that copy is an egg (an `.egg-info` met first, an `.egg` on the path) or
    sits in a zip file."""
    wanted = _normalised(distribution)
    for folder in sys.path:
        if folder.lower().endswith(".egg") or os.path.isfile(folder):
            return None
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            suffix = suffix.lower()
            if not dot or suffix not in ("dist-info", "egg-info"):
                continue
            if _normalised(stem.partition("-")[0]) != wanted:
                continue
            if suffix == "egg-info":
                return None
            return _metadata_version(os.path.join(folder or ".", name, "METADATA"))
    return None


def _metadata_version(path: str) -> str | None:
    """The `Version` header of a METADATA file (None: unreadable, or none)."""
    try:
        with open(path, encoding="utf-8") as metadata:
            for line in metadata:
                if not line.strip():
                    break  # (the headers end at the first blank line)
                field, colon, value = line.partition(":")
                if colon and field.strip().lower() == "version":
                    return value.strip()
    except (OSError, UnicodeDecodeError):
        return None
    return None


def key(name: str, depends: Iterable[str]) -> str:
    """The cache key of a table: its name, what it depends on, and the Python it was built by
    (whose codecs and Unicode data some tables read)."""
    parts = [name, sys.version, np.__version__, *depends]
    # ("surrogatepass": a pattern may hold a lone surrogate; other text encodes as plain UTF-8)
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:20]


def arrays(
    name: str, build: Callable[[], tuple[np.ndarray, ...]], depends: Iterable[str]
) -> tuple[np.ndarray, ...]:
    """`build()`, or the arrays it returned when it last ran with the same `depends`.

    The arrays come back read-only (memory-mapped from the cache, or built and frozen).
    """
    folder = cache_dir()
    target = folder / f"{name}-{key(name, depends)}" if folder is not None else None
    if target is not None:
        found = _load(target)
        if found is not None:
            return found
    built = tuple(build())
    for array in built:
        array.flags.writeable = False
    if target is not None:
        _store(target, built)
    return built


def _load(target: Path) -> tuple[np.ndarray, ...] | None:
    """The arrays stored in `target`, or None if it is missing or unreadable."""
    try:
        count = int((target / "count").read_text(encoding="ascii"))
        return tuple(
            np.asarray(np.load(target / f"{i}.npy", mmap_mode="r", allow_pickle=False))
            for i in range(count)
        )
    except (OSError, ValueError):
        return None


def _store(target: Path, built: tuple[np.ndarray, ...]) -> None:
    """Write the arrays into a fresh folder, then rename it into place (a reader never sees a
    half-written table; of two runs storing the same table at once, one rename wins)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    except OSError:
        return
    try:
        for i, array in enumerate(built):
            np.save(staging / f"{i}.npy", array, allow_pickle=False)
        (staging / "count").write_text(str(len(built)), encoding="ascii")  # written last
        if target.exists():
            if _load(target) is not None:  # another run stored it meanwhile: keep theirs
                return
            shutil.rmtree(target, ignore_errors=True)  # damaged: replace it
        os.rename(staging, target)
    except OSError:
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def value(name: str, build: Callable[[], Any], depends: Iterable[str]) -> Any:
    """`build()` (a JSON value), or what it returned when it last ran with the same `depends`
    (as JSON gives it back: lists for tuples)."""
    memo = JsonMemo(name, depends)
    found = memo.get("", lambda _: build())
    memo.save()
    return found


class JsonMemo:
    """Results of a pure function of a string (JSON values), kept on disk between runs.

    For derived values too small for `arrays` that still cost start-up: the rule packs'
    patterns expanded with their variants and the literals they require (~50 ms of every run
    before its first document), the character classes of some stages; and, by `keep` and
    `kept`, what is made of a file, its latest version only (the rule files' data). One JSON
    file per `name` and `depends` (as for `arrays`), read on first use, with the SHA-256 of
    its entries (a damaged entry could make a rule skip lines it matches); `save` writes it
    back, whole, when something was added. Unreadable or damaged files are no error: the values are
    computed again. Past `MAX_ENTRIES` (patterns edited many times) the older half is dropped.
    """

    MAX_ENTRIES = 4096

    def __init__(self, name: str, depends: Iterable[str]) -> None:
        folder = cache_dir()
        self._path = folder / f"{name}-{key(name, depends)}.json" if folder is not None else None
        self._entries: dict[str, Any] | None = None
        self._added = False

    def _loaded(self) -> dict[str, Any]:
        if self._entries is None:
            self._entries = {}
            if self._path is not None:
                try:  # the SHA-256 of the entries' JSON, a line break, the JSON
                    digest, _, data = self._path.read_bytes().partition(b"\n")
                    found = json.loads(data) if digest.decode("ascii") == hashlib.sha256(data).hexdigest() else None
                except (OSError, ValueError):
                    found = None
                if isinstance(found, dict):
                    self._entries = found
        return self._entries

    def get(self, argument: str, compute: Callable[[str], Any]) -> Any:
        """`compute(argument)`, or what it returned before (as JSON gives it back: lists for
        tuples, the first time too)."""
        entries = self._loaded()
        if argument in entries:
            return entries[argument]
        result = entries[argument] = json.loads(json.dumps(compute(argument), ensure_ascii=False))
        self._added = True
        return result

    def kept(self, argument: str, version: str) -> Any:
        """What `keep` kept for `argument` at `version` (a file, the digest of its text), or
        None: nothing, or what was kept for another version."""
        entry = self._loaded().get(argument)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == version:
            return entry[1]
        return None

    def keep(self, argument: str, version: str, value: Any) -> None:
        """Keep `value` (JSON) for `argument` at `version`, in place of any other version's:
        a file edited many times is kept once."""
        entries = self._loaded()
        if entries.get(argument) != [version, value]:
            entries[argument] = [version, value]
            self._added = True

    def save(self) -> None:
        """Write the entries if some were added (`replace_file`: a reader never sees half a file)."""
        if not self._added or self._path is None or self._entries is None:
            return
        entries = self._entries
        if len(entries) > self.MAX_ENTRIES:
            entries = dict(list(entries.items())[-(self.MAX_ENTRIES // 2) :])
        data = json.dumps(entries, ensure_ascii=False).encode("utf-8")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            replace_file(self._path, [hashlib.sha256(data).hexdigest().encode("ascii"), b"\n", data])
        except OSError:
            return
        self._added = False
