"""CLI commands that make and read corpus versions: run, log, show, verify, export, config."""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from curate import config as config_module
from curate.cli.common import fail, rich_console
from curate.version import (
    STATUS_FILES,
    VersionError,
    list_versions,
    read_jsonl,
    read_latest,
    read_manifest,
    resolve,
    verify,
)

if TYPE_CHECKING:
    from rich.table import Table


def load_config(path: str | None) -> config_module.Config:
    try:
        return config_module.load(path)
    except config_module.ConfigError as exc:
        fail(str(exc))


def corpus_option(func: Any) -> Any:
    return click.option(
        "--corpus", "corpus", type=click.Path(file_okay=False), default=None,
        help="Corpus folder (default: run.corpus of the configuration, 'corpus').",
    )(func)


def config_option(func: Any) -> Any:
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), default=None,
        help="Configuration file (default: ./curate.toml, else [tool.curate] in ./pyproject.toml).",
    )(func)


def corpus_path(corpus: str | None, config_path: str | None = None) -> Path:
    return Path(corpus) if corpus else Path(load_config(config_path).run.corpus)


def resolve_version(corpus: Path, ref: str | None) -> Path:
    try:
        return resolve(corpus, ref)
    except VersionError as exc:
        fail(str(exc))


# --------------------------------------------------------------------------- run
@click.command()
@click.argument("inputs", nargs=-1, type=click.Path())
@corpus_option
@click.option("--reports", type=click.Path(file_okay=False), default=None, help="Reports folder (default 'reports').")
@config_option
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Worker processes (default run.workers; 0: all cores).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default=None,
              help="Execution engine (default run.engine, 'local'); 'ray' needs `pip install curate[ray]`.")
@click.option("--address", default=None, help="Ray cluster address for --engine ray (default: a local Ray).")
@click.option("--quiet", "-q", is_flag=True, help="Only errors and the one-line result.")
def run(
    inputs: tuple[str, ...], corpus: str | None, reports: str | None, config_path: str | None,
    workers: int | None, engine: str | None, address: str | None, quiet: bool,
) -> None:
    """Curate INPUTS (files or folders; default corpus/incoming) into a new corpus version.

    The output does not depend on --workers or --engine: the same inputs, configuration and
    rules give the same version id and byte-identical documents.
    """
    from curate.runner import RunError
    from curate.runner import run as run_pipeline

    cfg = load_config(config_path)
    for key, value in [("workers", workers), ("engine", engine), ("ray_address", address)]:
        if value is not None:
            setattr(cfg.run, key, value)
    # A quiet run shows nothing but errors and its one-line result: rich (a console, a progress
    # bar) is loaded only for a run that shows more (`rich_console`).
    console = None if quiet else rich_console(stderr=True)
    from curate import minhash

    if minhash._kernels is None and console is not None:
        console.print(
            "[yellow]note: curate's compiled loops (curate._kernels) are not built, so "
            "near-duplicate detection runs on numpy: the same output, slower. Reinstall with a "
            "C compiler present (`make setup` or `pip install -e .`) to build them.[/]",
            highlight=False,
        )
    shown: Any = contextlib.nullcontext()
    on_file = on_plan = None
    if console is not None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        progress = shown = Progress(
            TextColumn("[bold]curating"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal,
        )
        task = progress.add_task("", total=None)

        def on_file(result: Any) -> None:
            progress.update(task, advance=1, description=result.file.source)
            _show_skipped(console, result.skipped)

        def on_plan(files: int) -> None:
            progress.update(task, total=files)

    try:
        with shown:
            result = run_pipeline(
                cfg, inputs=list(inputs) or None, corpus=corpus, reports=reports,
                on_file=on_file, on_plan=on_plan,
            )
    except RunError as exc:
        fail(str(exc))
    if not result.created:
        if console is not None:  # (inputs this run could not use: the version is made without them)
            _show_skipped(console, result.skipped)
        note = " (LATEST now points to it)" if result.latest_moved else ""
        click.echo(f"nothing changed: version {result.version_id} already has these inputs, "
                   f"configuration and rules{note}")
        return
    if console is not None:
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False)
        rich_console().print(summary_table(result.counts, result.skipped))
    click.echo(f"version {result.version_id} written to {result.version_dir}"
               + (f"; report {result.reports['html']}" if result.reports.get("html") else ""))
    # The process ends next. Python's collections at exit would walk every object still alive
    # (about 40,000, 30-40 ms after a run of the benchmark) for garbage it has no need to free:
    # the objects alive then are left out of them, as `gc.freeze` leaves them out for a fork.
    atexit.unregister(gc.freeze)  # (once, however many runs one process makes)
    atexit.register(gc.freeze)


def _show_skipped(console: Any, skipped: list[Any]) -> None:
    """A line each, on the run's console, for inputs (or records) skipped."""
    for skip in skipped:
        console.print(f"[yellow]{skip.line()}[/]", highlight=False, markup=True)


def summary_table(counts: dict[str, Any], skipped: list[Any]) -> Table:
    from rich.table import Table

    table = Table(title="curate run", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key in ["documents_in", "documents_out", "quarantined", "duplicates", "edits"]:
        table.add_row(key.replace("_", " "), str(counts.get(key, 0)))
    for stage, n in counts.get("edits_by_stage", {}).items():
        table.add_row(f"  edits: {stage}", str(n))
    for kind, n in counts.get("flags_by_kind", {}).items():
        table.add_row(f"  flags: {kind}", str(n))
    table.add_row("skipped inputs", str(len(skipped)))
    for skip in skipped[:20]:
        table.add_row(f"  {skip.path}", skip.reason)
    if len(skipped) > 20:
        table.add_row("  …", f"{len(skipped) - 20} more in the manifest")
    return table


# --------------------------------------------------------------------------- log / show / verify
@click.command()
@corpus_option
@config_option
def log(corpus: str | None, config_path: str | None) -> None:
    """List the versions of the corpus, newest first, with what changed since the parent."""
    root = corpus_path(corpus, config_path)
    manifests = list_versions(root)
    if not manifests:
        fail(f"{root}: no versions yet (run `curate run` first)")
    by_id = {m["version"]: m for m in manifests}
    latest = read_latest(root)
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    for column in ["version", "created", "parent", "docs", "what changed"]:
        table.add_column(column)
    for manifest in reversed(manifests):
        parent = by_id.get(manifest.get("parent") or "")
        marker = " (LATEST)" if manifest["version"] == latest else ""
        table.add_row(
            manifest["version"] + marker, manifest.get("created", ""), manifest.get("parent") or "-",
            str(manifest["counts"]["documents_out"]), describe_change(parent, manifest),
        )
    rich_console().print(table)


def describe_change(parent: dict[str, Any] | None, manifest: dict[str, Any]) -> str:
    """One line: documents added/removed/changed, and whether inputs, config or rules changed."""
    if parent is None:
        return "first version" if not manifest.get("parent") else "parent not found"
    old, new = parent.get("outputs", {}), manifest.get("outputs", {})
    added = len(new.keys() - old.keys())
    removed = len(old.keys() - new.keys())
    changed = sum(1 for k in new.keys() & old.keys() if new[k] != old[k])
    parts = [f"+{added} -{removed} ~{changed} documents"]
    old_inputs = {i["path"]: i["sha256"] for i in parent.get("inputs", [])}
    new_inputs = {i["path"]: i["sha256"] for i in manifest.get("inputs", [])}
    if old_inputs != new_inputs:
        parts.append(f"inputs changed ({len(set(new_inputs.items()) ^ set(old_inputs.items()))} entries)")
    keys = config_changes(parent.get("config", {}), manifest.get("config", {}))
    if keys:
        parts.append("config: " + ", ".join(keys))
    if parent.get("rules_digest") != manifest.get("rules_digest"):
        parts.append("rules changed")
    return "; ".join(parts)


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose value differs between two effective configurations (paths ignored)."""
    keys = []
    for section in sorted(set(old) | set(new)):
        if section == "run":
            continue
        a, b = old.get(section, {}), new.get(section, {})
        keys += [f"{section}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return keys


@click.command()
@click.argument("version", required=False)
@click.argument("doc", required=False)
@corpus_option
@config_option
def show(version: str | None, doc: str | None, corpus: str | None, config_path: str | None) -> None:
    """Show a version's manifest summary, or one document (by id or source) with its edits."""
    folder = resolve_version(corpus_path(corpus, config_path), version)
    console = rich_console()
    manifest = read_manifest(folder)
    if doc is None:
        console.print(f"[bold]version {manifest['version']}[/] created {manifest.get('created')} "
                      f"parent {manifest.get('parent') or '-'}", highlight=False)
        console.print_json(json.dumps(manifest["counts"], ensure_ascii=False))
        if manifest.get("skipped"):
            console.print(f"skipped inputs: {len(manifest['skipped'])}")
            for skip in manifest["skipped"]:
                console.print(f"  {skip['path']}: {skip['reason']}", highlight=False, markup=False)
        return
    record = find_document(folder, doc)
    if record is None:
        fail(f"version {folder.name}: no document {doc!r} (give its id or source path)")
    console.print_json(json.dumps({k: v for k, v in record.items() if k != "text"}, ensure_ascii=False))
    console.rule("text")
    console.print(record["text"], markup=False, highlight=False)
    edits = [e for e in read_jsonl(folder / "edits.jsonl") if e["doc"] == record["id"]]
    console.rule(f"{len(edits)} edits")
    for edit in edits:
        console.print(
            f"{edit['stage']}/{edit['rule']} {edit['action']} [{edit['src_start']}:{edit['src_end']}] "
            f"{edit['before']!r} -> {edit['after']!r}  ({edit['reason']})",
            markup=False, highlight=False,
        )


def find_document(folder: Path, ref: str) -> dict[str, Any] | None:
    for name in STATUS_FILES.values():
        for record in read_jsonl(folder / name):
            if record["id"] == ref or record["source"] == ref or record["id"].startswith(ref):
                return record
    return None


@click.command(name="verify")
@click.argument("version", required=False)
@corpus_option
@config_option
def verify_command(version: str | None, corpus: str | None, config_path: str | None) -> None:
    """Recompute every hash of a version; exit 1 on any mismatch."""
    folder = resolve_version(corpus_path(corpus, config_path), version)
    problems = verify(folder)
    if problems:
        for problem in problems:
            click.echo(f"{folder.name}: {problem}", err=True)
        sys.exit(1)
    click.echo(f"version {folder.name}: intact ({len(read_manifest(folder)['outputs'])} documents)")


# --------------------------------------------------------------------------- export
@click.command()
@click.argument("version", required=False)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet", "txt"]), default="jsonl", show_default=True)
@click.option("--out", "out", type=click.Path(), required=True, help="Output file (jsonl, parquet) or folder (txt).")
@corpus_option
@config_option
def export(version: str | None, fmt: str, out: str, corpus: str | None, config_path: str | None) -> None:
    """Export a version's documents for other tools (datasets.load_dataset reads jsonl and parquet)."""
    from curate.export import export_version

    folder = resolve_version(corpus_path(corpus, config_path), version)
    try:
        count = export_version(folder, fmt, Path(out))
    except (OSError, ImportError) as exc:
        fail(f"{out}: {exc}")
    click.echo(f"exported {count} documents of version {folder.name} to {out} ({fmt})")


# --------------------------------------------------------------------------- config
@click.group(name="config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command(name="show")
@config_option
def config_show(config_path: str | None) -> None:
    """Print the effective configuration as TOML, with each key's documentation."""
    click.echo(config_module.documented(load_config(config_path)), nl=False)


def register(group: click.Group) -> None:
    for command in [run, log, show, verify_command, export, config_group]:
        group.add_command(command)
