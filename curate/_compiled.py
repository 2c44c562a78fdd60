"""Which of curate's modules run compiled, and a guard that they are compiled from their source.

The build compiles some modules with Cython as they are (`setup.py`: the same source, a run
4-8% faster) and lists the sha256 of each source it compiled in `compiled.sha256`. Python
imports a compiled module before its source, whatever the source says now: after an edit, the
tests and runs would go on with the code before it. `SourceWhereNotCompiled`, first among the
import system's finders, lets a compiled module be imported only where it was compiled from the
source beside it; a module edited since is imported from its source (`make compile` builds it
again). With CURATE_PURE_PYTHON=1 every module is imported from its source: py-spy, coverage
and debuggers see into Python code only.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import ModuleType

TABLE = "compiled.sha256"  # (written by setup.py)
PURE_PYTHON = "CURATE_PURE_PYTHON"


def read_table(path: Path) -> dict[str, str]:
    """{source path in the package: sha256} from a `sha256sum`-style file; {} if there is none."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    table = {}
    for line in lines:
        digest, _, source = line.partition("  ")
        if source:
            table[source] = digest
    return table


class SourceWhereNotCompiled:
    """A meta path finder for the submodules of one package: the spec of a module's source
    where a compiled module sits beside a source it was not compiled from (or `pure`); else
    None, and Python's own finders import as usual."""

    def __init__(self, package: str, table: dict[str, str], pure: bool) -> None:
        self.prefix = package + "."
        self.table = table
        self.pure = pure

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not name.startswith(self.prefix) or not path:
            return None
        leaf = name.rpartition(".")[2]
        for folder in path:
            base = os.path.join(folder, leaf)
            is_package = os.path.isfile(os.path.join(base, "__init__.py"))
            source = os.path.join(base, "__init__.py") if is_package else base + ".py"
            if not os.path.isfile(source):
                continue
            stem = os.path.join(base, "__init__") if is_package else base
            if not any(os.path.exists(stem + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES):
                return None  # nothing compiled: as usual
            relative = name[len(self.prefix) :].replace(".", "/")
            key = f"{relative}/__init__.py" if is_package else f"{relative}.py"
            if not self.pure and self._compiled_from(source, key):
                return None  # Python's finder takes the compiled module, as usual
            return importlib.util.spec_from_file_location(
                name, source, submodule_search_locations=[base] if is_package else None
            )
        return None

    def _compiled_from(self, source: str, key: str) -> bool:
        """Whether the build compiled this very source (`key`: its path in the package; its
        sha256 is the table's)."""
        digest = self.table.get(key)
        return digest is not None and file_sha256(source) == digest


@cache
def file_sha256(path: str) -> str:
    """sha256 of a file, read once a process: the guard's check of a compiled module's source
    and the table cache's key of what that module builds (`tablecache.source_digest`) are the
    same hash of the same file."""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def install(package: str, root: Path) -> None:
    """Put the guard of `package` (its folder `root`) first among the import system's finders,
    once."""
    if any(isinstance(finder, SourceWhereNotCompiled) and finder.prefix == package + "." for finder in sys.meta_path):
        return
    pure = os.environ.get(PURE_PYTHON, "") not in ("", "0")
    sys.meta_path.insert(0, SourceWhereNotCompiled(package, read_table(root / TABLE), pure))


def source_path(path: str) -> str:
    """The source file of a module's file: itself, or for a compiled module the source beside
    it, which it was compiled from (`SourceWhereNotCompiled` imports it only then)."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if path.endswith(suffix) and os.path.isfile(source := path[: -len(suffix)] + ".py"):
            return source
    return path


def compiled_modules(package: str = "curate") -> list[str]:
    """The modules of `package` imported so far from compiled files."""
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if (name == package or name.startswith(package + "."))
        and isinstance(getattr(module, "__spec__", None), importlib.machinery.ModuleSpec)
        and isinstance(module.__spec__.loader, importlib.machinery.ExtensionFileLoader)
    )
