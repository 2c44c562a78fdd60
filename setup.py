"""The part of the build pyproject.toml cannot declare (outside an experimental table): the
compiled extensions.

- `curate/_kernels.pyx`: the compiled loops of near-duplicate detection (and others), with
  xxHash's header, vendored in `curate/_vendor/xxhash`.
- The modules in `COMPILED`, compiled as they are by Cython (its pure-Python mode: the same
  source, no type annotation read as a C type): the per-document stages and what they call,
  where a run spends its time in Python code. A run takes 4-8% less time
  (`bench/ab_pipeline.py`, `bench/bench_shapes.py` against the commit before).

All optional: where one cannot be built (no C compiler), the install still succeeds and curate
runs that source as Python (the same results, slower). The build lists the sha256 of every
source it compiled in `curate/compiled.sha256`; `curate._compiled` imports a compiled module
only where its source is still that one (an edit since, not yet built, is imported as source).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent

# Sources compiled as modules (paths in the package). The engine and the runner too: their
# loops handle every document in the driver (ingest, spills, the pools' batches), which bounds a
# run of many short documents (bench/HISTORY.md, the fifty-first session). Not the CLI or the
# configuration, run once; `CURATE_PURE_PYTHON=1` runs everything as Python for debuggers.
COMPILED = [
    "document.py",
    "engine.py",
    "ingest.py",
    "minhash.py",
    "patterncache.py",
    "rules.py",
    "runner.py",
    "t2s.py",
    "tablecache.py",
    "textutil.py",
    "version.py",
    "detectors/__init__.py",
    "detectors/bigram.py",
    "detectors/garbage.py",
    "detectors/mojibake.py",
    "detectors/obfuscation.py",
    "detectors/spam.py",
    "detectors/splice.py",
    "detectors/truncated.py",
    "report/diff.py",
    "report/model.py",
    "stages/base.py",
    "stages/boilerplate.py",
    "stages/convert.py",
    "stages/corruption.py",
    "stages/dedup.py",
    "stages/invisible.py",
    "stages/policy.py",
    "stages/punctuation.py",
    "stages/reflow.py",
    "stages/repair.py",
    "stages/repeated_lines.py",
]
TABLE = "compiled.sha256"  # (the name curate._compiled reads)


def module_name(source: str) -> str:
    """`stages/dedup.py` -> `curate.stages.dedup` (`detectors/__init__.py` ->
    `curate.detectors.__init__`, which Python loads as the package)."""
    return ".".join(["curate", *source.removesuffix(".py").split("/")])


def source_digest(source: str) -> str:
    return hashlib.sha256((HERE / "curate" / source).read_bytes()).hexdigest()


def forget_changed(build_dir: Path) -> None:
    """Delete the generated C of each module whose source is not, by content, the one it was
    generated from: cythonize, which goes by modification times (a source put back as it was,
    with its old time, would look older than C made from another), then makes it again, and
    build_ext the module. The source's sha256 is kept beside its C."""
    for source in COMPILED:
        generated = build_dir / "curate" / source.replace(".py", ".c")
        stamp = generated.with_suffix(".sha256")
        digest = source_digest(source)
        if not stamp.is_file() or stamp.read_text(encoding="utf-8") != digest:
            generated.unlink(missing_ok=True)
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(digest, encoding="utf-8")


class BuildExtensions(build_ext):
    """build_ext, which also writes `TABLE` beside the compiled modules: the sha256 of each
    source whose module it built (or found up to date). A module whose build failed is not in
    it, so a compiled file left from an earlier build is never taken for the source now."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:  # (the modules compile one per core)
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        self.built: list[str] = []
        super().run()
        sources = {module_name(source): source for source in COMPILED}
        lines = sorted(
            f"{source_digest(sources[name])}  {sources[name]}\n" for name in self.built if name in sources
        )
        folders = {Path(self.build_lib) / "curate"}  # (what a wheel installs)
        if self.inplace:  # (an editable install: the modules are copied beside their sources)
            folders.add(HERE / "curate")
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / TABLE).write_text("".join(lines), encoding="utf-8")

    def build_extension(self, ext: Extension) -> None:
        super().build_extension(ext)  # (raises if it failed: `optional` then goes on)
        self.built.append(ext.name)


class BuildPackage(build_py):
    """build_py, which also copies the repository's `rules/` into the package as
    `curate/shipped_rules/` (what a wheel installs, where no repository is beside it:
    `curate.rules.SHIPPED_RULES`). An editable install reads `rules/` where it is."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib) / "curate" / "shipped_rules"
            shutil.rmtree(target, ignore_errors=True)  # (a pack removed since the last build goes)
            shutil.copytree(HERE / "rules", target, ignore=shutil.ignore_patterns("__pycache__", ".*"))


# -O2 without debugging information: with Python's own flags (-O3 -g) the build took about twice as
# long (by hand, on 2 cores), and code built at -O1 ran no slower than at -O3 in paired rounds.
FLAGS = ["-O2", "-g0"]

BUILD_DIR = Path("build/cython")  # (the generated C, out of the source tree)
forget_changed(BUILD_DIR)
modules = [
    Extension(module_name(source), [f"curate/{source}"], optional=True, extra_compile_args=FLAGS)
    for source in COMPILED
]
setup(
    ext_modules=[
        # (xxHash's header, vendored: `text_hash`)
        Extension("curate._kernels", ["curate/_kernels.pyx"], include_dirs=["curate/_vendor/xxhash"], optional=True),
        *cythonize(
            modules,
            build_dir=str(BUILD_DIR),
            compiler_directives={"language_level": 3, "annotation_typing": False, "binding": True},
            quiet=True,
            nthreads=os.cpu_count() or 1,
        ),
    ],
    cmdclass={"build_ext": BuildExtensions, "build_py": BuildPackage},
)
