"""`curate report` (one version, in the terminal) and `curate diff` (two versions)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from curate.cli.common import fail, paged, rich_console

if TYPE_CHECKING:
    from rich.console import Console


def _corpus_dir(corpus: str | None) -> Path:
    if corpus:
        return Path(corpus)
    try:
        from curate.config import load

        return Path(load().run.corpus)
    except Exception:  # noqa: BLE001 - a broken config file must not hide the corpus default
        return Path("corpus")


def _version_dir(corpus: Path, ref: str | None) -> Path:
    from curate.version import VersionError, resolve

    try:
        return resolve(corpus, ref)
    except VersionError as exc:
        fail(str(exc))
        raise  # unreachable


def _console(no_color: bool) -> Console:
    # color_system=None: no escape sequences at all (no_color alone still emits bold and strike).
    return rich_console(color_system=None if no_color else "auto", highlight=False, emoji=False, markup=False)


@click.command("report")
@click.argument("version", required=False)
@click.option("--corpus", "corpus", type=click.Path(file_okay=False), default=None,
              help="Corpus folder (default: run.corpus of the configuration, 'corpus').")
@click.option("--doc", default=None, help="Only this document (id, id prefix or source).")
@click.option("--rule", default=None, help="Only edits and flags of this rule (or detector).")
@click.option("--kind", default=None, help="Only edits of this kind or action, flags of this kind.")
@click.option("--stage", default=None, help="Only edits of this stage.")
@click.option("--full", is_flag=True, help="Show whole documents (no collapsed context, no size caps).")
@click.option("--no-color", is_flag=True, help="Plain text: markers only, no colours or styles.")
@click.option("--no-pager", is_flag=True, help="Never page long output.")
def report_command(version: str | None, corpus: str | None, doc: str | None, rule: str | None,
                   kind: str | None, stage: str | None, full: bool, no_color: bool, no_pager: bool) -> None:
    """Show what a run changed: summary, then each document's inline diff (default: LATEST)."""
    from curate.report.model import Limits, ReportError, build_report, read_version
    from curate.report.terminal import render_report

    folder = _version_dir(_corpus_dir(corpus), version)
    try:
        with read_version(folder) as data:  # a record at a time, not the whole version at once
            report = build_report(data, Limits.unlimited() if full else Limits())
    except ReportError as exc:
        fail(str(exc))
    console = _console(no_color)
    with paged(console, off=no_pager) as out:
        render_report(report, out, doc=doc, rule=rule, kind=kind, stage=stage)


@click.command("diff")
@click.argument("version_a")
@click.argument("version_b")
@click.option("--corpus", "corpus", type=click.Path(file_okay=False), default=None,
              help="Corpus folder (default: run.corpus of the configuration, 'corpus').")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the diff as a self-contained HTML page.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the diff as JSON.")
@click.option("--no-color", is_flag=True, help="Plain text: markers only, no colours or styles.")
@click.option("--no-pager", is_flag=True, help="Never page long output.")
def diff_command(version_a: str, version_b: str, corpus: str | None, html_file: str | None,
                 json_file: str | None, no_color: bool, no_pager: bool) -> None:
    """What changed between two versions, and which rules or settings explain it."""
    import json

    from curate.report.diff import diff_versions, render_diff, render_diff_html
    from curate.report.model import ReportError

    root = _corpus_dir(corpus)
    a, b = _version_dir(root, version_a), _version_dir(root, version_b)
    try:
        result = diff_versions(a, b)
    except ReportError as exc:
        fail(str(exc))
    for path, text in ((html_file, lambda: render_diff_html(result)),
                       (json_file, lambda: json.dumps(result, ensure_ascii=False, indent=1) + "\n")):
        if path:
            try:
                Path(path).write_text(text(), encoding="utf-8")
            except OSError as exc:
                fail(f"{path}: cannot write ({exc.strerror})")
    console = _console(no_color)
    with paged(console, off=no_pager) as out:
        render_diff(result, out)


def register(group: click.Group) -> None:
    group.add_command(report_command)
    group.add_command(diff_command)
