"""The modules compiled by the build (setup.py's COMPILED): used where compiled from the source
beside them, and only there; and a run with them writes what the same run in Python does."""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curate import _compiled
from tests.conftest import ROOT, SEED_FILES

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def listed_modules() -> list[str]:
    """setup.py's COMPILED, read from the file (setup.py runs the build when imported)."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "COMPILED" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no COMPILED list")


def module_name(source: str) -> str:
    parts = ["curate", *source.removesuffix(".py").split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# --------------------------------------------------------------------------- the guard, alone
@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A package `fakepkg` with a module and a subpackage, each with a "compiled" file beside its
    source (never loaded: the finder only looks at which files exist)."""
    root = tmp_path / "fakepkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "mod.py").write_text("VALUE = 1\n")
    (root / f"mod{SUFFIX}").write_bytes(b"not really compiled")
    (root / "sub" / "__init__.py").write_text("VALUE = 2\n")
    (root / "sub" / f"__init__{SUFFIX}").write_bytes(b"not really compiled")
    (root / "plain.py").write_text("VALUE = 3\n")
    return root


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find(package: Path, name: str, table: dict[str, str], pure: bool = False):
    finder = _compiled.SourceWhereNotCompiled("fakepkg", table, pure)
    return finder.find_spec(f"fakepkg.{name}", [str(package)])


def test_a_module_compiled_from_its_source_is_left_to_python(package: Path) -> None:
    table = {"mod.py": digest(package / "mod.py"), "sub/__init__.py": digest(package / "sub" / "__init__.py")}
    assert find(package, "mod", table) is None
    assert find(package, "sub", table) is None


def test_a_module_edited_since_it_was_compiled_is_imported_from_its_source(package: Path) -> None:
    table = {"mod.py": digest(package / "mod.py"), "sub/__init__.py": digest(package / "sub" / "__init__.py")}
    (package / "mod.py").write_text("VALUE = 10\n")
    spec = find(package, "mod", table)
    assert spec is not None and spec.origin == str(package / "mod.py")
    (package / "sub" / "__init__.py").write_text("VALUE = 20\n")
    spec = find(package, "sub", table)
    assert spec is not None and spec.origin == str(package / "sub" / "__init__.py")
    assert spec.submodule_search_locations == [str(package / "sub")]


def test_a_compiled_module_the_build_did_not_list_is_imported_from_its_source(package: Path) -> None:
    """(a compiled file left from an earlier build whose module failed to build this time, or no
    table at all)"""
    spec = find(package, "mod", {})
    assert spec is not None and spec.origin == str(package / "mod.py")


def test_pure_python_imports_every_compiled_module_from_its_source(package: Path) -> None:
    table = {"mod.py": digest(package / "mod.py")}
    spec = find(package, "mod", table, pure=True)
    assert spec is not None and spec.origin == str(package / "mod.py")


def test_modules_without_a_compiled_file_and_other_packages_are_left_to_python(package: Path) -> None:
    assert find(package, "plain", {}, pure=True) is None
    assert find(package, "missing", {}, pure=True) is None
    finder = _compiled.SourceWhereNotCompiled("fakepkg", {}, True)
    assert finder.find_spec("otherpkg.mod", [str(package)]) is None


def test_the_guard_decides_what_python_imports(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed, the guard's choice is what `import` gets: the edited source, not the stale file
    (which, a real import of it would show, is no module at all)."""
    (package / "mod.py").write_text("VALUE = 10\n")
    (package / _compiled.TABLE).write_text(f"{'0' * 64}  mod.py\n")
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delenv(_compiled.PURE_PYTHON, raising=False)
    _compiled.install("fakepkg", package)
    _compiled.install("fakepkg", package)  # (once)
    assert sum(getattr(f, "prefix", "") == "fakepkg." for f in sys.meta_path) == 1
    try:
        import fakepkg.mod  # type: ignore[import-not-found]

        assert fakepkg.mod.VALUE == 10
    finally:
        for name in ("fakepkg", "fakepkg.mod"):
            sys.modules.pop(name, None)


def test_read_table(tmp_path: Path) -> None:
    table = tmp_path / _compiled.TABLE
    table.write_text(f"{'a' * 64}  rules.py\n{'b' * 64}  stages/dedup.py\n\nnot a line of the table\n")
    assert _compiled.read_table(table) == {"rules.py": "a" * 64, "stages/dedup.py": "b" * 64}
    assert _compiled.read_table(tmp_path / "missing") == {}


# --------------------------------------------------------------------------- the real build
def _child(code: str, env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


IMPORT_ALL = """
import importlib, json, sys
from curate import _compiled
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({"compiled": _compiled.compiled_modules()}))
"""


def test_every_module_setup_lists_is_compiled_in_this_install() -> None:
    """The build makes every module of COMPILED (each is optional: a failure would otherwise only
    slow runs down, silently). Skipped where none is built (no C compiler); CI must build them."""
    names = [module_name(source) for source in listed_modules()]
    compiled = set(_child(IMPORT_ALL, {}, *names)["compiled"])
    if not compiled & set(names):
        pytest.skip("curate's modules were not compiled here (no C compiler at install?)")
    assert sorted(set(names) - compiled) == []
    assert set(_child(IMPORT_ALL, {_compiled.PURE_PYTHON: "1"}, *names)["compiled"]) <= {"curate._kernels"}


RUN = """
import json, sys
from curate import _compiled, config, runner
settings = config.build({"run": {"workers": 2, "rules": [sys.argv[2]]}})
result = runner.run(settings, inputs=sys.argv[3:], corpus=sys.argv[1] + "/corpus",
                    reports=sys.argv[1] + "/reports", write_report=False)
files = {p.name: p.read_text(encoding="utf-8") for p in sorted(result.version_dir.glob("*.jsonl"))}
print(json.dumps({"version": result.version_id, "files": files, "compiled": _compiled.compiled_modules()}))
"""


def test_a_run_compiled_writes_what_the_same_run_in_python_does(tmp_path: Path) -> None:
    seeds = [str(path) for path in SEED_FILES]
    compiled = _child(RUN, {}, str(tmp_path / "compiled"), str(ROOT / "rules"), *seeds)
    source = _child(RUN, {_compiled.PURE_PYTHON: "1"}, str(tmp_path / "source"), str(ROOT / "rules"), *seeds)
    if not set(compiled["compiled"]) - {"curate._kernels"}:
        pytest.skip("curate's modules were not compiled here (no C compiler at install?)")
    assert set(source["compiled"]) <= {"curate._kernels"}
    assert "curate.stages.dedup" in compiled["compiled"]
    assert compiled["version"] == source["version"]
    assert compiled["files"] == source["files"] and "documents.jsonl" in compiled["files"]


def test_tables_are_keyed_by_the_source_compiled_or_not() -> None:
    """A table's cache key (`tablecache.source_digest`) is its builder's source's sha256, whether
    the builder runs compiled or not: the same source builds the same table."""
    from curate import rules, tablecache

    assert tablecache.source_digest("curate.rules") == digest(ROOT / "curate" / "rules.py")
    assert _compiled.source_path(rules.__file__) == str(ROOT / "curate" / "rules.py")
    assert _compiled.source_path(f"/nowhere/mod{SUFFIX}") == f"/nowhere/mod{SUFFIX}"
