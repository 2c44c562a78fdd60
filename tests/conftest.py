"""Shared fixtures: the sample files and a helper that runs the whole pipeline into a tmp corpus."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from curate import config as config_module

# CI (`.ci/run`: CURATE_HYPOTHESIS_PROFILE=ci) checks a fixed set of generated examples with no
# time limit per example: a commit passes or fails there the same way every time. Other runs draw
# new examples, and keep the ones that failed in .hypothesis/.
settings.register_profile(
    "curate-ci", derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
if os.environ.get("CURATE_HYPOTHESIS_PROFILE") == "ci":
    settings.load_profile("curate-ci")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = Path(__file__).resolve().parent / "fixtures" / "seeds"
SEED_FILES = sorted(SEEDS.glob("*.txt"))  # the five sample articles (EXPECTED.md sits beside them)


@pytest.fixture
def seeds() -> Path:
    return SEEDS


def make_config(tmp_path: Path, overrides: dict[str, Any] | None = None) -> config_module.Config:
    """Defaults with the project's rules folder and a corpus/reports folder inside tmp_path."""
    data: dict[str, Any] = {
        "run": {
            "corpus": str(tmp_path / "corpus"),
            "reports": str(tmp_path / "reports"),
            "rules": [str(ROOT / "rules")],
        }
    }
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    return config_module.build(data)


@pytest.fixture
def curate_run(tmp_path: Path):
    """Run the pipeline on `inputs` (default: the sample files) into tmp_path/corpus."""
    from curate.runner import run

    def _run(inputs: list[Path] | None = None, overrides: dict[str, Any] | None = None, **kwargs: Any):
        cfg = make_config(tmp_path, overrides)
        return run(cfg, inputs=[str(p) for p in (inputs or SEED_FILES)], **kwargs)

    return _run


# In CI (.ci/run sets CURATE_STRICT_SKIPS=1) the browser, Ray engine, compiled-loop and compiled-module
# tests must run: a skip there means a missing install step, so it fails the run instead of hiding.
STRICT_MODULES = ("test_report_browser", "test_ray_engine", "test_kernels", "test_compiled")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and os.environ.get("CURATE_STRICT_SKIPS") == "1"
        and item.module.__name__.rsplit(".", 1)[-1] in STRICT_MODULES
    ):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where it must run: {reason}"


def pytest_configure(config) -> None:
    """The tests' derived tables (`curate.tablecache`) go to a folder of their own, not the
    user's cache: a run of the tests neither reads nor leaves tables there. Set before any test
    imports curate, and inherited by the processes the tests start."""
    import shutil
    import tempfile

    if "CURATE_CACHE_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="curate-test-tables-")
        os.environ["CURATE_CACHE_DIR"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
