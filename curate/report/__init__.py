"""The diff report of a corpus version: terminal (rich), self-contained HTML, JSON, version diffs.

`write_reports(version_dir, reports_dir)` is what a run calls after writing a version; it writes
`reports_dir/<version>/report.html` and `report.json`, both from the same model
(`curate.report.model`): report.html embeds report.json's text byte for byte, so they always
agree. Same version in, same bytes out, whatever the number of workers: no timestamps, no
unordered iteration.
"""

from __future__ import annotations

import os
from pathlib import Path

from curate.report.html import render_report_html
from curate.report.model import (
    Limits,
    ReportError,
    WrittenIndex,
    build_report,
    encode_report,
    load_version,
    read_version,
)
from curate.version import WRITE_BUFFER

__all__ = ["ReportError", "Limits", "build_report", "encode_report", "load_version", "write_reports"]


def _write_atomically(path: Path, parts: list[bytes]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb", buffering=WRITE_BUFFER) as handle:
        handle.writelines(parts)
    os.replace(tmp, path)


def write_reports(
    version_dir: Path,
    reports_dir: Path,
    limits: Limits | None = None,
    workers: int = 1,
    written: WrittenIndex | None = None,
) -> dict[str, Path]:
    """Write report.json and report.html for one version; return {"json": path, "html": path}.

    The version is read through an index of where its records are (`read_version`: the one its
    writer made, `written`, if given), not held in memory; `workers` processes make the
    documents' entries (the inline diffs are most of the work)."""
    with read_version(version_dir, written) as data:
        report = encode_report(data, limits, strict=False, workers=workers)
    folder = Path(reports_dir) / report.head["version"]
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "report.json"
    html_path = folder / "report.html"
    _write_atomically(json_path, [*report.data, b"\n"])
    _write_atomically(html_path, render_report_html(report))
    return {"json": json_path, "html": html_path}
