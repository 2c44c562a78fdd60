"""The diff report of a corpus version: terminal (rich), self-contained HTML, JSON, version diffs.

`write_reports(version_dir, reports_dir)` is what a run calls after writing a version; it writes
`reports_dir/<version>/report.html` and `report.json`, both from the same model
(`curate.report.model`): report.html embeds report.json's text byte for byte, so they always
agree. Same version in, same bytes out, whatever the number of workers: no timestamps, no
unordered iteration.
"""

from __future__ import annotations

from pathlib import Path

from curate.atomic import InBackground, replace_file
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
    # report.json is written in a thread while report.html is rendered and written here: the
    # two writes (31 MB each on the benchmark, about 15 ms each) release the GIL.
    json_parts = [*report.data, b"\n"]
    with InBackground("curate-report-json", replace_file, json_path, json_parts, WRITE_BUFFER):
        replace_file(html_path, render_report_html(report), WRITE_BUFFER)
    return {"json": json_path, "html": html_path}
