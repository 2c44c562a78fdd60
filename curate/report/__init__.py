"""The diff report of a corpus version: terminal (rich), self-contained HTML, JSON, version diffs.

`write_reports(version_dir, reports_dir)` is what a run calls after writing a version; it writes
`reports_dir/<version>/report.html` and `report.json`, both from the same model
(`curate.report.model.build_report`), so they always agree. Same version in, same bytes out:
no timestamps, no unordered iteration.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from curate.report.html import render_report_html
from curate.report.model import Limits, ReportError, build_report, load_version

__all__ = ["ReportError", "Limits", "build_report", "load_version", "write_reports"]


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_reports(version_dir: Path, reports_dir: Path, limits: Limits | None = None) -> dict[str, Path]:
    """Write report.json and report.html for one version; return {"json": path, "html": path}."""
    data = load_version(version_dir)
    report = build_report(data, limits, strict=False)
    folder = Path(reports_dir) / data.version
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "report.json"
    html_path = folder / "report.html"
    _write_atomically(json_path, json.dumps(report, ensure_ascii=False, separators=(",", ":")) + "\n")
    _write_atomically(html_path, render_report_html(report))
    return {"json": json_path, "html": html_path}
